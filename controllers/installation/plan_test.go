package installation_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/controllers/installation"
)

func TestDownloadsAllowed(t *testing.T) {
	ready := func(n string) installation.NodeState {
		return installation.NodeState{Name: n, Reported: true, Ready: true}
	}
	down := func(n string) installation.NodeState {
		return installation.NodeState{Name: n, Reported: true, Downloading: true}
	}
	failed := func(n string) installation.NodeState {
		return installation.NodeState{Name: n, Reported: true, Failed: true}
	}
	lacks := func(n string) installation.NodeState { return installation.NodeState{Name: n, Reported: true} }
	for _, tc := range []struct {
		name     string
		max      int32
		previous []string
		nodes    []installation.NodeState
		want     []string
	}{
		{"slots by name", 2, nil, []installation.NodeState{lacks("c"), lacks("a"), lacks("b")}, []string{"a", "b"}},
		{"downloading keep their slot", 2, nil, []installation.NodeState{lacks("a"), down("c"), lacks("b")}, []string{"a", "c"}},
		{"downloading keep it past a lowered max", 1, nil, []installation.NodeState{down("b"), down("c"), lacks("a")}, []string{"b", "c"}},
		{"ready nodes need none", 2, nil, []installation.NodeState{ready("a"), ready("b"), lacks("c")}, []string{"c"}},
		{"a finished node frees its slot", 1, []string{"a"}, []installation.NodeState{ready("a"), lacks("b"), lacks("c")}, []string{"b"}},
		{"a slot given stays while the node starts", 1, []string{"c"}, []installation.NodeState{lacks("a"), lacks("b"), lacks("c")}, []string{"c"}},
		{"failed nodes come after healthy ones", 2, nil, []installation.NodeState{failed("a"), lacks("b"), lacks("c")}, []string{"b", "c"}},
		{"failed node retries when a slot is free", 2, nil, []installation.NodeState{failed("a"), ready("b"), lacks("c")}, []string{"a", "c"}},
		{"a failed node loses its earlier slot to a healthy one", 1, []string{"a"}, []installation.NodeState{failed("a"), lacks("b")}, []string{"b"}},
		{"all ready: nobody", 3, []string{"a"}, []installation.NodeState{ready("a"), ready("b")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := installation.DownloadsAllowed(tc.max, tc.previous, tc.nodes)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("DownloadsAllowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func node(name string, labels map[string]string, entries ...v1.NodeInstallation) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: v1.NodeStatus{Installations: entries}}
}

func TestAssess(t *testing.T) {
	spec := v1.InstallationSpec{AppID: 222860, Branch: "public", Build: "latest", CheckInterval: "15m"}
	entry := func(phase string, latest string, builds ...string) v1.NodeInstallation {
		return v1.NodeInstallation{Name: "l4d2", Phase: phase, LatestSeen: latest, Builds: builds}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*v1.Installation)
		nodes  []*v1.Node
		// want is LATEST WANTED nodes/ready/downloading/failed ALLOWED READY-REASON
		want string
		// message is a part of the Ready condition's message
		message string
	}{
		{"no nodes", nil, nil, "  0/0/0/0 [] NoNodes", "no node has registered"},
		{"nothing seen", nil, []*v1.Node{node("a", nil)}, "  1/0/0/0 [] NoBuild", "node a: not reported yet"},
		{"all ready", nil, []*v1.Node{
			node("a", nil, entry(v1.InstallReady, "200", "200")),
			node("b", nil, entry(v1.InstallReady, "200", "200", "100")),
		}, "200 200 2/2/0/0 [] BuildReady", "2/2 nodes ready with build 200"},
		{"newest of what nodes saw", nil, []*v1.Node{
			node("a", nil, entry(v1.InstallReady, "100", "100")),
			node("b", nil, v1.NodeInstallation{Name: "l4d2", Phase: v1.InstallDownloading, LatestSeen: "300", Downloading: "300", Builds: []string{"100"}}),
			node("c", nil, v1.NodeInstallation{Name: "l4d2", Phase: v1.InstallFailed, LatestSeen: "300", Reason: "InsufficientDisk", Message: "3 GiB free, 9 GiB needed", Builds: []string{"100"}}),
		}, "300 300 3/0/1/1 [] NodesFailed", "0/3 nodes ready with build 300; node c: InsufficientDisk: 3 GiB free, 9 GiB needed; node a: pending; node b: downloading build 300"},
		{"never backwards", func(in *v1.Installation) { in.Status.LatestBuild = "500" }, []*v1.Node{
			node("a", nil, entry(v1.InstallReady, "400", "400")),
		}, "500 500 1/0/0/0 [] NodesNotReady", "node a: pending"},
		{"pinned", func(in *v1.Installation) { in.Spec.Build = "100" }, []*v1.Node{
			node("a", nil, entry(v1.InstallReady, "200", "200", "100")),
		}, "200 100 1/1/0/0 [] BuildReady", "1/1 nodes ready with build 100"},
		{"selector", func(in *v1.Installation) { in.Spec.NodeSelector = map[string]string{"region": "eu"} }, []*v1.Node{
			node("a", map[string]string{"region": "eu"}, entry(v1.InstallReady, "200", "200")),
			node("b", map[string]string{"region": "us"}, entry(v1.InstallReady, "900", "900")),
		}, "200 200 1/1/0/0 [] BuildReady", ""},
		{"selector matches none", func(in *v1.Installation) { in.Spec.NodeSelector = map[string]string{"region": "ap"} }, []*v1.Node{
			node("a", map[string]string{"region": "eu"}),
		}, "  0/0/0/0 [] NoNodes", "no node matches nodeSelector"},
		{"capped downloads", func(in *v1.Installation) { in.Spec.MaxConcurrentDownloads = 1 }, []*v1.Node{
			node("a", nil, entry(v1.InstallPending, "200", "100")),
			node("b", nil, entry(v1.InstallPending, "200", "100")),
		}, "200 200 2/0/0/0 [a] NodesNotReady", "node a: pending; node b: waiting for a download slot (maxConcurrentDownloads)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2", Generation: 3}, Spec: spec}
			if tc.mutate != nil {
				tc.mutate(in)
			}
			st := installation.Assess(in, tc.nodes)
			c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady)
			if c == nil {
				t.Fatal("no Ready condition")
			}
			got := fmt.Sprintf("%s %s %d/%d/%d/%d %v %s", st.LatestBuild, st.WantedBuild, st.Nodes, st.Ready, st.Downloading, st.Failed, st.DownloadsAllowed, c.Reason)
			if got != tc.want {
				t.Errorf("status = %q, want %q", got, tc.want)
			}
			if !strings.Contains(c.Message, tc.message) {
				t.Errorf("Ready message %q lacks %q", c.Message, tc.message)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
		})
	}
}

func TestHolders(t *testing.T) {
	mk := func(name, inst, build string, phase v1.InstancePhase) *v1.Instance {
		return &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Status: v1.InstanceStatus{Installation: inst, Build: build, Phase: phase}}
	}
	got := installation.Holders("l4d2", []*v1.Instance{
		mk("runs", "l4d2", "100", v1.PhaseRunning),
		mk("starting", "l4d2", "100", v1.PhaseStarting),
		mk("stopped", "l4d2", "100", v1.PhaseStopped),
		mk("legacy", "l4d2", "", v1.PhaseRunning), // hand-made installation/
		mk("other", "beta", "100", v1.PhaseRunning),
	})
	if fmt.Sprint(got) != "[default/runs default/starting]" {
		t.Errorf("Holders = %v", got)
	}
}
