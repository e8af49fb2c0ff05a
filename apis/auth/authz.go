package auth

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// Attributes describe one API request for authorization.
type Attributes struct {
	Verb        string // get, list, watch, create, update, patch, delete
	Resource    *resources.Resource
	Subresource string
	Namespace   string
	Name        string
	// FieldSelector of a list or watch (a node must select its own).
	FieldSelector fields.Selector
}

// Decision is an allowed request, with what the handler must still check.
type Decision struct {
	// Admit, when set, must accept the object a create, update or patch
	// would store (the node role's restrictions on what it writes).
	Admit AdmitFunc
	// JoinOnly means the caller (a join token) may only create a Node token.
	JoinOnly bool
}

// Authorizer decides requests.
type Authorizer struct {
	store *storage.Store
}

// NewAuthorizer returns an authorizer; the node role looks objects up in store.
func NewAuthorizer(store *storage.Store) *Authorizer { return &Authorizer{store: store} }

var readVerbs = []string{"get", "list", "watch"}

// namespacedContent are the kinds editors and viewers work with.
var namespacedContent = []string{"overlays", "blueprints", "instances", "events"}

func forbidden(u *User, a Attributes, why string) error {
	what := a.Resource.Plural
	if a.Subresource != "" {
		what += "/" + a.Subresource
	}
	where := "at the cluster scope"
	if a.Namespace != "" {
		where = fmt.Sprintf("in namespace %q", a.Namespace)
	}
	name := a.Name
	if name == "" {
		name = "(all)"
	}
	return apierrors.NewForbidden(a.Resource.GroupResource(), name,
		fmt.Errorf("%s may not %s %s %s: %s", u.Name, a.Verb, what, where, why))
}

// Authorize returns nil-error Decision when u may do a, or a 403 that says
// what was refused and why.
func (z *Authorizer) Authorize(ctx context.Context, u *User, a Attributes) (Decision, error) {
	switch u.Type {
	case v1.TokenUser:
		return Decision{}, z.authorizeUser(u, a)
	case v1.TokenNode:
		return z.authorizeNode(ctx, u, a)
	case v1.TokenJoin:
		if a.Resource.Kind == "Token" && a.Verb == "create" {
			return Decision{JoinOnly: true}, nil
		}
		return Decision{}, forbidden(u, a, "a join token may only create its node's token")
	}
	return Decision{}, forbidden(u, a, "unknown token type")
}

func (z *Authorizer) authorizeUser(u *User, a Attributes) error {
	if u.IsAdmin() {
		return nil
	}
	plural := a.Resource.Plural
	if a.Subresource == "status" && !slices.Contains(readVerbs, a.Verb) {
		return forbidden(u, a, "only nodes, controllers and admins write status")
	}
	if a.Subresource == "log" {
		// Game logs carry players' addresses and chat: editors, not viewers.
		if a.Namespace != "" && z.bound(u, a.Namespace, v1.RoleEditor) {
			return nil
		}
		return forbidden(u, a, "reading game logs needs the editor role in the namespace")
	}
	if a.Subresource == "rcon" {
		// A console command changes the running game: editors, not viewers.
		if a.Namespace != "" && z.bound(u, a.Namespace, v1.RoleEditor) {
			return nil
		}
		return forbidden(u, a, "RCON needs the editor role in the namespace")
	}
	switch plural {
	case "nodes":
		if slices.Contains(readVerbs, a.Verb) && len(u.Roles) > 0 {
			return nil
		}
		return forbidden(u, a, "only admins change nodes")
	case "leases":
		// Whether a node is alive is as public as its Node.
		if slices.Contains(readVerbs, a.Verb) && len(u.Roles) > 0 {
			return nil
		}
		return forbidden(u, a, "only nodes and admins write leases")
	case "installations":
		// Tenants see which game build their servers run and will run.
		if slices.Contains(readVerbs, a.Verb) && len(u.Roles) > 0 {
			return nil
		}
		return forbidden(u, a, "only admins change installations")
	case "namespaces":
		if a.Verb == "get" && z.bound(u, a.Name, v1.RoleViewer, v1.RoleEditor) {
			return nil
		}
		return forbidden(u, a, "only admins list, create or delete namespaces")
	case "tokens":
		return forbidden(u, a, "only admins manage tokens")
	}
	if !slices.Contains(namespacedContent, plural) {
		return forbidden(u, a, "not granted to any role but admin")
	}
	if a.Namespace == "" {
		return forbidden(u, a, "listing across namespaces needs the admin role")
	}
	if z.bound(u, a.Namespace, v1.RoleEditor) {
		return nil
	}
	if slices.Contains(readVerbs, a.Verb) && z.bound(u, a.Namespace, v1.RoleViewer) {
		return nil
	}
	if z.bound(u, a.Namespace, v1.RoleViewer) {
		return forbidden(u, a, "the viewer role only reads")
	}
	return forbidden(u, a, "no role in this namespace")
}

func (z *Authorizer) bound(u *User, ns string, roles ...string) bool {
	for _, r := range u.Roles {
		if r.Namespace == ns && slices.Contains(roles, r.Role) {
			return true
		}
	}
	return false
}

// authorizeNode is the node role: its own Node (status, and labels outside
// node-restriction.left4me.io/) and its own Lease; the Instances bound to it (read, status,
// finalizers); Blueprints, Overlays and Events in the namespaces where it
// runs Instances, writing Events only about itself and its Instances;
// nothing else, and never a spec once its Node is registered.
func (z *Authorizer) authorizeNode(ctx context.Context, u *User, a Attributes) (Decision, error) {
	self := u.NodeName
	switch a.Resource.Plural {
	case "nodes":
		switch {
		case a.Verb == "delete":
			return Decision{}, forbidden(u, a, "nodes do not delete Nodes")
		case a.Verb == "list" || a.Verb == "watch":
			if selects(a.FieldSelector, "metadata.name", self) {
				return Decision{}, nil
			}
			return Decision{}, forbidden(u, a, "a node lists only its own Node (fieldSelector metadata.name="+self+")")
		case a.Verb == "create":
			return Decision{Admit: admitOwnNode(u)}, nil
		case a.Name == self && (a.Verb == "get" || a.Subresource == "status"):
			return Decision{}, nil
		case a.Name == self:
			return Decision{Admit: admitOwnNode(u)}, nil
		}
		return Decision{}, forbidden(u, a, "a node may only touch its own Node")
	case "leases":
		// As Kubernetes' NodeRestriction for node leases: the Lease named
		// after the node, and no other, so one node cannot keep another
		// alive (or let it die) by writing its heartbeat.
		switch {
		case a.Verb == "delete":
			return Decision{}, forbidden(u, a, "nodes do not delete Leases")
		case a.Verb == "list" || a.Verb == "watch":
			if selects(a.FieldSelector, "metadata.name", self) {
				return Decision{}, nil
			}
			return Decision{}, forbidden(u, a, "a node lists only its own Lease (fieldSelector metadata.name="+self+")")
		case a.Verb == "create":
			return Decision{Admit: admitOwnLease(u)}, nil
		case a.Name == self && a.Verb == "get":
			return Decision{}, nil
		case a.Name == self:
			return Decision{Admit: admitOwnLease(u)}, nil
		}
		return Decision{}, forbidden(u, a, "a node may only renew its own Lease, "+self)
	case "instances":
		if a.Subresource == "log" {
			return Decision{}, forbidden(u, a, "nodes serve logs; they do not read them through the API")
		}
		if a.Subresource == "rcon" {
			return Decision{}, forbidden(u, a, "nodes run RCON for the API server; they do not ask it")
		}
		if a.Subresource == "players" {
			return Decision{}, forbidden(u, a, "nodes ask their games for players for the API server; they do not ask it")
		}
		switch a.Verb {
		case "list", "watch":
			if selects(a.FieldSelector, "spec.nodeName", self) {
				return Decision{}, nil
			}
			return Decision{}, forbidden(u, a, "a node lists only the Instances bound to it (fieldSelector spec.nodeName="+self+")")
		case "get", "update", "patch":
			bound, err := z.instanceBound(ctx, a.Namespace, a.Name, self)
			if err != nil {
				return Decision{}, err
			}
			if !bound {
				return Decision{}, forbidden(u, a, "the Instance is not bound to this node")
			}
			if a.Verb == "get" || a.Subresource == "status" {
				return Decision{}, nil
			}
			return Decision{Admit: admitFinalizersOnly(u)}, nil
		}
		return Decision{}, forbidden(u, a, "nodes never create or delete Instances")
	case "installations":
		// Every node reads them all: which builds to keep is decided on
		// the node, from each Installation's nodeSelector.
		if slices.Contains(readVerbs, a.Verb) {
			return Decision{}, nil
		}
		return Decision{}, forbidden(u, a, "nodes read Installations, never write them")
	case "blueprints", "overlays":
		if !slices.Contains(readVerbs, a.Verb) {
			return Decision{}, forbidden(u, a, "nodes read Blueprints and Overlays, never write them")
		}
	case "events":
		switch a.Verb {
		case "delete":
			return Decision{}, forbidden(u, a, "nodes do not delete events")
		case "create", "update", "patch":
			// Where is decided by what the Event is about (its body).
			return Decision{Admit: z.admitOwnEvents(u)}, nil
		}
	default:
		return Decision{}, forbidden(u, a, "not part of the node role")
	}
	// Blueprints, Overlays and Events: only where this node runs Instances.
	if a.Namespace == "" {
		return Decision{}, forbidden(u, a, "a node reads only namespaces where it runs Instances")
	}
	runs, err := z.runsIn(ctx, a.Namespace, self)
	if err != nil {
		return Decision{}, err
	}
	if !runs {
		return Decision{}, forbidden(u, a, "no Instance in this namespace is bound to this node")
	}
	return Decision{}, nil
}

var (
	instanceResource = resources.Instances
)

func (z *Authorizer) instanceBound(ctx context.Context, ns, name, node string) (bool, error) {
	obj, err := z.store.Get(ctx, instanceResource, ns, name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return obj.(*v1.Instance).Spec.NodeName == node, nil
}

func (z *Authorizer) runsIn(ctx context.Context, ns, node string) (bool, error) {
	l, err := z.store.List(ctx, instanceResource, storage.ListOptions{
		Namespace: ns, FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node), Limit: 1,
	})
	if err != nil {
		return false, err
	}
	return len(l.(*v1.InstanceList).Items) > 0, nil
}

// selects reports whether sel requires field=value (it may require more).
func selects(sel fields.Selector, field, value string) bool {
	if sel == nil {
		return false
	}
	v, ok := sel.RequiresExactMatch(field)
	return ok && v == value
}
