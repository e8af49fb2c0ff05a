package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestRolloutRestartInstance: rollout restart instance/NAME stamps that
// Instance alone; with players on it the restart waits (rollout status
// says for what and how to force it), --force has the rollout controller
// approve it at once; a Stopped Instance is refused, and so is a stamp
// that is no time.
func TestRolloutRestartInstance(t *testing.T) {
	e := newFleetEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
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
	e.waitNode("a", "n1")
	e.waitNode("b", "n1")
	e.patchStatus(instances, "default", "a", map[string]any{"phase": v1.PhaseRunning, "templateHash": "old", "players": 2})
	if out := e.mustRun("rollout", "restart", "instance/a"); out != "instance.left4me.io/a restarted\n" {
		t.Fatalf("rollout restart instance/a: %q", out)
	}
	a := e.get(instances, "a").(*v1.Instance)
	at := a.Annotations[v1.AnnotationRestartedAt]
	if _, err := time.Parse(time.RFC3339Nano, at); err != nil || a.Annotations[v1.AnnotationForceRestartAt] != "" {
		t.Fatalf("annotations of a: %v", a.Annotations)
	}
	if ann := e.get(instances, "b").(*v1.Instance).Annotations; ann[v1.AnnotationRestartedAt] != "" {
		t.Fatalf("b was stamped too: %v", ann)
	}
	if bp := e.get(blueprints, "coop").(*v1.Blueprint); bp.Annotations[v1.AnnotationRestartedAt] != "" {
		t.Fatalf("the Blueprint was stamped: %v", bp.Annotations)
	}
	out, _, err := e.run("", "rollout", "status", "instance/a", "--watch=false")
	if err == nil || out != "instance/a: not yet seen by its node\n" {
		t.Fatalf("rollout status before the node saw it: %v %q", err, out)
	}

	// a's node reports the restart pending, with the 2 players on the game.
	e.patchStatus(instances, "default", "a", map[string]any{"pendingTemplateHash": "new",
		"conditions": []metav1.Condition{{Type: v1.InstanceUpdatePending, Status: metav1.ConditionTrue, Reason: v1.ReasonRestartRequested, Message: "asked", LastTransitionTime: metav1.Now()}}})
	out, _, err = e.run("", "rollout", "status", "instance/a", "--watch=false")
	want := "instance/a: restart pending, waiting for 2 players to leave (policy WhenEmpty; l4mctl rollout restart --force instance/a restarts it now)\n"
	if err == nil || out != want {
		t.Fatalf("rollout status with players on it: %v %q, want %q", err, out, want)
	}

	if out := e.mustRun("rollout", "restart", "--force", "instance/a"); out != "instance.left4me.io/a restarted\n" {
		t.Fatalf("rollout restart --force: %q", out)
	}
	waitFor(t, func() bool {
		a = e.get(instances, "a").(*v1.Instance)
		return a.Annotations[v1.AnnotationApprovedTemplate] == "new"
	})
	if a.Annotations[v1.AnnotationForceRestartAt] != a.Annotations[v1.AnnotationRestartedAt] || a.Annotations[v1.AnnotationRestartedAt] == at {
		t.Fatalf("annotations after --force: %v", a.Annotations)
	}
	// Restarted: the node reports the stamp it runs.
	version := v1.BlueprintVersion(e.get(blueprints, "coop").(*v1.Blueprint), nil)
	e.patchStatus(instances, "default", "a", map[string]any{"templateHash": "new", "pendingTemplateHash": nil, "restartedAt": a.Annotations[v1.AnnotationRestartedAt], "observedBlueprint": version,
		"conditions": []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered", Message: "answers", LastTransitionTime: metav1.Now()}}})
	if out := e.mustRun("rollout", "status", "instance/a", "--timeout", "5s"); out != "instance/a: rollout complete: runs its Blueprint's current spec\n" {
		t.Fatalf("rollout status once restarted: %q", out)
	}

	// A plain restart afterwards drops the spent force.
	e.mustRun("rollout", "restart", "instances/a")
	if ann := e.get(instances, "a").(*v1.Instance).Annotations; ann[v1.AnnotationForceRestartAt] != "" {
		t.Fatalf("a plain restart kept the force: %v", ann)
	}

	e.mustRun("rollout", "restart", "--force", "blueprint/coop")
	if bp := e.get(blueprints, "coop").(*v1.Blueprint); bp.Annotations[v1.AnnotationForceRestartAt] == "" ||
		bp.Annotations[v1.AnnotationForceRestartAt] != bp.Annotations[v1.AnnotationRestartedAt] {
		t.Fatalf("Blueprint after --force: %v", bp.Annotations)
	}

	if _, err := e.cl.Patch(context.Background(), instances, "default", "b", "application/merge-patch+json", []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run("", "rollout", "restart", "instance/b"); err == nil || !strings.Contains(err.Error(), "instance/b is Stopped: nothing to restart") {
		t.Fatalf("restart of a Stopped Instance: %v", err)
	}
	if ann := e.get(instances, "b").(*v1.Instance).Annotations; ann[v1.AnnotationRestartedAt] != "" {
		t.Fatalf("a Stopped Instance was stamped: %v", ann)
	}
	_, _, err = e.run("", "annotate", "instance", "b", v1.AnnotationRestartedAt+"=now")
	if err == nil || !strings.Contains(err.Error(), "metadata.annotations[left4me.io/restartedAt]") || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("a restartedAt that is no time: %v", err)
	}
}

// TestRolloutTargetCompletion: the shell completes what rollout restart and
// status take, Blueprints by name and KIND/NAME for the other kinds, with no
// space after KIND/ so the name can follow; restart offers no Installations.
func TestRolloutTargetCompletion(t *testing.T) {
	e := newFleetEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1}
spec: {blueprintRef: {name: coop}}
`))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "restart", ""}, "coop\nblueprint/\ninstance/\n:6\n"},
		{[]string{"rollout", "restart", "inst"}, "instance/\n:6\n"},
		{[]string{"rollout", "restart", "instance/co"}, "instance/coop-1\n:4\n"},
		{[]string{"rollout", "restart", "installation/"}, ":4\n"},
		{[]string{"rollout", "status", "inst"}, "instance/\ninstallation/\n:6\n"},
		{[]string{"rollout", "status", "blueprint/"}, "blueprint/coop\n:4\n"},
	} {
		out := e.mustRun(append([]string{"__complete"}, tc.args...)...)
		if got, _, _ := strings.Cut(out, "Completion ended"); got != tc.want {
			t.Errorf("l4mctl __complete %q: %q, want %q", tc.args, got, tc.want)
		}
	}
}
