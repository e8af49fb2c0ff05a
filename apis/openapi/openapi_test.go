package openapi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/left4me/left4me/apis/manifest"
	"github.com/left4me/left4me/apis/openapi"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/validation"
)

// TestEveryKindIsInBothDocuments: kubectl finds each kind's schema by its
// x-kubernetes-group-version-kind, and learns from the PATCH operations
// that the server validates fields itself (fieldValidation).
func TestEveryKindIsInBothDocuments(t *testing.T) {
	v2, err := openapi.V2()
	if err != nil {
		t.Fatal(err)
	}
	v3, err := openapi.V3()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources.All {
		name := openapi.ModelName(r.Kind)
		d2, ok := v2.Definitions[name]
		if !ok || d2.Extensions["x-kubernetes-group-version-kind"] == nil {
			t.Errorf("v2: %s has no definition with its group, version and kind", name)
		}
		if d3 := v3.Components.Schemas[name]; d3 == nil || d3.Extensions["x-kubernetes-group-version-kind"] == nil {
			t.Errorf("v3: %s has no schema with its group, version and kind", name)
		}
		patches := 0
		for p, item := range v3.Paths.Paths {
			if item.Patch == nil || !strings.HasSuffix(strings.TrimSuffix(p, "/status"), "/"+r.Plural+"/{name}") {
				continue
			}
			patches++
			found := false
			for _, prm := range item.Patch.Parameters {
				found = found || (prm.Name == "fieldValidation" && prm.In == "query")
			}
			if !found {
				t.Errorf("v3: PATCH %s takes no fieldValidation: kubectl would validate on its own", p)
			}
		}
		if want := map[bool]int{true: 2, false: 1}[r.StatusSubresource()]; patches != want {
			t.Errorf("v3: %d PATCH paths for %s, want %d", patches, r.Plural, want)
		}
	}
}

// compile loads a kind's schema from config/schemas the way an editor
// does: draft-07, one self-contained file.
func compile(t *testing.T, kind string) *jsonschema.Schema {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "config", "schemas", strings.ToLower(kind)+".json"))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return sch
}

func samples(t *testing.T) []*manifest.Document {
	t.Helper()
	docs, err := manifest.Read([]string{filepath.Join("..", "..", "config", "samples")}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestSamplesCarryTheirSchemaAndMatchIt: every sample names its kind's
// schema in the yaml-language-server modeline, and every document in it
// is valid by that schema.
func TestSamplesCarryTheirSchemaAndMatchIt(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no samples")
	}
	kinds := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		schema, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=../schemas/")
		if !ok {
			t.Errorf("%s: first line %q is not a yaml-language-server modeline", f, first)
		}
		kinds[filepath.Base(f)] = strings.TrimSuffix(schema, ".json")
	}
	for _, d := range samples(t) {
		file := filepath.Base(strings.Split(d.Source, ":")[0])
		if kinds[file] != strings.ToLower(d.Resource.Kind) {
			t.Errorf("%s: a %s in a file whose modeline names %s.json", d.Source, d.Resource.Kind, kinds[file])
		}
		var v any
		if err := json.Unmarshal(d.JSON, &v); err != nil {
			t.Fatal(err)
		}
		if err := compile(t, d.Resource.Kind).Validate(v); err != nil {
			t.Errorf("%s: %s is invalid by its schema: %v", d.Source, d.ID(), err)
		}
	}
}

// TestSchemasRefuseWhatTheServerRefuses: each marker in the Go types
// refuses what the server's validation refuses, and accepts the edge the
// server accepts, so an editor's red line and l4mctl apply's error agree.
func TestSchemasRefuseWhatTheServerRefuses(t *testing.T) {
	byKind := map[string]*manifest.Document{}
	for _, d := range samples(t) {
		if byKind[d.Resource.Kind] == nil {
			byKind[d.Resource.Kind] = d
		}
	}
	for _, c := range []struct {
		kind, patch string
		valid       bool
	}{
		{"Instance", `{"spec":{"port":27015}}`, true},
		{"Instance", `{"spec":{"port":1023}}`, false},
		{"Instance", `{"spec":{"port":64535}}`, true},
		{"Instance", `{"spec":{"port":64536}}`, false},
		{"Instance", `{"spec":{"state":"Stopped"}}`, true},
		{"Instance", `{"spec":{"state":"Paused"}}`, false},
		{"Instance", `{"spec":{"hostname":"` + strings.Repeat("x", 64) + `"}}`, true},
		{"Instance", `{"spec":{"hostname":"` + strings.Repeat("x", 65) + `"}}`, false},
		{"Instance", `{"spec":{"colour":"red"}}`, false},
		{"Blueprint", `{"spec":{"game":{"maxPlayers":32}}}`, true},
		{"Blueprint", `{"spec":{"game":{"maxPlayers":33}}}`, false},
		{"Blueprint", `{"spec":{"game":{"tickrate":9}}}`, false},
		{"Blueprint", `{"spec":{"game":{"tickrate":128}}}`, true},
		{"Blueprint", `{"spec":{"game":{"map":"c1m1 hotel"}}}`, false},
		{"Blueprint", `{"spec":{"game":{"mode":"Versus"}}}`, false},
		{"Blueprint", `{"spec":{"rollout":{"policy":"Sometimes"}}}`, false},
		{"Blueprint", `{"spec":{"rollout":{"policy":"Immediate","maxUnavailable":2}}}`, true},
		{"Blueprint", `{"spec":{"rollout":{"maxUnavailable":-1}}}`, false},
		{"Blueprint", `{"spec":{"resources":{"cpuWeight":10001}}}`, false},
		{"Blueprint", `{"spec":{"resources":{"cpuWeight":10000,"tasksMax":65535}}}`, true},
		{"Blueprint", `{"spec":{"resources":{"tasksMax":65536}}}`, false},
		{"Blueprint", `{"spec":{"cvars":[{"name":"9lives","value":"1"}]}}`, false},
		{"Blueprint", `{"spec":{"cvars":[{"name":"sv_cheats","value":"` + strings.Repeat("1", 256) + `"}]}}`, false},
		{"Blueprint", `{"spec":{"overlays":[` + strings.TrimSuffix(strings.Repeat(`"o",`, 33), ",") + `]}}`, false},
		{"Overlay", `{"spec":{"source":{"archive":{"url":"https://example.org/a.tar.gz","sha256":"` + strings.Repeat("A", 64) + `"}}}}`, false},
		{"Overlay", `{"spec":{"source":{"archive":{"url":"https://example.org/a.tar.gz","sha256":"` + strings.Repeat("a", 64) + `","stripComponents":33}}}}`, false},
		{"Overlay", `{"spec":{"source":{"archive":{"url":"https://example.org/a.tar.gz","sha256":"` + strings.Repeat("a", 64) + `","stripComponents":32}}}}`, true},
		{"Installation", `{"spec":{"build":"latest"}}`, true},
		{"Installation", `{"spec":{"build":"0123"}}`, false},
		{"Installation", `{"spec":{"branch":"public beta"}}`, false},
		{"Installation", `{"spec":{"maxConcurrentDownloads":-1}}`, false},
	} {
		t.Run(c.kind+c.patch, func(t *testing.T) {
			d := byKind[c.kind]
			if d == nil {
				t.Fatalf("no sample %s", c.kind)
			}
			base := d.JSON
			if c.kind == "Overlay" { // start from a source the patch fills in
				base = []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Overlay","metadata":{"name":"o","namespace":"default"},"spec":{"source":{}}}`)
			}
			js, err := jsonpatch.MergePatch(base, []byte(c.patch))
			if err != nil {
				t.Fatal(err)
			}
			var v any
			json.Unmarshal(js, &v)
			schemaErr := compile(t, c.kind).Validate(v)
			docs, errs := manifest.Parse("test.yaml", js)
			var serverErr error
			switch {
			case len(errs) > 0:
				serverErr = fmt.Errorf("%s", strings.Join(errs, "; "))
			default:
				obj := docs[0].Object
				if docs[0].Resource.Namespaced && obj.GetNamespace() == "" {
					obj.SetNamespace("default") // as l4mctl apply fills it in
				}
				validation.Default(obj)
				serverErr = validation.Validate(obj).ToAggregate()
			}
			if (schemaErr == nil) != c.valid || (serverErr == nil) != c.valid {
				t.Errorf("valid=%v wanted; schema says %v, server says %v", c.valid, schemaErr, serverErr)
			}
		})
	}
}
