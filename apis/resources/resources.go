// Package resources describes each left4me kind once (its URL plural, scope,
// subresources and selectable fields) so that the storage, the API server
// and l4mctl agree on them without a Scheme.
package resources

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Resource is one kind as the API serves it.
type Resource struct {
	Kind       string
	Plural     string
	Singular   string
	ShortNames []string
	Namespaced bool
	// HasStatus means the main resource never changes status; unless
	// StatusReadOnly, a status subresource changes status and nothing else.
	HasStatus bool
	// StatusReadOnly means only the server writes status (no /status).
	StatusReadOnly bool
	New            func() v1.Object
	NewList        func() v1.ListObject
	// fields returns the values field selectors can match, beyond
	// metadata.name and metadata.namespace.
	fields func(v1.Object) fields.Set
	// IndexedField is the field the watch cache files watchers by (the
	// one every node selects on); "" for none. indexValue reads it
	// without building the whole field set.
	IndexedField string
	indexValue   func(v1.Object) string
}

// IndexValue is obj's value of IndexedField ("" when there is none).
func (r *Resource) IndexValue(obj v1.Object) string {
	if r.indexValue == nil {
		return ""
	}
	return r.indexValue(obj)
}

// GroupResource names the resource in errors ("instances.left4me.io").
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: v1.Group, Resource: r.Plural}
}

// GroupVersionKind is the apiVersion and kind its objects carry.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return v1.GroupVersion.WithKind(r.Kind)
}

// Fields returns every field a field selector may name for obj.
func (r *Resource) Fields(obj v1.Object) fields.Set {
	set := fields.Set{"metadata.name": obj.GetName()}
	if r.Namespaced {
		set["metadata.namespace"] = obj.GetNamespace()
	}
	if r.fields != nil {
		for k, v := range r.fields(obj) {
			set[k] = v
		}
	}
	return set
}

// FieldLabels lists the field names selectors may use, for error messages.
func (r *Resource) FieldLabels() []string {
	names := make([]string, 0, 8)
	for k := range r.Fields(r.New()) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// CheckFieldSelector refuses selectors that name fields this kind does not
// index, instead of silently matching nothing.
func (r *Resource) CheckFieldSelector(sel fields.Selector) error {
	known := r.Fields(r.New())
	for _, req := range sel.Requirements() {
		if _, ok := known[req.Field]; !ok {
			return fmt.Errorf("field label not supported for %s: %q (supported: %s)", r.Plural, req.Field, strings.Join(r.FieldLabels(), ", "))
		}
	}
	return nil
}

// The kinds, for callers that name one.
var (
	Namespaces = &Resource{
		Kind: "Namespace", Plural: "namespaces", Singular: "namespace", ShortNames: []string{"ns"},
		HasStatus: true,
		New:       func() v1.Object { return &v1.Namespace{} },
		NewList:   func() v1.ListObject { return &v1.NamespaceList{} },
		fields: func(o v1.Object) fields.Set {
			return fields.Set{"status.phase": string(o.(*v1.Namespace).Status.Phase)}
		},
	}
	Nodes = &Resource{
		Kind: "Node", Plural: "nodes", Singular: "node", ShortNames: []string{"no"},
		HasStatus: true,
		New:       func() v1.Object { return &v1.Node{} },
		NewList:   func() v1.ListObject { return &v1.NodeList{} },
		fields: func(o v1.Object) fields.Set {
			return fields.Set{"spec.unschedulable": strconv.FormatBool(o.(*v1.Node).Spec.Unschedulable)}
		},
		// Every node watches its own Node by name.
		IndexedField: "metadata.name",
		indexValue:   func(o v1.Object) string { return o.GetName() },
	}
	// Leases are the nodes' heartbeats: one per Node, by its name, and no
	// status (the holder renews its spec).
	Leases = &Resource{
		Kind: "Lease", Plural: "leases", Singular: "lease",
		New:     func() v1.Object { return &v1.Lease{} },
		NewList: func() v1.ListObject { return &v1.LeaseList{} },
	}
	Tokens = &Resource{
		Kind: "Token", Plural: "tokens", Singular: "token",
		HasStatus: true, StatusReadOnly: true,
		New:     func() v1.Object { return &v1.Token{} },
		NewList: func() v1.ListObject { return &v1.TokenList{} },
		fields: func(o v1.Object) fields.Set {
			t := o.(*v1.Token)
			return fields.Set{"spec.type": string(t.Spec.Type), "spec.nodeName": t.Spec.NodeName, "spec.user": t.Spec.User}
		},
	}
	Users = &Resource{
		Kind: "User", Plural: "users", Singular: "user",
		HasStatus: true, StatusReadOnly: true,
		New:     func() v1.Object { return &v1.User{} },
		NewList: func() v1.ListObject { return &v1.UserList{} },
	}
	Installations = &Resource{
		Kind: "Installation", Plural: "installations", Singular: "installation", ShortNames: []string{"install"},
		HasStatus: true,
		New:       func() v1.Object { return &v1.Installation{} },
		NewList:   func() v1.ListObject { return &v1.InstallationList{} },
	}
	Overlays = &Resource{
		Kind: "Overlay", Plural: "overlays", Singular: "overlay", ShortNames: []string{"ov"},
		Namespaced: true, HasStatus: true,
		New:     func() v1.Object { return &v1.Overlay{} },
		NewList: func() v1.ListObject { return &v1.OverlayList{} },
	}
	Blueprints = &Resource{
		Kind: "Blueprint", Plural: "blueprints", Singular: "blueprint", ShortNames: []string{"bp"},
		Namespaced: true, HasStatus: true,
		New:     func() v1.Object { return &v1.Blueprint{} },
		NewList: func() v1.ListObject { return &v1.BlueprintList{} },
	}
	Instances = &Resource{
		Kind: "Instance", Plural: "instances", Singular: "instance", ShortNames: []string{"inst"},
		Namespaced: true, HasStatus: true,
		New:     func() v1.Object { return &v1.Instance{} },
		NewList: func() v1.ListObject { return &v1.InstanceList{} },
		fields: func(o v1.Object) fields.Set {
			i := o.(*v1.Instance)
			return fields.Set{
				"spec.nodeName":          i.Spec.NodeName,
				"spec.blueprintRef.name": i.Spec.BlueprintRef.Name,
				"spec.state":             string(i.Spec.State),
				"status.phase":           string(i.Status.Phase),
			}
		},
		IndexedField: "spec.nodeName",
		indexValue:   func(o v1.Object) string { return o.(*v1.Instance).Spec.NodeName },
	}
	Events = &Resource{
		Kind: "Event", Plural: "events", Singular: "event", ShortNames: []string{"ev"},
		Namespaced: true,
		New:        func() v1.Object { return &v1.Event{} },
		NewList:    func() v1.ListObject { return &v1.EventList{} },
		fields: func(o v1.Object) fields.Set {
			e := o.(*v1.Event)
			return fields.Set{
				"involvedObject.kind": e.InvolvedObject.Kind,
				"involvedObject.name": e.InvolvedObject.Name,
				"involvedObject.uid":  e.InvolvedObject.UID,
				"reason":              e.Reason,
				"type":                e.Type,
			}
		},
	}
)

// All lists every kind, in the order l4mctl applies them: what others
// refer to comes first.
var All = []*Resource{Namespaces, Nodes, Leases, Tokens, Users, Installations, Overlays, Blueprints, Instances, Events}

// StatusSubresource reports whether clients may write <plural>/status.
func (r *Resource) StatusSubresource() bool { return r.HasStatus && !r.StatusReadOnly }

// ByPlural finds a resource by its URL segment.
func ByPlural(plural string) (*Resource, bool) {
	for _, r := range All {
		if r.Plural == plural {
			return r, true
		}
	}
	return nil, false
}

// ByKind finds a resource by its Kind.
func ByKind(kind string) (*Resource, bool) {
	for _, r := range All {
		if r.Kind == kind {
			return r, true
		}
	}
	return nil, false
}

// Lookup finds a resource the way kubectl does: by plural, singular, short
// name or kind, case-insensitively, with an optional ".left4me.io" suffix.
func Lookup(name string) (*Resource, bool) {
	n := strings.ToLower(strings.TrimSuffix(name, "."+v1.Group))
	for _, r := range All {
		if n == r.Plural || n == r.Singular || n == strings.ToLower(r.Kind) {
			return r, true
		}
		for _, s := range r.ShortNames {
			if n == s {
				return r, true
			}
		}
	}
	return nil, false
}
