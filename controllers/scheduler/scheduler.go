// Package scheduler binds Instances to Nodes and allocates their game ports.
//
// Decisions are made one at a time from an in-memory picture of every
// node's Instances and ports (fast, and consistent between workers);
// bindings are written in parallel. The picture may lag etcd, which is why
// a binding is one transaction that also claims the port in etcd: a stale
// decision fails and is retried, it never gives one port to two Instances.
package scheduler

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
)

// Placement policies.
const (
	// Spread puts each Instance on the node with the lowest share of its
	// capacity in use: a lost host takes as few games as possible with it.
	Spread = "Spread"
	// Pack fills the busiest node that still has room: fewer hosts to keep.
	Pack = "Pack"
)

// Options configure a Scheduler.
type Options struct {
	Store      *storage.Store
	Instances  *controllers.Informer
	Nodes      *controllers.Informer
	Blueprints *controllers.Informer
	Recorder   *controllers.Recorder
	// Policy is Spread (default) or Pack.
	Policy  string
	Workers int
	Log     logr.Logger
}

// Scheduler is the binding controller.
type Scheduler struct {
	o     Options
	queue workqueue.TypedRateLimitingInterface[string]

	// mu guards the placement picture: what each node holds, including
	// bindings written but not yet seen back through the informer.
	mu     sync.Mutex
	placed map[string]placement // by Instance key
	// nodes holds the nodes that hold placements, and no other: a node
	// leaves it with its last Instance, so deleted Nodes are forgotten.
	nodes map[string]*nodeUsage
	// requested counts, by port, the unbound Instances that name it (no
	// zero counts).
	requested map[int32]int
}

type placement struct {
	node   string
	port   int32
	memory int64
	// rv is the Instance's resourceVersion with this placement (pending: a
	// binding in flight). Older copies of the Instance do not undo it.
	rv int64
}

const pending = int64(1) << 62

type nodeUsage struct {
	instances int
	memory    int64
	ports     map[int32]string // port -> Instance key
}

// New wires a scheduler to its informers; Run starts it.
func New(o Options) *Scheduler {
	if o.Policy == "" {
		o.Policy = Spread
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	s := &Scheduler{
		o: o, placed: map[string]placement{}, nodes: map[string]*nodeUsage{}, requested: map[int32]int{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 30*time.Second),
			), workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"}),
	}
	o.Instances.OnChange(s.instanceChanged)
	o.Nodes.OnChange(func(old, cur v1.Object) {
		if schedulingChanged(old, cur) {
			s.enqueueUnscheduled()
		}
	})
	o.Blueprints.OnChange(func(_, _ v1.Object) { s.enqueueUnscheduled() })
	return s
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, s.o.Instances, s.o.Nodes, s.o.Blueprints) {
		return
	}
	s.enqueueUnscheduled()
	controllers.RunWorkers(ctx, s.queue, s.o.Workers, s.reconcile, s.o.Log)
}

func needsScheduling(in *v1.Instance) bool {
	return in.DeletionTimestamp == nil && (in.Spec.NodeName == "" || in.GamePort() == 0)
}

func (s *Scheduler) instanceChanged(old, cur v1.Object) {
	var key string
	s.mu.Lock()
	if old != nil && wantsPort(old.(*v1.Instance)) {
		port := old.(*v1.Instance).Spec.Port
		if s.requested[port]--; s.requested[port] <= 0 {
			delete(s.requested, port)
		}
	}
	if cur != nil && wantsPort(cur.(*v1.Instance)) {
		s.requested[cur.(*v1.Instance).Spec.Port]++
	}
	if cur == nil {
		key = controllers.Key(old)
		s.forget(key)
	} else {
		in := cur.(*v1.Instance)
		key = controllers.Key(in)
		if in.Spec.NodeName != "" && in.GamePort() != 0 {
			if p, ok := s.placed[key]; !ok || !p.assumedFor(in) {
				s.record(key, placement{node: in.Spec.NodeName, port: in.GamePort(), memory: s.memoryOf(in), rv: rvOf(in)})
			}
		} else if p, ok := s.placed[key]; ok && !p.assumedFor(in) {
			s.forget(key)
		}
	}
	s.mu.Unlock()
	if cur == nil {
		// Room freed: whatever waits for room may fit now.
		s.enqueueUnscheduled()
		return
	}
	if needsScheduling(cur.(*v1.Instance)) {
		s.queue.Add(key)
	}
}

// wantsPort: an Instance that names its port and is not bound yet. Ports
// allocated for others skip its port, so it is not taken from under it.
func wantsPort(in *v1.Instance) bool {
	return in.Spec.Port != 0 && in.Spec.NodeName == "" && in.DeletionTimestamp == nil
}

// assumedFor: a binding we wrote is still ahead of this (older) copy of the
// Instance in the informer.
func (p placement) assumedFor(in *v1.Instance) bool {
	return p.rv > rvOf(in)
}

func rvOf(obj v1.Object) int64 {
	n, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	return n
}

func (s *Scheduler) enqueueUnscheduled() {
	for _, o := range s.o.Instances.List() {
		if needsScheduling(o.(*v1.Instance)) {
			s.queue.Add(controllers.Key(o))
		}
	}
}

// usage is what node holds, to be added to: the node is tracked from now on.
func (s *Scheduler) usage(node string) *nodeUsage {
	u := s.nodes[node]
	if u == nil {
		u = &nodeUsage{ports: map[int32]string{}}
		s.nodes[node] = u
	}
	return u
}

// peek is what node holds, to be read: a node without placements is not
// tracked for having been looked at.
func (s *Scheduler) peek(node string) *nodeUsage {
	if u := s.nodes[node]; u != nil {
		return u
	}
	return &nodeUsage{ports: map[int32]string{}}
}

func (s *Scheduler) record(key string, p placement) {
	s.forget(key)
	s.placed[key] = p
	u := s.usage(p.node)
	u.instances++
	u.memory += p.memory
	u.ports[p.port] = key
}

func (s *Scheduler) forget(key string) {
	p, ok := s.placed[key]
	if !ok {
		return
	}
	delete(s.placed, key)
	u := s.usage(p.node)
	u.instances--
	u.memory -= p.memory
	if u.ports[p.port] == key {
		delete(u.ports, p.port)
	}
	if u.instances <= 0 && len(u.ports) == 0 {
		delete(s.nodes, p.node)
	}
}

// memoryOf is what an Instance reserves on its node: its Blueprint's MemoryMax.
func (s *Scheduler) memoryOf(in *v1.Instance) int64 {
	obj := s.o.Blueprints.Get(in.Namespace + "/" + in.Spec.BlueprintRef.Name)
	if obj == nil {
		return 0
	}
	if m := obj.(*v1.Blueprint).Spec.Resources.MemoryMax; m != nil {
		return m.Value()
	}
	return 0
}

// decision is where an Instance goes, or why it cannot go anywhere.
type decision struct {
	node, reason, message string
	port                  int32
}

func (s *Scheduler) reconcile(ctx context.Context, key string) error {
	obj := s.o.Instances.Get(key)
	if obj == nil {
		return nil
	}
	in := obj.(*v1.Instance)
	if !needsScheduling(in) {
		return nil
	}
	s.mu.Lock()
	if p, ok := s.placed[key]; ok && p.assumedFor(in) {
		s.mu.Unlock()
		return nil // bound; the informer has not caught up yet
	}
	d := s.decide(in)
	if d.node != "" {
		s.record(key, placement{node: d.node, port: d.port, memory: s.memoryOf(in), rv: pending})
	}
	s.mu.Unlock()
	if d.node == "" {
		return s.unschedulable(ctx, in, d)
	}
	rv, err := s.bind(ctx, in, d)
	if err == nil {
		s.mu.Lock()
		if p, ok := s.placed[key]; ok && p.rv == pending {
			p.rv = rv
			s.placed[key] = p
		}
		s.mu.Unlock()
	}
	if err != nil {
		s.mu.Lock()
		s.forget(key)
		// Events that arrived while the binding was in flight were held
		// back by it; take the Instance as the informer has it now.
		if obj := s.o.Instances.Get(key); obj != nil {
			if cur := obj.(*v1.Instance); cur.Spec.NodeName != "" && cur.GamePort() != 0 {
				s.record(key, placement{node: cur.Spec.NodeName, port: cur.GamePort(), memory: s.memoryOf(cur), rv: rvOf(cur)})
			}
		}
		s.mu.Unlock()
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// A newer Instance, or a port taken behind our back: the
			// informer brings the truth; decide again then.
			s.o.Log.V(1).Info("binding lost a race; retrying", "instance", key, "error", err.Error())
			s.queue.AddRateLimited(key)
			return nil
		}
		return err
	}
	return nil
}

// decide picks a node and port; the caller holds s.mu.
func (s *Scheduler) decide(in *v1.Instance) decision {
	mem := s.memoryOf(in)
	var reasons []string
	counts := map[string]int{}
	note := func(why string) {
		if counts[why] == 0 {
			reasons = append(reasons, why)
		}
		counts[why]++
	}
	type candidate struct {
		node  *v1.Node
		port  int32
		score float64
	}
	var best *candidate
	nodes := s.o.Nodes.List()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].GetName() < nodes[j].GetName() })
	for _, obj := range nodes {
		n := obj.(*v1.Node)
		if in.Spec.NodeName != "" && n.Name != in.Spec.NodeName {
			continue
		}
		if !nodeReady(n) {
			note("not ready")
			continue
		}
		if n.Spec.Unschedulable && in.Spec.NodeName == "" {
			note("cordoned")
			continue
		}
		if n.DeletionTimestamp != nil {
			note("being deleted")
			continue
		}
		if !labels.SelectorFromSet(in.Spec.NodeSelector).Matches(labels.Set(n.Labels)) {
			note("do not match nodeSelector")
			continue
		}
		u := s.peek(n.Name)
		if c := n.Spec.Capacity.Instances; c > 0 && int32(u.instances) >= c {
			note("have no room (instances)")
			continue
		}
		if c := n.Spec.Capacity.Memory; c != nil && mem > 0 && u.memory+mem > c.Value() {
			note("have no room (memory)")
			continue
		}
		port := freePort(n, u, in.Spec.Port, s.requested)
		if port == 0 {
			note("have no free port")
			continue
		}
		score := float64(u.instances)
		if c := n.Spec.Capacity.Instances; c > 0 {
			score = float64(u.instances) / float64(c)
		}
		if s.o.Policy == Pack {
			score = -score
		}
		if best == nil || score < best.score {
			best = &candidate{node: n, port: port, score: score}
		}
	}
	if best != nil {
		return decision{node: best.node.Name, port: best.port,
			message: fmt.Sprintf("bound to node %s, port %d (policy %s)", best.node.Name, best.port, s.o.Policy)}
	}
	if in.Spec.NodeName != "" && len(reasons) == 0 {
		return decision{reason: "NodeNotFound", message: fmt.Sprintf("node %s does not exist", in.Spec.NodeName)}
	}
	if len(nodes) == 0 {
		return decision{reason: "NoNodes", message: "no node has registered"}
	}
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", counts[r], r)
	}
	total := len(nodes)
	if in.Spec.NodeName != "" {
		total = 1
	}
	return decision{reason: reasonFor(reasons), message: fmt.Sprintf("0/%d nodes available: %s", total, strings.Join(parts, ", "))}
}

// reasonFor names the condition reason after the first thing that stood in
// the way; the message lists all of them.
func reasonFor(reasons []string) string {
	if len(reasons) == 0 {
		return "Unschedulable"
	}
	switch reasons[0] {
	case "not ready":
		return "NoReadyNode"
	case "do not match nodeSelector":
		return "NodeSelectorMismatch"
	case "have no free port":
		return "NoFreePort"
	case "cordoned":
		return "NodesCordoned"
	default:
		return "NoCapacity"
	}
}

// schedulingChanged: heartbeats change a Node every few seconds; only what
// the scheduler reads should wake up every waiting Instance.
func schedulingChanged(old, cur v1.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	a, b := old.(*v1.Node), cur.(*v1.Node)
	return nodeReady(a) != nodeReady(b) || !equality.Semantic.DeepEqual(a.Spec, b.Spec) ||
		!equality.Semantic.DeepEqual(a.Labels, b.Labels) || (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil)
}

func nodeReady(n *v1.Node) bool {
	return meta.IsStatusConditionTrue(n.Status.Conditions, v1.ConditionReady)
}

// freePort is the Instance's own port if free on the node, else the lowest
// free port in the node's range that no unbound Instance asks for (0: none).
func freePort(n *v1.Node, u *nodeUsage, want int32, requested map[int32]int) int32 {
	if want != 0 {
		if _, taken := u.ports[want]; taken {
			return 0
		}
		return want
	}
	for p := n.Spec.PortRange.Min; p <= n.Spec.PortRange.Max && p != 0; p++ {
		if _, taken := u.ports[p]; !taken && requested[p] == 0 {
			return p
		}
	}
	return 0
}

// bind writes node, port and the Scheduled condition in one transaction
// that also claims the port.
func (s *Scheduler) bind(ctx context.Context, cached *v1.Instance, d decision) (int64, error) {
	in := cached.DeepCopy()
	if in.Spec.NodeName == "" {
		in.Spec.NodeName = d.node
		if in.Annotations == nil {
			in.Annotations = map[string]string{}
		}
		in.Annotations[v1.AnnotationBoundBy] = "scheduler"
	}
	// Nothing runs it anywhere now: what an earlier node reported (when it
	// was drained or lost) would only mislead.
	in.Status = v1.InstanceStatus{Phase: v1.PhaseScheduled}
	if in.Spec.Port == 0 {
		in.Status.Port = d.port
	}
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceScheduled, Status: metav1.ConditionTrue,
		Reason: "Scheduled", Message: d.message, ObservedGeneration: in.Generation})
	out, err := s.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{SpecAndStatus: true, Current: cached})
	if err != nil {
		return 0, fmt.Errorf("bind %s/%s to %s: %w", in.Namespace, in.Name, d.node, err)
	}
	s.o.Log.V(1).Info("bound", "instance", controllers.Key(in), "node", d.node, "port", d.port)
	s.o.Recorder.Eventf(in, v1.EventTypeNormal, "Scheduled", "%s", capitalize(d.message))
	return rvOf(out), nil
}

// unschedulable says why in a condition (and an event), written only when
// it changes; the Instance is tried again when nodes or Instances change.
func (s *Scheduler) unschedulable(ctx context.Context, cached *v1.Instance, d decision) error {
	cur := meta.FindStatusCondition(cached.Status.Conditions, v1.InstanceScheduled)
	if cur != nil && cur.Status == metav1.ConditionFalse && cur.Reason == d.reason && cur.Message == d.message {
		return nil
	}
	in := cached.DeepCopy()
	in.Status.Phase = v1.PhasePending
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceScheduled, Status: metav1.ConditionFalse,
		Reason: d.reason, Message: d.message, ObservedGeneration: in.Generation})
	_, err := s.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{Status: true, Current: cached})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the newer version is queued through the informer
	}
	if err != nil {
		return fmt.Errorf("write Scheduled condition of %s/%s: %w", in.Namespace, in.Name, err)
	}
	s.o.Recorder.Eventf(in, v1.EventTypeWarning, "FailedScheduling", "%s", d.message)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
