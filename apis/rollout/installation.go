package rollout

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/placement"
)

// Why an Instance does not run its Installation's wanted build yet
// (Lag.Reason). A new build reaches a game in steps: the Instance is
// placed, its node downloads the build, the node renders the Instance onto
// it (a pending template), the rollout approves the restart (players
// permitting), and the game restarts. Each reason is the step it waits on.
const (
	// LagNoBuild: the Installation wants no build yet (no node has seen
	// its branch on Steam) or is being deleted.
	LagNoBuild = "NoBuild"
	// LagNotPlaced: no node is chosen for the Instance yet.
	LagNotPlaced = "NotPlaced"
	// LagNodeNotReady: its node is gone or not heard from, so nothing
	// there changes.
	LagNodeNotReady = "NodeNotReady"
	// LagBuildNotReady: its node does not have the wanted build ready
	// (downloading it, failing to, or waiting for a download slot).
	LagBuildNotReady = "BuildNotReady"
	// LagPlayersOnline: the restart onto the build waits for the players
	// to leave (rollout policy WhenEmpty).
	LagPlayersOnline = "PlayersOnline"
	// LagQueued: the restart waits for its turn (maxUnavailable).
	LagQueued = "Queued"
	// LagRestarting: the restart is approved and under way.
	LagRestarting = "Restarting"
	// LagNotRendered: its node has the build but has not yet rendered the
	// Instance onto it (it has not reconciled it since the build arrived,
	// or the game is starting for the first time).
	LagNotRendered = "NotRendered"
)

// InstallationProgress is how far an Installation's wanted build has
// reached the games that run on it; l4mctl rollout status installation/NAME
// prints it.
type InstallationProgress struct {
	// Wanted is the Installation's status.wantedBuild ("" while it has none).
	Wanted string
	// Blocked says why no Instance moves onto a build ("" unless the
	// Installation has none yet or is being deleted).
	Blocked string
	// Total counts the Instances whose Blueprint runs on the Installation,
	// not stopped and not being deleted: a stopped game runs no build, and
	// starts on the wanted one when it is ready on its node.
	Total int
	// OnWanted counts those that run the wanted build.
	OnWanted int
	// Lagging are the others, by namespace and name, each with why.
	Lagging []Lag
	// Unsettled says what has to happen before Wanted can be trusted (an
	// admin's checkRequestedAt that a node has not answered yet, or a
	// build a node saw that the Installation's status does not show yet),
	// so a rollout status run right after a check request does not call
	// the old build's rollout complete.
	Unsettled []string
}

// Done reports whether every Instance runs the wanted build, and that
// build is settled.
func (p InstallationProgress) Done() bool {
	return p.Wanted != "" && p.OnWanted == p.Total && len(p.Unsettled) == 0
}

// Lag is one Instance that does not run the wanted build yet.
type Lag struct {
	Instance *v1.Instance
	// Reason is one of the Lag* words; Message says it for people
	// ("2 players, WhenEmpty").
	Reason, Message string
}

// AssessInstallation says which Instances run a build of inst other than
// its wanted one, and why. blueprints and instances are from every
// namespace the caller sees (an Instance's Blueprint is looked up in its
// own namespace; one whose Blueprint is missing cannot be said to run on
// inst and is left out); nodes are every Node, to tell whether an
// Instance's node has the build. Pure: l4mctl reads the objects once per
// round and prints what this returns.
func AssessInstallation(inst *v1.Installation, blueprints []*v1.Blueprint, instances []*v1.Instance, nodes []*v1.Node) InstallationProgress {
	p := InstallationProgress{Wanted: inst.Status.WantedBuild, Blocked: blocked(inst), Unsettled: unsettled(inst, nodes)}
	uses := map[string]*v1.Blueprint{}
	for _, bp := range blueprints {
		if bp.InstallationName() == inst.Name {
			uses[bp.Namespace+"/"+bp.Name] = bp
		}
	}
	byName := map[string]*v1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	for _, in := range instances {
		bp := uses[in.Namespace+"/"+in.Spec.BlueprintRef.Name]
		if bp == nil || in.DeletionTimestamp != nil || in.Spec.State == v1.StateStopped {
			continue
		}
		p.Total++
		if p.Wanted != "" && in.Status.Installation == inst.Name && in.Status.Build == p.Wanted {
			p.OnWanted++
			continue
		}
		reason, msg := LagNoBuild, p.Blocked
		if p.Blocked == "" {
			reason, msg = lagOf(inst, bp, in, byName)
		}
		p.Lagging = append(p.Lagging, Lag{Instance: in, Reason: reason, Message: msg})
	}
	sort.Slice(p.Lagging, func(i, j int) bool {
		a, b := p.Lagging[i].Instance, p.Lagging[j].Instance
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return p
}

// lagOf is the first step on the way to the wanted build that in has not
// taken, in the order the steps happen.
func lagOf(inst *v1.Installation, bp *v1.Blueprint, in *v1.Instance, nodes map[string]*v1.Node) (reason, msg string) {
	wanted := inst.Status.WantedBuild
	nodeName := in.Spec.NodeName
	if nodeName == "" {
		msg = "not yet placed on a node"
		if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceScheduled); c != nil && c.Status == metav1.ConditionFalse && c.Message != "" {
			msg += ": " + c.Message
		}
		return LagNotPlaced, msg
	}
	n := nodes[nodeName]
	switch {
	case n == nil:
		return LagNodeNotReady, "node " + nodeName + " does not exist"
	case !placement.Ready(n):
		return LagNodeNotReady, "node " + nodeName + " is not ready"
	}
	if e := n.Status.NodeInstallationFor(inst.Name); e == nil || !e.HasBuild(wanted) {
		return LagBuildNotReady, buildNotReady(inst, nodeName, e)
	}
	policy := bp.Spec.Rollout.Policy
	if policy == "" {
		policy = v1.RolloutWhenEmpty
	}
	pending := in.Status.PendingTemplateHash
	approved := in.Annotations[v1.AnnotationApprovedTemplate]
	switch {
	case pending != "" && approved == pending:
		return LagRestarting, "restarting onto build " + wanted
	case pending != "" && policy != v1.RolloutImmediate && in.Status.Players > 0 && !InstanceForced(in) && !BlueprintForced(bp, in):
		return LagPlayersOnline, fmt.Sprintf("%d %s, %s", in.Status.Players, plural(in.Status.Players, "player", "players"), policy)
	case pending != "":
		return LagQueued, fmt.Sprintf("%s restart pending, waiting for its turn under maxUnavailable %d", policy, max(bp.Spec.Rollout.MaxUnavailable, 1))
	case in.Status.TemplateHash == "":
		return LagNotRendered, "starting on node " + nodeName
	}
	return LagNotRendered, "node " + nodeName + " has build " + wanted + " and has not rendered the Instance onto it yet"
}

// unsettled lists the Ready nodes that report inst but have not checked
// Steam since the checkRequestedAt annotation's time (when it is one), and
// those that saw a newer build than the Installation's status shows (the
// installation controller has not caught up yet).
func unsettled(inst *v1.Installation, nodes []*v1.Node) []string {
	requested, err := time.Parse(time.RFC3339Nano, inst.Annotations[v1.AnnotationCheckRequestedAt])
	asked := err == nil
	var out []string
	for _, n := range nodes {
		e := n.Status.NodeInstallationFor(inst.Name)
		if e == nil || !placement.Ready(n) {
			continue
		}
		switch {
		case asked && (e.CheckedAt == nil || e.CheckedAt.Time.Before(requested.Truncate(time.Second).Add(-checkSkew))):
			out = append(out, "node "+n.Name+" has not checked Steam since "+requested.UTC().Format(time.RFC3339))
		case newerBuild(e.LatestSeen, inst.Status.LatestBuild):
			out = append(out, "node "+n.Name+" saw build "+e.LatestSeen+", not yet in the Installation's status")
		}
	}
	sort.Strings(out)
	return out
}

// checkSkew is how much earlier than a check request a node's check may
// be stamped and still answer it: checkedAt has whole seconds, and the
// admin's clock and the node's differ a little.
const checkSkew = 2 * time.Second

// newerBuild compares build ids as the numbers they are.
func newerBuild(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// blocked is placement.InstallationBlocked without the Installation's
// name, which the caller prints already.
func blocked(inst *v1.Installation) string {
	switch {
	case inst.DeletionTimestamp != nil:
		return "the Installation is being deleted"
	case inst.Status.WantedBuild == "":
		return "no build yet: no node has seen branch " + inst.Spec.Branch + "'s build"
	}
	return ""
}

// buildNotReady says why node lacks the wanted build: what it reports
// about the Installation (e is nil when it reports nothing), or that it
// waits for a download slot.
func buildNotReady(inst *v1.Installation, node string, e *v1.NodeInstallation) string {
	build := inst.Status.WantedBuild
	msg := "build " + build + " not ready on node " + node
	switch {
	case e == nil:
		return msg + " (it has not reported this Installation)"
	case e.Downloading == build || e.Phase == v1.InstallDownloading:
		return msg + " (downloading)"
	case e.Phase == v1.InstallFailed || e.Reason != "" || e.Message != "":
		return msg + ": " + placement.NodeInstallationProblem(e)
	case inst.Spec.MaxConcurrentDownloads > 0 && !slices.Contains(inst.Status.DownloadsAllowed, node):
		return fmt.Sprintf("%s (waiting for a download slot: maxConcurrentDownloads %d)", msg, inst.Spec.MaxConcurrentDownloads)
	}
	return msg + " (" + e.Phase + ")"
}

func plural(n int32, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
