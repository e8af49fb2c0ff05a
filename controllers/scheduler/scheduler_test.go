package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/scheduler"
)

// startScheduler runs one scheduler (with its own informers) until the test ends.
func startScheduler(e *controllertest.Env, policy string) *scheduler.Scheduler {
	log := testr.NewWithOptions(e.T, testr.Options{Verbosity: 1})
	ins := controllers.NewInformer(e.Store, resources.Instances, log)
	nodes := controllers.NewInformer(e.Store, resources.Nodes, log)
	bps := controllers.NewInformer(e.Store, resources.Blueprints, log)
	insts := controllers.NewInformer(e.Store, resources.Installations, log)
	rec := controllers.NewRecorder(e.Store, "l4m-scheduler", log)
	s := scheduler.New(scheduler.Options{Store: e.Store, Instances: ins, Nodes: nodes, Blueprints: bps, Installations: insts, Recorder: rec, Policy: policy, Log: log})
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(e.Ctx)
	for _, f := range []func(context.Context){ins.Run, nodes.Run, bps.Run, insts.Run, rec.Run, s.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	e.T.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

func scheduledCondition(in *v1.Instance) *metav1.Condition {
	return meta.FindStatusCondition(in.Status.Conditions, v1.InstanceScheduled)
}

func TestSpreadsWithoutPortClash(t *testing.T) {
	e := controllertest.NewEnv(t)
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		e.Node(n, true)
	}
	// Two schedulers race for the same Instances and ports.
	startScheduler(e, scheduler.Spread)
	startScheduler(e, scheduler.Spread)
	for i := range 30 {
		e.Instance(fmt.Sprintf("srv-%02d", i))
	}
	byNode := e.AllBound()
	for node, ins := range byNode {
		if len(ins) != 10 {
			t.Errorf("node %s got %d Instances, want 10 (spread)", node, len(ins))
		}
		seen := map[int32]string{}
		for _, in := range ins {
			p := in.GamePort()
			if other, dup := seen[p]; dup {
				t.Errorf("port %d on %s given to %s and %s", p, node, other, in.Name)
			}
			seen[p] = in.Name
			if p < 27015 || p > 27024 {
				t.Errorf("%s got port %d outside the node's range", in.Name, p)
			}
			c := scheduledCondition(in)
			if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "bound to node "+node) {
				t.Errorf("%s: Scheduled condition %+v", in.Name, c)
			}
			if in.Annotations[v1.AnnotationBoundBy] != "scheduler" {
				t.Errorf("%s: no bound-by annotation", in.Name)
			}
		}
	}
	if len(byNode) != 3 {
		t.Errorf("Instances landed on %d nodes, want 3", len(byNode))
	}
	// A Scheduled event tells the user where it went.
	e.Eventually("a Scheduled event", func() (bool, string) {
		list, err := e.Store.List(e.Ctx, resources.Events, storage.ListOptions{Namespace: "default"})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range list.(*v1.EventList).Items {
			if ev.InvolvedObject.Name == "srv-00" && ev.Reason == "Scheduled" && strings.HasPrefix(ev.Message, "Bound to node ") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none Scheduled for srv-00", len(list.(*v1.EventList).Items))
	})
}

func TestPackFillsOneNode(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true)
	e.Node("node-b", true)
	startScheduler(e, scheduler.Pack)
	for i := range 5 {
		e.Instance(fmt.Sprintf("srv-%d", i))
	}
	if byNode := e.AllBound(); len(byNode) != 1 {
		t.Fatalf("pack spread Instances over %d nodes", len(byNode))
	}
}

func TestUnschedulableSaysWhyAndRecovers(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", false)
	e.Node("node-b", true, func(n *v1.Node) { n.Labels["region"] = "us" })
	startScheduler(e, scheduler.Spread)
	e.Instance("eu-1", func(in *v1.Instance) { in.Spec.NodeSelector = map[string]string{"region": "eu"} })
	e.Eventually("Scheduled=False with the reasons", func() (bool, string) {
		c := scheduledCondition(e.Get("eu-1"))
		if c == nil {
			return false, "no condition"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == "NoReadyNode" &&
			c.Message == "0/2 nodes available: 1 not ready, 1 do not match nodeSelector", c.Reason + ": " + c.Message
	})
	if in := e.Get("eu-1"); in.Spec.NodeName != "" || in.Status.Phase != v1.PhasePending {
		t.Fatalf("unschedulable Instance: node %q phase %q", in.Spec.NodeName, in.Status.Phase)
	}
	// The node becomes Ready: the Instance is placed without being touched.
	e.SetReady("node-a", metav1.ConditionTrue)
	e.Eventually("placed once node-a is ready", func() (bool, string) {
		in := e.Get("eu-1")
		return in.Spec.NodeName == "node-a", "node " + in.Spec.NodeName
	})
}

func TestPortsAndCapacity(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true, func(n *v1.Node) {
		n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27017}
		q := resource.MustParse("5Gi")
		n.Spec.Capacity = v1.NodeCapacity{Instances: 10, Memory: &q}
	})
	startScheduler(e, scheduler.Spread)
	// A user's port is kept; a pinned Instance gets a port on its node.
	e.Instance("named", func(in *v1.Instance) { in.Spec.Port = 27016 })
	e.Instance("pinned", func(in *v1.Instance) { in.Spec.NodeName = "node-a" })
	e.AllBound()
	if p := e.Get("named").GamePort(); p != 27016 {
		t.Fatalf("named port became %d", p)
	}
	if in := e.Get("pinned"); in.Status.Port != 27015 || in.Annotations[v1.AnnotationBoundBy] != "" {
		t.Fatalf("pinned: port %d, bound-by %q", in.Status.Port, in.Annotations[v1.AnnotationBoundBy])
	}
	// 5Gi holds two 2Gi Blueprints: the third waits for memory.
	e.Instance("third")
	e.Eventually("third waits for memory", func() (bool, string) {
		c := scheduledCondition(e.Get("third"))
		return c != nil && c.Reason == "NoCapacity" && strings.Contains(c.Message, "1 have no room (memory)"), fmt.Sprintf("%+v", c)
	})
	// Freeing room places it, on the one free port left.
	if _, _, err := e.Store.Delete(e.Ctx, resources.Instances, "default", "named", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.Eventually("third placed after a delete", func() (bool, string) {
		in := e.Get("third")
		return in.Spec.NodeName == "node-a" && in.Status.Port == 27016, fmt.Sprintf("node %q port %d", in.Spec.NodeName, in.Status.Port)
	})
}

func TestNoFreePort(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true, func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27015} })
	startScheduler(e, scheduler.Spread)
	e.Instance("first")
	e.AllBound()
	e.Instance("second")
	e.Eventually("second has no port", func() (bool, string) {
		c := scheduledCondition(e.Get("second"))
		return c != nil && c.Reason == "NoFreePort" && c.Message == "0/1 nodes available: 1 have no free port", fmt.Sprintf("%+v", c)
	})
}

// TestNamedPortIsKept: a port an unbound Instance names is not handed to
// another Instance meanwhile.
func TestNamedPortIsKept(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true, func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27016} })
	startScheduler(e, scheduler.Spread)
	// It waits for a node labelled region=us, and wants 27015 there.
	e.Instance("named", func(in *v1.Instance) { in.Spec.Port = 27015; in.Spec.NodeSelector = map[string]string{"region": "us"} })
	e.Eventually("named waits", func() (bool, string) {
		c := scheduledCondition(e.Get("named"))
		return c != nil && c.Reason == "NodeSelectorMismatch", fmt.Sprintf("%+v", c)
	})
	e.Instance("auto")
	e.Eventually("auto bound", func() (bool, string) {
		in := e.Get("auto")
		return in.Spec.NodeName == "node-a", in.Spec.NodeName
	})
	if p := e.Get("auto").GamePort(); p != 27016 {
		t.Fatalf("auto got port %d; 27015 is asked for by another Instance", p)
	}
	e.Label("node-a", "region", "us")
	e.Eventually("named bound on its port", func() (bool, string) {
		in := e.Get("named")
		return in.Spec.NodeName == "node-a" && in.GamePort() == 27015, fmt.Sprintf("%q %d", in.Spec.NodeName, in.GamePort())
	})
}

// setPortRange changes a node's range the way an operator restarting its
// agent with another --port-range does.
func setPortRange(e *controllertest.Env, node string, min, max int32) {
	e.T.Helper()
	for {
		n := e.GetNode(node)
		n.Spec.PortRange = v1.PortRange{Min: min, Max: max}
		_, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.T.Fatal(err)
		}
	}
}

// waitsWith waits for the Instance's Scheduled=False condition and checks
// it is still unbound.
func waitsWith(e *controllertest.Env, name, reason, message string) {
	e.T.Helper()
	e.Eventually(name+" waits: "+message, func() (bool, string) {
		c := scheduledCondition(e.Get(name))
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason && c.Message == message, fmt.Sprintf("%+v", c)
	})
}

// TestNamedPortOutsideRangeWaits: a port a user names must be in the node's
// range, whether the scheduler picks the node or the user pinned it.
func TestNamedPortOutsideRangeWaits(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true)
	startScheduler(e, scheduler.Spread)
	e.Instance("outside", func(in *v1.Instance) { in.Spec.Port = 28015 })
	waitsWith(e, "outside", "PortOutOfRange", "port 28015 is outside node node-a's range 27015-27024")
	if in := e.Get("outside"); in.Spec.NodeName != "" || in.Status.Phase != v1.PhasePending {
		t.Fatalf("outside: node %q phase %q", in.Spec.NodeName, in.Status.Phase)
	}
	e.Eventually("a FailedScheduling event naming the range", func() (bool, string) {
		list, err := e.Store.List(e.Ctx, resources.Events, storage.ListOptions{Namespace: "default"})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range list.(*v1.EventList).Items {
			if ev.InvolvedObject.Name == "outside" && ev.Reason == "FailedScheduling" && ev.Message == "port 28015 is outside node node-a's range 27015-27024" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, no FailedScheduling for outside", len(list.(*v1.EventList).Items))
	})

	// Pinned by the user too: it waits the same (and its node does not start it).
	e.Instance("pinned", func(in *v1.Instance) { in.Spec.NodeName = "node-a"; in.Spec.Port = 28016 })
	waitsWith(e, "pinned", "PortOutOfRange", "port 28016 is outside node node-a's range 27015-27024")
	if in := e.Get("pinned"); in.Status.Phase != v1.PhasePending {
		t.Fatalf("pinned outside the range: phase %q", in.Status.Phase)
	}
	// Its port fixed, it is Scheduled again.
	for {
		in := e.Get("pinned")
		in.Spec.Port = 27020
		_, err := e.Store.Update(e.Ctx, resources.Instances, in, storage.UpdateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	e.Eventually("pinned scheduled on its fixed port", func() (bool, string) {
		c := scheduledCondition(e.Get("pinned"))
		return c != nil && c.Status == metav1.ConditionTrue && c.Message == "on node node-a, port 27020, as its spec names them", fmt.Sprintf("%+v", c)
	})
	// The node's range moves to take 28015: the first one is placed.
	setPortRange(e, "node-a", 28010, 28020)
	e.Eventually("outside placed once the range has its port", func() (bool, string) {
		in := e.Get("outside")
		return in.Spec.NodeName == "node-a" && in.GamePort() == 28015, fmt.Sprintf("node %q port %d", in.Spec.NodeName, in.GamePort())
	})
}

// TestClientPortsNeverClash: a game on 27015 binds 28015 too. After the
// node's range moves (an operator changed --port-range), the scheduler
// hands out neither 26015 (whose client port is 27015) nor 28015, and an
// Instance naming one of those waits, saying whose port it is.
func TestClientPortsNeverClash(t *testing.T) {
	e := controllertest.NewEnv(t)
	// Each range is full before the next: whatever the scheduler has seen
	// of the node, it can only place Instances in the newest range.
	e.Node("node-a", true, func(n *v1.Node) {
		n.Spec.Capacity.Instances = 40
		n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27015}
	})
	startScheduler(e, scheduler.Spread)
	e.Instance("old", func(in *v1.Instance) { in.Spec.Port = 27015 })
	e.AllBound()

	for _, phase := range []struct {
		min, max, clash int32
		name, message   string
	}{
		{26010, 26020, 26015, "clash-low", "port 27015 on node node-a (the client port of game port 26015) is used by Instance default/old"},
		{28010, 28020, 28015, "clash-high", "port 28015 on node node-a is used by Instance default/old"},
	} {
		setPortRange(e, "node-a", phase.min, phase.max)
		// Ten free ports are left of eleven: ten Instances get them.
		for i := range 10 {
			e.Instance(fmt.Sprintf("auto-%d-%d", phase.min, i))
		}
		e.Eventually(fmt.Sprintf("ten Instances bound in %d-%d", phase.min, phase.max), func() (bool, string) {
			n := 0
			for _, in := range e.Instances() {
				if strings.HasPrefix(in.Name, fmt.Sprintf("auto-%d-", phase.min)) && in.Spec.NodeName != "" && in.GamePort() != 0 {
					n++
				}
			}
			return n == 10, fmt.Sprintf("%d bound", n)
		})
		e.Instance(phase.name, func(in *v1.Instance) { in.Spec.Port = phase.clash })
		waitsWith(e, phase.name, "PortInUse", phase.message)
	}
	games := map[int32]string{}
	for _, in := range e.Instances() {
		if in.Spec.NodeName == "" {
			if !strings.HasPrefix(in.Name, "clash-") {
				t.Errorf("%s is unbound", in.Name)
			}
			continue
		}
		for _, p := range in.Ports().List() {
			if other, dup := games[p]; dup {
				t.Errorf("port %d on node-a is bound by %s and %s", p, other, in.Name)
			}
			games[p] = in.Name
		}
	}
	for _, name := range []string{"clash-low", "clash-high"} {
		if in := e.Get(name); in.Spec.NodeName != "" {
			t.Errorf("%s was bound to %s on port %d", name, in.Spec.NodeName, in.GamePort())
		}
	}
	claims, err := e.Store.PortClaims(e.Ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != len(games) {
		t.Errorf("%d port claims for %d bound ports", len(claims), len(games))
	}
}

// TestForgetsDeletedNodes: hosts come and go (autoscaled, rebuilt, renamed);
// the scheduler's picture holds only the nodes that hold games, so it does
// not grow with every Node that ever registered.
func TestForgetsDeletedNodes(t *testing.T) {
	e := controllertest.NewEnv(t)
	s := startScheduler(e, scheduler.Spread)
	const hosts = 40
	for i := range hosts {
		e.Node(fmt.Sprintf("host-%02d", i), true)
	}
	for i := range hosts / 2 {
		e.Instance(fmt.Sprintf("srv-%02d", i))
	}
	if bound := e.AllBound(); len(bound) != hosts/2 {
		t.Fatalf("%d Instances spread over %d nodes, want %d", hosts/2, len(bound), hosts/2)
	}
	// One Instance no node takes: each attempt looks at every node.
	e.Instance("eu-only", func(in *v1.Instance) {
		in.Spec.NodeSelector = map[string]string{"zone": "eu-west-9"}
		in.Spec.Port = 27100
	})
	e.Eventually("eu-only unschedulable", func() (bool, string) {
		c := scheduledCondition(e.Get("eu-only"))
		return c != nil && c.Status == metav1.ConditionFalse, fmt.Sprint(c)
	})
	for _, in := range e.Instances() {
		if _, _, err := e.Store.Delete(e.Ctx, resources.Instances, in.Namespace, in.Name, storage.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range hosts {
		if _, _, err := e.Store.Delete(e.Ctx, resources.Nodes, "", fmt.Sprintf("host-%02d", i), storage.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("no node tracked", func() (bool, string) {
		n := s.TrackedNodes()
		return n == 0, fmt.Sprintf("%d nodes tracked after every Node and Instance was deleted", n)
	})
}

// setNodeInstallation writes a node's entry for Installation l4d2, as its
// agent would.
func setNodeInstallation(e *controllertest.Env, node string, entry v1.NodeInstallation) {
	e.T.Helper()
	entry.Name = "l4d2"
	for {
		n := e.GetNode(node)
		n.Status.Installations = []v1.NodeInstallation{entry}
		_, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{Status: true})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.T.Fatal(err)
		}
	}
}

// updateInstallation changes Installation l4d2 (status too when status).
func updateInstallation(e *controllertest.Env, status bool, mutate func(*v1.Installation)) {
	e.T.Helper()
	for {
		obj, err := e.Store.Get(e.Ctx, resources.Installations, "", "l4d2")
		if err != nil {
			e.T.Fatal(err)
		}
		inst := obj.(*v1.Installation)
		mutate(inst)
		_, err = e.Store.Update(e.Ctx, resources.Installations, inst, storage.UpdateOptions{Status: status})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.T.Fatal(err)
		}
	}
}

// TestWaitsForTheInstallationsBuild: with Installation l4d2 in place (the
// Blueprint's default), an Instance goes only to a node that has its
// wanted build, says why it waits, and is placed once a node has it.
func TestWaitsForTheInstallationsBuild(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", true)
	e.Node("node-b", true)
	e.Node("node-c", false)
	e.Create(resources.Installations, &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2",
		Finalizers: []string{v1.FinalizerInstallationInUse}}})
	startScheduler(e, scheduler.Spread)
	e.Instance("srv")
	waitsWith(e, "srv", scheduler.ReasonInstallationNotReady, "Installation l4d2 has no build yet: no node has seen branch public's build")

	updateInstallation(e, true, func(in *v1.Installation) { in.Status.LatestBuild, in.Status.WantedBuild = "200", "200" })
	setNodeInstallation(e, "node-a", v1.NodeInstallation{Phase: v1.InstallDownloading, Downloading: "200", Builds: []string{"100"}})
	setNodeInstallation(e, "node-b", v1.NodeInstallation{Phase: v1.InstallFailed, Builds: []string{"100"},
		Reason: "DownloadFailed", Message: "steamcmd exited with 8"})
	waitsWith(e, "srv", scheduler.ReasonInstallationNotReady,
		"0/3 nodes available: 1 downloading build 200, 1 failed to install build 200, 1 not ready (node-b: DownloadFailed: steamcmd exited with 8)")
	e.Eventually("a FailedScheduling event naming the build", func() (bool, string) {
		list, err := e.Store.List(e.Ctx, resources.Events, storage.ListOptions{Namespace: "default"})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range list.(*v1.EventList).Items {
			if ev.InvolvedObject.Name == "srv" && ev.Reason == "FailedScheduling" && strings.Contains(ev.Message, "1 downloading build 200") {
				return true, ""
			}
		}
		return false, "none"
	})

	// node-b has the build now: the Instance goes there, untouched.
	setNodeInstallation(e, "node-b", v1.NodeInstallation{Phase: v1.InstallReady, Builds: []string{"200", "100"}})
	e.Eventually("placed on node-b", func() (bool, string) {
		in := e.Get("srv")
		return in.Spec.NodeName == "node-b", "node " + in.Spec.NodeName
	})

	// While the Installation is being deleted nothing new goes anywhere.
	if _, gone, err := e.Store.Delete(e.Ctx, resources.Installations, "", "l4d2", storage.DeleteOptions{}); err != nil || gone {
		t.Fatalf("delete: gone=%v err=%v", gone, err)
	}
	e.Instance("late")
	waitsWith(e, "late", scheduler.ReasonInstallationNotReady, "Installation l4d2 is being deleted")
	// Gone: nodes use their hand-made installation/, scheduling as before.
	updateInstallation(e, false, func(in *v1.Installation) { in.Finalizers = nil })
	e.Eventually("late placed without an Installation", func() (bool, string) {
		in := e.Get("late")
		return in.Spec.NodeName != "", fmt.Sprint(in.Status.Conditions)
	})
}
