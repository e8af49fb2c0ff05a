package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/rollout"
)

func (c *cli) newRolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow or restart the rollout of a Blueprint, or of an Installation's build, to its Instances",
		Long: `When a Blueprint or one of its Overlays changes, each running Instance shows
UpdatePending and restarts onto the new spec when its rollout allows:
policy WhenEmpty (the default) waits until no player is on it, Immediate does
not; at most spec.rollout.maxUnavailable of the Blueprint's Instances restart
at once.

A new build of an Installation (the branch's latest, or a pinned one) rolls
out the same way, Blueprint by Blueprint, once each node has downloaded it.`,
	}
	var watch bool
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status (BLUEPRINT | blueprint/NAME | instance/NAME | installation/NAME)",
		Short: "Show how many Instances run the current spec (or build), and wait until all do",
		Long: `For a Blueprint (in the current namespace): how many of its Instances run
its current spec, and which wait for players to leave or for their turn.

For an Instance: whether it runs its Blueprint's current spec (and its
own restartedAt), and if not, what its restart waits for.

For an Installation: how many Instances whose Blueprint runs on it run its
wanted build (status.wantedBuild), and why each other one does not yet: its
node still downloads the build or failed to, players are on it (WhenEmpty),
its restart waits for its turn, or it is not placed yet. It looks at every
namespace; with -n, at that one only (a user who may not list across
namespaces sees the current one). Stopped Instances run no build and are
not counted.

Exits 0 once all are updated; with --watch=false, 1 while some are not.`,
		Example: `  l4mctl rollout status blueprint/coop
  l4mctl rollout status coop --watch=false
  l4mctl rollout status instance/coop-1
  l4mctl rollout status installation/l4d2 --timeout 30m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeRolloutTargets(resources.Blueprints, resources.Instances, resources.Installations),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := rolloutTarget(args[0])
			if err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			switch res {
			case resources.Installations:
				return c.installationRolloutStatus(cmd.Context(), cl, name, watch, newWaitDeadline(timeout))
			case resources.Instances:
				return c.instanceRolloutStatus(cmd.Context(), cl, name, watch, newWaitDeadline(timeout))
			}
			return c.rolloutStatus(cmd.Context(), cl, name, watch, newWaitDeadline(timeout))
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", true, "wait until the rollout completes")
	status.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting after this long (0: no limit)")
	var force bool
	restart := &cobra.Command{
		Use:   "restart (BLUEPRINT | blueprint/NAME | instance/NAME)",
		Short: "Restart every Instance of a Blueprint, or one Instance, under the Blueprint's rollout rules",
		Long: `Restart stamps the object with a left4me.io/restartedAt annotation (the
time, RFC 3339). On a Blueprint that is a new spec for every Instance, so
they all restart the way any change rolls out: empty ones first, at most
maxUnavailable at a time (or all at once with policy Immediate). On an
Instance it is a new spec for that Instance alone, and it restarts under
its Blueprint's rules: with players on it (policy WhenEmpty) it waits for
them to leave, and shows UpdatePending with reason RestartRequested.

--force also sets left4me.io/forceRestartAt to the same time: an Instance
restarts now, players or not, without waiting for its turn; a Blueprint's
Instances restart with players on them too, still at most maxUnavailable at
a time. The force is spent once the game has restarted.

A Stopped Instance has nothing to restart: it starts with the current spec
when its state is Running again.`,
		Example: `  l4mctl rollout restart blueprint/coop
  l4mctl rollout restart instance/coop-1
  l4mctl rollout restart instance/coop-1 --force`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeRolloutTargets(resources.Blueprints, resources.Instances),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, name, err := rolloutTarget(args[0])
			if err != nil {
				return err
			}
			if res == resources.Installations {
				return fmt.Errorf("rollout restart restarts a Blueprint's Instances or one Instance, not an %s's: a new build rolls out by itself (pin spec.build to choose one)", res.Kind)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			if res == resources.Instances {
				obj, err := cl.Get(ctx, res, c.ns(), name)
				if err != nil {
					return err
				}
				if obj.(*v1.Instance).Spec.State == v1.StateStopped {
					return fmt.Errorf("instance/%s is Stopped: nothing to restart (set spec.state to Running to start it)", name)
				}
			}
			if _, err := cl.Patch(ctx, res, c.ns(), name, "application/merge-patch+json", rollout.RestartPatch(time.Now(), force), false); err != nil {
				return err
			}
			fmt.Fprintf(c.streams.Out, "%s.%s/%s restarted\n", strings.ToLower(res.Kind), v1.Group, name)
			return nil
		},
	}
	restart.Flags().BoolVar(&force, "force", false, "restart now, players or not (an Instance also without waiting for its turn)")
	cmd.AddCommand(status, restart)
	return cmd
}

// rolloutTarget reads NAME (a Blueprint), or KIND/NAME where KIND is any
// spelling of blueprint, instance or installation (bp/coop, instances/coop-1,
// installation.left4me.io/l4d2).
// completeRolloutTargets completes what rolloutTarget takes: a bare word is
// a Blueprint's name or the start of KIND/ (one of kinds), and after KIND/
// come that kind's names. Without it, the shell offered Blueprints only,
// though restart and status take instance/NAME too.
func (c *cli) completeRolloutTargets(kinds ...*resources.Resource) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		kind, prefix, typed := strings.Cut(toComplete, "/")
		if !typed {
			names, dir := c.completeNames(resources.Blueprints.Plural)(cmd, args, toComplete)
			for _, k := range kinds {
				if strings.HasPrefix(k.Singular+"/", toComplete) {
					names = append(names, k.Singular+"/")
					// The shell must not end KIND/ with a space.
					dir |= cobra.ShellCompDirectiveNoSpace
				}
			}
			return names, dir
		}
		for _, k := range kinds {
			if k.Singular != kind {
				continue
			}
			names, dir := c.completeNames(k.Plural)(cmd, args, prefix)
			for i := range names {
				names[i] = kind + "/" + names[i]
			}
			return names, dir
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

func rolloutTarget(arg string) (*resources.Resource, string, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		return resources.Blueprints, arg, nil
	}
	res, found := resources.Lookup(kind)
	switch {
	case name == "" || strings.Contains(name, "/"):
		return nil, "", fmt.Errorf("%q: want NAME or KIND/NAME (blueprint/coop, instance/coop-1, installation/l4d2)", arg)
	case !found || res != resources.Blueprints && res != resources.Instances && res != resources.Installations:
		return nil, "", fmt.Errorf("%q: rollouts are of blueprints, instances and installations, not %q", arg, kind)
	}
	return res, name, nil
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
	return c.assessAgainst(ctx, cl, obj.(*v1.Blueprint), instances)
}

// instanceRolloutStatus is rolloutStatus for one Instance: the same
// rounds, output on change, exit codes and --timeout.
func (c *cli) instanceRolloutStatus(ctx context.Context, cl *client.Client, name string, watch bool, deadline waitDeadline) error {
	last := ""
	for {
		rctx, cancel := c.requestContext(ctx)
		line, done, err := c.assessInstanceRollout(rctx, cl, name)
		cancel()
		if err != nil {
			return err
		}
		if line != last {
			fmt.Fprintln(c.streams.Out, line)
			last = line
		}
		if done {
			return nil
		}
		if !watch {
			return &ExitError{Code: 1}
		}
		if err := deadline.sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("restart of instance %s not complete: %w", name, err)
		}
	}
}

// assessInstanceRollout reads an Instance, its Blueprint and the
// namespace's Overlays once and says where its restart stands.
func (c *cli) assessInstanceRollout(ctx context.Context, cl *client.Client, name string) (line string, done bool, err error) {
	obj, err := cl.Get(ctx, resources.Instances, c.ns(), name)
	if err != nil {
		return "", false, err
	}
	in := obj.(*v1.Instance)
	if in.Spec.State == v1.StateStopped {
		return fmt.Sprintf("instance/%s: Stopped: nothing runs, it starts with the current spec", name), true, nil
	}
	bp, err := cl.Get(ctx, resources.Blueprints, c.ns(), in.Spec.BlueprintRef.Name)
	if err != nil {
		return "", false, fmt.Errorf("blueprint of instance %s: %w", name, err)
	}
	p, err := c.assessAgainst(ctx, cl, bp.(*v1.Blueprint), []*v1.Instance{in})
	if err != nil {
		return "", false, err
	}
	return describeInstanceRollout(bp.(*v1.Blueprint), in, p), p.Updated == 1, nil
}

func describeInstanceRollout(bp *v1.Blueprint, in *v1.Instance, p rollout.Progress) string {
	force := fmt.Sprintf("l4mctl rollout restart --force instance/%s restarts it now", in.Name)
	return fmt.Sprintf("instance/%s: %s", in.Name, rollout.DescribeInstance(bp, in, p, force))
}

// assessAgainst says where a Blueprint's rollout stands on instances,
// with the Overlays of its namespace.
func (c *cli) assessAgainst(ctx context.Context, cl *client.Client, bp *v1.Blueprint, instances []*v1.Instance) (rollout.Progress, error) {
	ovs, _, err := listAll(ctx, cl, resources.Overlays, c.ns(), client.ListOptions{})
	if err != nil {
		return rollout.Progress{}, err
	}
	overlays := map[string]*v1.Overlay{}
	for _, o := range ovs {
		overlays[o.GetName()] = o.(*v1.Overlay)
	}
	return rollout.Assess(bp, overlays, instances), nil
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
	if n := len(p.Forced); n > 0 {
		parts = append(parts, fmt.Sprintf("%d forced", n))
	}
	if rest := p.Total - p.Updated - len(p.Restarting) - len(p.Waiting) - len(p.Queued) - len(p.Forced); rest > 0 {
		parts = append(parts, fmt.Sprintf("%d not yet seen by their node", rest))
	}
	return fmt.Sprintf("blueprint/%s: %s", name, strings.Join(parts, ", "))
}

// installationRolloutStatus is rolloutStatus for an Installation's wanted
// build: the same rounds, output on change, exit codes and --timeout.
func (c *cli) installationRolloutStatus(ctx context.Context, cl *client.Client, name string, watch bool, deadline waitDeadline) error {
	last := ""
	scope := &rolloutScope{ns: c.g.namespace}
	for {
		rctx, cancel := c.requestContext(ctx)
		p, err := c.assessInstallationRollout(rctx, cl, name, scope)
		cancel()
		if err != nil {
			return err
		}
		line := describeInstallationRollout(name, p)
		if line != last {
			fmt.Fprintln(c.streams.Out, line)
			last = line
		}
		if p.Done() {
			return nil
		}
		if !watch {
			return &ExitError{Code: 1}
		}
		if err := deadline.sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("rollout of installation %s not complete: %w", name, err)
		}
	}
}

// rolloutScope is where an Installation's Instances are looked for: every
// namespace unless -n names one; a user who may not list across namespaces
// falls back to the current one, once, and is told.
type rolloutScope struct {
	ns       string
	narrowed bool
}

// assessInstallationRollout reads an Installation, the Blueprints and
// Instances in scope and the Nodes once, and says where its build's
// rollout stands.
func (c *cli) assessInstallationRollout(ctx context.Context, cl *client.Client, name string, scope *rolloutScope) (rollout.InstallationProgress, error) {
	obj, err := cl.Get(ctx, resources.Installations, "", name)
	if err != nil {
		return rollout.InstallationProgress{}, err
	}
	bps, _, err := listAll(ctx, cl, resources.Blueprints, scope.ns, client.ListOptions{})
	if apierrors.IsForbidden(err) && scope.ns == "" && !scope.narrowed {
		scope.ns, scope.narrowed = c.ns(), true
		fmt.Fprintf(c.streams.Err, "Showing namespace %s only: you may not list Blueprints across namespaces.\n", scope.ns)
		bps, _, err = listAll(ctx, cl, resources.Blueprints, scope.ns, client.ListOptions{})
	}
	if err != nil {
		return rollout.InstallationProgress{}, fmt.Errorf("list blueprints: %w", err)
	}
	ins, _, err := listAll(ctx, cl, resources.Instances, scope.ns, client.ListOptions{})
	if err != nil {
		return rollout.InstallationProgress{}, fmt.Errorf("list instances: %w", err)
	}
	ns, _, err := listAll(ctx, cl, resources.Nodes, "", client.ListOptions{})
	if err != nil {
		return rollout.InstallationProgress{}, fmt.Errorf("list nodes: %w", err)
	}
	blueprints := make([]*v1.Blueprint, len(bps))
	for i, o := range bps {
		blueprints[i] = o.(*v1.Blueprint)
	}
	instances := make([]*v1.Instance, len(ins))
	for i, o := range ins {
		instances[i] = o.(*v1.Instance)
	}
	nodes := make([]*v1.Node, len(ns))
	for i, o := range ns {
		nodes[i] = o.(*v1.Node)
	}
	return rollout.AssessInstallation(obj.(*v1.Installation), blueprints, instances, nodes), nil
}

// maxLaggingNamed bounds how many Instances one status line names: at
// fleet size the line stays readable, and get instances -o wide has the rest.
const maxLaggingNamed = 10

func describeInstallationRollout(name string, p rollout.InstallationProgress) string {
	if p.Wanted == "" {
		return fmt.Sprintf("installation/%s: %s; %d Instances wait for one", name, p.Blocked, p.Total)
	}
	if p.Done() {
		return fmt.Sprintf("installation/%s: rollout complete: %d of %d Instances on build %s", name, p.OnWanted, p.Total, p.Wanted)
	}
	if p.OnWanted == p.Total && len(p.Unsettled) > 0 {
		return fmt.Sprintf("installation/%s: %d of %d Instances on build %s; waiting for the check: %s",
			name, p.OnWanted, p.Total, p.Wanted, strings.Join(p.Unsettled, ", "))
	}
	var named []string
	for i, l := range p.Lagging {
		if i == maxLaggingNamed {
			named = append(named, fmt.Sprintf("and %d more", len(p.Lagging)-i))
			break
		}
		named = append(named, fmt.Sprintf("%s/%s (%s)", l.Instance.Namespace, l.Instance.Name, l.Message))
	}
	return fmt.Sprintf("installation/%s: %d of %d Instances on build %s; waiting for %d: %s",
		name, p.OnWanted, p.Total, p.Wanted, len(p.Lagging), strings.Join(named, ", "))
}
