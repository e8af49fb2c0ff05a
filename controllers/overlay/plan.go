package overlay

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Reasons of an Overlay's Ready condition.
const (
	ReasonReady         = "Ready"
	ReasonNotUsed       = "NotUsed"
	ReasonNotResolved   = "NotResolved"
	ReasonNodesNotReady = "NodesNotReady"
	ReasonNodesFailed   = "NodesFailed"
)

// maxNodesNamed bounds how many lagging nodes a condition message names.
const maxNodesNamed = 10

// NodesNeeding are the nodes that need an Overlay, by name: each runs an
// Instance of its namespace, bound there and not Stopped or being
// deleted, whose Blueprint stacks it. That is the set whose agents fetch
// it (a stopped game needs nothing fetched).
func NodesNeeding(ov *v1.Overlay, blueprints []*v1.Blueprint, instances []*v1.Instance) []string {
	stacking := map[string]bool{}
	for _, bp := range blueprints {
		if bp.Namespace == ov.Namespace && slices.Contains(bp.Spec.Overlays, ov.Name) {
			stacking[bp.Name] = true
		}
	}
	nodes := map[string]bool{}
	for _, in := range instances {
		if in.Namespace != ov.Namespace || !stacking[in.Spec.BlueprintRef.Name] || in.Spec.State == v1.StateStopped || in.DeletionTimestamp != nil {
			continue
		}
		if n := NodeOf(in); n != "" {
			nodes[n] = true
		}
	}
	out := make([]string, 0, len(nodes))
	for n := range nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NodeOf is the node an Instance runs on: the one its status names (where
// it runs now), else the one it is bound to.
func NodeOf(in *v1.Instance) string {
	if in.Status.NodeName != "" {
		return in.Status.NodeName
	}
	return in.Spec.NodeName
}

// NodeState is where one node that needs the Overlay stands with its
// digest: Ready, Failed, or neither (pending, fetching, not reported).
type NodeState struct {
	Name   string
	Ready  bool
	Failed bool
	// Problem is what it says when not Ready.
	Problem string
}

// Assess is the status an Overlay should have, from the Blueprints and
// Instances (which nodes need it) and the Nodes (what each holds): the
// digest, the counts and the Ready condition; commit, items and other
// conditions are carried over. Pure: the controller writes what it
// returns.
//
// The digest of a files source follows from its spec (WantedDigest). For
// the other fetched sources it is what the nodes resolved: the digest most
// of the nodes that need it report Ready (a tie keeps the current one, or
// takes the smallest), else the current status's while the spec is the one
// it was observed for. A path source has no digest, no counts but Nodes,
// and no Ready condition: each node checks the path when it mounts (the
// Instances' OverlaysReady).
func Assess(ov *v1.Overlay, blueprints []*v1.Blueprint, instances []*v1.Instance, nodes []*v1.Node) v1.OverlayStatus {
	st := v1.OverlayStatus{ObservedGeneration: ov.Generation, Commit: ov.Status.Commit}
	for _, it := range ov.Status.Items {
		st.Items = append(st.Items, *it.DeepCopy())
	}
	for _, c := range ov.Status.Conditions {
		st.Conditions = append(st.Conditions, *c.DeepCopy())
	}
	needing := NodesNeeding(ov, blueprints, instances)
	st.Nodes = int32(len(needing))
	if ov.Spec.Source.Kind() == v1.SourcePath || ov.Spec.Source.Kind() == "" {
		st.Commit, st.Items = "", nil
		removeCondition(&st.Conditions, v1.ConditionReady)
		return st
	}
	byName := map[string]*v1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	entries := map[string]*v1.NodeOverlay{}
	for _, name := range needing {
		if n := byName[name]; n != nil {
			entries[name] = n.Status.NodeOverlayFor(ov.Namespace, ov.Name)
		}
	}
	st.Digest = wantedDigest(ov, entries)
	if commit, items, ok := resolvedAs(ov, entries, st.Digest); ok {
		st.Commit, st.Items = commit, items
	} else if ov.Status.ObservedGeneration != ov.Generation {
		st.Commit, st.Items = "", nil // what the old spec resolved to
	}
	states := make([]NodeState, 0, len(needing))
	for _, name := range needing {
		s := StateOf(name, entries[name], st.Digest, ov.Generation)
		states = append(states, s)
		switch {
		case s.Ready:
			st.Ready++
		case s.Failed:
			st.Failed++
		}
	}
	setCondition(&st.Conditions, readyCondition(ov, &st, states))
	return st
}

// wantedDigest is the digest the fleet should run (see Assess).
func wantedDigest(ov *v1.Overlay, entries map[string]*v1.NodeOverlay) string {
	if ov.Spec.Source.Kind() == v1.SourceFiles {
		return ov.WantedDigest()
	}
	votes := map[string]int{}
	for _, e := range entries {
		if e != nil && e.Phase == v1.OverlayPhaseReady && v1.IsDigest(e.Digest) && current(e, ov.Generation) {
			votes[e.Digest]++
		}
	}
	// Of digests with as many votes, the current one wins, else the
	// smallest: the answer does not depend on map order.
	current := ov.Status.Digest
	best, most := "", 0
	for d, n := range votes {
		tieWins := d == current || best != current && d < best
		if n > most || n == most && tieWins {
			best, most = d, n
		}
	}
	if best == "" && ov.Status.ObservedGeneration == ov.Generation {
		return ov.Status.Digest
	}
	return best
}

// resolvedAs is the commit and Workshop items a node reports for digest
// (Ready with it; the first such node by name, so the answer does not
// depend on map order). ok is false when no node does.
func resolvedAs(ov *v1.Overlay, entries map[string]*v1.NodeOverlay, digest string) (string, []v1.WorkshopItem, bool) {
	kind := ov.Spec.Source.Kind()
	if digest == "" || (kind != v1.SourceGit && kind != v1.SourceWorkshop) {
		return "", nil, false
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e := entries[name]
		if e == nil || e.Phase != v1.OverlayPhaseReady || e.Digest != digest || !current(e, ov.Generation) {
			continue
		}
		var items []v1.WorkshopItem
		for _, it := range e.Items {
			items = append(items, *it.DeepCopy())
		}
		return e.Commit, items, true
	}
	return "", nil, false
}

// StateOf is where a node stands with digest, from its entry for the
// Overlay (nil: it has reported none) of generation: holding the digest
// is being ready whatever spec the node last looked at (a digest names the
// content), but its phase says something only of the spec it reported on.
func StateOf(name string, e *v1.NodeOverlay, digest string, generation int64) NodeState {
	s := NodeState{Name: name}
	switch {
	case e == nil:
		s.Problem = "not reported yet"
	case digest != "" && (e.HasDigest(digest) || e.Phase == v1.OverlayPhaseReady && e.Digest == digest && current(e, generation)):
		s.Ready = true
	case !current(e, generation):
		s.Problem = fmt.Sprintf("not reported on generation %d yet (last on %d)", generation, e.ObservedGeneration)
	case e.Phase == v1.OverlayPhaseFailed:
		s.Failed = true
		s.Problem = problemOf(e)
	case e.Phase == v1.OverlayPhaseFetching:
		s.Problem = "fetching"
	case e.Phase == v1.OverlayPhaseReady:
		s.Problem = "has digest " + v1.ShortDigest(e.Digest)
	default:
		s.Problem = "pending"
	}
	return s
}

// current says whether a node's entry is for the Overlay's generation (an
// entry that names none is taken as current).
func current(e *v1.NodeOverlay, generation int64) bool {
	return e.ObservedGeneration == 0 || e.ObservedGeneration == generation
}

func problemOf(e *v1.NodeOverlay) string {
	if e.Reason != "" && e.Message != "" {
		return e.Reason + ": " + e.Message
	}
	return e.Reason + e.Message
}

func readyCondition(ov *v1.Overlay, st *v1.OverlayStatus, states []NodeState) metav1.Condition {
	c := metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: ov.Generation}
	switch {
	case st.Nodes == 0:
		c.Reason, c.Message = ReasonNotUsed, "no node runs an Instance that stacks it"
	case st.Digest == "":
		c.Reason = ReasonNotResolved
		c.Message = fmt.Sprintf("no node has fetched it yet; %s", problems(states))
		if st.Failed > 0 {
			c.Reason = ReasonNodesFailed
		}
	case st.Ready == st.Nodes:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonReady
		c.Message = fmt.Sprintf("%d/%d nodes have digest %s", st.Ready, st.Nodes, v1.ShortDigest(st.Digest))
	default:
		c.Reason = ReasonNodesNotReady
		if st.Failed > 0 {
			c.Reason = ReasonNodesFailed
		}
		c.Message = fmt.Sprintf("%d/%d nodes have digest %s; %s", st.Ready, st.Nodes, v1.ShortDigest(st.Digest), problems(states))
	}
	return c
}

// problems names the nodes that are not ready and why, failed ones first,
// at most maxNodesNamed of them.
func problems(states []NodeState) string {
	var failed, other []string
	for _, s := range states {
		if s.Ready {
			continue
		}
		line := "node " + s.Name + ": " + s.Problem
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
	if len(out) == 0 {
		*conds = nil
	}
}
