// Package installation keeps each Installation's status: from what the
// nodes it selects report (Node status.installations) it works out the
// branch's latest build, the build wanted, how many nodes have it, and
// which nodes may download it now (spec.maxConcurrentDownloads). The nodes
// read that status to decide what to download; the scheduler reads it to
// place Instances only where their build is ready.
//
// It also guards deletion, as Kubernetes' pvc-protection does: every
// Installation gets the FinalizerInstallationInUse finalizer, and a deleted
// one keeps it (and the nodes keep its builds) until no Instance runs one
// of its builds any more. Meanwhile its InUse condition and an event name
// the Instances that hold it.
package installation

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
	Store         *storage.Store
	Installations *controllers.Informer
	Nodes         *controllers.Informer
	Instances     *controllers.Informer
	Recorder      *controllers.Recorder
	Log           logr.Logger
}

// Controller is the Installation controller; its queue holds Installation
// names.
type Controller struct {
	o     Options
	queue workqueue.TypedRateLimitingInterface[string]

	// failed remembers, by Installation, the nodes last seen failing and
	// why ("Reason"): each failure is told in an event once.
	failed controllers.FailureMemo
}

// New wires the controller to its informers; Run starts it.
func New(o Options) *Controller {
	c := &Controller{o: o, queue: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "installation"})}
	o.Installations.OnChange(func(old, cur v1.Object) {
		if cur == nil {
			c.failed.Forget(old.GetName())
			return
		}
		c.queue.Add(cur.GetName())
	})
	o.Nodes.OnChange(func(old, cur v1.Object) {
		if nodeChanged(old, cur) {
			c.enqueueAll()
		}
	})
	o.Instances.OnChange(func(old, cur v1.Object) {
		// Instances matter only to an Installation being deleted: they
		// hold it while they run its build.
		for _, obj := range []v1.Object{old, cur} {
			if obj == nil {
				continue
			}
			name := obj.(*v1.Instance).Status.Installation
			if inst := o.Installations.Get(name); name != "" && inst != nil && inst.GetDeletionTimestamp() != nil {
				c.queue.Add(name)
			}
		}
	})
	return c
}

func (c *Controller) enqueueAll() {
	for _, o := range c.o.Installations.List() {
		c.queue.Add(o.GetName())
	}
}

// nodeChanged: heartbeats change a Node every few seconds; only what an
// Installation's status is made of should wake them all.
func nodeChanged(old, cur v1.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	a, b := old.(*v1.Node), cur.(*v1.Node)
	return !equality.Semantic.DeepEqual(a.Labels, b.Labels) || !equality.Semantic.DeepEqual(a.Status.Installations, b.Status.Installations)
}

// Run keeps the Installations' status until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, c.o.Installations, c.o.Nodes, c.o.Instances) {
		return
	}
	controllers.RunWorkers(ctx, c.queue, 2, c.reconcile, c.o.Log)
}

func (c *Controller) reconcile(ctx context.Context, name string) error {
	obj := c.o.Installations.Get(name)
	if obj == nil {
		return nil
	}
	inst := obj.(*v1.Installation)
	if inst.DeletionTimestamp == nil && !slices.Contains(inst.Finalizers, v1.FinalizerInstallationInUse) {
		next := inst.DeepCopy()
		next.Finalizers = append(next.Finalizers, v1.FinalizerInstallationInUse)
		out, err := c.o.Store.Update(ctx, resources.Installations, next, storage.UpdateOptions{Current: inst})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // the newer version is queued through the informer
		}
		if err != nil {
			return fmt.Errorf("add finalizer to Installation %s: %w", name, err)
		}
		inst = out.(*v1.Installation)
	}
	var nodes []*v1.Node
	for _, o := range c.o.Nodes.List() {
		nodes = append(nodes, o.(*v1.Node))
	}
	st := Assess(inst, nodes)
	var holders []string
	if inst.DeletionTimestamp != nil {
		var instances []*v1.Instance
		for _, o := range c.o.Instances.List() {
			instances = append(instances, o.(*v1.Instance))
		}
		if holders = Holders(name, instances); len(holders) == 0 {
			return c.release(ctx, inst)
		}
		setCondition(&st.Conditions, metav1.Condition{Type: ConditionInUse, Status: metav1.ConditionTrue, Reason: "InstancesRunning",
			ObservedGeneration: inst.Generation, Message: inUseMessage(holders)})
	} else {
		removeCondition(&st.Conditions, ConditionInUse)
	}
	c.tell(inst, &st, nodes)
	return c.writeStatus(ctx, inst, st)
}

func inUseMessage(holders []string) string {
	named := holders
	if len(named) > maxNodesNamed {
		named = append(slices.Clone(named[:maxNodesNamed]), fmt.Sprintf("and %d more", len(holders)-maxNodesNamed))
	}
	return fmt.Sprintf("deletion waits for %d Instances running its builds: %s", len(holders), strings.Join(named, ", "))
}

// tell records events for what changed between the stored status and st:
// a new build on the branch, the build becoming ready everywhere, a node
// starting to fail, a deletion held by Instances.
func (c *Controller) tell(inst *v1.Installation, st *v1.InstallationStatus, nodes []*v1.Node) {
	old := &inst.Status
	rec := c.o.Recorder
	if st.LatestBuild != old.LatestBuild {
		if old.LatestBuild == "" {
			rec.Eventf(inst, v1.EventTypeNormal, "NewBuild", "Build %s is branch %s's latest", st.LatestBuild, inst.Spec.Branch)
		} else {
			rec.Eventf(inst, v1.EventTypeNormal, "NewBuild", "New build %s on branch %s (was %s)", st.LatestBuild, inst.Spec.Branch, old.LatestBuild)
		}
	}
	wasReady := meta.IsStatusConditionTrue(old.Conditions, v1.ConditionReady)
	if ready := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); ready != nil && ready.Status == metav1.ConditionTrue &&
		(!wasReady || old.WantedBuild != st.WantedBuild) {
		rec.Eventf(inst, v1.EventTypeNormal, "BuildReady", "Build %s ready on all %d nodes", st.WantedBuild, st.Nodes)
	}
	if inUse := meta.FindStatusCondition(st.Conditions, ConditionInUse); inUse != nil {
		if prev := meta.FindStatusCondition(old.Conditions, ConditionInUse); prev == nil || prev.Message != inUse.Message {
			rec.Eventf(inst, v1.EventTypeNormal, "DeletionWaits", "%s", capitalize(inUse.Message))
		}
	}
	failing := map[string]string{}
	for _, n := range Selected(inst, nodes) {
		if e := n.Status.NodeInstallationFor(inst.Name); e != nil && e.Phase == v1.InstallFailed {
			failing[n.Name] = e.Reason
		}
	}
	selected := map[string]*v1.Node{}
	var names []string
	for _, n := range Selected(inst, nodes) {
		selected[n.Name] = n
		names = append(names, n.Name)
	}
	for _, name := range c.failed.News(inst.Name, failing, names) {
		n := selected[name]
		e := n.Status.NodeInstallationFor(inst.Name)
		rec.Eventf(inst, v1.EventTypeWarning, "NodeFailed", "Node %s cannot install build %s: %s", n.Name, st.WantedBuild, problemOf(e))
	}
}

func problemOf(e *v1.NodeInstallation) string {
	if e.Reason != "" && e.Message != "" {
		return e.Reason + ": " + e.Message
	}
	return e.Reason + e.Message
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeStatus stores st if it differs from what inst has; conditions
// whose status changed get the time now.
func (c *Controller) writeStatus(ctx context.Context, inst *v1.Installation, st v1.InstallationStatus) error {
	now := metav1.Now()
	for i := range st.Conditions {
		if st.Conditions[i].LastTransitionTime.IsZero() {
			st.Conditions[i].LastTransitionTime = now
		}
	}
	if equality.Semantic.DeepEqual(inst.Status, st) {
		return nil
	}
	next := inst.DeepCopy()
	next.Status = st
	_, err := c.o.Store.Update(ctx, resources.Installations, next, storage.UpdateOptions{Status: true, Current: inst})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the newer version is queued through the informer
	}
	if err != nil {
		return fmt.Errorf("write status of Installation %s: %w", inst.Name, err)
	}
	c.o.Log.V(1).Info("status", "installation", inst.Name, "wanted", st.WantedBuild, "ready", st.Ready, "nodes", st.Nodes)
	return nil
}

// release takes the finalizer off a deleted Installation no Instance runs
// on any more; the store then deletes it.
func (c *Controller) release(ctx context.Context, inst *v1.Installation) error {
	if !slices.Contains(inst.Finalizers, v1.FinalizerInstallationInUse) {
		return nil
	}
	next := inst.DeepCopy()
	next.Finalizers = slices.DeleteFunc(next.Finalizers, func(f string) bool { return f == v1.FinalizerInstallationInUse })
	_, err := c.o.Store.Update(ctx, resources.Installations, next, storage.UpdateOptions{Current: inst})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove finalizer of Installation %s: %w", inst.Name, err)
	}
	c.o.Log.Info("released deleted Installation: no Instance runs its builds", "installation", inst.Name)
	return nil
}
