package overlay

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

var (
	filesSpec = map[string]string{"left4dead2/cfg/extra.cfg": "sv_alltalk 0\n"}
	filesD    = v1.FilesDigest(filesSpec)
	d1        = "sha256:" + strings.Repeat("1", 64)
	d2        = "sha256:" + strings.Repeat("2", 64)
	d3        = "sha256:" + strings.Repeat("3", 64)
)

func filesOverlay() *v1.Overlay {
	return &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "cfgs", Namespace: "default", Generation: 1},
		Spec: v1.OverlaySpec{Source: v1.OverlaySource{Files: filesSpec}}}
}

func archiveOverlay(status string, observed int64) *v1.Overlay {
	return &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "sm", Namespace: "default", Generation: 2},
		Spec:   v1.OverlaySpec{Source: v1.OverlaySource{Archive: &v1.ArchiveSource{URL: "file:///srv/sm.tar.gz"}}},
		Status: v1.OverlayStatus{Digest: status, ObservedGeneration: observed}}
}

func pathOverlay() *v1.Overlay {
	return &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "maps", Namespace: "default", Generation: 1},
		Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "maps"}}}
}

// blueprints: "coop" stacks all three; "plain" stacks nothing; "other"
// in namespace team-b stacks its own "cfgs".
func blueprints() []*v1.Blueprint {
	bp := func(ns, name string, overlays ...string) *v1.Blueprint {
		return &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1.BlueprintSpec{Overlays: overlays}}
	}
	return []*v1.Blueprint{bp("default", "coop", "cfgs", "sm", "maps"), bp("default", "plain"), bp("team-b", "other", "cfgs")}
}

// inst is an Instance "ns/name" of bp on node ("spec:" for spec.nodeName
// only), mutated.
func inst(ns, bp, node string, mutate ...func(*v1.Instance)) *v1.Instance {
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("i-%s-%s", bp, node), Namespace: ns},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: bp}}}
	if n, ok := strings.CutPrefix(node, "spec:"); ok {
		in.Spec.NodeName = n
	} else {
		in.Spec.NodeName, in.Status.NodeName = node, node
	}
	for _, m := range mutate {
		m(in)
	}
	return in
}

// node reports entries for default/<name>.
func node(name string, entries ...v1.NodeOverlay) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, e := range entries {
		e.Namespace = "default"
		n.Status.Overlays = append(n.Status.Overlays, e)
	}
	return n
}

func ready(name, digest string, held ...string) v1.NodeOverlay {
	return v1.NodeOverlay{Name: name, Digest: digest, Phase: v1.OverlayPhaseReady, Digests: append([]string{digest}, held...)}
}

func TestNodesNeeding(t *testing.T) {
	now := metav1.Now()
	instances := []*v1.Instance{
		inst("default", "coop", "a"),
		inst("default", "coop", "spec:b"),
		inst("default", "coop", "c", func(in *v1.Instance) { in.Spec.State = v1.StateStopped }),
		inst("default", "coop", "d", func(in *v1.Instance) { in.DeletionTimestamp = &now }),
		inst("default", "coop", "spec:"),
		inst("default", "plain", "e"),
		inst("team-b", "other", "f"),
		inst("default", "coop", "g", func(in *v1.Instance) { in.Spec.NodeName = "moved-from" }),
	}
	got := strings.Join(NodesNeeding(filesOverlay(), blueprints(), instances), ",")
	if got != "a,b,g" {
		t.Fatalf("nodes needing default/cfgs: %s, want a,b,g (not stopped, deleted, unbound, another Blueprint or namespace)", got)
	}
}

func TestAssess(t *testing.T) {
	onAB := []*v1.Instance{inst("default", "coop", "a"), inst("default", "coop", "b")}
	onABC := append(onAB, inst("default", "coop", "c"))
	cases := []struct {
		name      string
		ov        *v1.Overlay
		instances []*v1.Instance
		nodes     []*v1.Node
		// want: "DIGEST nodes/ready/failed REASON" (DIGEST short; "-" none).
		want string
		msg  string
	}{
		{"files, nobody uses it", filesOverlay(), nil, nil, "FILES 0/0/0 NotUsed", "no node runs an Instance that stacks it"},
		{"files, one node has it", filesOverlay(), onAB, []*v1.Node{node("a", ready("cfgs", filesD)), node("b")},
			"FILES 2/1/0 NodesNotReady", "1/2 nodes have digest FILES; node b: not reported yet"},
		{"files, every node has it", filesOverlay(), onAB, []*v1.Node{node("a", ready("cfgs", filesD)), node("b", ready("cfgs", filesD))},
			"FILES 2/2/0 Ready", "2/2 nodes have digest FILES"},
		{"files, one failed", filesOverlay(), onAB, []*v1.Node{node("a", ready("cfgs", filesD)),
			node("b", v1.NodeOverlay{Name: "cfgs", Digest: filesD, Phase: v1.OverlayPhaseFailed, Reason: "StoreUnavailable", Message: "disk full"})},
			"FILES 2/1/1 NodesFailed", "node b: StoreUnavailable: disk full"},
		{"files, a node on the old content", filesOverlay(), onAB, []*v1.Node{node("a", ready("cfgs", filesD)), node("b", ready("cfgs", d1))},
			"FILES 2/1/0 NodesNotReady", "node b: has digest 111111111111"},
		{"files, held though fetching another", filesOverlay(), onAB, []*v1.Node{node("a", ready("cfgs", filesD)),
			node("b", v1.NodeOverlay{Name: "cfgs", Digest: d1, Phase: v1.OverlayPhaseFetching, Digests: []string{filesD}})},
			"FILES 2/2/0 Ready", ""},
		{"archive, the nodes' majority", archiveOverlay("", 0), onABC,
			[]*v1.Node{node("a", ready("sm", d2)), node("b", ready("sm", d2)), node("c", ready("sm", d1))},
			"222222222222 3/2/0 NodesNotReady", "node c: has digest 111111111111"},
		{"archive, a tie keeps the current digest", archiveOverlay(d3, 2), onAB,
			[]*v1.Node{node("a", ready("sm", d2)), node("b", ready("sm", d3))}, "333333333333 2/1/0 NodesNotReady", ""},
		{"archive, a tie without it takes the smallest", archiveOverlay("", 0), onAB,
			[]*v1.Node{node("a", ready("sm", d2)), node("b", ready("sm", d1))}, "111111111111 2/1/0 NodesNotReady", ""},
		{"archive, nothing reported keeps the observed digest", archiveOverlay(d3, 2), onAB, nil, "333333333333 2/0/0 NodesNotReady", ""},
		{"archive, a new spec forgets the old digest", archiveOverlay(d3, 1), onAB, []*v1.Node{node("a",
			v1.NodeOverlay{Name: "sm", Phase: v1.OverlayPhaseFailed, Reason: "OverlaySourceNotSupported", Message: "its source is archive"})},
			"- 2/0/1 NodesFailed", "no node has fetched it yet; node a: OverlaySourceNotSupported: its source is archive; node b: not reported yet"},
		{"path: counted, no digest, no Ready", pathOverlay(), onAB, nil, "- 2/0/0 ", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := Assess(tc.ov, blueprints(), tc.instances, tc.nodes)
			digest := "-"
			if st.Digest == filesD {
				digest = "FILES"
			} else if st.Digest != "" {
				digest = v1.ShortDigest(st.Digest)
			}
			reason, msg := "", ""
			if c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); c != nil {
				reason, msg = c.Reason, c.Message
				if (c.Status == metav1.ConditionTrue) != (reason == ReasonReady) || c.ObservedGeneration != tc.ov.Generation {
					t.Errorf("condition %+v", c)
				}
			}
			if got := fmt.Sprintf("%s %d/%d/%d %s", digest, st.Nodes, st.Ready, st.Failed, reason); got != tc.want {
				t.Fatalf("status %q, want %q (message %q)", got, tc.want, msg)
			}
			msg = strings.ReplaceAll(msg, v1.ShortDigest(filesD), "FILES")
			if !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q, want it to say %q", msg, tc.msg)
			}
			if st.ObservedGeneration != tc.ov.Generation {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
		})
	}
}

// TestAssessCarriesOver: what the nodes resolve beside the digest (the git
// commit, the Workshop items) and other conditions stay; a path source
// drops what only fetched sources have.
func TestAssessCarriesOver(t *testing.T) {
	ov := archiveOverlay(d1, 2)
	ov.Status.Commit = strings.Repeat("a", 40)
	ov.Status.Items = []v1.WorkshopItem{{ID: "123", Title: "map"}}
	ov.Status.Conditions = []metav1.Condition{{Type: "Custom", Status: metav1.ConditionTrue, Reason: "Kept"},
		{Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonNotUsed, LastTransitionTime: metav1.Unix(100, 0)}}
	st := Assess(ov, blueprints(), nil, nil)
	if st.Commit != ov.Status.Commit || len(st.Items) != 1 || meta.FindStatusCondition(st.Conditions, "Custom") == nil {
		t.Fatalf("not carried over: %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); !c.LastTransitionTime.Equal(&ov.Status.Conditions[1].LastTransitionTime) {
		t.Errorf("an unchanged Ready moved its transition time: %v", c.LastTransitionTime)
	}
	ov.Spec.Source = v1.OverlaySource{Path: "maps"}
	st = Assess(ov, blueprints(), nil, nil)
	if st.Commit != "" || st.Items != nil || st.Digest != "" || meta.FindStatusCondition(st.Conditions, v1.ConditionReady) != nil {
		t.Fatalf("a path source keeps fetched state: %+v", st)
	}
}

// TestAssessTakesCommitAndItemsFromTheNodes: a git Overlay's status names
// the commit, a workshop Overlay's the items, that the nodes Ready with
// the wanted digest report; a spec change drops what the old one
// resolved to until a node reports the new.
func TestAssessTakesCommitAndItemsFromTheNodes(t *testing.T) {
	c1, c2 := strings.Repeat("a", 40), strings.Repeat("b", 40)
	gitOv := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "sm", Namespace: "default", Generation: 1},
		Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{URL: "https://git.example/cfg.git", Ref: "main"}}}}
	at := func(e v1.NodeOverlay, commit string, items ...v1.WorkshopItem) v1.NodeOverlay {
		e.Commit, e.Items = commit, items
		return e
	}
	instances := []*v1.Instance{inst("default", "coop", "a"), inst("default", "coop", "b"), inst("default", "coop", "c")}
	nodes := []*v1.Node{
		node("a", at(ready("sm", d1), c1)), node("b", at(ready("sm", d1), c1)),
		node("c", at(v1.NodeOverlay{Name: "sm", Digest: d2, Phase: v1.OverlayPhaseFetching}, c2)),
	}
	st := Assess(gitOv, blueprints(), instances, nodes)
	if st.Digest != d1 || st.Commit != c1 || st.Ready != 2 {
		t.Fatalf("git status: digest %s commit %s ready %d; want d1, the commit nodes a and b run, 2", st.Digest, st.Commit, st.Ready)
	}
	ws := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "sm", Namespace: "default", Generation: 3},
		Spec:   v1.OverlaySpec{Source: v1.OverlaySource{Workshop: &v1.WorkshopSource{Items: []string{"123"}}}},
		Status: v1.OverlayStatus{ObservedGeneration: 2, Commit: c1, Digest: d1}}
	st = Assess(ws, blueprints(), instances, []*v1.Node{node("a", v1.NodeOverlay{Name: "sm", Phase: v1.OverlayPhaseFetching})})
	if st.Commit != "" || st.Items != nil {
		t.Fatalf("a new spec kept what the old one resolved to: %+v", st)
	}
	item := v1.WorkshopItem{ID: "123", Title: "Dark Carnival Remix", Size: 1 << 20}
	st = Assess(ws, blueprints(), instances, []*v1.Node{node("a", at(ready("sm", d3), "", item))})
	if st.Digest != d3 || len(st.Items) != 1 || st.Items[0].Title != item.Title {
		t.Fatalf("workshop status: %+v, want the items node a reports", st)
	}
}

// TestAssessIgnoresReportsOnAnOlderSpec: an archive edited to a release
// the node cannot fetch is not Ready on the strength of the node still
// holding (and reporting Ready) the previous release's digest; the
// node's failure on the new spec counts once it reports on it.
func TestAssessIgnoresReportsOnAnOlderSpec(t *testing.T) {
	ov := archiveOverlay(d1, 1) // generation 2: the spec was edited
	instances := []*v1.Instance{inst("default", "coop", "a")}
	stale := ready("sm", d1)
	stale.ObservedGeneration = 1
	st := Assess(ov, blueprints(), instances, []*v1.Node{node("a", stale)})
	c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady)
	if st.Digest != "" || st.Ready != 0 || st.Failed != 0 || c == nil || c.Status == metav1.ConditionTrue || !strings.Contains(c.Message, "not reported on generation 2 yet") {
		t.Fatalf("after the edit: digest %q ready %d failed %d, Ready %+v; want no digest and the node not reported on generation 2", st.Digest, st.Ready, st.Failed, c)
	}
	ov.Status = st
	failed := v1.NodeOverlay{Name: "sm", Phase: v1.OverlayPhaseFailed, Reason: "UnsafeEntry", Message: "entry ../../etc/x", Digests: []string{d1}, ObservedGeneration: 2}
	st = Assess(ov, blueprints(), instances, []*v1.Node{node("a", failed)})
	c = meta.FindStatusCondition(st.Conditions, v1.ConditionReady)
	if st.Digest != "" || st.Failed != 1 || st.Ready != 0 || c.Status == metav1.ConditionTrue || !strings.Contains(c.Message, "UnsafeEntry") {
		t.Fatalf("the node failed the new spec: digest %q ready %d failed %d, Ready %+v", st.Digest, st.Ready, st.Failed, c)
	}
	good := ready("sm", d2, d1)
	good.ObservedGeneration = 2
	if st = Assess(ov, blueprints(), instances, []*v1.Node{node("a", good)}); st.Digest != d2 || st.Ready != 1 {
		t.Fatalf("a fixed release: digest %q ready %d", st.Digest, st.Ready)
	}
}
