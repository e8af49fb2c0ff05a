package server

import (
	"encoding/json"
	"testing"

	"github.com/left4me/left4me/apis/resources"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzDecodeStrict: the API's body decoder never panics, and what it
// accepts survives a round trip through JSON unchanged.
func FuzzDecodeStrict(f *testing.F) {
	f.Add(uint8(0), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"a"},"spec":{"blueprintRef":{"name":"b"},"port":27015}}`))
	f.Add(uint8(1), []byte(`{"spec":{"overlays":["a"],"cvars":[{"name":"a","value":"b"}],"resources":{"memoryMax":"2Gi"}}}`))
	f.Add(uint8(2), []byte(`{"spec":{"port":"x"}}`))
	f.Add(uint8(3), []byte(`{"metadata":{"name":"a","name":"b"}}`))
	f.Add(uint8(4), []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		res := resources.All[int(kind)%len(resources.All)]
		obj, err := decode(&request{res: res, validation: fieldValidationStrict}, data)
		if err != nil {
			return
		}
		once, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("accepted object does not encode: %v", err)
		}
		again, err := decode(&request{res: res, validation: fieldValidationStrict}, once)
		if err != nil {
			t.Fatalf("accepted object does not decode after encoding: %v\n%s", err, once)
		}
		twice, _ := json.Marshal(again)
		if string(once) != string(twice) {
			t.Fatalf("round trip changed the object:\n%s\n%s", once, twice)
		}
	})
}

// FuzzApply: an apply body, under any field validation, never panics the
// server's checks or apimachinery's field manager, whether it creates or
// merges onto an existing object.
func FuzzApply(f *testing.F) {
	f.Add(uint8(8), uint8(0), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"a"},"spec":{"blueprintRef":{"name":"b"},"port":27015}}`))
	f.Add(uint8(7), uint8(1), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Blueprint","metadata":{"name":"a"},"spec":{"cvars":[{"name":"a","value":"b"},{"name":"a","value":"c"}],"colour":1}}`))
	f.Add(uint8(1), uint8(2), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Node","metadata":{"name":"a","managedFields":[{}]},"spec":{"unschedulable":false,"x":{"y":[1]}}}`))
	f.Add(uint8(6), uint8(2), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Overlay","metadata":null,"spec":{"source":{"files":{"a":"b"}},"q":[{"r":1}]}}`))
	fms, err := newFieldManagers()
	if err != nil {
		f.Fatal(err)
	}
	modes := []fieldValidation{fieldValidationStrict, fieldValidationWarn, fieldValidationIgnore}
	f.Fuzz(func(t *testing.T, kind, mode uint8, data []byte) {
		res := resources.All[int(kind)%len(resources.All)]
		req := &request{res: res, name: "a", validation: modes[int(mode)%len(modes)]}
		if res.Namespaced {
			req.namespace = "default"
		}
		cfg, _, err := appliedConfiguration(req, data)
		if err != nil {
			return
		}
		live := res.New()
		live.SetName("a")
		live.SetNamespace(req.namespace)
		live.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
		merged, err := fms.forRequest(req).Apply(live, &unstructured.Unstructured{Object: cfg}, "fuzz", false)
		if err != nil {
			return
		}
		if _, err := fms.forRequest(req).Apply(merged, &unstructured.Unstructured{Object: runtime.DeepCopyJSON(cfg)}, "other", true); err != nil {
			t.Fatalf("a forced apply of the same configuration failed: %v", err)
		}
	})
}
