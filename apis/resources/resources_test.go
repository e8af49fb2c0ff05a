package resources

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestIndexValueIsTheSelectableField: the watch cache files watchers by
// IndexValue and matches them by Fields; the two must agree, or a node
// would miss its own Instances.
func TestIndexValueIsTheSelectableField(t *testing.T) {
	objects := map[*Resource]v1.Object{
		Nodes:     &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-3"}},
		Instances: &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default"}, Spec: v1.InstanceSpec{NodeName: "node-3"}},
	}
	for _, res := range All {
		if res.IndexedField == "" {
			if res.IndexValue(res.New()) != "" {
				t.Errorf("%s has no indexed field but an index value", res.Plural)
			}
			continue
		}
		obj, ok := objects[res]
		if !ok {
			t.Fatalf("%s is indexed by %s: add an example object here", res.Plural, res.IndexedField)
		}
		got, want := res.IndexValue(obj), res.Fields(obj)[res.IndexedField]
		if got != want || got == "" {
			t.Errorf("%s: IndexValue %q, field %s %q", res.Plural, got, res.IndexedField, want)
		}
	}
}
