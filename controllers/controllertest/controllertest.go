// Package controllertest sets up real etcd and a store for controller
// tests, and API servers with the controllers running for tests of what
// talks to a whole control plane (l4mctl, the node agent).
package controllertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/storage/etcdtest"
	"github.com/left4me/left4me/apis/validation"
)

// Env is a fresh store on real etcd, with helpers to fill it the way
// controllers see it: Nodes with Ready conditions, Instances of one
// Blueprint "coop".
type Env struct {
	T     *testing.T
	Ctx   context.Context
	Store *storage.Store
}

// NewEnv starts embedded etcd and a store with the default namespace.
func NewEnv(t *testing.T) *Env {
	e := etcdtest.Embedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := storage.New(e.Client, storage.Options{Prefix: fmt.Sprintf("/sched%d", time.Now().UnixNano()), Log: logr.Discard()})
	if err := s.StartWatching(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureNamespace(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	en := &Env{T: t, Ctx: ctx, Store: s}
	en.Create(resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}})
	return en
}

// Create defaults, validates and stores obj.
func (e *Env) Create(res *resources.Resource, obj v1.Object) {
	e.T.Helper()
	validation.Default(obj)
	if errs := validation.Validate(obj); len(errs) > 0 {
		e.T.Fatalf("invalid %s: %v", obj.GetName(), errs.ToAggregate())
	}
	if _, err := e.Store.Create(e.Ctx, res, obj, storage.CreateOptions{}); err != nil {
		e.T.Fatalf("create %s: %v", obj.GetName(), err)
	}
}

// Node creates a node labelled region=eu with ports 27015-27024 and room
// for 20 Instances; ready sets Ready=True.
func (e *Env) Node(name string, ready bool, mutate ...func(*v1.Node)) {
	e.T.Helper()
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"region": "eu"}},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27024}, Capacity: v1.NodeCapacity{Instances: 20}}}
	for _, m := range mutate {
		m(n)
	}
	e.Create(resources.Nodes, n)
	if ready {
		e.SetReady(name, metav1.ConditionTrue)
	}
}

// SetReady writes the node's Ready condition.
func (e *Env) SetReady(name string, status metav1.ConditionStatus) {
	e.T.Helper()
	obj, err := e.Store.Get(e.Ctx, resources.Nodes, "", name)
	if err != nil {
		e.T.Fatal(err)
	}
	n := obj.(*v1.Node)
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: status, Reason: "Test"})
	if _, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{Status: true}); err != nil {
		e.T.Fatal(err)
	}
}

// Instance creates an Instance of Blueprint coop in namespace default.
func (e *Env) Instance(name string, mutate ...func(*v1.Instance)) {
	e.T.Helper()
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	for _, m := range mutate {
		m(in)
	}
	e.Create(resources.Instances, in)
}

// Get reads an Instance from etcd.
func (e *Env) Get(name string) *v1.Instance {
	e.T.Helper()
	obj, err := e.Store.Get(e.Ctx, resources.Instances, "default", name)
	if err != nil {
		e.T.Fatal(err)
	}
	return obj.(*v1.Instance)
}

// Eventually polls cond until it holds (60 s at most: generous, for a
// loaded 2-core machine running the packages side by side), then fails with what
// cond said last.
func (e *Env) Eventually(what string, cond func() (bool, string)) {
	e.T.Helper()
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	e.T.Fatalf("%s: never happened; last: %s", what, last)
}

// Instances lists every Instance from etcd.
func (e *Env) Instances() []*v1.Instance {
	list, err := e.Store.List(e.Ctx, resources.Instances, storage.ListOptions{})
	if err != nil {
		e.T.Fatal(err)
	}
	var out []*v1.Instance
	for i := range list.(*v1.InstanceList).Items {
		out = append(out, &list.(*v1.InstanceList).Items[i])
	}
	return out
}

// AllBound waits until every Instance has a node and a port and returns
// them by node.
func (e *Env) AllBound() map[string][]*v1.Instance {
	e.T.Helper()
	var byNode map[string][]*v1.Instance
	e.Eventually("all Instances bound", func() (bool, string) {
		byNode = map[string][]*v1.Instance{}
		for _, in := range e.Instances() {
			if in.Spec.NodeName == "" || in.GamePort() == 0 {
				return false, fmt.Sprintf("%s unbound: %+v", in.Name, in.Status.Conditions)
			}
			byNode[in.Spec.NodeName] = append(byNode[in.Spec.NodeName], in)
		}
		return true, ""
	})
	return byNode
}

// Heartbeat writes the node's heartbeat and Ready=True, as its agent does.
func (e *Env) Heartbeat(name string) {
	obj, err := e.Store.Get(e.Ctx, resources.Nodes, "", name)
	if err != nil {
		e.T.Error(err)
		return
	}
	n := obj.(*v1.Node)
	now := metav1.Now()
	n.Status.HeartbeatTime = &now
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat"})
	if _, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{Status: true}); err != nil && e.Ctx.Err() == nil {
		e.T.Logf("heartbeat of %s: %v", name, err)
	}
}

// RenewLease creates or renews the node's Lease, as its agent does.
func (e *Env) RenewLease(name string) {
	now := metav1.NowMicro()
	obj, err := e.Store.Get(e.Ctx, resources.Leases, "", name)
	if apierrors.IsNotFound(err) {
		l := &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.LeaseSpec{HolderIdentity: name, LeaseDurationSeconds: v1.NodeLeaseDurationSeconds, AcquireTime: &now, RenewTime: &now}}
		_, err = e.Store.Create(e.Ctx, resources.Leases, l, storage.CreateOptions{})
	} else if err == nil {
		l := obj.(*v1.Lease)
		l.Spec.RenewTime = &now
		_, err = e.Store.Update(e.Ctx, resources.Leases, l, storage.UpdateOptions{})
	}
	if err != nil && e.Ctx.Err() == nil {
		e.T.Logf("lease of %s: %v", name, err)
	}
}

// KeepAlive sends a heartbeat for the node every 300 ms until stop is
// called or the test ends.
func (e *Env) KeepAlive(name string) (stop func()) { return e.every(name, e.Heartbeat) }

// KeepLeaseAlive renews the node's Lease every 300 ms, and writes nothing
// into its Node, until stop is called or the test ends: what an agent does
// while nothing it reports changes.
func (e *Env) KeepLeaseAlive(name string) (stop func()) { return e.every(name, e.RenewLease) }

func (e *Env) every(name string, beat func(string)) (stop func()) {
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(300 * time.Millisecond)
		defer t.Stop()
		for {
			beat(name)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	stop = func() { cancel(); <-done }
	e.T.Cleanup(stop)
	return stop
}

// GetNode reads a Node from etcd.
func (e *Env) GetNode(name string) *v1.Node {
	e.T.Helper()
	obj, err := e.Store.Get(e.Ctx, resources.Nodes, "", name)
	if err != nil {
		e.T.Fatal(err)
	}
	return obj.(*v1.Node)
}

// Label sets a label on a Node.
func (e *Env) Label(node, key, value string) {
	e.T.Helper()
	for {
		n := e.GetNode(node)
		n.Labels[key] = value
		_, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.T.Fatal(err)
		}
	}
}
