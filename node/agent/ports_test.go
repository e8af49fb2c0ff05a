package agent

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/unit"
)

// TestNamedPortOutsideRangeIsNotStarted: a user pins an Instance to n1 on a
// port outside n1's range (40000-40010). It waits, saying why, and n1 does
// not start it; moved into the range, it starts on that port and its client
// port, 1000 higher.
func TestNamedPortOutsideRangeIsNotStarted(t *testing.T) {
	h := start(t)
	h.create(
		&v1.Blueprint{ObjectMeta: om("bp")},
		&v1.Instance{ObjectMeta: om("far"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "n1", Port: 41000}},
	)
	h.until("far", "Scheduled=False and the node's status", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceScheduled)
		return in.Status.UnitName != "" && in.Status.Phase == v1.PhasePending && c != nil && c.Status == metav1.ConditionFalse &&
			c.Reason == "PortOutOfRange" && c.Message == "port 41000 is outside node n1's range 40000-40010"
	})
	if len(h.sd.Files()) != 0 || len(h.sd.JobLog()) != 0 {
		t.Fatalf("an Instance outside the node's range touched systemd: files %v jobs %v", h.sd.Files(), h.sd.JobLog())
	}

	patch := []byte(`{"spec":{"port":40005}}`)
	if _, err := h.admin.Patch(context.Background(), instanceRes, "default", "far", "application/merge-patch+json", patch, false); err != nil {
		t.Fatal(err)
	}
	h.until("far", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive) &&
			meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceScheduled)
	})
	svc := h.sd.Files()[unit.ServiceName(unit.ID("default", "far"))]
	if !strings.Contains(svc, `"+hostport" "40005"`) || !strings.Contains(svc, `"+clientport" "41005"`) {
		t.Fatalf("unit does not bind 40005 and 41005:\n%s", svc)
	}
}
