// Package nodelifecycle notices nodes that stopped sending heartbeats and
// moves their Instances elsewhere once their grace period is over.
//
// A node's heartbeat is its Lease's spec.renewTime, which its agent renews
// every 10 s, or its Node's status.heartbeatTime, whichever is newer: the
// agent writes its Node's status only when what it reports changes (and
// every few minutes regardless), and an older agent, which has no Lease,
// still heartbeats through its Node alone.
//
// A lost node is only a node the control plane cannot hear: its games may
// well still be running. So nothing here stops a game. It marks the Node
// Ready=Unknown and its Instances NodeLost, and after the Instance's
// rescheduleAfterNodeLost it unbinds the Instances the scheduler placed (the
// scheduler then binds them elsewhere). The node's agent, once it hears the
// API again, sees those Instances are no longer its own and stops its
// copies; Instances still bound to it it leaves alone.
package nodelifecycle

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/controllers"
)

// DefaultGracePeriod is how long a node may miss heartbeats (its Lease
// renewed every 10 s) before it is Ready=Unknown: four heartbeats.
const DefaultGracePeriod = 40 * time.Second

// Options configure the controller.
type Options struct {
	Store      *storage.Store
	Nodes      *controllers.Informer
	Leases     *controllers.Informer
	Instances  *controllers.Informer
	Blueprints *controllers.Informer
	Recorder   *controllers.Recorder
	// GracePeriod: heartbeats older than this make a node Ready=Unknown.
	GracePeriod time.Duration
	Log         logr.Logger
}

// Controller is the node lifecycle controller.
type Controller struct {
	o     Options
	queue workqueue.TypedRateLimitingInterface[string] // node names

	mu     sync.Mutex
	byNode map[string]map[string]bool // node -> Instance keys bound to it
	// heard is, for each node, its newest heartbeat and when this
	// controller saw it change, by its own clock: a node's clock may be
	// wrong (see nextSighting).
	heard map[string]sighting
	// watching is set once the Node and Lease informers have listed: what
	// changes afterwards is a heartbeat seen as it happens, not one found.
	watching atomic.Bool
}

// New wires the controller to its informers; Run starts it.
func New(o Options) *Controller {
	if o.GracePeriod <= 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	c := &Controller{o: o, byNode: map[string]map[string]bool{}, heard: map[string]sighting{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodelifecycle"})}
	o.Nodes.OnChange(c.heartbeatChanged)
	o.Leases.OnChange(c.heartbeatChanged)
	o.Instances.OnChange(c.instanceChanged)
	return c
}

// heartbeatChanged follows a Node or its Lease (both named after the
// node): whichever changed, the node's heartbeat is read from both caches.
func (c *Controller) heartbeatChanged(old, cur v1.Object) {
	obj := cur
	if obj == nil {
		obj = old
	}
	name := obj.GetName()
	node, _ := c.o.Nodes.Get(name).(*v1.Node)
	lease, _ := c.o.Leases.Get(name).(*v1.Lease)
	c.mu.Lock()
	if node == nil {
		delete(c.heard, name)
	} else {
		prev, known := c.heard[name]
		c.heard[name] = nextSighting(prev, known && c.watching.Load(), lastHeartbeat(node, lease), time.Now())
	}
	c.mu.Unlock()
	c.queue.Add(name)
}

func (c *Controller) instanceChanged(old, cur v1.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old != nil {
		if n := old.(*v1.Instance).Spec.NodeName; n != "" {
			delete(c.byNode[n], controllers.Key(old))
		}
	}
	if cur != nil {
		if n := cur.(*v1.Instance).Spec.NodeName; n != "" {
			if c.byNode[n] == nil {
				c.byNode[n] = map[string]bool{}
			}
			c.byNode[n][controllers.Key(cur)] = true
			if old == nil || old.(*v1.Instance).Spec.NodeName != n {
				c.queue.Add(n)
			}
		}
	}
}

// Run checks every node each second (heartbeats age without any event)
// and whenever a Node or its Instances change.
func (c *Controller) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, c.o.Nodes, c.o.Leases, c.o.Instances, c.o.Blueprints) {
		return
	}
	c.watching.Store(true)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.enqueueAll()
			}
		}
	}()
	c.enqueueAll()
	controllers.RunWorkers(ctx, c.queue, 2, c.reconcile, c.o.Log)
}

func (c *Controller) enqueueAll() {
	for _, n := range c.o.Nodes.List() {
		c.queue.Add(n.GetName())
	}
	for _, l := range c.o.Leases.List() {
		c.queue.Add(l.GetName()) // a Lease whose Node is gone (dropOrphanLease)
	}
	c.mu.Lock()
	for n := range c.byNode {
		c.queue.Add(n) // Instances on nodes that do not exist (any more)
	}
	c.mu.Unlock()
}

// reconcile looks at one node and the Instances bound to it.
func (c *Controller) reconcile(ctx context.Context, name string) error {
	var node *v1.Node
	if obj := c.o.Nodes.Get(name); obj != nil {
		node = obj.(*v1.Node)
	}
	if node == nil {
		if err := c.dropOrphanLease(ctx, name); err != nil {
			return err
		}
	}
	lost, why := c.lost(node, name)
	if node != nil && lost && !isUnknown(node) {
		if err := c.markUnknown(ctx, node, why); err != nil {
			return err
		}
	}
	c.mu.Lock()
	keys := make([]string, 0, len(c.byNode[name]))
	for k := range c.byNode[name] {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		obj := c.o.Instances.Get(k)
		if obj == nil {
			continue
		}
		in := obj.(*v1.Instance)
		if in.Spec.NodeName != name {
			continue
		}
		var err error
		if in.DeletionTimestamp != nil {
			if lost {
				err = c.releaseDeleted(ctx, in, why)
			}
		} else {
			err = c.reconcileInstance(ctx, in, lost, why)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dropOrphanLease deletes the Lease of a node whose Node is gone, once it
// is no longer renewed (a host taken out of the fleet), as the Node's
// owner reference does in Kubernetes. The Lease of a live agent whose Node
// an admin deleted is renewed, and stays.
func (c *Controller) dropOrphanLease(ctx context.Context, name string) error {
	lease, _ := c.o.Leases.Get(name).(*v1.Lease)
	if lease == nil || time.Since(lastHeartbeat(nil, lease)) <= c.o.GracePeriod {
		return nil
	}
	// The version this decision was made on: a renewal meanwhile wins.
	_, _, err := c.o.Store.Delete(ctx, resources.Leases, "", name, storage.DeleteOptions{ResourceVersion: lease.ResourceVersion})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete the Lease of removed node %s: %w", name, err)
	}
	c.o.Log.Info("deleted the Lease of a removed node", "node", name)
	return nil
}

// lost: the node is gone, or its last heartbeat is older than the grace
// period.
func (c *Controller) lost(node *v1.Node, name string) (bool, string) {
	if node == nil {
		return true, fmt.Sprintf("node %s does not exist", name)
	}
	c.mu.Lock()
	last, ok := c.heard[name]
	c.mu.Unlock()
	if !ok {
		return false, ""
	}
	if age := time.Since(last.heard); age > c.o.GracePeriod {
		return true, fmt.Sprintf("node %s sent no heartbeat for %s", name, age.Truncate(time.Second))
	}
	return false, ""
}

// firstHeard is when a node was last heard of, for a node this controller
// has not seen a heartbeat of yet (it just started, or just became
// leader): the node's own timestamp when that is in the past, so a node
// silent since long before the control plane came up is lost at once
// instead of after a fresh grace period, and its Instances show as
// Unknown, not as they last were. A timestamp in the future (a node clock
// ahead) or none counts as now. A node clock behind by more than the grace
// period makes the node flap to Unknown once, until its next heartbeat.
func firstHeard(hb, now time.Time) time.Time {
	if hb.IsZero() || hb.After(now) {
		return now
	}
	return hb
}

// sighting is a node's newest heartbeat (its own timestamp) and when this
// controller heard it, by its own clock.
type sighting struct {
	heartbeat, heard time.Time
}

// nextSighting is what this controller knows of a node once it shows
// heartbeat hb at now. A heartbeat that moved, seen as it happened
// (watched: the node is known since the informers listed), was heard now,
// whatever the node's clock says. What the controller finds instead (it
// just started or became leader, or the node is new) is heard when the
// node says, as firstHeard decides; so is a Lease found after its Node in
// the first list, which would otherwise give a node silent for an hour a
// fresh grace period. An unmoved heartbeat changes nothing: a Node written
// for another reason is no sign of life.
func nextSighting(prev sighting, watched bool, hb, now time.Time) sighting {
	switch {
	case !watched:
		return sighting{heartbeat: hb, heard: firstHeard(hb, now)}
	case !hb.Equal(prev.heartbeat):
		return sighting{heartbeat: hb, heard: now}
	}
	return prev
}

// lastHeartbeat is the newer of the node's Lease renewal and its Node's
// status.heartbeatTime (zero: neither). Either may be missing: an older
// agent has no Lease; a Lease may be renewed long after the Node's status
// was last written, which is the point of it.
func lastHeartbeat(node *v1.Node, lease *v1.Lease) time.Time {
	var hb time.Time
	if node != nil && node.Status.HeartbeatTime != nil {
		hb = node.Status.HeartbeatTime.Time
	}
	if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(hb) {
		hb = lease.Spec.RenewTime.Time
	}
	return hb
}

func isUnknown(n *v1.Node) bool {
	c := meta.FindStatusCondition(n.Status.Conditions, v1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionUnknown
}

func (c *Controller) markUnknown(ctx context.Context, node *v1.Node, why string) error {
	n := node.DeepCopy()
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionUnknown,
		Reason: "NodeStatusUnknown", Message: why + "; its games may still be running"})
	if _, err := c.o.Store.Update(ctx, resources.Nodes, n, storage.UpdateOptions{Status: true}); err != nil {
		if apierrors.IsConflict(err) {
			c.queue.AddRateLimited(node.Name) // a heartbeat raced us: look again
			return nil
		}
		return fmt.Errorf("mark node %s Ready=Unknown: %w", node.Name, err)
	}
	c.o.Log.Info("node lost", "node", node.Name, "why", why)
	c.o.Recorder.Eventf(n, v1.EventTypeWarning, "NodeNotReady", "%s", why)
	return nil
}

// reconcileInstance keeps the NodeLost condition true to the node's state
// and moves the Instance once its grace period is over.
func (c *Controller) reconcileInstance(ctx context.Context, cached *v1.Instance, lost bool, why string) error {
	cond := meta.FindStatusCondition(cached.Status.Conditions, v1.InstanceNodeLost)
	if !lost {
		if cond == nil || cond.Status == metav1.ConditionFalse {
			return nil
		}
		in := cached.DeepCopy()
		meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceNodeLost, Status: metav1.ConditionFalse,
			Reason: "NodeReady", Message: "node " + in.Spec.NodeName + " reports again"})
		return c.writeStatus(ctx, in)
	}
	after := c.rescheduleAfter(cached)
	if cond == nil || cond.Status != metav1.ConditionTrue {
		in := cached.DeepCopy()
		msg := why + "; "
		switch {
		case in.Annotations[v1.AnnotationBoundBy] != "scheduler":
			msg += "it stays: spec.nodeName pins it to this node"
		case after < 0:
			msg += "it stays: rescheduleAfterNodeLost is Never"
		default:
			msg += fmt.Sprintf("it moves to another node in %s unless the node returns", after)
		}
		meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceNodeLost, Status: metav1.ConditionTrue,
			Reason: "NodeLost", Message: msg})
		// What the node reported is no longer known to be true: Ready and
		// the phase say Unknown until the node reports again (its agent
		// rewrites both).
		meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionUnknown,
			Reason: "NodeLost", Message: why})
		in.Status.Phase = v1.PhaseUnknown
		if err := c.writeStatus(ctx, in); err != nil {
			return err
		}
		c.o.Recorder.Eventf(in, v1.EventTypeWarning, "NodeLost", "%s", msg)
		if after >= 0 {
			c.queue.AddAfter(in.Spec.NodeName, after)
		}
		return nil
	}
	if after < 0 || cached.Annotations[v1.AnnotationBoundBy] != "scheduler" {
		return nil
	}
	if wait := time.Until(cond.LastTransitionTime.Add(after)); wait > 0 {
		c.queue.AddAfter(cached.Spec.NodeName, wait)
		return nil
	}
	return c.unbind(ctx, cached)
}

// releaseDeleted lets a deleted Instance go although its node, which
// would clean up after it, is lost: the node removes the game when it is
// back (a game no Instance owns is an orphan there), and a node that never
// returns has nothing left to clean. Without this, deleting an Instance of
// a dead host would hang forever.
func (c *Controller) releaseDeleted(ctx context.Context, cached *v1.Instance, why string) error {
	in := cached.DeepCopy()
	var keep []string
	for _, f := range in.Finalizers {
		if f != v1.FinalizerNodeCleanup {
			keep = append(keep, f)
		}
	}
	if len(keep) == len(in.Finalizers) {
		return nil
	}
	in.Finalizers = keep
	if _, err := c.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			c.queue.AddRateLimited(in.Spec.NodeName)
			return nil
		}
		return fmt.Errorf("release deleted %s/%s from lost node %s: %w", in.Namespace, in.Name, in.Spec.NodeName, err)
	}
	c.o.Log.Info("deleted instance released from a lost node", "instance", controllers.Key(in), "node", in.Spec.NodeName)
	c.o.Recorder.Eventf(in, v1.EventTypeWarning, "NodeLostCleanup", "%s; the node removes the game when it returns", why)
	return nil
}

// rescheduleAfter is the Instance's grace period (-1: never), from the
// Instance, else its Blueprint, else the default.
func (c *Controller) rescheduleAfter(in *v1.Instance) time.Duration {
	v := in.Spec.RescheduleAfterNodeLost
	if v == "" {
		if obj := c.o.Blueprints.Get(in.Namespace + "/" + in.Spec.BlueprintRef.Name); obj != nil {
			v = obj.(*v1.Blueprint).Spec.RescheduleAfterNodeLost
		}
	}
	if v == "" {
		v = validation.DefaultRescheduleAfterNodeLost
	}
	if v == v1.RescheduleNever {
		return -1
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1 // validation makes this unreachable; never move on garbage
	}
	return d
}

// Unbind clears an Instance's node and everything the old node reported,
// and releases its port claim, in one write; the scheduler binds it again.
// Drain does the same through the API.
func (c *Controller) unbind(ctx context.Context, cached *v1.Instance) error {
	in := cached.DeepCopy()
	from := in.Spec.NodeName
	in.Spec.NodeName = ""
	delete(in.Annotations, v1.AnnotationBoundBy)
	in.Status = v1.InstanceStatus{Phase: v1.PhasePending, Conditions: []metav1.Condition{{
		Type: v1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: "NodeLost",
		Message: "node " + from + " was lost; waiting for another node", LastTransitionTime: metav1.Now()}}}
	if _, err := c.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{SpecAndStatus: true}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			c.queue.AddRateLimited(from)
			return nil
		}
		return fmt.Errorf("unbind %s/%s from lost node %s: %w", in.Namespace, in.Name, from, err)
	}
	c.o.Log.Info("moving instance off a lost node", "instance", controllers.Key(in), "node", from)
	c.o.Recorder.Eventf(in, v1.EventTypeWarning, "Rescheduling", "Node %s was lost for longer than rescheduleAfterNodeLost; moving to another node", from)
	return nil
}

func (c *Controller) writeStatus(ctx context.Context, in *v1.Instance) error {
	_, err := c.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{Status: true})
	if apierrors.IsConflict(err) {
		c.queue.AddRateLimited(in.Spec.NodeName) // the agent wrote first: look again
		return nil
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write NodeLost condition of %s/%s: %w", in.Namespace, in.Name, err)
	}
	return nil
}
