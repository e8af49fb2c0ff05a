// Package openapi builds the API's OpenAPI v2 and v3 documents from the
// definitions openapi-gen generates out of the Go types (make generate):
// the schemas with the validation markers of apis/left4me/v1alpha1, the
// x-kubernetes-group-version-kind each kind needs for kubectl to find it,
// and a path per resource and verb the server serves, with the query
// parameters it takes. kubectl reads them to validate (it sees
// fieldValidation on PATCH and leaves validation to the server), to
// explain, and to merge; server-side apply merges by the same schemas
// (Schemas).
package openapi

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// ModelPrefix is what every left4me definition name starts with
// ("io.left4me.v1alpha1.Instance"), from the package's
// +k8s:openapi-model-package marker.
const ModelPrefix = "io.left4me.v1alpha1."

// GroupVersionPath is the v3 document's name in /openapi/v3.
var GroupVersionPath = "apis/" + v1.Group + "/" + v1.Version

// ModelName is the definition name of a kind ("Instance").
func ModelName(kind string) string { return ModelPrefix + kind }

// gvkExtension marks the definitions of top-level kinds (and their Lists)
// with their group, version and kind, as kube-apiserver does: kubectl
// explain and validation look kinds up by it, and server-side apply's
// type converter finds an object's schema by it.
func gvkExtension(name string) spec.Extensions {
	kind, ok := strings.CutPrefix(name, ModelPrefix)
	if !ok {
		return nil
	}
	if _, ok := resources.ByKind(strings.TrimSuffix(kind, "List")); !ok {
		return nil
	}
	return spec.Extensions{"x-kubernetes-group-version-kind": []any{
		map[string]any{"group": v1.Group, "version": v1.Version, "kind": kind},
	}}
}

func definitionName(name string) (string, spec.Extensions) { return name, gvkExtension(name) }

// kindModels are the definitions every document starts from: every kind
// and its List (what they refer to comes along).
func kindModels() []string {
	var names []string
	for _, r := range resources.All {
		names = append(names, ModelName(r.Kind), ModelName(r.Kind+"List"))
	}
	return append(names, "io.k8s.apimachinery.pkg.apis.meta.v1.Status", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
		"io.k8s.apimachinery.pkg.apis.meta.v1.Patch", "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent")
}

var info = &spec.Info{InfoProps: spec.InfoProps{Title: "left4me", Version: v1.Version}}

// V2 is the OpenAPI v2 (Swagger) document served at /openapi/v2.
func V2() (*spec.Swagger, error) {
	sw, err := builder.BuildOpenAPIDefinitionsForResources(&common.Config{
		Info: info, GetDefinitions: GetOpenAPIDefinitions, GetDefinitionName: definitionName,
	}, kindModels()...)
	if err != nil {
		return nil, fmt.Errorf("openapi v2 definitions: %w", err)
	}
	sw.Paths = &spec.Paths{Paths: map[string]spec.PathItem{}}
	for _, p := range paths() {
		item := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: v2Params(p.pathParams)}}
		for _, op := range p.ops {
			o := &spec.Operation{
				VendorExtensible: spec.VendorExtensible{Extensions: op.extensions()},
				OperationProps: spec.OperationProps{
					ID: op.id, Description: op.description, Consumes: op.consumes, Produces: []string{"application/json", "application/yaml"},
					Schemes: []string{"https"}, Tags: []string{"left4me_" + v1.Version},
					Parameters: v2Params(op.query),
					Responses: &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{
						op.code: {ResponseProps: spec.ResponseProps{Description: "OK", Schema: spec.RefSchema("#/definitions/" + op.response)}},
					}}},
				},
			}
			if op.body != "" {
				o.Parameters = append(o.Parameters, spec.Parameter{ParamProps: spec.ParamProps{
					Name: "body", In: "body", Required: true, Schema: spec.RefSchema("#/definitions/" + op.body),
				}})
			}
			setV2(&item, op.method, o)
		}
		sw.Paths.Paths[p.path] = item
	}
	return sw, nil
}

// V3 is the OpenAPI v3 document of left4me.io/v1alpha1, served at
// /openapi/v3/apis/left4me.io/v1alpha1.
func V3() (*spec3.OpenAPI, error) {
	schemas, err := Schemas()
	if err != nil {
		return nil, err
	}
	doc := &spec3.OpenAPI{
		Version: "3.0.0", Info: info,
		Paths:      &spec3.Paths{Paths: map[string]*spec3.Path{}},
		Components: &spec3.Components{Schemas: schemas},
	}
	for _, p := range paths() {
		item := &spec3.Path{PathProps: spec3.PathProps{Parameters: v3Params(p.pathParams, "path")}}
		for _, op := range p.ops {
			content := map[string]*spec3.MediaType{}
			for _, mt := range []string{"application/json", "application/yaml"} {
				content[mt] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: spec.RefSchema("#/components/schemas/" + op.response)}}
			}
			o := &spec3.Operation{
				VendorExtensible: spec.VendorExtensible{Extensions: op.extensions()},
				OperationProps: spec3.OperationProps{
					OperationId: op.id, Description: op.description, Tags: []string{"left4me_" + v1.Version},
					Parameters: v3Params(op.query, "query"),
					Responses: &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{
						op.code: {ResponseProps: spec3.ResponseProps{Description: "OK", Content: content}},
					}}},
				},
			}
			if op.body != "" {
				body := map[string]*spec3.MediaType{}
				for _, mt := range op.consumes {
					body[mt] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: spec.RefSchema("#/components/schemas/" + op.body)}}
				}
				o.RequestBody = &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Required: true, Content: body}}
			}
			setV3(item, op.method, o)
		}
		doc.Paths.Paths[p.path] = item
	}
	return doc, nil
}

// Schemas are the v3 definitions of every kind and what it refers to, by
// definition name, the kinds carrying x-kubernetes-group-version-kind:
// what server-side apply's type converter and the editors' JSON Schemas
// are made from.
func Schemas() (map[string]*spec.Schema, error) {
	schemas, err := builder3.BuildOpenAPIDefinitionsForResources(&common.OpenAPIV3Config{
		Info: info, GetDefinitions: GetOpenAPIDefinitions, GetDefinitionName: definitionName,
	}, kindModels()...)
	if err != nil {
		return nil, fmt.Errorf("openapi v3 definitions: %w", err)
	}
	return schemas, nil
}

// param is one query or path parameter.
type param struct {
	name, typ, description string
	required               bool
}

var (
	pName      = param{"name", "string", "name of the object", true}
	pNamespace = param{"namespace", "string", "object name and auth scope, such as for teams and projects", true}

	pPretty         = param{"pretty", "string", "accepted for kubectl's sake; output is always indented", false}
	pDryRun         = param{"dryRun", "string", `"All": check everything, store nothing`, false}
	pFieldManager   = param{"fieldManager", "string", "the name of the actor making the change (managedFields)", false}
	pFieldValid     = param{"fieldValidation", "string", "Strict (default), Warn or Ignore: what the server does with unknown or duplicate fields", false}
	pLabelSelector  = param{"labelSelector", "string", "only objects whose labels match", false}
	pFieldSelector  = param{"fieldSelector", "string", "only objects whose fields match", false}
	pLimit          = param{"limit", "integer", "at most this many objects; the rest follows with continue", false}
	pContinue       = param{"continue", "string", "the token of the previous page", false}
	pWatch          = param{"watch", "boolean", "stream changes instead of listing", false}
	pResourceVer    = param{"resourceVersion", "string", "the version a watch starts after", false}
	pAllowBookmarks = param{"allowWatchBookmarks", "boolean", "send BOOKMARK events", false}
	pTimeout        = param{"timeoutSeconds", "integer", "end a watch after this long", false}
	pForce          = param{"force", "boolean", "server-side apply only: take over the fields other managers own instead of answering 409", false}
)

// operation is one verb on one path.
type operation struct {
	method, action, id, description string
	kind                            string
	body, response                  string
	code                            int
	consumes                        []string
	query                           []param
}

func (op operation) extensions() spec.Extensions {
	return spec.Extensions{
		"x-kubernetes-action":             op.action,
		"x-kubernetes-group-version-kind": map[string]any{"group": v1.Group, "version": v1.Version, "kind": op.kind},
	}
}

type path struct {
	path       string
	pathParams []param
	ops        []operation
}

// PatchTypes are the patch media types PATCH takes.
var PatchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"}

// paths lists every path the server serves for the kinds, in a stable
// order.
func paths() []path {
	var out []path
	list := []param{pPretty, pLabelSelector, pFieldSelector, pLimit, pContinue, pWatch, pResourceVer, pAllowBookmarks, pTimeout}
	write := []param{pPretty, pDryRun, pFieldManager, pFieldValid}
	patch := append(append([]param(nil), write...), pForce)
	objTypes := []string{"application/json", "application/yaml"}
	for _, r := range resources.All {
		model, listModel := ModelName(r.Kind), ModelName(r.Kind+"List")
		prefix, scope := "/"+GroupVersionPath, []param(nil)
		if r.Namespaced {
			prefix += "/namespaces/{namespace}"
			scope = []param{pNamespace}
			out = append(out, path{path: "/" + GroupVersionPath + "/" + r.Plural, ops: []operation{
				{method: "get", action: "list", id: "list" + r.Kind + "ForAllNamespaces", description: "list or watch " + r.Plural + " in every namespace",
					kind: r.Kind, response: listModel, code: 200, query: list},
			}})
		}
		ns := ""
		if r.Namespaced {
			ns = "Namespaced"
		}
		out = append(out, path{path: prefix + "/" + r.Plural, pathParams: scope, ops: []operation{
			{method: "get", action: "list", id: "list" + ns + r.Kind, description: "list or watch " + r.Plural,
				kind: r.Kind, response: listModel, code: 200, query: list},
			{method: "post", action: "post", id: "create" + ns + r.Kind, description: "create a " + r.Kind,
				kind: r.Kind, body: model, response: model, code: 201, consumes: objTypes, query: write},
		}})
		item := append(append([]param(nil), scope...), pName)
		out = append(out, path{path: prefix + "/" + r.Plural + "/{name}", pathParams: item, ops: []operation{
			{method: "get", action: "get", id: "read" + ns + r.Kind, description: "read the specified " + r.Kind,
				kind: r.Kind, response: model, code: 200, query: []param{pPretty}},
			{method: "put", action: "put", id: "replace" + ns + r.Kind, description: "replace the specified " + r.Kind,
				kind: r.Kind, body: model, response: model, code: 200, consumes: objTypes, query: write},
			{method: "patch", action: "patch", id: "patch" + ns + r.Kind, description: "partially update the specified " + r.Kind,
				kind: r.Kind, body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: model, code: 200, consumes: PatchTypes, query: patch},
			{method: "delete", action: "delete", id: "delete" + ns + r.Kind, description: "delete a " + r.Kind,
				kind: r.Kind, body: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", response: "io.k8s.apimachinery.pkg.apis.meta.v1.Status", code: 200,
				consumes: []string{"application/json"}, query: []param{pPretty, pDryRun}},
		}})
		if r.StatusSubresource() {
			out = append(out, path{path: prefix + "/" + r.Plural + "/{name}/status", pathParams: item, ops: []operation{
				{method: "get", action: "get", id: "read" + ns + r.Kind + "Status", description: "read status of the specified " + r.Kind,
					kind: r.Kind, response: model, code: 200, query: []param{pPretty}},
				{method: "put", action: "put", id: "replace" + ns + r.Kind + "Status", description: "replace status of the specified " + r.Kind,
					kind: r.Kind, body: model, response: model, code: 200, consumes: objTypes, query: write},
				{method: "patch", action: "patch", id: "patch" + ns + r.Kind + "Status", description: "partially update status of the specified " + r.Kind,
					kind: r.Kind, body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: model, code: 200, consumes: PatchTypes, query: patch},
			}})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func v2Params(ps []param) []spec.Parameter {
	var out []spec.Parameter
	for _, p := range ps {
		in := "query"
		if p == pName || p == pNamespace {
			in = "path"
		}
		sp := spec.Parameter{ParamProps: spec.ParamProps{Name: p.name, In: in, Description: p.description, Required: p.required}}
		sp.Type = p.typ
		sp.UniqueItems = true
		out = append(out, sp)
	}
	return out
}

func v3Params(ps []param, in string) []*spec3.Parameter {
	var out []*spec3.Parameter
	for _, p := range ps {
		out = append(out, &spec3.Parameter{ParameterProps: spec3.ParameterProps{
			Name: p.name, In: in, Description: p.description, Required: p.required,
			Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{p.typ}, UniqueItems: true}},
		}})
	}
	return out
}

func setV2(item *spec.PathItem, method string, op *spec.Operation) {
	switch method {
	case "get":
		item.Get = op
	case "post":
		item.Post = op
	case "put":
		item.Put = op
	case "patch":
		item.Patch = op
	case "delete":
		item.Delete = op
	}
}

func setV3(item *spec3.Path, method string, op *spec3.Operation) {
	switch method {
	case "get":
		item.Get = op
	case "post":
		item.Post = op
	case "put":
		item.Put = op
	case "patch":
		item.Patch = op
	case "delete":
		item.Delete = op
	}
}
