package app_test

import (
	"strings"
	"testing"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// TestAnnotate: an admin asks the nodes to check Steam now by stamping the
// Installation, replaces the stamp with --overwrite, and removes a key;
// mistakes are refused and change nothing.
func TestAnnotate(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("l4d2.yaml", `apiVersion: left4me.io/v1alpha1
kind: Installation
metadata: {name: l4d2}
spec: {build: latest}
`))
	key := v1.AnnotationCheckRequestedAt
	out := e.mustRun("annotate", "installation", "l4d2", key+"=2026-12-02T13:00:00Z", "owner=ops")
	if !strings.Contains(out, "installation.left4me.io/l4d2 annotated") {
		t.Fatalf("annotate said %q", out)
	}
	if a := e.get(resources.Installations, "l4d2").GetAnnotations(); a[key] != "2026-12-02T13:00:00Z" || a["owner"] != "ops" {
		t.Fatalf("annotations after annotate: %v", a)
	}

	// Changing a value needs --overwrite; the refusal names the key and
	// its value, and nothing changes (not even the other key given).
	_, _, err := e.run("", "annotate", "install/l4d2", key+"=2026-12-02T14:00:00Z", "team=a")
	if err == nil || !strings.Contains(err.Error(), "--overwrite is false") || !strings.Contains(err.Error(), "'"+key+"' already has a value (2026-12-02T13:00:00Z)") {
		t.Fatalf("annotate without --overwrite: %v", err)
	}
	if a := e.get(resources.Installations, "l4d2").GetAnnotations(); a[key] != "2026-12-02T13:00:00Z" || a["team"] != "" {
		t.Fatalf("a refused annotate changed the annotations: %v", a)
	}
	e.mustRun("annotate", "installations/l4d2", key+"=2026-12-02T14:00:00Z", "--overwrite", "owner-")
	a := e.get(resources.Installations, "l4d2").GetAnnotations()
	if a[key] != "2026-12-02T14:00:00Z" {
		t.Fatalf("--overwrite did not replace the value: %v", a)
	}
	if _, has := a["owner"]; has {
		t.Fatalf("owner- did not remove the key: %v", a)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"installation", "l4d2", "justakey"}, `annotation "justakey": want KEY=VALUE or KEY-`},
		{[]string{"installation", "l4d2", "bad key=1"}, `annotation key "bad key"`},
		{[]string{"installation", "l4d2", "a=1", "a=2"}, `annotation key "a" given twice`},
		{[]string{"installation", "l4d2"}, "say which annotations"},
		{[]string{"installation", "ghost", "a=1"}, `"ghost" not found`},
		{[]string{"widgets", "x", "a=1"}, `resource type "widgets"`},
	} {
		if _, _, err := e.run("", append([]string{"annotate"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("annotate %v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
