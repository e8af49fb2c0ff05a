package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestInstanceRestartStampsOneGame: an Instance's own restartedAt
// (l4mctl rollout restart instance/NAME) makes a restart pending on that
// game alone, says who asked and how to force it, and waits for the
// rollout's approval (no controllers here: the test approves); once
// restarted, the status says which stamp the game runs.
func TestInstanceRestartStampsOneGame(t *testing.T) {
	h := startBare(t, nil)
	ctx := context.Background()
	h.create(&v1.Blueprint{ObjectMeta: om("coop")})
	for i, name := range []string{"x", "y"} {
		h.create(&v1.Instance{ObjectMeta: om(name), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1", Port: 40000 + int32(i)}})
	}
	running := func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	}
	x, y := h.until("x", "running", running), h.until("y", "running", running)
	xPID, yPID := h.pid("x"), h.pid("y")

	const at = "2026-03-01T20:00:00Z"
	patch := func(name, body string) {
		t.Helper()
		if _, err := h.admin.Patch(ctx, instanceRes, "default", name, "application/merge-patch+json", []byte(body), false); err != nil {
			t.Fatal(err)
		}
	}
	patch("x", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.AnnotationRestartedAt, at))
	pending := h.until("x", "a restart pending", func(in *v1.Instance) bool { return in.Status.PendingTemplateHash != "" })
	c := meta.FindStatusCondition(pending.Status.Conditions, v1.InstanceUpdatePending)
	if c == nil || c.Reason != v1.ReasonRestartRequested ||
		!strings.Contains(c.Message, "l4mctl rollout restart instance/x asked for a restart at "+at) ||
		!strings.Contains(c.Message, "once no players are on it") ||
		!strings.Contains(c.Message, "l4mctl rollout restart --force instance/x restarts it now") {
		t.Fatalf("UpdatePending %+v", c)
	}
	if pending.Status.TemplateHash != x.Status.TemplateHash || pending.Status.RestartedAt != "" || h.pid("x") != xPID {
		t.Fatalf("x restarted before its approval: template %s -> %s, pid %d -> %d", x.Status.TemplateHash, pending.Status.TemplateHash, xPID, h.pid("x"))
	}

	patch("x", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.AnnotationApprovedTemplate, pending.Status.PendingTemplateHash))
	h.until("x", "restarted with the stamp", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash == "" && in.Status.TemplateHash == pending.Status.PendingTemplateHash && in.Status.RestartedAt == at
	})
	if h.pid("x") == xPID {
		t.Fatal("x's game was not restarted")
	}
	// y, of the same Blueprint, runs on as it was.
	if got := h.until("y", "running", running); got.Status.PendingTemplateHash != "" || got.Status.TemplateHash != y.Status.TemplateHash || h.pid("y") != yPID {
		t.Fatalf("y was touched: template %s -> %s (pending %q), pid %d -> %d", y.Status.TemplateHash, got.Status.TemplateHash, got.Status.PendingTemplateHash, yPID, h.pid("y"))
	}
}

// TestTemplateHashWithoutInstanceStamp: a game whose Instance has no stamp
// of its own keeps the hash it had before Instance stamps existed, so
// upgrading the node restarts nothing.
func TestTemplateHashWithoutInstanceStamp(t *testing.T) {
	sum := sha256.Sum256([]byte("restartedAt=2026-01-01T00:00:00Z\n4\nunit"))
	before := hex.EncodeToString(sum[:])[:12]
	if got := templateHash(restartStamps{Blueprint: "2026-01-01T00:00:00Z"}, nil, "unit"); got != before {
		t.Fatalf("hash %s, before Instance stamps %s", got, before)
	}
	if templateHash(restartStamps{Blueprint: "2026-01-01T00:00:00Z", Instance: "2026-01-01T00:00:00Z"}, nil, "unit") == before {
		t.Fatal("an Instance stamp does not change the template")
	}
}
