package rollout_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/rollout"
)

func installation(wanted string) *v1.Installation {
	return &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"},
		Spec:   v1.InstallationSpec{AppID: v1.DefaultAppID, Branch: v1.DefaultBranch, Build: v1.BuildLatest},
		Status: v1.InstallationStatus{LatestBuild: wanted, WantedBuild: wanted}}
}

func blueprint(ns, name, installation string, policy v1.RolloutPolicy) *v1.Blueprint {
	bp := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	bp.Spec.Installation = installation
	bp.Spec.Rollout = v1.RolloutSpec{Policy: policy, MaxUnavailable: 1}
	return bp
}

// node is a Ready node keeping builds of l4d2 (none: no entry at all).
func node(name string, entry *v1.NodeInstallation) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Status.Conditions = []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat"}}
	if entry != nil {
		entry.Name = "l4d2"
		n.Status.Installations = []v1.NodeInstallation{*entry}
	}
	return n
}

// instance of Blueprint coop on node, running build (of l4d2 when set).
func instance(name, node, build string, edit ...func(*v1.Instance)) *v1.Instance {
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: node, State: v1.StateRunning}}
	if build != "" {
		in.Status.Installation, in.Status.Build, in.Status.TemplateHash = "l4d2", build, "t-"+build
	}
	for _, e := range edit {
		e(in)
	}
	return in
}

func pending(players int32) func(*v1.Instance) {
	return func(in *v1.Instance) { in.Status.PendingTemplateHash, in.Status.Players = "t-new", players }
}

func TestAssessInstallation(t *testing.T) {
	ready := &v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"200", "100"}, LatestSeen: "200"}
	old := &v1.NodeInstallation{Phase: v1.InstallPending, Builds: []string{"100"}, LatestSeen: "200"}
	failed := &v1.NodeInstallation{Phase: v1.InstallFailed, Reason: "DownloadFailed", Message: "steamcmd exited 8: disk full", Builds: []string{"100"}}
	downloading := &v1.NodeInstallation{Phase: v1.InstallDownloading, Builds: []string{"100"}, Downloading: "200"}
	coop := blueprint("default", "coop", "", "")
	nodes := []*v1.Node{node("n1", ready), node("n2", failed), node("n3", downloading), node("n4", old), node("n5", nil)}
	lost := node("lost", ready)
	lost.Status.Conditions[0].Status = metav1.ConditionUnknown
	nodes = append(nodes, lost)

	tests := []struct {
		name       string
		inst       *v1.Installation
		blueprints []*v1.Blueprint
		in         *v1.Instance
		// reason and message of its Lag; "" for an Instance on the
		// wanted build, "-" for one not counted at all.
		reason, message string
	}{
		{name: "on the wanted build", in: instance("a", "n1", "200")},
		{name: "players keep it on the old build (WhenEmpty)", in: instance("a", "n1", "100", pending(2)),
			reason: rollout.LagPlayersOnline, message: "2 players, WhenEmpty"},
		{name: "one player", in: instance("a", "n1", "100", pending(1)),
			reason: rollout.LagPlayersOnline, message: "1 player, WhenEmpty"},
		{name: "empty, waiting for its turn", in: instance("a", "n1", "100", pending(0)),
			reason: rollout.LagQueued, message: "WhenEmpty restart pending, waiting for its turn under maxUnavailable 1"},
		{name: "Immediate ignores players, waits for its turn", blueprints: []*v1.Blueprint{blueprint("default", "coop", "l4d2", v1.RolloutImmediate)},
			in:     instance("a", "n1", "100", pending(3)),
			reason: rollout.LagQueued, message: "Immediate restart pending, waiting for its turn under maxUnavailable 1"},
		{name: "approved restart", in: instance("a", "n1", "100", pending(2), func(in *v1.Instance) {
			in.Annotations = map[string]string{v1.AnnotationApprovedTemplate: "t-new"}
		}), reason: rollout.LagRestarting, message: "restarting onto build 200"},
		{name: "node has the build, has not rendered the Instance", in: instance("a", "n1", "100"),
			reason: rollout.LagNotRendered, message: "node n1 has build 200 and has not rendered the Instance onto it yet"},
		{name: "a new Instance starting", in: instance("a", "n1", ""),
			reason: rollout.LagNotRendered, message: "starting on node n1"},
		{name: "hand-made installation, node has the build", in: instance("a", "n1", "", func(in *v1.Instance) { in.Status.TemplateHash = "t-hand" }),
			reason: rollout.LagNotRendered, message: "node n1 has build 200 and has not rendered the Instance onto it yet"},
		{name: "node's download failed", in: instance("a", "n2", "100", pending(0)),
			reason: rollout.LagBuildNotReady, message: "build 200 not ready on node n2: DownloadFailed: steamcmd exited 8: disk full"},
		{name: "node downloading", in: instance("a", "n3", "100"),
			reason: rollout.LagBuildNotReady, message: "build 200 not ready on node n3 (downloading)"},
		{name: "node pending", in: instance("a", "n4", "100"),
			reason: rollout.LagBuildNotReady, message: "build 200 not ready on node n4 (Pending)"},
		{name: "node waiting for a download slot", inst: func() *v1.Installation {
			i := installation("200")
			i.Spec.MaxConcurrentDownloads = 1
			i.Status.DownloadsAllowed = []string{"n3"}
			return i
		}(), in: instance("a", "n4", "100"),
			reason: rollout.LagBuildNotReady, message: "build 200 not ready on node n4 (waiting for a download slot: maxConcurrentDownloads 1)"},
		{name: "node never reported the Installation", in: instance("a", "n5", "100"),
			reason: rollout.LagBuildNotReady, message: "build 200 not ready on node n5 (it has not reported this Installation)"},
		{name: "node not heard from", in: instance("a", "lost", "100", pending(0)),
			reason: rollout.LagNodeNotReady, message: "node lost is not ready"},
		{name: "node gone", in: instance("a", "gone", "100"),
			reason: rollout.LagNodeNotReady, message: "node gone does not exist"},
		{name: "not placed", in: instance("a", "", "", func(in *v1.Instance) {
			in.Status.Conditions = []metav1.Condition{{Type: v1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: "InstallationNotReady",
				Message: "0/2 nodes available: 2 downloading build 200"}}
		}), reason: rollout.LagNotPlaced, message: "not yet placed on a node: 0/2 nodes available: 2 downloading build 200"},
		{name: "not placed, no word from the scheduler yet", in: instance("a", "", ""),
			reason: rollout.LagNotPlaced, message: "not yet placed on a node"},
		{name: "no build wanted yet", inst: installation(""), in: instance("a", "n1", ""),
			reason: rollout.LagNoBuild, message: "no build yet: no node has seen branch public's build"},
		{name: "Installation being deleted", inst: func() *v1.Installation {
			i := installation("200")
			i.DeletionTimestamp = &metav1.Time{}
			return i
		}(), in: instance("a", "n1", "100", pending(0)),
			reason: rollout.LagNoBuild, message: "the Installation is being deleted"},
		{name: "same build id of another Installation is not this one's", in: instance("a", "n1", "200", func(in *v1.Instance) { in.Status.Installation = "l4d2-beta" }),
			reason: rollout.LagNotRendered, message: "node n1 has build 200 and has not rendered the Instance onto it yet"},
		{name: "stopped: runs no build", in: instance("a", "n2", "100", func(in *v1.Instance) { in.Spec.State = v1.StateStopped }), reason: "-"},
		{name: "being deleted", in: instance("a", "n2", "100", func(in *v1.Instance) { in.DeletionTimestamp = &metav1.Time{} }), reason: "-"},
		{name: "Blueprint on another Installation", blueprints: []*v1.Blueprint{blueprint("default", "coop", "l4d2-beta", "")},
			in: instance("a", "n2", "100"), reason: "-"},
		{name: "Blueprint of that name in another namespace", blueprints: []*v1.Blueprint{blueprint("team", "coop", "", "")},
			in: instance("a", "n2", "100"), reason: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, bps := tt.inst, tt.blueprints
			if inst == nil {
				inst = installation("200")
			}
			if bps == nil {
				bps = []*v1.Blueprint{coop}
			}
			p := rollout.AssessInstallation(inst, bps, []*v1.Instance{tt.in}, nodes)
			switch tt.reason {
			case "-":
				if p.Total != 0 || !p.Done() && inst.Status.WantedBuild != "" {
					t.Fatalf("counted: %+v", p)
				}
			case "":
				if p.Total != 1 || p.OnWanted != 1 || len(p.Lagging) != 0 || !p.Done() {
					t.Fatalf("want on the wanted build: %+v", p)
				}
			default:
				if p.Total != 1 || p.OnWanted != 0 || len(p.Lagging) != 1 || p.Done() {
					t.Fatalf("want one lagging: %+v", p)
				}
				if l := p.Lagging[0]; l.Reason != tt.reason || l.Message != tt.message || l.Instance != tt.in {
					t.Fatalf("lag %s %q, want %s %q", l.Reason, l.Message, tt.reason, tt.message)
				}
			}
		})
	}
}

// TestAssessInstallationFleet: counts across namespaces and Blueprints,
// the lagging ones in namespace and name order.
func TestAssessInstallationFleet(t *testing.T) {
	ready := &v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"200", "100"}}
	nodes := []*v1.Node{node("n1", ready)}
	bps := []*v1.Blueprint{blueprint("default", "coop", "", ""), blueprint("team", "coop", "l4d2", ""), blueprint("default", "beta", "l4d2-beta", "")}
	team := func(in *v1.Instance) { in.Namespace = "team" }
	beta := func(in *v1.Instance) { in.Spec.BlueprintRef.Name = "beta" }
	orphan := func(in *v1.Instance) { in.Spec.BlueprintRef.Name = "missing" }
	instances := []*v1.Instance{
		instance("z", "n1", "100", pending(4), team),
		instance("b", "n1", "100", pending(2)),
		instance("a", "n1", "200"),
		instance("c", "n1", "200", team),
		instance("on-beta", "n1", "100", beta),
		instance("orphan", "n1", "100", orphan),
		instance("a", "n1", "100", pending(0), team),
	}
	p := rollout.AssessInstallation(installation("200"), bps, instances, nodes)
	if p.Wanted != "200" || p.Total != 5 || p.OnWanted != 2 || p.Done() {
		t.Fatalf("progress %+v, want 2 of 5 on 200", p)
	}
	var got []string
	for _, l := range p.Lagging {
		got = append(got, l.Instance.Namespace+"/"+l.Instance.Name+":"+l.Reason)
	}
	if want := "default/b:PlayersOnline team/a:Queued team/z:PlayersOnline"; strings.Join(got, " ") != want {
		t.Fatalf("lagging %s, want %s", strings.Join(got, " "), want)
	}
	if p := rollout.AssessInstallation(installation("200"), bps, nil, nodes); !p.Done() || p.Total != 0 {
		t.Fatalf("no Instances: %+v, want done", p)
	}
	if p := rollout.AssessInstallation(installation(""), bps, nil, nodes); p.Done() {
		t.Fatalf("no build wanted: %+v, want not done", p)
	}
}

// TestAssessInstallationUnsettled: right after an admin's check request, a
// rollout whose Instances all run the old wanted build is not complete
// until every Ready node has checked and the Installation's status shows
// what they saw.
func TestAssessInstallationUnsettled(t *testing.T) {
	asked := metav1.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	before, after := metav1.NewTime(asked.Add(-time.Minute)), metav1.NewTime(asked.Add(time.Second))
	asked = metav1.NewTime(asked.Add(400 * time.Millisecond)) // an RFC3339Nano request, as the tests' checkNow writes
	sameSecond := metav1.NewTime(asked.Truncate(time.Second).Add(-time.Second))
	requested := func(in *v1.Installation) *v1.Installation {
		in.Annotations = map[string]string{v1.AnnotationCheckRequestedAt: asked.Format(time.RFC3339Nano)}
		return in
	}
	lost := node("lost", &v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &before})
	lost.Status.Conditions[0].Status = metav1.ConditionUnknown
	games := []*v1.Instance{instance("a", "n1", "100")}
	for _, tt := range []struct {
		name string
		inst *v1.Installation
		n1   v1.NodeInstallation
		want string // "" for done
	}{
		{"no request, node up to date", installation("100"), v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &before}, ""},
		{"request not answered yet", requested(installation("100")), v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &before},
			"node n1 has not checked Steam since 2026-12-02T13:00:00Z"},
		{"request answered, same build", requested(installation("100")), v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &after}, ""},
		{"answered in the same second (checkedAt has whole seconds), by a clock a second behind", requested(installation("100")),
			v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &sameSecond}, ""},
		{"node saw a newer build the status lacks", requested(installation("100")), v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "1000", CheckedAt: &after},
			"node n1 saw build 1000, not yet in the Installation's status"},
		{"an annotation that is no time asks nothing of rollout status", func() *v1.Installation {
			in := installation("100")
			in.Annotations = map[string]string{v1.AnnotationCheckRequestedAt: "now please"}
			return in
		}(), v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"100"}, LatestSeen: "100", CheckedAt: &before}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n1 := tt.n1
			p := rollout.AssessInstallation(tt.inst, []*v1.Blueprint{blueprint("default", "coop", "", "")}, games, []*v1.Node{node("n1", &n1), lost})
			if tt.want == "" {
				if !p.Done() || len(p.Unsettled) != 0 {
					t.Fatalf("want done: %+v", p)
				}
				return
			}
			if p.Done() || strings.Join(p.Unsettled, "; ") != tt.want {
				t.Fatalf("unsettled %q (done %v), want %q", p.Unsettled, p.Done(), tt.want)
			}
		})
	}
}
