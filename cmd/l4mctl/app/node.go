package app

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/placement"
	"github.com/left4me/left4me/apis/resources"
)

func (c *cli) newCordonCommand(cordon bool) *cobra.Command {
	use, short := "cordon NODE", "Keep new Instances off a node (those on it keep running)"
	if !cordon {
		use, short = "uncordon NODE", "Let the scheduler place Instances on a node again"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("nodes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			return c.setUnschedulable(ctx, cl, args[0], cordon)
		},
	}
}

func (c *cli) setUnschedulable(ctx context.Context, cl *client.Client, node string, on bool) error {
	obj, err := cl.Get(ctx, resources.Nodes, "", node)
	if err != nil {
		return err
	}
	word := map[bool]string{true: "cordoned", false: "uncordoned"}[on]
	if obj.(*v1.Node).Spec.Unschedulable == on {
		fmt.Fprintf(c.streams.Out, "node/%s already %s\n", node, word)
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"unschedulable": on}})
	if _, err := cl.Patch(ctx, resources.Nodes, "", node, "application/merge-patch+json", patch, false); err != nil {
		return err
	}
	fmt.Fprintf(c.streams.Out, "node/%s %s\n", node, word)
	return nil
}

type drainOptions struct {
	force    bool
	timeout  time.Duration
	interval time.Duration
}

func (c *cli) newDrainCommand() *cobra.Command {
	o := &drainOptions{}
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and move its Instances elsewhere as their players leave",
		Long: `Drain cordons the node, then moves each Instance the scheduler placed there
to another node as soon as it has no players (from its A2S answers), and
waits until the node holds none. Players are never kicked unless --force.

An Instance whose spec.nodeName a user wrote is pinned: drain reports it and
waits (edit or delete it), unless --force, which unpins it. A later apply of
a manifest that names the node pins it again.

An Instance no other node could take (none Ready, uncordoned and matching
its nodeSelector) is not moved: moving it would only stop its game. Drain
says so and waits for such a node, unless --force.`,
		Example: `  l4mctl drain host-3
  l4mctl drain host-3 --force --timeout 5m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("nodes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			return c.runDrain(cmd.Context(), cl, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "move Instances that have players, and pinned ones, now")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long (0: wait as long as it takes)")
	cmd.Flags().DurationVar(&o.interval, "poll-interval", 2*time.Second, "how often to look at the node's Instances")
	return cmd
}

func (c *cli) runDrain(ctx context.Context, cl *client.Client, node string, o *drainOptions) error {
	deadline := newWaitDeadline(o.timeout)
	rctx, cancel := c.requestContext(ctx)
	err := c.setUnschedulable(rctx, cl, node, true)
	cancel()
	if err != nil {
		return err
	}
	reported := map[string]string{}
	for {
		rctx, cancel := c.requestContext(ctx)
		left, err := c.drainRound(rctx, cl, node, o, reported)
		cancel()
		if err != nil {
			return err
		}
		if len(left) == 0 {
			fmt.Fprintf(c.streams.Out, "node/%s drained\n", node)
			return nil
		}
		if err := deadline.sleep(ctx, o.interval); err != nil {
			return fmt.Errorf("drain %s: gave up with %d Instances left (%s): %w", node, len(left), strings.Join(left, ", "), err)
		}
	}
}

// drainRound looks at the node's Instances once, moves off those that may
// go, reports those that wait (each reason once), and returns what is left
// on the node as namespace/name.
func (c *cli) drainRound(ctx context.Context, cl *client.Client, node string, o *drainOptions, reported map[string]string) ([]string, error) {
	items, _, err := listAll(ctx, cl, resources.Instances, "", client.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, err
	}
	sort.Slice(items, func(i, j int) bool {
		return items[i].GetNamespace()+"/"+items[i].GetName() < items[j].GetNamespace()+"/"+items[j].GetName()
	})
	nodes, _, err := listAll(ctx, cl, resources.Nodes, "", client.ListOptions{})
	if err != nil {
		return nil, err
	}
	var left []string
	for _, obj := range items {
		in := obj.(*v1.Instance)
		ref := "instance/" + in.Namespace + "/" + in.Name
		why := ""
		switch {
		case in.DeletionTimestamp != nil:
			why = "being deleted"
		case in.Annotations[v1.AnnotationBoundBy] != "scheduler" && !o.force:
			why = "pinned by spec.nodeName (edit it, or drain --force)"
		case in.Status.Players > 0 && !o.force:
			why = fmt.Sprintf("waiting: %d players on it", in.Status.Players)
		case !o.force:
			if none := noOtherTaker(in, node, nodes); none != "" {
				why = "waiting: no other node can take it (" + none + "); moving it would only stop its game (drain --force moves it anyway)"
			}
		}
		if why != "" {
			if reported[ref] != why {
				fmt.Fprintf(c.streams.Out, "%s %s\n", ref, why)
				reported[ref] = why
			}
			left = append(left, in.Namespace+"/"+in.Name)
			continue
		}
		if err := moveOff(ctx, cl, in); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				left = append(left, in.Namespace+"/"+in.Name)
				continue // changed meanwhile: look again next round
			}
			return nil, err
		}
		fmt.Fprintf(c.streams.Out, "%s moved off (%d players)\n", ref, in.Status.Players)
	}
	return left, nil
}

// noOtherTaker says why no node but the drained one could take in once it
// is unbound ("" when one could): the scheduler's own rules of readiness,
// cordon and nodeSelector (room and ports are the scheduler's to judge).
func noOtherTaker(in *v1.Instance, drained string, nodes []v1.Object) string {
	unbound := in.DeepCopy()
	unbound.Spec.NodeName = ""
	var refused placement.Tally
	others := 0
	for _, obj := range nodes {
		n := obj.(*v1.Node)
		if n.Name == drained {
			continue
		}
		others++
		why := placement.Refusal(n, unbound)
		if why == "" {
			return ""
		}
		refused.Add(why)
	}
	if others == 0 {
		return "it is the only node"
	}
	return fmt.Sprintf("0/%d other nodes available: %s", others, refused.String())
}

// moveOff unbinds an Instance, if it is still the version drain looked at:
// the scheduler binds it elsewhere (the node is cordoned) and the node's
// agent stops its copy here.
func moveOff(ctx context.Context, cl *client.Client, in *v1.Instance) error {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": in.ResourceVersion, "annotations": map[string]any{v1.AnnotationBoundBy: nil}},
		"spec":     map[string]any{"nodeName": nil},
	})
	_, err := cl.Patch(ctx, resources.Instances, in.Namespace, in.Name, "application/merge-patch+json", patch, false)
	return err
}
