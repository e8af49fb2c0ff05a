package server

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// BenchmarkFieldManagerTrack is what keeping managedFields adds to a
// node's status write of a running Instance (its players changed). Run it
// beside BenchmarkCreateHandler, a whole write without the network:
//
//	go test ./apis/server -run '^$' -bench 'FieldManagerTrack|CreateHandler' -benchmem
func BenchmarkFieldManagerTrack(b *testing.B) {
	fms, err := newFieldManagers()
	if err != nil {
		b.Fatal(err)
	}
	req := &request{res: resources.Instances, subresource: "status"}
	live := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default", ResourceVersion: "5"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, State: v1.StateRunning}}
	live = fms.track(&request{res: resources.Instances}, "kubectl", nil, live).(*v1.Instance)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		obj := live.DeepCopy()
		obj.Status.Players = int32(i % 8)
		obj.Status.Phase = v1.PhaseRunning
		obj.Status.Conditions = []metav1.Condition{{Type: v1.InstanceReady, Status: metav1.ConditionTrue, Reason: "A2SAnswers"}}
		live = fms.track(req, "l4m-node", live, obj).(*v1.Instance)
	}
}
