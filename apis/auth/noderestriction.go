package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// This file is the node role's admission, as Kubernetes' NodeRestriction:
// which objects a node may name is decided from the URL (authz.go); what
// it may write into them needs the body, so the handler calls a
// Decision's Admit with the stored object and the one that would replace
// it.

// AdmitFunc accepts or refuses (403) a write: cur is the object as stored
// (nil on create), next the object that would be stored.
type AdmitFunc func(ctx context.Context, cur, next v1.Object) error

func nodeForbidden(u *User, kind, name, why string) error {
	res, _ := resources.ByKind(kind)
	return apierrors.NewForbidden(res.GroupResource(), name, fmt.Errorf("%s %s", u.Name, why))
}

// admitOwnNode is what a node may write into its own Node. Registering
// itself (create), it describes the host: spec (port range, capacity) and
// labels, but no node-restriction label and no cordon. Afterwards spec,
// annotations, finalizers, owner references and node-restriction labels
// are an admin's: the node changes only its other labels (its status goes
// through nodes/status).
func admitOwnNode(u *User) AdmitFunc {
	return func(_ context.Context, cur, next v1.Object) error {
		n := next.(*v1.Node)
		if n.Name != u.NodeName {
			return nodeForbidden(u, "Node", n.Name, fmt.Sprintf("may not write Node %q: only its own, %q", n.Name, u.NodeName))
		}
		if cur == nil {
			for k := range n.Labels {
				if v1.IsNodeRestrictionLabel(k) {
					return nodeForbidden(u, "Node", n.Name, fmt.Sprintf("may not set label %q: %s/ labels are an admin's", k, v1.NodeRestrictionLabelDomain))
				}
			}
			if n.Spec.Unschedulable {
				return nodeForbidden(u, "Node", n.Name, "may not register itself unschedulable: cordoning is an admin's")
			}
			return nil
		}
		c := cur.(*v1.Node)
		if !reflect.DeepEqual(restrictedLabels(c.Labels), restrictedLabels(n.Labels)) {
			return nodeForbidden(u, "Node", n.Name, fmt.Sprintf("may change only its own Node's status and labels outside %s/: those labels are an admin's", v1.NodeRestrictionLabelDomain))
		}
		same, err := sameJSON(c.Spec, n.Spec)
		if err != nil {
			return err
		}
		if !same {
			return nodeForbidden(u, "Node", n.Name, "may change only its own Node's status and labels: spec (port range, capacity, unschedulable) is an admin's")
		}
		if !sameMeta(c, n, "annotations", "finalizers", "ownerReferences") {
			return nodeForbidden(u, "Node", n.Name, "may change only its own Node's status and labels, not its annotations, finalizers or owner references")
		}
		return nil
	}
}

// admitOwnLease is what a node may write as a Lease: the one named after
// itself (a create names it in the body, not the URL), held by itself or
// by no one.
func admitOwnLease(u *User) AdmitFunc {
	return func(_ context.Context, _, next v1.Object) error {
		l := next.(*v1.Lease)
		if l.Name != u.NodeName {
			return nodeForbidden(u, "Lease", l.Name, fmt.Sprintf("may not write Lease %q: only its own, %q", l.Name, u.NodeName))
		}
		if h := l.Spec.HolderIdentity; h != "" && h != u.NodeName {
			return nodeForbidden(u, "Lease", l.Name, fmt.Sprintf("may not name %q the holder of its Lease: only itself, %q", h, u.NodeName))
		}
		return nil
	}
}

func restrictedLabels(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		if v1.IsNodeRestrictionLabel(k) {
			out[k] = v
		}
	}
	return out
}

// admitFinalizersOnly is the node's rule for an Instance bound to it: it
// adds and removes its finalizer and changes nothing else (its status goes
// through instances/status).
func admitFinalizersOnly(u *User) AdmitFunc {
	return func(_ context.Context, cur, next v1.Object) error {
		if cur != nil && reflect.DeepEqual(withoutStatus(cur), withoutStatus(next)) && sameMeta(cur, next, "labels", "annotations", "ownerReferences") {
			return nil
		}
		return nodeForbidden(u, "Instance", next.GetName(), "may change only metadata.finalizers of an Instance bound to it, never its spec, labels or annotations")
	}
}

// admitOwnEvents lets a node write Events only about itself (in the
// default namespace, where Events about Nodes live) and about the
// Instances bound to it (in their namespace). An update must be about
// that, before and after.
func (z *Authorizer) admitOwnEvents(u *User) AdmitFunc {
	return func(ctx context.Context, cur, next v1.Object) error {
		for _, o := range []v1.Object{cur, next} {
			if o == nil {
				continue
			}
			if err := z.ownEvent(ctx, u, o.(*v1.Event)); err != nil {
				return err
			}
		}
		return nil
	}
}

func (z *Authorizer) ownEvent(ctx context.Context, u *User, ev *v1.Event) error {
	ref := ev.InvolvedObject
	refused := func(why string) error {
		return nodeForbidden(u, "Event", ev.Name, fmt.Sprintf("may not write an Event about %s %q: %s", ref.Kind, ref.Name, why))
	}
	switch ref.Kind {
	case "Node":
		if ref.Name != u.NodeName {
			return refused("a node writes Events only about itself and the Instances bound to it")
		}
		if ev.Namespace != v1.DefaultNamespace {
			return refused(fmt.Sprintf("Events about Nodes live in namespace %q", v1.DefaultNamespace))
		}
		return nil
	case "Instance":
		if ref.Namespace != "" && ref.Namespace != ev.Namespace {
			return refused("an Event about an Instance lives in the Instance's namespace")
		}
		bound, err := z.instanceBound(ctx, ev.Namespace, ref.Name, u.NodeName)
		if err != nil {
			return err
		}
		if !bound {
			return refused("the Instance is not bound to this node")
		}
		return nil
	}
	return refused("a node writes Events only about itself and the Instances bound to it")
}

// toMap is obj as JSON fields.
func toMap(obj any) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode for comparison: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode for comparison: %w", err)
	}
	return m, nil
}

func sameJSON(a, b any) (bool, error) {
	ma, err := toMap(a)
	if err != nil {
		return false, err
	}
	mb, err := toMap(b)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(ma, mb), nil
}

// withoutStatus is obj's top-level fields but status and metadata (which
// sameMeta compares field by field). Our types always encode, so an
// encoding error (nil) only makes the comparison fail closed.
func withoutStatus(obj v1.Object) map[string]any {
	m, err := toMap(obj)
	if err != nil {
		return nil
	}
	delete(m, "status")
	delete(m, "metadata")
	return m
}

// sameMeta reports whether a and b agree on the named metadata fields.
func sameMeta(a, b v1.Object, fields ...string) bool {
	get := func(o v1.Object) map[string]any {
		m, _ := toMap(o)
		md, _ := m["metadata"].(map[string]any)
		out := map[string]any{}
		for k, v := range md {
			if slices.Contains(fields, k) {
				out[k] = v
			}
		}
		return out
	}
	return reflect.DeepEqual(get(a), get(b))
}
