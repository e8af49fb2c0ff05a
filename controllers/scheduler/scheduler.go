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
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	placementrules "github.com/left4me/left4me/apis/placement"
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
	// Installations: an Instance whose Blueprint's Installation exists
	// goes only to a node that has its wanted build ready.
	Installations *controllers.Informer
	Recorder      *controllers.Recorder
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
	// requested counts, by port, the unbound Instances that name a game
	// port binding it (v1.PortsFor); no zero counts.
	requested map[int32]int
}

type placement struct {
	node   string
	port   int32 // the game port; the placement holds all of v1.PortsFor(port)
	memory int64
	// rv is the Instance's resourceVersion with this placement (pending: a
	// binding in flight). Older copies of the Instance do not undo it.
	rv int64
}

const pending = int64(1) << 62

type nodeUsage struct {
	instances int
	memory    int64
	ports     map[int32]string // every port bound (game, client) -> Instance key
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
	o.Installations.OnChange(func(old, cur v1.Object) {
		if installationChanged(old, cur) {
			s.enqueueUnscheduled()
		}
	})
	return s
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	if !controllers.WaitForSync(ctx, s.o.Instances, s.o.Nodes, s.o.Blueprints, s.o.Installations) {
		return
	}
	s.repairClaims(ctx)
	s.enqueueUnscheduled()
	controllers.RunWorkers(ctx, s.queue, s.o.Workers, s.reconcile, s.o.Log)
}

// repairClaims takes, once per start, the port claims Instances bound by an
// older version lack (it claimed game ports only). A clash it finds, two
// games already binding one port, is logged and told on the Instance: the
// scheduler does not move games a user or an older version put there.
func (s *Scheduler) repairClaims(ctx context.Context) {
	n, clashes, err := s.o.Store.RepairPortClaims(ctx)
	if err != nil {
		// The claims it did take stay; what it missed only protects less.
		s.o.Log.Error(err, "repair port claims")
	}
	if n > 0 {
		s.o.Log.Info("took port claims missing from an older version", "claims", n)
	}
	for _, c := range clashes {
		s.o.Log.Info("two Instances bind one port", "instance", c.Namespace+"/"+c.Name, "node", c.Node, "port", c.Port, "holder", c.Holder)
		if obj := s.o.Instances.Get(c.Namespace + "/" + c.Name); obj != nil {
			s.o.Recorder.Eventf(obj, v1.EventTypeWarning, "PortClash", "%s", c.Error())
		}
	}
}

// needsScheduling: an Instance without a node or a port needs a decision;
// one that names both (its write claimed the ports) needs a check that the
// port is in its node's range.
func needsScheduling(in *v1.Instance) bool {
	return in.DeletionTimestamp == nil && (in.Spec.NodeName == "" || in.GamePort() == 0 || namesPlace(in))
}

// namesPlace: the Instance names its node and its port, so nothing is left
// to choose (the node may have been named by the user or the scheduler).
func namesPlace(in *v1.Instance) bool {
	return in.Spec.NodeName != "" && in.Spec.Port != 0
}

func (s *Scheduler) instanceChanged(old, cur v1.Object) {
	var key string
	s.mu.Lock()
	if old != nil && wantsPort(old.(*v1.Instance)) {
		for _, p := range old.(*v1.Instance).Ports().List() {
			if s.requested[p]--; s.requested[p] <= 0 {
				delete(s.requested, p)
			}
		}
	}
	if cur != nil && wantsPort(cur.(*v1.Instance)) {
		for _, p := range cur.(*v1.Instance).Ports().List() {
			s.requested[p]++
		}
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
	for _, port := range v1.PortsFor(p.port).List() {
		u.ports[port] = key
	}
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
	for _, port := range v1.PortsFor(p.port).List() {
		if u.ports[port] == key {
			delete(u.ports, port)
		}
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

// installationOf is the Installation an Instance's Blueprint runs on, or nil
// when it does not exist (nodes then use their hand-made installation/) or
// the Blueprint is not known yet.
func (s *Scheduler) installationOf(in *v1.Instance) *v1.Installation {
	obj := s.o.Blueprints.Get(in.Namespace + "/" + in.Spec.BlueprintRef.Name)
	if obj == nil {
		return nil
	}
	if inst := s.o.Installations.Get(obj.(*v1.Blueprint).InstallationName()); inst != nil {
		return inst.(*v1.Installation)
	}
	return nil
}

// ReasonInstallationNotReady: no node that could take the Instance has its
// Installation's wanted build ready (or the Installation has none, or is
// being deleted).
const ReasonInstallationNotReady = "InstallationNotReady"

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
	if namesPlace(in) {
		return s.checkNamedPlace(ctx, in)
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
	inst := s.installationOf(in)
	if inst != nil {
		if why := placementrules.InstallationBlocked(inst); why != "" {
			return decision{reason: ReasonInstallationNotReady, message: why}
		}
	}
	var refused placementrules.Tally
	// installWaits: nodes that would do but for the build; installDetails:
	// what the failed ones said.
	installWaits := 0
	var installDetails []string
	codes := map[string]string{}
	var detail string // what stood in the way on the one node tried
	note := refused.Add
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
		if why := placementrules.Refusal(n, in); why != "" {
			note(why)
			continue
		}
		if inst != nil {
			if why, detail := placementrules.InstallationRefusal(n, inst); why != "" {
				note(why)
				installWaits++
				if detail != "" {
					installDetails = append(installDetails, detail)
				}
				continue
			}
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
		port, why, code, msg := freePort(n, u, in.Spec.Port, s.requested)
		if port == 0 {
			note(why)
			codes[why], detail = code, msg
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
	reasons := refused.Reasons()
	if in.Spec.NodeName != "" && len(reasons) == 0 {
		return decision{reason: "NodeNotFound", message: fmt.Sprintf("node %s does not exist", in.Spec.NodeName)}
	}
	if len(nodes) == 0 {
		return decision{reason: "NoNodes", message: "no node has registered"}
	}
	total := len(nodes)
	if in.Spec.NodeName != "" {
		total = 1
	}
	reason := reasonFor(reasons, codes)
	if installWaits > 0 {
		// The build is what to wait for (or fix): it names the condition
		// even when other nodes are out for other reasons.
		reason = ReasonInstallationNotReady
	}
	if total == 1 && len(reasons) == 1 && detail != "" {
		// One node, one obstacle with a port in it: say exactly which.
		return decision{reason: reason, message: detail}
	}
	msg := fmt.Sprintf("0/%d nodes available: %s", total, refused.String())
	if len(installDetails) > 0 {
		msg += " (" + strings.Join(installDetails, "; ") + ")"
	}
	return decision{reason: reason, message: msg}
}

// reasonFor names the condition reason after the first thing that stood in
// the way; the message lists all of them. codes holds the reasons of the
// port obstacles, whose text names the port.
func reasonFor(reasons []string, codes map[string]string) string {
	if len(reasons) == 0 {
		return "Unschedulable"
	}
	if c := codes[reasons[0]]; c != "" {
		return c
	}
	switch reasons[0] {
	case "not ready":
		return "NoReadyNode"
	case "do not match nodeSelector":
		return "NodeSelectorMismatch"
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
		!equality.Semantic.DeepEqual(a.Labels, b.Labels) || (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) ||
		nodeBuildsChanged(a.Status.Installations, b.Status.Installations)
}

// nodeBuildsChanged: what a node holds of its Installations changed in a
// way placement reads (its builds, what it downloads, its phase), not
// only when it last asked Steam.
func nodeBuildsChanged(a, b []v1.NodeInstallation) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.Phase != y.Phase || x.Downloading != y.Downloading || x.Reason != y.Reason ||
			x.Message != y.Message || !equality.Semantic.DeepEqual(x.Builds, y.Builds) {
			return true
		}
	}
	return false
}

// installationChanged: what placement reads of an Installation changed
// (its wanted build, its deletion, which nodes it selects).
func installationChanged(old, cur v1.Object) bool {
	if old == nil || cur == nil {
		return true
	}
	a, b := old.(*v1.Installation), cur.(*v1.Installation)
	return a.Status.WantedBuild != b.Status.WantedBuild || (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) ||
		!equality.Semantic.DeepEqual(a.Spec.NodeSelector, b.Spec.NodeSelector)
}

func nodeReady(n *v1.Node) bool {
	return meta.IsStatusConditionTrue(n.Status.Conditions, v1.ConditionReady)
}

// freePort is the game port the Instance gets on the node: the one it
// names, if in the node's range and every port it binds (v1.PortsFor) is
// free there; else the lowest one in the range whose ports are all free and
// asked for by no unbound Instance. A game port is free only with its client
// port: 27015 is not, while another game has 28015 or 26015 (whose client
// port is 27015). Port 0 comes with what stood in the way: the text for
// the "0/N nodes available" list, a condition reason, and a message for
// when this was the only node tried.
func freePort(n *v1.Node, u *nodeUsage, want int32, requested map[int32]int) (port int32, why, reason, detail string) {
	r := n.Spec.PortRange
	if want != 0 {
		if want < r.Min || want > r.Max {
			return 0, fmt.Sprintf("have port %d outside their range", want), "PortOutOfRange",
				fmt.Sprintf("port %d is outside node %s's range %d-%d", want, n.Name, r.Min, r.Max)
		}
		ports := v1.PortsFor(want)
		for _, p := range ports.List() {
			if other, taken := u.ports[p]; taken {
				role := ""
				if p == ports.Client {
					role = fmt.Sprintf(" (the client port of game port %d)", want)
				}
				return 0, fmt.Sprintf("have port %d in use", want), "PortInUse",
					fmt.Sprintf("port %d on node %s%s is used by Instance %s", p, n.Name, role, other)
			}
		}
		return want, "", "", ""
	}
	for p := r.Min; p <= r.Max && p != 0; p++ {
		if portsFree(u, p, requested) {
			return p, "", "", ""
		}
	}
	return 0, "have no free port", "NoFreePort", ""
}

// portsFree: no placed Instance binds, and no unbound one names, any port
// a game on this game port would bind.
func portsFree(u *nodeUsage, game int32, requested map[int32]int) bool {
	for _, p := range v1.PortsFor(game).List() {
		if _, taken := u.ports[p]; taken || requested[p] > 0 {
			return false
		}
	}
	return true
}

// checkNamedPlace holds to the node's range an Instance that names its node
// and port (the API checked only that the port is a valid one): outside it
// the Instance waits, Scheduled=False, and the node does not start it; back
// inside (port or range changed) it is Scheduled again. A node that does not
// exist yet is not judged.
func (s *Scheduler) checkNamedPlace(ctx context.Context, cached *v1.Instance) error {
	obj := s.o.Nodes.Get(cached.Spec.NodeName)
	if obj == nil {
		return nil
	}
	n := obj.(*v1.Node)
	if port, _, reason, msg := freePort(n, &nodeUsage{}, cached.Spec.Port, nil); port == 0 {
		return s.unschedulable(ctx, cached, decision{reason: reason, message: msg})
	}
	cur := meta.FindStatusCondition(cached.Status.Conditions, v1.InstanceScheduled)
	if cur == nil || cur.Status != metav1.ConditionFalse {
		return nil
	}
	in := cached.DeepCopy()
	msg := fmt.Sprintf("on node %s, port %d, as its spec names them", n.Name, in.Spec.Port)
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceScheduled, Status: metav1.ConditionTrue,
		Reason: "Scheduled", Message: msg, ObservedGeneration: in.Generation})
	_, err := s.o.Store.Update(ctx, resources.Instances, in, storage.UpdateOptions{Status: true, Current: cached})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the newer version is queued through the informer
	}
	if err != nil {
		return fmt.Errorf("write Scheduled condition of %s/%s: %w", in.Namespace, in.Name, err)
	}
	s.o.Recorder.Eventf(in, v1.EventTypeNormal, "Scheduled", "%s", capitalize(msg))
	return nil
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
	// Unbound (drained, moved off a lost node): nothing runs it anywhere,
	// so what its old node reported (Ready, the unit, players) goes.
	stale := cached.Spec.NodeName == "" && (cached.Status.NodeName != "" || len(cached.Status.Conditions) > 1 || cached.Status.Phase != v1.PhasePending)
	cur := meta.FindStatusCondition(cached.Status.Conditions, v1.InstanceScheduled)
	if !stale && cur != nil && cur.Status == metav1.ConditionFalse && cur.Reason == d.reason && cur.Message == d.message {
		return nil
	}
	in := cached.DeepCopy()
	if cached.Spec.NodeName == "" {
		in.Status = v1.InstanceStatus{ObservedGeneration: cached.Status.ObservedGeneration}
		if cur != nil {
			in.Status.Conditions = []metav1.Condition{*cur}
		}
	}
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
