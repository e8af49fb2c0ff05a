// Package overlay keeps each Overlay's status: the digest the fleet should
// run (for a files source it follows from the spec; for the other fetched
// sources it is what the nodes resolved) and how many of the nodes that
// need it (they run an Instance stacking it) have it ready or failed to
// fetch it, from the Nodes' status.overlays. Its Ready condition and
// events say which node fails and why, so `l4mctl describe overlay` and
// `get overlays` need not ask every node.
package overlay

import (
	"context"
	"fmt"
	"slices"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
)

// Options configure the controller.
type Options struct {
	Store      *storage.Store
	Overlays   *controllers.Informer
	Blueprints *controllers.Informer
	Instances  *controllers.Informer
	Nodes      *controllers.Informer
	Recorder   *controllers.Recorder
	Log        logr.Logger
}

// Controller is the Overlay controller; its queue holds Overlay keys
// ("namespace/name").
type Controller struct {
	o     Options
	queue workqueue.TypedRateLimitingInterface[string]

	// failed remembers, by Overlay, the nodes last seen failing and why
	// ("Reason: message"): each failure is told in an event once.
	failed controllers.FailureMemo
}

// New wires the controller to its informers; Run starts it.
func New(o Options) *Controller {
	c := &Controller{o: o, queue: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "overlay"})}
	o.Overlays.OnChange(func(old, cur v1.Object) {
		if cur == nil {
			c.failed.Forget(controllers.Key(old))
			return
		}
		c.queue.Add(controllers.Key(cur))
	})
	o.Blueprints.OnChange(func(old, cur v1.Object) {
		for _, obj := range []v1.Object{old, cur} {
			if obj != nil {
				c.enqueueStacked(obj.(*v1.Blueprint))
			}
		}
	})
	o.Instances.OnChange(func(old, cur v1.Object) {
		if !instanceChanged(old, cur) {
			return
		}
		for _, obj := range []v1.Object{old, cur} {
			if obj == nil {
				continue
			}
			in := obj.(*v1.Instance)
			if bp := o.Blueprints.Get(in.Namespace + "/" + in.Spec.BlueprintRef.Name); bp != nil {
				c.enqueueStacked(bp.(*v1.Blueprint))
			}
		}
	})
	o.Nodes.OnChange(func(old, cur v1.Object) {
		if !nodeChanged(old, cur) {
			return
		}
		for _, obj := range []v1.Object{old, cur} {
			if obj == nil {
				continue
			}
			for _, e := range obj.(*v1.Node).Status.Overlays {
				c.queue.Add(e.Namespace + "/" + e.Name)
			}
		}
	})
	return c
}

// enqueueStacked queues the Overlays a Blueprint stacks.
func (c *Controller) enqueueStacked(bp *v1.Blueprint) {
	for _, name := range bp.Spec.Overlays {
		c.queue.Add(bp.Namespace + "/" + name)
	}
}

// instanceChanged: status writes change an Instance often; only where it
// runs and whether it should decide which nodes need its Overlays.
func instanceChanged(old, cur v1.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	a, b := old.(*v1.Instance), cur.(*v1.Instance)
	return NodeOf(a) != NodeOf(b) || a.Spec.State != b.Spec.State || a.Spec.BlueprintRef != b.Spec.BlueprintRef ||
		(a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil)
}

// nodeChanged: heartbeats change a Node every few seconds; only its
// overlays matter here.
func nodeChanged(old, cur v1.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	return !equality.Semantic.DeepEqual(old.(*v1.Node).Status.Overlays, cur.(*v1.Node).Status.Overlays)
}

// Run keeps the Overlays' status until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, c.o.Overlays, c.o.Blueprints, c.o.Instances, c.o.Nodes) {
		return
	}
	for _, o := range c.o.Overlays.List() {
		c.queue.Add(controllers.Key(o))
	}
	controllers.RunWorkers(ctx, c.queue, 2, c.reconcile, c.o.Log)
}

func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj := c.o.Overlays.Get(key)
	if obj == nil {
		return nil
	}
	ov := obj.(*v1.Overlay)
	var bps []*v1.Blueprint
	for _, o := range c.o.Blueprints.List() {
		bps = append(bps, o.(*v1.Blueprint))
	}
	var ins []*v1.Instance
	for _, o := range c.o.Instances.List() {
		ins = append(ins, o.(*v1.Instance))
	}
	var nodes []*v1.Node
	for _, o := range c.o.Nodes.List() {
		nodes = append(nodes, o.(*v1.Node))
	}
	st := Assess(ov, bps, ins, nodes)
	c.tell(ov, &st, NodesNeeding(ov, bps, ins), nodes)
	return c.writeStatus(ctx, ov, st)
}

// tell records events for what changed: the digest becoming ready on
// every node that needs it, a node starting to fail (or failing anew).
func (c *Controller) tell(ov *v1.Overlay, st *v1.OverlayStatus, needing []string, nodes []*v1.Node) {
	key := controllers.Key(ov)
	rec := c.o.Recorder
	if ready := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); ready != nil && ready.Status == metav1.ConditionTrue &&
		(!meta.IsStatusConditionTrue(ov.Status.Conditions, v1.ConditionReady) || ov.Status.Digest != st.Digest) {
		rec.Eventf(ov, v1.EventTypeNormal, "Ready", "Digest %s ready on all %d nodes", v1.ShortDigest(st.Digest), st.Nodes)
	}
	failing := map[string]string{}
	for _, n := range nodes {
		if !slices.Contains(needing, n.Name) {
			continue
		}
		if e := n.Status.NodeOverlayFor(ov.Namespace, ov.Name); e != nil {
			if s := StateOf(n.Name, e, st.Digest, ov.Generation); s.Failed {
				failing[n.Name] = s.Problem
			}
		}
	}
	for _, name := range c.failed.News(key, failing, needing) {
		problem := failing[name]
		what := "it"
		if st.Digest != "" {
			what = "digest " + v1.ShortDigest(st.Digest)
		}
		rec.Eventf(ov, v1.EventTypeWarning, "NodeFailed", "Node %s cannot fetch %s: %s", name, what, problem)
	}
}

// writeStatus stores st if it differs from what ov has; conditions whose
// status changed get the time now.
func (c *Controller) writeStatus(ctx context.Context, ov *v1.Overlay, st v1.OverlayStatus) error {
	now := metav1.Now()
	for i := range st.Conditions {
		if st.Conditions[i].LastTransitionTime.IsZero() {
			st.Conditions[i].LastTransitionTime = now
		}
	}
	if equality.Semantic.DeepEqual(ov.Status, st) {
		return nil
	}
	next := ov.DeepCopy()
	next.Status = st
	_, err := c.o.Store.Update(ctx, resources.Overlays, next, storage.UpdateOptions{Status: true, Current: ov})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the newer version is queued through the informer
	}
	if err != nil {
		return fmt.Errorf("write status of Overlay %s: %w", controllers.Key(ov), err)
	}
	c.o.Log.V(1).Info("status", "overlay", controllers.Key(ov), "digest", st.Digest, "ready", st.Ready, "failed", st.Failed, "nodes", st.Nodes)
	return nil
}
