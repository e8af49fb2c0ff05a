package overlay_test

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
	"github.com/left4me/left4me/controllers/overlay"
)

func start(e *controllertest.Env) {
	log := testr.NewWithOptions(e.T, testr.Options{Verbosity: 1})
	ovs := controllers.NewInformer(e.Store, resources.Overlays, log)
	bps := controllers.NewInformer(e.Store, resources.Blueprints, log)
	ins := controllers.NewInformer(e.Store, resources.Instances, log)
	nodes := controllers.NewInformer(e.Store, resources.Nodes, log)
	rec := controllers.NewRecorder(e.Store, "l4m-overlay", log)
	c := overlay.New(overlay.Options{Store: e.Store, Overlays: ovs, Blueprints: bps, Instances: ins, Nodes: nodes, Recorder: rec, Log: log})
	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){ovs.Run, bps.Run, ins.Run, nodes.Run, rec.Run, c.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	e.T.Cleanup(func() { cancel(); wg.Wait() })
}

func getOverlay(e *controllertest.Env, name string) *v1.Overlay {
	e.T.Helper()
	obj, err := e.Store.Get(e.Ctx, resources.Overlays, "default", name)
	if err != nil {
		e.T.Fatal(err)
	}
	return obj.(*v1.Overlay)
}

// waitStatus waits until the Overlay's status reads want: "DIGEST12
// nodes/ready/failed READY-REASON".
func waitStatus(e *controllertest.Env, name, want string) *v1.Overlay {
	e.T.Helper()
	var ov *v1.Overlay
	e.Eventually(name+" status "+want, func() (bool, string) {
		ov = getOverlay(e, name)
		reason := ""
		if c := meta.FindStatusCondition(ov.Status.Conditions, v1.ConditionReady); c != nil {
			reason = c.Reason
		}
		got := fmt.Sprintf("%s %d/%d/%d %s", v1.ShortDigest(ov.Status.Digest), ov.Status.Nodes, ov.Status.Ready, ov.Status.Failed, reason)
		return got == want, got
	})
	return ov
}

// report writes a node's status.overlays as its agent would.
func report(e *controllertest.Env, node string, entries ...v1.NodeOverlay) {
	e.T.Helper()
	for i := range entries {
		entries[i].Namespace = "default"
	}
	for {
		n := e.GetNode(node)
		n.Status.Overlays = entries
		_, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{Status: true})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.T.Fatal(err)
		}
	}
}

func events(e *controllertest.Env) []string {
	list, err := e.Store.List(e.Ctx, resources.Events, storage.ListOptions{Namespace: "default"})
	if err != nil {
		e.T.Fatal(err)
	}
	var out []string
	for _, ev := range list.(*v1.EventList).Items {
		if ev.InvolvedObject.Kind == "Overlay" {
			out = append(out, ev.Type+" "+ev.Reason+": "+ev.Message)
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

// TestFilesOverlayStatusFollowsTheNodes: a files Overlay's digest is the
// spec's from the start; the counts follow the nodes that run Instances
// stacking it; a failing node is named in the condition and an event; an
// edit is a new digest the nodes must catch up with.
func TestFilesOverlayStatusFollowsTheNodes(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("a", true)
	e.Node("b", true)
	files := map[string]string{"left4dead2/cfg/extra.cfg": "sv_alltalk 0\n"}
	e.Create(resources.Overlays, &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "cfgs", Namespace: "default"},
		Spec: v1.OverlaySpec{Source: v1.OverlaySource{Files: files}}})
	e.Create(resources.Overlays, &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "maps", Namespace: "default"},
		Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "maps"}}})
	e.Create(resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "stack", Namespace: "default"},
		Spec: v1.BlueprintSpec{Overlays: []string{"cfgs", "maps"}}})
	start(e)
	digest := v1.FilesDigest(files)
	short := v1.ShortDigest(digest)
	waitStatus(e, "cfgs", short+" 0/0/0 NotUsed")

	e.Instance("srv-a", func(in *v1.Instance) { in.Spec.BlueprintRef.Name, in.Spec.NodeName, in.Spec.Port = "stack", "a", 27015 })
	e.Instance("srv-b", func(in *v1.Instance) { in.Spec.BlueprintRef.Name, in.Spec.NodeName, in.Spec.Port = "stack", "b", 27015 })
	e.Instance("idle", func(in *v1.Instance) { in.Spec.NodeName, in.Spec.Port = "b", 27017 }) // Blueprint coop: no overlays
	waitStatus(e, "cfgs", short+" 2/0/0 NodesNotReady")
	waitStatus(e, "maps", " 2/0/0 ")

	report(e, "a", v1.NodeOverlay{Name: "cfgs", Digest: digest, Phase: v1.OverlayPhaseReady, Digests: []string{digest}})
	report(e, "b", v1.NodeOverlay{Name: "cfgs", Digest: digest, Phase: v1.OverlayPhaseFailed, Reason: "StoreUnavailable", Message: "no space left on device"})
	ov := waitStatus(e, "cfgs", short+" 2/1/1 NodesFailed")
	if c := meta.FindStatusCondition(ov.Status.Conditions, v1.ConditionReady); !strings.Contains(c.Message, "node b: StoreUnavailable: no space left on device") {
		t.Errorf("Ready message %q", c.Message)
	}
	waitEvent(e, "Warning NodeFailed: Node b cannot fetch digest "+short+": StoreUnavailable: no space left on device")
	report(e, "b", v1.NodeOverlay{Name: "cfgs", Digest: digest, Phase: v1.OverlayPhaseReady, Digests: []string{digest}})
	waitStatus(e, "cfgs", short+" 2/2/0 Ready")
	waitEvent(e, "Normal Ready: Digest "+short+" ready on all 2 nodes")

	// Edited: a new digest, which the nodes do not have yet.
	edited := map[string]string{"left4dead2/cfg/extra.cfg": "sv_alltalk 1\n"}
	for {
		ov := getOverlay(e, "cfgs")
		ov.Spec.Source.Files = edited
		if _, err := e.Store.Update(e.Ctx, resources.Overlays, ov, storage.UpdateOptions{}); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	next := v1.FilesDigest(edited)
	waitStatus(e, "cfgs", v1.ShortDigest(next)+" 2/0/0 NodesNotReady")

	// A stopped game needs nothing fetched: its node drops out.
	for {
		in := e.Get("srv-b")
		in.Spec.State = v1.StateStopped
		if _, err := e.Store.Update(e.Ctx, resources.Instances, in, storage.UpdateOptions{}); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	waitStatus(e, "cfgs", v1.ShortDigest(next)+" 1/0/0 NodesNotReady")
}
