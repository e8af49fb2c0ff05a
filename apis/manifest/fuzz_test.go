package manifest

import (
	"strings"
	"testing"
)

// FuzzParse: no input makes the reader panic; every error names the file;
// every document returned has a kind and a name.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: x}\nspec: {port: \"x\"}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Node","metadata":{"name":"n"}}`))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, errs := Parse("in.yaml", data)
		for _, e := range errs {
			if !strings.HasPrefix(e, "in.yaml") {
				t.Fatalf("error without the file name: %q", e)
			}
		}
		for _, d := range docs {
			if d.Resource == nil || d.Object.GetName() == "" || !strings.HasPrefix(d.Source, "in.yaml:") {
				t.Fatalf("incomplete document: %+v", d)
			}
		}
	})
}
