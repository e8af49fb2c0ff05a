package installation

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/placement"
)

// Condition reasons of an Installation's Ready condition.
const (
	ReasonBuildReady    = "BuildReady"
	ReasonNoNodes       = "NoNodes"
	ReasonNoBuild       = "NoBuild"
	ReasonNodesNotReady = "NodesNotReady"
	ReasonNodesFailed   = "NodesFailed"
)

// ConditionInUse is True on an Installation being deleted while Instances
// still run one of its builds: the finalizer holds it until they stop.
const ConditionInUse = "InUse"

// maxNodesNamed bounds how many lagging nodes a condition message names.
const maxNodesNamed = 10

// Selected are the nodes an Installation's nodeSelector picks (all when it
// is empty), by name.
func Selected(inst *v1.Installation, nodes []*v1.Node) []*v1.Node {
	sel := labels.SelectorFromSet(inst.Spec.NodeSelector)
	var out []*v1.Node
	for _, n := range nodes {
		if sel.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Assess is the status an Installation should have, from the nodes (all of
// them; it selects its own) and the status it has now: the builds, the
// counts, the download slots and the Ready condition (other conditions
// are carried over). Pure: the controller writes what it returns.
func Assess(inst *v1.Installation, nodes []*v1.Node) v1.InstallationStatus {
	selected := Selected(inst, nodes)
	st := v1.InstallationStatus{ObservedGeneration: inst.Generation, LatestBuild: inst.Status.LatestBuild}
	for _, c := range inst.Status.Conditions {
		st.Conditions = append(st.Conditions, *c.DeepCopy())
	}
	// The latest build only moves forward: one node that saw an older
	// answer (a stale app info cache, a slow CDN) does not roll the fleet
	// back.
	for _, n := range selected {
		if e := n.Status.NodeInstallationFor(inst.Name); e != nil && v1.NewerBuild(e.LatestSeen, st.LatestBuild) {
			st.LatestBuild = e.LatestSeen
		}
	}
	st.WantedBuild = st.LatestBuild
	if inst.Spec.Build != v1.BuildLatest && inst.Spec.Build != "" {
		st.WantedBuild = inst.Spec.Build
	}
	states := make([]NodeState, 0, len(selected))
	for _, n := range selected {
		s := StateOf(n, inst.Name, st.WantedBuild)
		states = append(states, s)
		st.Nodes++
		switch {
		case s.Ready:
			st.Ready++
		case s.Downloading:
			st.Downloading++
		case s.Failed:
			st.Failed++
		}
	}
	if inst.Spec.MaxConcurrentDownloads > 0 && st.WantedBuild != "" {
		st.DownloadsAllowed = DownloadsAllowed(inst.Spec.MaxConcurrentDownloads, inst.Status.DownloadsAllowed, states)
	}
	setCondition(&st.Conditions, readyCondition(inst, &st, selected, states))
	return st
}

// NodeState is where one selected node stands with the wanted build; a
// node is in one of Ready, Downloading, Failed or none (pending).
type NodeState struct {
	Name string
	// Ready: the wanted build is among its builds.
	Ready bool
	// Downloading: it fetches the wanted build (or reports phase
	// Downloading).
	Downloading bool
	// Failed: its last check or download failed; it retries with backoff.
	Failed bool
	// Problem is what it says when not Ready ("" when it reported nothing).
	Problem string
	// Reported: the node has an entry for the Installation.
	Reported bool
}

// StateOf is where node n stands with build wanted of Installation name.
func StateOf(n *v1.Node, name, wanted string) NodeState {
	s := NodeState{Name: n.Name}
	e := n.Status.NodeInstallationFor(name)
	if e == nil {
		return s
	}
	s.Reported = true
	switch {
	case wanted != "" && e.HasBuild(wanted):
		s.Ready = true
	case wanted != "" && e.Downloading == wanted || e.Phase == v1.InstallDownloading:
		s.Downloading = true
	case e.Phase == v1.InstallFailed:
		s.Failed = true
	}
	switch {
	case s.Ready:
	case e.Reason != "" || e.Message != "":
		s.Problem = placement.NodeInstallationProblem(e)
	case s.Downloading && e.Downloading != "":
		s.Problem = "downloading build " + e.Downloading
	case s.Downloading:
		s.Problem = "downloading"
	default:
		// Its phase may be about an older wanted build (Ready on it).
		s.Problem = "pending"
	}
	return s
}

// DownloadsAllowed picks the nodes that may download the wanted build now,
// at most max at once. Nodes downloading keep their slot (even past a max
// lowered since). Free slots go first to the nodes that had one before and
// have not started yet (so slots do not hop between nodes while they
// start), then to the other nodes that lack the build, by name. Failed
// nodes (backing off before their retry) come last: a node that keeps
// failing never holds a slot the others could use, and still gets one to
// retry when no healthy node waits.
func DownloadsAllowed(max int32, previous []string, nodes []NodeState) []string {
	had := map[string]bool{}
	for _, n := range previous {
		had[n] = true
	}
	var allowed, before, healthy, failed []string
	for _, n := range nodes {
		switch {
		case n.Ready:
		case n.Downloading:
			allowed = append(allowed, n.Name)
		case n.Failed:
			failed = append(failed, n.Name)
		case had[n.Name]:
			before = append(before, n.Name)
		default:
			healthy = append(healthy, n.Name)
		}
	}
	for _, group := range [][]string{before, healthy, failed} {
		sort.Strings(group)
		for _, n := range group {
			if int32(len(allowed)) >= max {
				break
			}
			allowed = append(allowed, n)
		}
	}
	sort.Strings(allowed)
	return allowed
}

func readyCondition(inst *v1.Installation, st *v1.InstallationStatus, selected []*v1.Node, states []NodeState) metav1.Condition {
	c := metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: inst.Generation}
	switch {
	case len(selected) == 0:
		c.Reason = ReasonNoNodes
		c.Message = "no node matches nodeSelector"
		if len(inst.Spec.NodeSelector) == 0 {
			c.Message = "no node has registered"
		}
		return c
	case st.WantedBuild == "":
		c.Reason = ReasonNoBuild
		c.Message = fmt.Sprintf("no node has seen branch %s's build yet", inst.Spec.Branch)
		if p := problems(states, nil); p != "" {
			c.Message += "; " + p
		}
		return c
	case st.Ready == st.Nodes:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonBuildReady
		c.Message = fmt.Sprintf("%d/%d nodes ready with build %s", st.Ready, st.Nodes, st.WantedBuild)
		return c
	}
	c.Reason = ReasonNodesNotReady
	if st.Failed > 0 {
		c.Reason = ReasonNodesFailed
	}
	allowed := map[string]bool{}
	for _, n := range st.DownloadsAllowed {
		allowed[n] = true
	}
	waitingForSlot := func(s NodeState) bool {
		return inst.Spec.MaxConcurrentDownloads > 0 && !s.Downloading && !s.Failed && !allowed[s.Name]
	}
	c.Message = fmt.Sprintf("%d/%d nodes ready with build %s; %s", st.Ready, st.Nodes, st.WantedBuild, problems(states, waitingForSlot))
	return c
}

// problems names the nodes that are not ready and why, failed ones first,
// at most maxNodesNamed of them.
func problems(states []NodeState, waitingForSlot func(NodeState) bool) string {
	var failed, other []string
	for _, s := range states {
		if s.Ready {
			continue
		}
		why := s.Problem
		switch {
		case !s.Reported:
			why = "not reported yet"
		case waitingForSlot != nil && waitingForSlot(s):
			why = "waiting for a download slot (maxConcurrentDownloads)"
		}
		line := "node " + s.Name + ": " + why
		if s.Failed {
			failed = append(failed, line)
		} else {
			other = append(other, line)
		}
	}
	all := append(failed, other...)
	if len(all) > maxNodesNamed {
		all = append(all[:maxNodesNamed], fmt.Sprintf("and %d more", len(all)-maxNodesNamed))
	}
	return strings.Join(all, "; ")
}

// Holders are the Instances that run one of the Installation's builds
// ("namespace/name", sorted): they keep a deleted Installation. An Instance
// holds it while its node reports it on a build of it and it is not
// stopped.
func Holders(name string, instances []*v1.Instance) []string {
	var out []string
	for _, in := range instances {
		if in.Status.Installation == name && in.Status.Build != "" && in.Status.Phase != v1.PhaseStopped {
			out = append(out, in.Namespace+"/"+in.Name)
		}
	}
	sort.Strings(out)
	return out
}

// setCondition is meta.SetStatusCondition without the clock: the
// transition time moves only when the status does, and is stamped by the
// controller (a zero time is set to now there).
func setCondition(conds *[]metav1.Condition, c metav1.Condition) {
	for i := range *conds {
		cur := &(*conds)[i]
		if cur.Type != c.Type {
			continue
		}
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = c
		return
	}
	*conds = append(*conds, c)
}

func removeCondition(conds *[]metav1.Condition, typ string) {
	out := (*conds)[:0]
	for _, c := range *conds {
		if c.Type != typ {
			out = append(out, c)
		}
	}
	*conds = out
}
