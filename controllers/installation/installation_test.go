package installation_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/installation"
)

func start(e *controllertest.Env) {
	log := testr.NewWithOptions(e.T, testr.Options{Verbosity: 1})
	insts := controllers.NewInformer(e.Store, resources.Installations, log)
	nodes := controllers.NewInformer(e.Store, resources.Nodes, log)
	ins := controllers.NewInformer(e.Store, resources.Instances, log)
	rec := controllers.NewRecorder(e.Store, "l4m-installation", log)
	c := installation.New(installation.Options{Store: e.Store, Installations: insts, Nodes: nodes, Instances: ins, Recorder: rec, Log: log})
	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){insts.Run, nodes.Run, ins.Run, rec.Run, c.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	e.T.Cleanup(func() { cancel(); wg.Wait() })
}

func createInstallation(e *controllertest.Env, mutate func(*v1.Installation)) {
	e.T.Helper()
	in := &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}}
	if mutate != nil {
		mutate(in)
	}
	e.Create(resources.Installations, in)
}

func getInstallation(e *controllertest.Env) (*v1.Installation, error) {
	obj, err := e.Store.Get(e.Ctx, resources.Installations, "", "l4d2")
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Installation), nil
}

// reportNode writes a node's entry for l4d2 as its agent would.
func reportNode(e *controllertest.Env, name string, entry v1.NodeInstallation) {
	e.T.Helper()
	entry.Name = "l4d2"
	for {
		n := e.GetNode(name)
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

// waitStatus waits until the Installation's status reads want: "LATEST
// WANTED nodes/ready/downloading/failed [allowed] READY-REASON".
func waitStatus(e *controllertest.Env, want string) *v1.Installation {
	e.T.Helper()
	var inst *v1.Installation
	e.Eventually("status "+want, func() (bool, string) {
		var err error
		if inst, err = getInstallation(e); err != nil {
			return false, err.Error()
		}
		st := inst.Status
		reason := ""
		if c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); c != nil {
			reason = c.Reason
		}
		got := fmt.Sprintf("%s %s %d/%d/%d/%d %v %s", st.LatestBuild, st.WantedBuild, st.Nodes, st.Ready, st.Downloading, st.Failed, st.DownloadsAllowed, reason)
		return got == want, got
	})
	return inst
}

func events(e *controllertest.Env) []string {
	list, err := e.Store.List(e.Ctx, resources.Events, storage.ListOptions{Namespace: "default"})
	if err != nil {
		e.T.Fatal(err)
	}
	var out []string
	for _, ev := range list.(*v1.EventList).Items {
		if ev.InvolvedObject.Kind == "Installation" {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return out
}

func waitEvent(e *controllertest.Env, want string) {
	e.T.Helper()
	e.Eventually("event "+want, func() (bool, string) {
		evs := events(e)
		return slices.Contains(evs, want), strings.Join(evs, " | ")
	})
}

// TestStatusAndDownloadSlots: three nodes, one download at a time. The
// status follows what the nodes report, a slot passes on as each node
// finishes, a failing node goes to the back of the line.
func TestStatusAndDownloadSlots(t *testing.T) {
	e := controllertest.NewEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.Node(n, true)
	}
	e.Node("us", true, func(n *v1.Node) { n.Labels["region"] = "us" })
	createInstallation(e, func(in *v1.Installation) {
		in.Spec.MaxConcurrentDownloads = 1
		in.Spec.NodeSelector = map[string]string{"region": "eu"}
	})
	start(e)
	inst := waitStatus(e, "  3/0/0/0 [] NoBuild")
	if !slices.Contains(inst.Finalizers, v1.FinalizerInstallationInUse) {
		t.Fatalf("finalizers %v, want %s", inst.Finalizers, v1.FinalizerInstallationInUse)
	}
	old := v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "100", Builds: []string{"100"}}
	for _, n := range []string{"a", "b", "c"} {
		reportNode(e, n, old)
	}
	reportNode(e, "us", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "900", Builds: []string{"900"}}) // not selected
	waitStatus(e, "100 100 3/3/0/0 [] BuildReady")
	waitEvent(e, "BuildReady: Build 100 ready on all 3 nodes")

	// Valve ships 200; node c sees it first.
	reportNode(e, "c", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "200", Builds: []string{"100"}})
	inst = waitStatus(e, "200 200 3/0/0/0 [a] NodesNotReady")
	waitEvent(e, "NewBuild: New build 200 on branch public (was 100)")
	if c := meta.FindStatusCondition(inst.Status.Conditions, v1.ConditionReady); !strings.HasPrefix(c.Message, "0/3 nodes ready with build 200; ") ||
		!strings.Contains(c.Message, "node b: waiting for a download slot") {
		t.Errorf("Ready message: %q", c.Message)
	}
	reportNode(e, "a", v1.NodeInstallation{Phase: v1.InstallDownloading, LatestSeen: "200", Downloading: "200", Builds: []string{"100"}})
	waitStatus(e, "200 200 3/0/1/0 [a] NodesNotReady")
	reportNode(e, "a", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "200", Builds: []string{"200", "100"}})
	waitStatus(e, "200 200 3/1/0/0 [b] NodesNotReady")
	reportNode(e, "b", v1.NodeInstallation{Phase: v1.InstallFailed, LatestSeen: "200", Builds: []string{"100"},
		Reason: "InsufficientDisk", Message: "2 GiB free, 9 GiB needed"})
	inst = waitStatus(e, "200 200 3/1/0/1 [c] NodesFailed")
	if c := meta.FindStatusCondition(inst.Status.Conditions, v1.ConditionReady); !strings.Contains(c.Message, "node b: InsufficientDisk: 2 GiB free, 9 GiB needed") {
		t.Errorf("Ready message: %q", c.Message)
	}
	waitEvent(e, "NodeFailed: Node b cannot install build 200: InsufficientDisk: 2 GiB free, 9 GiB needed")
	reportNode(e, "c", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "200", Builds: []string{"200", "100"}})
	waitStatus(e, "200 200 3/2/0/1 [b] NodesFailed") // the failed node's retry gets the free slot
	reportNode(e, "b", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "200", Builds: []string{"200", "100"}})
	waitStatus(e, "200 200 3/3/0/0 [] BuildReady")
	waitEvent(e, "BuildReady: Build 200 ready on all 3 nodes")

	// A node that answers with an older build does not move it back.
	reportNode(e, "a", v1.NodeInstallation{Phase: v1.InstallReady, LatestSeen: "150", Builds: []string{"200", "100"}})
	// Pinning the old build rolls back to it: every node still keeps it.
	for {
		inst, err := getInstallation(e)
		if err != nil {
			t.Fatal(err)
		}
		inst.Spec.Build = "100"
		if _, err = e.Store.Update(e.Ctx, resources.Installations, inst, storage.UpdateOptions{}); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	waitStatus(e, "200 100 3/3/0/0 [] BuildReady")
}

// TestFinalizerHoldsWhileInUse: a deleted Installation stays while an
// Instance reports running one of its builds, says which, and goes once
// that Instance stops.
func TestFinalizerHoldsWhileInUse(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("a", true)
	createInstallation(e, nil)
	e.Instance("srv", func(in *v1.Instance) { in.Spec.NodeName, in.Spec.Port = "a", 27015 })
	e.Instance("idle", func(in *v1.Instance) { in.Spec.NodeName, in.Spec.Port = "a", 27017 })
	setInstance := func(name string, mutate func(*v1.InstanceStatus)) {
		t.Helper()
		for {
			in := e.Get(name)
			mutate(&in.Status)
			_, err := e.Store.Update(e.Ctx, resources.Instances, in, storage.UpdateOptions{Status: true})
			if err == nil {
				return
			}
			if !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
	}
	setInstance("srv", func(st *v1.InstanceStatus) {
		st.Phase, st.Installation, st.Build = v1.PhaseRunning, "l4d2", "100"
	})
	setInstance("idle", func(st *v1.InstanceStatus) {
		st.Phase, st.Installation, st.Build = v1.PhaseStopped, "l4d2", "100"
	})
	start(e)
	e.Eventually("finalizer added", func() (bool, string) {
		inst, err := getInstallation(e)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(inst.Finalizers, v1.FinalizerInstallationInUse), fmt.Sprint(inst.Finalizers)
	})
	if _, gone, err := e.Store.Delete(e.Ctx, resources.Installations, "", "l4d2", storage.DeleteOptions{}); err != nil || gone {
		t.Fatalf("delete: gone=%v err=%v", gone, err)
	}
	want := "deletion waits for 1 Instances running its builds: default/srv"
	e.Eventually("InUse condition", func() (bool, string) {
		inst, err := getInstallation(e)
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(inst.Status.Conditions, installation.ConditionInUse)
		if c == nil {
			return false, "no InUse condition"
		}
		return c.Status == metav1.ConditionTrue && c.Message == want, c.Message
	})
	waitEvent(e, "DeletionWaits: D"+want[1:])
	// Still there after the controller has seen everything: the Instance
	// holds it. (The event came after the status that named it.)
	if _, err := getInstallation(e); err != nil {
		t.Fatalf("Installation gone while an Instance runs it: %v", err)
	}
	setInstance("srv", func(st *v1.InstanceStatus) { st.Phase = v1.PhaseStopped })
	e.Eventually("Installation deleted", func() (bool, string) {
		_, err := getInstallation(e)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
