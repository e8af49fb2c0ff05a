package nodelifecycle_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/manager"
)

func startControllers(e *controllertest.Env) {
	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		manager.Run(ctx, manager.Options{Store: e.Store, NodeGracePeriod: 2 * time.Second, Log: testr.New(e.T)})
	}()
	e.T.Cleanup(func() { cancel(); wg.Wait() })
}

func condition(in *v1.Instance, typ string) string {
	c := meta.FindStatusCondition(in.Status.Conditions, typ)
	if c == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

func TestLostNodeInstancesMove(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", false)
	e.Node("node-b", false, func(n *v1.Node) { n.Labels["region"] = "us" })
	stopA := e.KeepAlive("node-a")
	e.KeepAlive("node-b")
	startControllers(e)
	// node-a gets these: the selector keeps them off node-b.
	onA := func(in *v1.Instance) { in.Spec.NodeSelector = map[string]string{"region": "eu"} }
	e.Instance("moves", func(in *v1.Instance) { onA(in); in.Spec.RescheduleAfterNodeLost = "1s" })
	e.Instance("stays", func(in *v1.Instance) { onA(in); in.Spec.RescheduleAfterNodeLost = "Never" })
	e.Instance("pinned", func(in *v1.Instance) { in.Spec.NodeName = "node-a"; in.Spec.RescheduleAfterNodeLost = "1s" })
	// As if node-a's agent had taken it on: its cleanup finalizer is set.
	e.Instance("doomed", func(in *v1.Instance) { in.Spec.NodeName = "node-a"; in.Finalizers = []string{v1.FinalizerNodeCleanup} })
	e.Eventually("all on node-a", func() (bool, string) {
		for _, in := range e.Instances() {
			if in.Spec.NodeName != "node-a" || in.GamePort() == 0 {
				return false, in.Name + " on " + in.Spec.NodeName
			}
		}
		return true, ""
	})
	// Other nodes may take them once node-a is gone.
	obj := e.Get("moves")
	oldPort := obj.GamePort()

	stopA()
	e.Eventually("node-a Ready=Unknown", func() (bool, string) {
		n := e.GetNode("node-a")
		c := meta.FindStatusCondition(n.Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionUnknown && strings.Contains(c.Message, "sent no heartbeat"), fmt.Sprintf("%+v", c)
	})
	e.Eventually("pinned and Never stay, NodeLost", func() (bool, string) {
		p, s := e.Get("pinned"), e.Get("stays")
		ok := p.Spec.NodeName == "node-a" && strings.Contains(condition(p, v1.InstanceNodeLost), "True/NodeLost") &&
			strings.Contains(condition(p, v1.InstanceNodeLost), "spec.nodeName pins it") &&
			s.Spec.NodeName == "node-a" && strings.Contains(condition(s, v1.InstanceNodeLost), "rescheduleAfterNodeLost is Never")
		return ok, condition(p, v1.InstanceNodeLost) + " | " + condition(s, v1.InstanceNodeLost)
	})
	// Deleting an Instance of a lost node does not wait for the node.
	if _, _, err := e.Store.Delete(e.Ctx, resources.Instances, "default", "doomed", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the deleted Instance of the lost node gone", func() (bool, string) {
		_, err := e.Store.Get(e.Ctx, resources.Instances, "default", "doomed")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// "moves" may only go where its selector allows: let node-b match.
	e.Label("node-b", "region", "eu")
	e.Eventually("moves lands on node-b", func() (bool, string) {
		in := e.Get("moves")
		return in.Spec.NodeName == "node-b" && in.GamePort() != 0 && in.Annotations[v1.AnnotationBoundBy] == "scheduler",
			fmt.Sprintf("node %q port %d scheduled %s", in.Spec.NodeName, in.GamePort(), condition(in, v1.InstanceScheduled))
	})
	if in := e.Get("moves"); condition(in, v1.InstanceNodeLost) != "<none>" {
		t.Fatalf("moved Instance still carries %s", condition(in, v1.InstanceNodeLost))
	}
	claims, err := e.Store.PortClaims(e.Ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if owner, ok := claims[oldPort]; ok && owner == "default/moves" {
		t.Fatalf("the old claim on node-a port %d was kept", oldPort)
	}

	// node-a returns: the Instances still bound to it are no longer lost.
	e.KeepAlive("node-a")
	e.Eventually("NodeLost=False on return", func() (bool, string) {
		p := e.Get("pinned")
		return strings.HasPrefix(condition(p, v1.InstanceNodeLost), "False/NodeReady"), condition(p, v1.InstanceNodeLost)
	})
}

// TestNodeSilentSinceBeforeStartIsUnknownAtOnce: a control plane that
// comes up (or a new leader) finds a node whose last heartbeat is an hour
// old. It does not wait a fresh grace period showing that node's games as
// they last were: the node is Ready=Unknown and its Instances Unknown at
// once. A node that heartbeats stays Ready.
func TestNodeSilentSinceBeforeStartIsUnknownAtOnce(t *testing.T) {
	e := controllertest.NewEnv(t)
	e.Node("node-a", false)
	e.Node("node-b", false)
	obj, err := e.Store.Get(e.Ctx, resources.Nodes, "", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	n := obj.(*v1.Node)
	hourAgo := metav1.NewTime(time.Now().Add(-time.Hour))
	n.Status.HeartbeatTime = &hourAgo
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat"})
	if _, err := e.Store.Update(e.Ctx, resources.Nodes, n, storage.UpdateOptions{Status: true}); err != nil {
		t.Fatal(err)
	}
	e.KeepAlive("node-b")
	// What node-a's agent reported an hour ago.
	e.Instance("coop-1", func(in *v1.Instance) {
		in.Spec.NodeName, in.Spec.Port = "node-a", 27015
		in.Spec.RescheduleAfterNodeLost = "Never"
	})
	in := e.Get("coop-1")
	in.Status.Phase, in.Status.Map, in.Status.Players = v1.PhaseRunning, "c1m1_hotel", 3
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered"})
	if _, err := e.Store.Update(e.Ctx, resources.Instances, in, storage.UpdateOptions{Status: true}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The default grace period: what is checked here must not wait for it.
		manager.Run(ctx, manager.Options{Store: e.Store, NodeGracePeriod: 5 * time.Minute, Log: testr.New(t)})
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.Eventually("node-a Unknown and its Instance Unknown", func() (bool, string) {
		c := meta.FindStatusCondition(e.GetNode("node-a").Status.Conditions, v1.ConditionReady)
		in := e.Get("coop-1")
		return c != nil && c.Status == metav1.ConditionUnknown && in.Status.Phase == v1.PhaseUnknown &&
				strings.HasPrefix(condition(in, v1.ConditionReady), "Unknown/NodeLost"),
			fmt.Sprintf("node %+v; instance phase %s ready %s", c, in.Status.Phase, condition(in, v1.ConditionReady))
	})
	if c := meta.FindStatusCondition(e.GetNode("node-b").Status.Conditions, v1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("node-b, heartbeating, is %+v", c)
	}
}

func readyOf(e *controllertest.Env, name string) string {
	c := meta.FindStatusCondition(e.GetNode(name).Status.Conditions, v1.ConditionReady)
	if c == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

// TestLeaseIsAHeartbeat: a node whose agent renews its Lease and never
// writes its Node again stays Ready; an older agent heartbeating through
// its Node alone stays Ready too; a node doing neither is lost. Once the
// Lease is no longer renewed, that node is lost as well.
func TestLeaseIsAHeartbeat(t *testing.T) {
	e := controllertest.NewEnv(t)
	for _, n := range []string{"leased", "old-agent", "silent"} {
		e.Node(n, false)
		e.Heartbeat(n) // Ready=True and a heartbeat, as registering writes
	}
	stopLease := e.KeepLeaseAlive("leased")
	e.KeepAlive("old-agent")
	startControllers(e)
	// The grace period (2 s) is over for the silent node's one heartbeat,
	// and so for the leased node's Node status, written only then.
	e.Eventually("silent Ready=Unknown", func() (bool, string) {
		return strings.HasPrefix(readyOf(e, "silent"), "Unknown/NodeStatusUnknown"), readyOf(e, "silent")
	})
	for _, n := range []string{"leased", "old-agent"} {
		if got := readyOf(e, n); !strings.HasPrefix(got, "True/") {
			t.Fatalf("%s, heartbeating, is %s", n, got)
		}
	}
	if hb := e.GetNode("leased").Status.HeartbeatTime; time.Since(hb.Time) < 2*time.Second {
		t.Fatalf("the leased node's status heartbeat is %s old: the Lease kept nothing alive", time.Since(hb.Time))
	}
	stopLease()
	e.Eventually("leased Ready=Unknown once its Lease is not renewed", func() (bool, string) {
		got := readyOf(e, "leased")
		return strings.HasPrefix(got, "Unknown/") && strings.Contains(got, "sent no heartbeat"), got
	})
	if got := readyOf(e, "old-agent"); !strings.HasPrefix(got, "True/") {
		t.Fatalf("old-agent, heartbeating through its Node, is %s", got)
	}
}

// TestLeaseOfARemovedNodeGoes: when a host is taken out of the fleet (its
// Node deleted, its agent stopped), its Lease is deleted once the grace
// period has passed without a renewal; the Lease of an agent still running
// after an admin deleted its Node stays, and so does every other.
func TestLeaseOfARemovedNodeGoes(t *testing.T) {
	e := controllertest.NewEnv(t)
	for _, n := range []string{"retired", "still-running", "kept"} {
		e.Node(n, false)
		e.Heartbeat(n)
		e.RenewLease(n)
	}
	e.KeepLeaseAlive("still-running")
	e.KeepLeaseAlive("kept")
	startControllers(e)
	for _, n := range []string{"retired", "still-running"} {
		if _, _, err := e.Store.Delete(e.Ctx, resources.Nodes, "", n, storage.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("the retired node's Lease deleted", func() (bool, string) {
		_, err := e.Store.Get(e.Ctx, resources.Leases, "", "retired")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// The controller looked at every Lease in the same passes that found
	// the retired one unrenewed for a grace period: the renewed are there.
	for _, n := range []string{"still-running", "kept"} {
		if _, err := e.Store.Get(e.Ctx, resources.Leases, "", n); err != nil {
			t.Errorf("the Lease of %s: %v", n, err)
		}
	}
}
