// Command gen-schemas writes a JSON Schema per kind into config/schemas
// (make generate), made from the same OpenAPI definitions the server
// serves, for editors: a manifest whose first line is
//
//	# yaml-language-server: $schema=../schemas/instance.json
//
// is completed and checked as it is typed (VS Code's YAML extension,
// Neovim's yamlls, anything on yaml-language-server). The schemas are as
// strict as the server's default field validation: an unknown field is an
// error, as it is to `l4mctl apply` and `kubectl apply`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/openapi"
	"github.com/left4me/left4me/apis/resources"
)

func main() {
	out := flag.String("out", "config/schemas", "directory to write <kind>.json into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen-schemas:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	schemas, err := openapi.Schemas()
	if err != nil {
		return err
	}
	// Every definition once, in JSON Schema's terms; each kind's file
	// carries them all (a file must stand alone: editors fetch one).
	defs := map[string]any{}
	for name, s := range schemas {
		raw, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var m any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		defs[name] = convert(m)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, r := range resources.All {
		root, ok := defs[openapi.ModelName(r.Kind)].(map[string]any)
		if !ok {
			return fmt.Errorf("no definition for %s", r.Kind)
		}
		doc := map[string]any{}
		for k, v := range root {
			doc[k] = v
		}
		doc["$schema"] = "http://json-schema.org/draft-07/schema#"
		doc["title"] = r.Kind + " (" + v1.APIVersion + ")"
		doc["definitions"] = reachable(defs, root)
		props := map[string]any{}
		for k, v := range root["properties"].(map[string]any) {
			props[k] = v
		}
		props["apiVersion"] = map[string]any{"type": "string", "enum": []string{v1.APIVersion}, "description": "always " + v1.APIVersion}
		props["kind"] = map[string]any{"type": "string", "enum": []string{r.Kind}}
		doc["properties"] = props
		doc["required"] = union(root["required"], "apiVersion", "kind", "metadata")
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, strings.ToLower(r.Kind)+".json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// convert turns an OpenAPI v3 schema into JSON Schema draft-07: refs point
// into "definitions", OpenAPI's own keywords (nullable, the x-kubernetes-
// extensions) go, and an object with fixed properties takes no others.
func convert(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range t {
			switch {
			case k == "nullable" || strings.HasPrefix(k, "x-kubernetes-"):
				continue
			case k == "$ref":
				out[k] = strings.Replace(val.(string), "#/components/schemas/", "#/definitions/", 1)
			case k == "properties":
				props := map[string]any{}
				for name, p := range val.(map[string]any) {
					props[name] = convert(p)
				}
				out[k] = props
			default:
				out[k] = convert(val)
			}
		}
		if _, ok := out["properties"]; ok {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = convert(t[i])
		}
		return out
	}
	return v
}

// reachable is the definitions v refers to, directly or through others.
func reachable(defs map[string]any, v any) map[string]any {
	out := map[string]any{}
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, val := range t {
				if ref, ok := val.(string); ok && k == "$ref" {
					name := strings.TrimPrefix(ref, "#/definitions/")
					if _, done := out[name]; !done {
						out[name] = defs[name]
						walk(defs[name])
					}
					continue
				}
				walk(val)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

func union(have any, add ...string) []string {
	var out []string
	seen := map[string]bool{}
	if list, ok := have.([]any); ok {
		for _, v := range list {
			out = append(out, v.(string))
			seen[v.(string)] = true
		}
	}
	for _, a := range add {
		if !seen[a] {
			out = append(out, a)
		}
	}
	return out
}
