// Package rollout decides when a running Instance may restart onto a
// changed Blueprint or Overlay.
//
// The node knows what changed: it renders the new spec, sees it differs
// from what the game runs, and reports status.pendingTemplateHash with
// UpdatePending=True instead of restarting. This controller sees every
// node's Instances and approves restarts, writing the pending hash into the
// Instance's approved-template annotation: with policy WhenEmpty only for
// Instances without players (from A2S), and never more at once than the
// Blueprint's maxUnavailable. A forced restart (l4mctl rollout restart
// --force) skips the wait: an Instance's at once, a Blueprint's for
// occupied Instances too, in their turn. The decision is plan's, pure; the
// controller writes what it decides.
package rollout

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
)

// Options configure the controller.
type Options struct {
	Store      *storage.Store
	Instances  *controllers.Informer
	Blueprints *controllers.Informer
	Recorder   *controllers.Recorder
	Log        logr.Logger
}

// Controller is the rollout controller; its queue holds Blueprint keys.
type Controller struct {
	o     Options
	queue workqueue.TypedRateLimitingInterface[string]

	// written holds the approvals this controller wrote that its informer
	// may not have brought back yet, by Instance key: the resourceVersion
	// of the write and the Instance as written. Without it, a reconcile
	// between a write and its watch event counts the Instance as still
	// queued and approves one more than maxUnavailable.
	mu      sync.Mutex
	written map[string]*v1.Instance
}

// New wires the controller to its informers; Run starts it.
func New(o Options) *Controller {
	c := &Controller{o: o, written: map[string]*v1.Instance{}, queue: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "rollout"})}
	o.Blueprints.OnChange(func(old, cur v1.Object) {
		if cur == nil {
			cur = old
		}
		c.queue.Add(controllers.Key(cur))
	})
	o.Instances.OnChange(func(old, cur v1.Object) {
		if cur == nil {
			c.mu.Lock()
			delete(c.written, controllers.Key(old))
			c.mu.Unlock()
		}
		for _, obj := range []v1.Object{old, cur} {
			if obj != nil {
				in := obj.(*v1.Instance)
				c.queue.Add(in.Namespace + "/" + in.Spec.BlueprintRef.Name)
			}
		}
	})
	return c
}

// Run approves restarts until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, c.o.Instances, c.o.Blueprints) {
		return
	}
	controllers.RunWorkers(ctx, c.queue, 2, c.reconcile, c.o.Log)
}

func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj := c.o.Blueprints.Get(key)
	if obj == nil {
		return nil
	}
	bp := obj.(*v1.Blueprint)
	var instances []*v1.Instance
	for _, o := range c.o.Instances.List() {
		instances = append(instances, c.newest(o.(*v1.Instance)))
	}
	for _, a := range plan(bp, instances) {
		if err := c.approve(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// newest is the informer's copy of an Instance, or the approval this
// controller wrote of it if the informer has not caught up with that yet.
func (c *Controller) newest(cached *v1.Instance) *v1.Instance {
	key := controllers.Key(cached)
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.written[key]
	if w == nil {
		return cached
	}
	if rvOf(cached) >= rvOf(w) {
		delete(c.written, key) // caught up
		return cached
	}
	return w
}

func rvOf(o v1.Object) int64 {
	n, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	return n
}

// approve writes an approval's pending template into its Instance's
// approved-template annotation, and tells its users.
func (c *Controller) approve(ctx context.Context, a approval) error {
	in := a.Instance.DeepCopy()
	if in.Annotations == nil {
		in.Annotations = map[string]string{}
	}
	in.Annotations[v1.AnnotationApprovedTemplate] = in.Status.PendingTemplateHash
	out, err := c.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("approve restart of %s/%s: %w", in.Namespace, in.Name, err)
	}
	c.mu.Lock()
	c.written[controllers.Key(in)] = out.(*v1.Instance)
	c.mu.Unlock()
	c.o.Log.Info("approved restart", "instance", controllers.Key(in), "template", in.Status.PendingTemplateHash, "why", a.Why)
	c.o.Recorder.Eventf(in, v1.EventTypeNormal, "RolloutRestart", "%s", a.Event)
	return nil
}
