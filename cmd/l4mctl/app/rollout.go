package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/rollout"
)

func (c *cli) newRolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow or restart the rollout of a Blueprint to its Instances",
		Long: `When a Blueprint or one of its Overlays changes, each running Instance shows
UpdatePending and restarts onto the new spec when its rollout allows:
policy WhenEmpty (the default) waits until no player is on it, Immediate does
not; at most spec.rollout.maxUnavailable of the Blueprint's Instances restart
at once.`,
	}
	var watch bool
	var timeout time.Duration
	status := &cobra.Command{
		Use:               "status BLUEPRINT",
		Short:             "Show how many Instances run the Blueprint's current spec, and wait until all do",
		Example:           "  l4mctl rollout status blueprint/coop\n  l4mctl rollout status coop --watch=false",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("blueprints"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			return c.rolloutStatus(cmd.Context(), cl, blueprintName(args[0]), watch, newWaitDeadline(timeout))
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", true, "wait until the rollout completes")
	status.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting after this long (0: no limit)")
	restart := &cobra.Command{
		Use:   "restart BLUEPRINT",
		Short: "Restart every Instance of a Blueprint, under its rollout rules",
		Long: `Restart stamps the Blueprint with a restartedAt annotation. That is a new
spec for every Instance, so they all restart the way any change rolls out:
empty ones first, at most maxUnavailable at a time (or all at once with
policy Immediate).`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("blueprints"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			name := blueprintName(args[0])
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
				v1.AnnotationRestartedAt: time.Now().UTC().Format(time.RFC3339Nano)}}})
			if _, err := cl.Patch(ctx, resources.Blueprints, c.ns(), name, "application/merge-patch+json", patch, false); err != nil {
				return err
			}
			fmt.Fprintf(c.streams.Out, "blueprint.left4me.io/%s restarted\n", name)
			return nil
		},
	}
	cmd.AddCommand(status, restart)
	return cmd
}

// blueprintName accepts NAME, blueprint/NAME and blueprints/NAME.
func blueprintName(arg string) string {
	for _, p := range []string{"blueprint/", "blueprints/", "blueprint.left4me.io/", "bp/"} {
		if n, ok := strings.CutPrefix(arg, p); ok {
			return n
		}
	}
	return arg
}

func (c *cli) rolloutStatus(ctx context.Context, cl *client.Client, name string, watch bool, deadline waitDeadline) error {
	last := ""
	for {
		rctx, cancel := c.requestContext(ctx)
		p, err := c.assessRollout(rctx, cl, name)
		cancel()
		if err != nil {
			return err
		}
		line := describeRollout(name, p)
		if line != last {
			fmt.Fprintln(c.streams.Out, line)
			last = line
		}
		if p.Updated == p.Total {
			return nil
		}
		if !watch {
			return &ExitError{Code: 1}
		}
		if err := deadline.sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("rollout of blueprint %s not complete: %w", name, err)
		}
	}
}

// assessRollout reads a Blueprint, its namespace's Instances and Overlays
// once and says where its rollout stands.
func (c *cli) assessRollout(ctx context.Context, cl *client.Client, name string) (rollout.Progress, error) {
	obj, err := cl.Get(ctx, resources.Blueprints, c.ns(), name)
	if err != nil {
		return rollout.Progress{}, err
	}
	items, _, err := listAll(ctx, cl, resources.Instances, c.ns(), client.ListOptions{})
	if err != nil {
		return rollout.Progress{}, err
	}
	var instances []*v1.Instance
	for _, o := range items {
		instances = append(instances, o.(*v1.Instance))
	}
	ovs, _, err := listAll(ctx, cl, resources.Overlays, c.ns(), client.ListOptions{})
	if err != nil {
		return rollout.Progress{}, err
	}
	overlays := map[string]*v1.Overlay{}
	for _, o := range ovs {
		overlays[o.GetName()] = o.(*v1.Overlay)
	}
	return rollout.Assess(obj.(*v1.Blueprint), overlays, instances), nil
}

func describeRollout(name string, p rollout.Progress) string {
	if p.Updated == p.Total {
		return fmt.Sprintf("blueprint/%s: rollout complete: %d of %d Instances updated", name, p.Updated, p.Total)
	}
	parts := []string{fmt.Sprintf("%d of %d Instances updated", p.Updated, p.Total)}
	if n := len(p.Restarting); n > 0 {
		parts = append(parts, fmt.Sprintf("%d restarting (%s)", n, strings.Join(p.Restarting, ", ")))
	}
	if n := len(p.Waiting); n > 0 {
		var w []string
		for _, in := range p.Waiting {
			w = append(w, fmt.Sprintf("%s: %d players", in.Name, in.Status.Players))
		}
		parts = append(parts, fmt.Sprintf("%d waiting for players to leave (%s)", n, strings.Join(w, ", ")))
	}
	if n := len(p.Queued); n > 0 {
		parts = append(parts, fmt.Sprintf("%d queued", n))
	}
	if rest := p.Total - p.Updated - len(p.Restarting) - len(p.Waiting) - len(p.Queued); rest > 0 {
		parts = append(parts, fmt.Sprintf("%d not yet seen by their node", rest))
	}
	return fmt.Sprintf("blueprint/%s: %s", name, strings.Join(parts, ", "))
}
