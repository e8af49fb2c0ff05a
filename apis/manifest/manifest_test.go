package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `# comment only document
---
apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: mods}
spec: {source: {path: mods}}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: srv1
  namespace: team
spec:
  blueprintRef: {name: coop}
`

func TestParseDocuments(t *testing.T) {
	docs, errs := Parse("fleet.yaml", []byte(good))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(docs) != 2 {
		t.Fatalf("want 2 documents, got %d", len(docs))
	}
	if docs[0].ID() != "overlay.left4me.io/mods" || docs[0].Source != "fleet.yaml:3" {
		t.Fatalf("first: %s at %s", docs[0].ID(), docs[0].Source)
	}
	if docs[1].ID() != "instance.left4me.io/srv1" || docs[1].Source != "fleet.yaml:8" || docs[1].Object.GetNamespace() != "team" {
		t.Fatalf("second: %s at %s ns %s", docs[1].ID(), docs[1].Source, docs[1].Object.GetNamespace())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"malformed YAML line is absolute in the file",
			good + "---\napiVersion: left4me.io/v1alpha1\nkind: Overlay\nmetadata:\n  name: x\n   bad: indent: here\n",
			"f.yaml: malformed YAML: yaml: line 20"},
		{"unknown apiVersion", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", `f.yaml:1: unknown apiVersion "apps/v1"`},
		{"unknown kind", "apiVersion: left4me.io/v1alpha1\nkind: Server\nmetadata: {name: x}\n", `f.yaml:1: unknown kind "Server"`},
		{"missing kind", "apiVersion: left4me.io/v1alpha1\nmetadata: {name: x}\n", "apiVersion and kind are required"},
		{"unknown field", "apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: x}\nspec: {blueprintRef: {name: a}, prot: 1}\n", `unknown field "spec.prot"`},
		{"mistyped field", "apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: x}\nspec: {blueprintRef: {name: a}, port: \"27015\"}\n", "field spec.port: cannot be a string"},
		{"duplicate field", "apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: x}\nspec: {port: 1, port: 2}\n", "port"},
		{"missing name", "apiVersion: left4me.io/v1alpha1\nkind: Overlay\nspec: {}\n", "metadata.name is required"},
		{"namespace on cluster-scoped", "apiVersion: left4me.io/v1alpha1\nkind: Node\nmetadata: {name: a, namespace: x}\n", "cluster-scoped"},
		{"not an object", "- a\n- b\n", "f.yaml:1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse("f.yaml", []byte(tc.input))
			if len(errs) == 0 {
				t.Fatalf("want error containing %q, got none", tc.want)
			}
			if got := strings.Join(errs, "\n"); !strings.Contains(got, tc.want) {
				t.Fatalf("want error containing %q, got %q", tc.want, got)
			}
		})
	}
}

func TestReadDirectories(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", good)
	write("notes.txt", "not a manifest")
	write("sub/b.json", `{"apiVersion":"left4me.io/v1alpha1","kind":"Overlay","metadata":{"name":"json"},"spec":{"source":{"path":"j"}}}`)

	docs, err := Read([]string{dir}, false, nil)
	if err != nil || len(docs) != 2 {
		t.Fatalf("flat read: %d docs, %v", len(docs), err)
	}
	docs, err = Read([]string{dir}, true, nil)
	if err != nil || len(docs) != 3 {
		t.Fatalf("recursive read: %d docs, %v", len(docs), err)
	}
	docs, err = Read([]string{"-"}, false, strings.NewReader(good))
	if err != nil || len(docs) != 2 || !strings.HasPrefix(docs[0].Source, "<stdin>:") {
		t.Fatalf("stdin: %v %v", docs, err)
	}
	// One bad file among good ones: nothing is returned, every error is.
	write("c.yaml", "apiVersion: left4me.io/v1alpha1\nkind: Nope\nmetadata: {name: x}\n")
	if _, err := Read([]string{dir}, true, nil); err == nil || !strings.Contains(err.Error(), "c.yaml:1: unknown kind") {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := Read([]string{filepath.Join(dir, "missing.yaml")}, false, nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

// Errors about one field name that field's own line in the file, not the
// first line of its document: in a long manifest that is the difference
// between finding the typo and reading everything.
func TestFieldErrorsAtTheirOwnLine(t *testing.T) {
	const fleet = `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
spec:
  game: {map: c1m1_hotel}
  cvars:
    - {name: sv_alltalk, value: "1"}
    - name: sv_cheats
      vaule: "0"
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: srv1
spec:
  blueprintRef: {name: coop}
  hostname: "EU #1"
  prot: 27015
`
	_, errs := Parse("fleet.yaml", []byte(fleet))
	got := strings.Join(errs, "\n")
	for _, want := range []string{
		`fleet.yaml:9: Blueprint "coop": unknown field "spec.cvars[1].vaule"`,
		`fleet.yaml:18: Instance "srv1": unknown field "spec.prot"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	mistyped := "apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: x}\nspec:\n  blueprintRef: {name: a}\n  port: \"27015\"\n"
	if _, errs := Parse("f.yaml", []byte(mistyped)); len(errs) != 1 || !strings.HasPrefix(errs[0], "f.yaml:6: Instance \"x\": field spec.port: cannot be a string") {
		t.Errorf("mistyped field: %q", errs)
	}
	json := "{\n  \"apiVersion\": \"left4me.io/v1alpha1\",\n  \"kind\": \"Overlay\",\n  \"metadata\": {\"name\": \"mods\"},\n  \"spec\": {\"source\": {\"path\": \"m\"}, \"descripton\": \"x\"}\n}\n"
	if _, errs := Parse("o.json", []byte(json)); len(errs) != 1 || !strings.HasPrefix(errs[0], `o.json:5: Overlay "mods": unknown field "spec.descripton"`) {
		t.Errorf("JSON file: %q", errs)
	}
}
