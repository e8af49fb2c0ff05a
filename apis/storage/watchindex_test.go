package storage

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
)

func TestIndexKey(t *testing.T) {
	for _, tc := range []struct {
		name, field, sel string
		key              string
		keyed            bool
	}{
		{"a node's own Instances", "spec.nodeName", "spec.nodeName=node-7", "node-7", true},
		{"double equals", "spec.nodeName", "spec.nodeName==node-7", "node-7", true},
		{"with another term", "spec.nodeName", "spec.nodeName=node-7,status.phase=Running", "node-7", true},
		{"the unbound ones", "spec.nodeName", "spec.nodeName=", "", true},
		{"not equal: every event", "spec.nodeName", "spec.nodeName!=node-7", "", false},
		{"another field", "spec.nodeName", "status.phase=Running", "", false},
		{"no selector", "spec.nodeName", "", "", false},
		{"a resource without an index", "", "spec.nodeName=node-7", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sel fields.Selector
			if tc.sel != "" {
				var err error
				if sel, err = fields.ParseSelector(tc.sel); err != nil {
					t.Fatal(err)
				}
			}
			key, keyed := indexKey(tc.field, sel)
			if key != tc.key || keyed != tc.keyed {
				t.Fatalf("indexKey(%q, %q) = %q, %v; want %q, %v", tc.field, tc.sel, key, keyed, tc.key, tc.keyed)
			}
		})
	}
}

func TestWatcherIndexCandidates(t *testing.T) {
	x := newWatcherIndex[string]()
	x.add("node-1 agent", "node-1", true)
	x.add("node-2 agent", "node-2", true)
	x.add("scheduler (unbound)", "", true)
	x.add("dashboard", "", false)
	x.add("kubectl get -w", "", false)
	visit := func(before, now string) []string {
		var got []string
		x.candidates(before, now, func(w string) { got = append(got, w) })
		slices.Sort(got)
		return got
	}
	for _, tc := range []struct {
		name        string
		before, now string
		want        []string
	}{
		{"an Instance on node-1 changes", "node-1", "node-1", []string{"dashboard", "kubectl get -w", "node-1 agent"}},
		{"bound to node-2", "", "node-2", []string{"dashboard", "kubectl get -w", "node-2 agent", "scheduler (unbound)"}},
		{"moved node-1 to node-2", "node-1", "node-2", []string{"dashboard", "kubectl get -w", "node-1 agent", "node-2 agent"}},
		{"on a node nobody watches", "node-9", "node-9", []string{"dashboard", "kubectl get -w"}},
	} {
		if got := visit(tc.before, tc.now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: candidates %q, want %q", tc.name, got, tc.want)
		}
	}
	if x.len() != 5 {
		t.Fatalf("len %d, want 5", x.len())
	}
	// Removing while visiting (a watcher found too slow) is allowed.
	x.all(func(w string) {
		if w == "node-1 agent" {
			x.remove(w, "node-1", true)
		}
	})
	if x.remove("node-1 agent", "node-1", true) {
		t.Fatal("removed twice")
	}
	if x.remove("dashboard", "node-1", true) {
		t.Fatal("removed a watcher filed elsewhere")
	}
	if got := visit("node-1", "node-1"); !slices.Equal(got, []string{"dashboard", "kubectl get -w"}) {
		t.Fatalf("after node-1's agent left: %q", got)
	}
	if _, ok := x.byValue["node-1"]; ok || x.len() != 4 {
		t.Fatalf("an empty value's set is kept (%v) or len %d != 4", x.byValue, x.len())
	}
}
