package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/controllers/controllertest"
)

// newFleetEnv is newEnv with the controllers running and two Ready nodes
// (their status written here, as agents would).
func newFleetEnv(t *testing.T) *env {
	t.Setenv("L4MCONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv, cl := controllertest.StartWithControllers(t)
	e := &env{t: t, srv: srv, cl: cl, dir: t.TempDir()}
	ctx := context.Background()
	for _, n := range []string{"n1", "n2"} {
		if _, err := cl.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"host": n}}}, false); err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		patch, _ := json.Marshal(map[string]any{"status": v1.NodeStatus{HeartbeatTime: &now, Conditions: []metav1.Condition{
			{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat", LastTransitionTime: now}}}})
		if _, err := cl.PatchStatus(ctx, resources.Nodes, "", n, patch); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) nodeOf(name string) string {
	return e.get(instances, name).(*v1.Instance).Spec.NodeName
}

// waitNode waits until the scheduler has placed an Instance on node: bound
// there with a port (a pinned Instance names its node before it has one).
// The bound is generous: under go test ./... on 2 cores the scheduler can
// take seconds.
func (e *env) waitNode(name, node string) {
	e.t.Helper()
	placed := func() bool {
		in := e.get(instances, name).(*v1.Instance)
		return in.Spec.NodeName == node && in.GamePort() != 0
	}
	for deadline := time.Now().Add(waitBound); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if placed() {
			return
		}
	}
	in := e.get(instances, name).(*v1.Instance)
	e.t.Fatalf("%s is on %q with port %d after %s, want it placed on %q", name, in.Spec.NodeName, in.GamePort(), waitBound, node)
}

// schedulerSees waits until the scheduler has seen a node's cordon: an
// Instance that only that node could take says so in its Scheduled
// condition. Without this, Instances created right after a cordon may be
// placed from the scheduler's copy from before it.
func (e *env) schedulerSees(cordoned string) {
	e.t.Helper()
	e.mustRun("apply", "-f", e.write("probe.yaml", `apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: cordon-probe}
spec: {blueprintRef: {name: coop}, nodeSelector: {host: `+cordoned+`}}
`))
	waitFor(e.t, func() bool {
		c := meta.FindStatusCondition(e.get(instances, "cordon-probe").(*v1.Instance).Status.Conditions, v1.InstanceScheduled)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "cordoned")
	})
	e.mustRun("delete", "instance", "cordon-probe")
}

func TestCordonDrain(t *testing.T) {
	e := newFleetEnv(t)
	if out := e.mustRun("cordon", "n2"); out != "node/n2 cordoned\n" {
		t.Fatalf("cordon: %q", out)
	}
	if out := e.mustRun("get", "nodes"); !strings.Contains(out, "SchedulingDisabled") {
		t.Fatalf("get nodes does not show the cordon:\n%s", out)
	}
	e.schedulerSees("n2")
	e.mustRun("apply", "-f", e.write("fleet.yaml", `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: empty}
spec: {blueprintRef: {name: coop}}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: busy}
spec: {blueprintRef: {name: coop}}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: pinned}
spec: {blueprintRef: {name: coop}, nodeName: n1}
`))
	for _, n := range []string{"empty", "busy", "pinned"} {
		e.waitNode(n, "n1")
	}
	// Three players on "busy", as its node would report from A2S.
	if _, err := e.cl.PatchStatus(context.Background(), instances, "default", "busy", []byte(`{"status":{"players":3}}`)); err != nil {
		t.Fatal(err)
	}
	e.mustRun("uncordon", "n2")

	out, _, err := e.run("", "drain", "n1", "--timeout", "2s", "--poll-interval", "100ms")
	if err == nil || !strings.Contains(err.Error(), "gave up with 2 Instances left (default/busy, default/pinned)") {
		t.Fatalf("drain with players and a pin should give up: %v\n%s", err, out)
	}
	for _, want := range []string{
		"node/n1 cordoned",
		"instance/default/busy waiting: 3 players on it",
		"instance/default/empty moved off (0 players)",
		"instance/default/pinned pinned by spec.nodeName",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("drain output lacks %q:\n%s", want, out)
		}
	}
	e.waitNode("empty", "n2")
	if e.nodeOf("busy") != "n1" || e.nodeOf("pinned") != "n1" {
		t.Fatalf("drain moved an occupied or pinned Instance without --force")
	}

	out = e.mustRun("drain", "n1", "--force", "--timeout", "10s", "--poll-interval", "100ms")
	if !strings.HasSuffix(out, "node/n1 drained\n") || !strings.Contains(out, "instance/default/busy moved off (3 players)") {
		t.Fatalf("drain --force:\n%s", out)
	}
	for _, n := range []string{"empty", "busy", "pinned"} {
		e.waitNode(n, "n2")
	}
	if in := e.get(instances, "busy").(*v1.Instance); in.Status.Players != 0 || in.GamePort() == 0 {
		t.Fatalf("moved Instance kept its old node's report or got no port: %+v", in.Status)
	}
	// describe shows where the scheduler put it (events are written in the
	// background).
	var desc string
	for deadline := time.Now().Add(waitBound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if desc = e.mustRun("describe", "instance", "busy"); strings.Contains(desc, "Bound to node n2") {
			return
		}
	}
	t.Fatalf("describe lacks the Scheduled event:\n%s", desc)
}

func TestRolloutStatusAndRestart(t *testing.T) {
	e := newFleetEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", `apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: mods}
spec: {source: {path: mods}}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
spec: {overlays: [mods]}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: a}
spec: {blueprintRef: {name: coop}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: b}
spec: {blueprintRef: {name: coop}, nodeName: n1}
`))
	// A node reports only on Instances the scheduler has given a port: a
	// report written before that would be wiped by the binding.
	e.waitNode("a", "n1")
	e.waitNode("b", "n1")
	if out := e.mustRun("rollout", "restart", "blueprint/coop"); out != "blueprint.left4me.io/coop restarted\n" {
		t.Fatalf("rollout restart: %q", out)
	}
	bp := e.get(blueprints, "coop").(*v1.Blueprint)
	if bp.Annotations[v1.AnnotationRestartedAt] == "" {
		t.Fatal("no restartedAt annotation")
	}
	// The node reports: a runs the old template with 2 players on it, b
	// has restarted onto the current one.
	ov := e.get(resources.Overlays, "mods").(*v1.Overlay)
	version := v1.BlueprintVersion(bp, map[string]*v1.Overlay{"mods": ov})
	patch := func(name, status string) {
		if _, err := e.cl.PatchStatus(context.Background(), instances, "default", name, []byte(status)); err != nil {
			t.Fatal(err)
		}
	}
	patch("a", `{"status":{"templateHash":"old","pendingTemplateHash":"new","players":2,"observedBlueprint":"`+version+`"}}`)
	patch("b", `{"status":{"templateHash":"new","observedBlueprint":"`+version+`"}}`)
	out, _, err := e.run("", "rollout", "status", "coop", "--watch=false")
	if err == nil || out != "blueprint/coop: 1 of 2 Instances updated, 1 waiting for players to leave (a: 2 players)\n" {
		t.Fatalf("rollout status: %v %q", err, out)
	}
	patch("a", `{"status":{"templateHash":"new","pendingTemplateHash":null,"players":0}}`)
	if out := e.mustRun("rollout", "status", "coop", "--timeout", "5s"); out != "blueprint/coop: rollout complete: 2 of 2 Instances updated\n" {
		t.Fatalf("rollout status once done: %q", out)
	}
	// An Overlay change is a new version too, until the nodes have seen it.
	if _, err := e.cl.Patch(context.Background(), resources.Overlays, "default", "mods", "application/merge-patch+json", []byte(`{"spec":{"source":{"path":"mods-v2"}}}`), false); err != nil {
		t.Fatal(err)
	}
	out, _, err = e.run("", "rollout", "status", "coop", "--watch=false")
	if err == nil || out != "blueprint/coop: 0 of 2 Instances updated, 2 not yet seen by their node\n" {
		t.Fatalf("rollout status after an Overlay edit: %v %q", err, out)
	}
}

// TestDrainKeepsWhatNoOtherNodeCanTake: draining the only node an
// Instance fits would stop its game for nothing; drain says why it waits,
// gives up at its timeout, and moves it only with --force.
func TestDrainKeepsWhatNoOtherNodeCanTake(t *testing.T) {
	e := newFleetEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1}
spec: {blueprintRef: {name: coop}, nodeSelector: {host: n1}}
`))
	e.waitNode("coop-1", "n1")
	out, _, err := e.run("", "drain", "n1", "--timeout", "2s", "--poll-interval", "100ms")
	if err == nil || !strings.Contains(err.Error(), "gave up with 1 Instances left (default/coop-1)") {
		t.Fatalf("drain should give up: %v\n%s", err, out)
	}
	want := "instance/default/coop-1 waiting: no other node can take it (0/1 other nodes available: 1 do not match nodeSelector)"
	if !strings.Contains(out, want) || strings.Contains(out, "moved off") {
		t.Fatalf("drain output lacks %q or moved it:\n%s", want, out)
	}
	if e.nodeOf("coop-1") != "n1" {
		t.Fatal("drain moved an Instance no other node can take")
	}
	// What n1's agent reports about its running game.
	if _, err := e.cl.PatchStatus(context.Background(), instances, "default", "coop-1", []byte(`{"status":{"phase":"Running","nodeName":"n1","map":"c1m1_hotel","conditions":[`+
		`{"type":"Ready","status":"True","reason":"A2SAnswered","message":"answers","lastTransitionTime":"2026-12-02T05:00:00Z"},`+
		`{"type":"UnitActive","status":"True","reason":"UnitActive","message":"active","lastTransitionTime":"2026-12-02T05:00:00Z"}]}}`)); err != nil {
		t.Fatal(err)
	}
	out = e.mustRun("drain", "n1", "--force", "--timeout", "30s", "--poll-interval", "100ms")
	if !strings.Contains(out, "instance/default/coop-1 moved off (0 players)") || !strings.HasSuffix(out, "node/n1 drained\n") {
		t.Fatalf("drain --force:\n%s", out)
	}
	// Moved off and placed nowhere: nothing runs it, and its status must
	// not say otherwise.
	waitFor(t, func() bool {
		in := e.get(instances, "coop-1").(*v1.Instance)
		return in.Status.Phase == v1.PhasePending && meta.FindStatusCondition(in.Status.Conditions, v1.ConditionReady) == nil &&
			in.Status.NodeName == "" && in.Status.Map == ""
	})
	if wide := e.mustRun("get", "instance", "coop-1", "-o", "wide"); strings.Contains(wide, "True") || !strings.Contains(wide, "Pending") {
		t.Fatalf("get -o wide of an Instance nothing runs:\n%s", wide)
	}
	if help := e.mustRun("drain", "--help"); !strings.Contains(help, "(default 10m0s)") {
		t.Fatalf("drain has no default timeout:\n%s", help)
	}
}
