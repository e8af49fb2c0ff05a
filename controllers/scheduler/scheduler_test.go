package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/storage/etcdtest"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/scheduler"
)

// env is a fresh store on real etcd with schedulers running against it.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *storage.Store
}

func newEnv(t *testing.T) *env {
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
	en := &env{t: t, ctx: ctx, store: s}
	en.create(resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}})
	return en
}

// startScheduler runs one scheduler (with its own informers) until the test ends.
func (e *env) startScheduler(policy string) {
	log := testr.NewWithOptions(e.t, testr.Options{Verbosity: 1})
	ins := controllers.NewInformer(e.store, resources.Instances, log)
	nodes := controllers.NewInformer(e.store, resources.Nodes, log)
	bps := controllers.NewInformer(e.store, resources.Blueprints, log)
	rec := controllers.NewRecorder(e.store, "l4m-scheduler", log)
	s := scheduler.New(scheduler.Options{Store: e.store, Instances: ins, Nodes: nodes, Blueprints: bps, Recorder: rec, Policy: policy, Log: log})
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(e.ctx)
	for _, f := range []func(context.Context){ins.Run, nodes.Run, bps.Run, rec.Run, s.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (e *env) create(res *resources.Resource, obj v1.Object) {
	e.t.Helper()
	validation.Default(obj)
	if errs := validation.Validate(obj); len(errs) > 0 {
		e.t.Fatalf("invalid %s: %v", obj.GetName(), errs.ToAggregate())
	}
	if _, err := e.store.Create(e.ctx, res, obj, storage.CreateOptions{}); err != nil {
		e.t.Fatalf("create %s: %v", obj.GetName(), err)
	}
}

func (e *env) node(name string, ready bool, mutate ...func(*v1.Node)) {
	e.t.Helper()
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"region": "eu"}},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27024}, Capacity: v1.NodeCapacity{Instances: 20}}}
	for _, m := range mutate {
		m(n)
	}
	e.create(resources.Nodes, n)
	if ready {
		e.setReady(name, metav1.ConditionTrue)
	}
}

func (e *env) setReady(name string, status metav1.ConditionStatus) {
	e.t.Helper()
	obj, err := e.store.Get(e.ctx, resources.Nodes, "", name)
	if err != nil {
		e.t.Fatal(err)
	}
	n := obj.(*v1.Node)
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: status, Reason: "Test"})
	if _, err := e.store.Update(e.ctx, resources.Nodes, n, storage.UpdateOptions{Status: true}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) instance(name string, mutate ...func(*v1.Instance)) {
	e.t.Helper()
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	for _, m := range mutate {
		m(in)
	}
	e.create(resources.Instances, in)
}

func (e *env) get(name string) *v1.Instance {
	e.t.Helper()
	obj, err := e.store.Get(e.ctx, resources.Instances, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return obj.(*v1.Instance)
}

// eventually polls cond until it holds (10 s at most), then fails with what
// cond said last.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	e.t.Fatalf("%s: never happened; last: %s", what, last)
}

func (e *env) instances() []*v1.Instance {
	list, err := e.store.List(e.ctx, resources.Instances, storage.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*v1.Instance
	for i := range list.(*v1.InstanceList).Items {
		out = append(out, &list.(*v1.InstanceList).Items[i])
	}
	return out
}

// allBound waits until every Instance has a node and a port and returns
// them by node.
func (e *env) allBound() map[string][]*v1.Instance {
	e.t.Helper()
	var byNode map[string][]*v1.Instance
	e.eventually("all Instances bound", func() (bool, string) {
		byNode = map[string][]*v1.Instance{}
		for _, in := range e.instances() {
			if in.Spec.NodeName == "" || in.GamePort() == 0 {
				return false, fmt.Sprintf("%s unbound: %+v", in.Name, in.Status.Conditions)
			}
			byNode[in.Spec.NodeName] = append(byNode[in.Spec.NodeName], in)
		}
		return true, ""
	})
	return byNode
}

func scheduledCondition(in *v1.Instance) *metav1.Condition {
	return meta.FindStatusCondition(in.Status.Conditions, v1.InstanceScheduled)
}

func TestSpreadsWithoutPortClash(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		e.node(n, true)
	}
	// Two schedulers race for the same Instances and ports.
	e.startScheduler(scheduler.Spread)
	e.startScheduler(scheduler.Spread)
	for i := range 30 {
		e.instance(fmt.Sprintf("srv-%02d", i))
	}
	byNode := e.allBound()
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
	e.eventually("a Scheduled event", func() (bool, string) {
		list, err := e.store.List(e.ctx, resources.Events, storage.ListOptions{Namespace: "default"})
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
	e := newEnv(t)
	e.node("node-a", true)
	e.node("node-b", true)
	e.startScheduler(scheduler.Pack)
	for i := range 5 {
		e.instance(fmt.Sprintf("srv-%d", i))
	}
	if byNode := e.allBound(); len(byNode) != 1 {
		t.Fatalf("pack spread Instances over %d nodes", len(byNode))
	}
}

func TestUnschedulableSaysWhyAndRecovers(t *testing.T) {
	e := newEnv(t)
	e.node("node-a", false)
	e.node("node-b", true, func(n *v1.Node) { n.Labels["region"] = "us" })
	e.startScheduler(scheduler.Spread)
	e.instance("eu-1", func(in *v1.Instance) { in.Spec.NodeSelector = map[string]string{"region": "eu"} })
	e.eventually("Scheduled=False with the reasons", func() (bool, string) {
		c := scheduledCondition(e.get("eu-1"))
		if c == nil {
			return false, "no condition"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == "NoReadyNode" &&
			c.Message == "0/2 nodes available: 1 not ready, 1 do not match nodeSelector", c.Reason + ": " + c.Message
	})
	if in := e.get("eu-1"); in.Spec.NodeName != "" || in.Status.Phase != v1.PhasePending {
		t.Fatalf("unschedulable Instance: node %q phase %q", in.Spec.NodeName, in.Status.Phase)
	}
	// The node becomes Ready: the Instance is placed without being touched.
	e.setReady("node-a", metav1.ConditionTrue)
	e.eventually("placed once node-a is ready", func() (bool, string) {
		in := e.get("eu-1")
		return in.Spec.NodeName == "node-a", "node " + in.Spec.NodeName
	})
}

func TestPortsAndCapacity(t *testing.T) {
	e := newEnv(t)
	e.node("node-a", true, func(n *v1.Node) {
		n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27017}
		q := resource.MustParse("5Gi")
		n.Spec.Capacity = v1.NodeCapacity{Instances: 10, Memory: &q}
	})
	e.startScheduler(scheduler.Spread)
	// A user's port is kept; a pinned Instance gets a port on its node.
	e.instance("named", func(in *v1.Instance) { in.Spec.Port = 27016 })
	e.instance("pinned", func(in *v1.Instance) { in.Spec.NodeName = "node-a" })
	e.allBound()
	if p := e.get("named").GamePort(); p != 27016 {
		t.Fatalf("named port became %d", p)
	}
	if in := e.get("pinned"); in.Status.Port != 27015 || in.Annotations[v1.AnnotationBoundBy] != "" {
		t.Fatalf("pinned: port %d, bound-by %q", in.Status.Port, in.Annotations[v1.AnnotationBoundBy])
	}
	// 5Gi holds two 2Gi Blueprints: the third waits for memory.
	e.instance("third")
	e.eventually("third waits for memory", func() (bool, string) {
		c := scheduledCondition(e.get("third"))
		return c != nil && c.Reason == "NoCapacity" && strings.Contains(c.Message, "1 have no room (memory)"), fmt.Sprintf("%+v", c)
	})
	// Freeing room places it, on the one free port left.
	if _, _, err := e.store.Delete(e.ctx, resources.Instances, "default", "named", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("third placed after a delete", func() (bool, string) {
		in := e.get("third")
		return in.Spec.NodeName == "node-a" && in.Status.Port == 27016, fmt.Sprintf("node %q port %d", in.Spec.NodeName, in.Status.Port)
	})
}

func TestNoFreePort(t *testing.T) {
	e := newEnv(t)
	e.node("node-a", true, func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 27015, Max: 27015} })
	e.startScheduler(scheduler.Spread)
	e.instance("first")
	e.allBound()
	e.instance("second")
	e.eventually("second has no port", func() (bool, string) {
		c := scheduledCondition(e.get("second"))
		return c != nil && c.Reason == "NoFreePort" && c.Message == "0/1 nodes available: 1 have no free port", fmt.Sprintf("%+v", c)
	})
}
