package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// DefaultJoinTokenTTL is how long a Join token created without an
// expirationTime lasts: long enough to bring up a host, short enough that a
// leaked one is soon worthless.
const DefaultJoinTokenTTL = 24 * time.Hour

// createToken stores a new token under a generated ID and answers with the
// bearer token, the only time it is ever shown. A join token may create
// only a Node token for a new node name, and each such create spends one of
// its uses.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, req *request) {
	dry, err := dryRun(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	data, err := readBody(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, err := decode(req, data)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	tok := obj.(*v1.Token)
	if req.decision.JoinOnly && tok.Spec.Type != v1.TokenNode {
		h.writeError(w, r, apierrors.NewForbidden(req.res.GroupResource(), "", fmt.Errorf("%s may only create a Node token, not a %s token", req.user.Name, tok.Spec.Type)))
		return
	}
	id, bearer, hash := auth.NewToken()
	tok.Name, tok.GenerateName = id, ""
	tok.Status = v1.TokenStatus{SecretHash: hash}
	if tok.Spec.Type == v1.TokenJoin && tok.Spec.ExpirationTime == nil {
		exp := metav1.NewTime(time.Now().Add(DefaultJoinTokenTTL).Truncate(time.Second))
		tok.Spec.ExpirationTime = &exp
	}
	if err := checkIdentity(req, tok); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := admit(req, tok); err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.decision.JoinOnly {
		if err := h.spendJoinUse(r.Context(), req, tok.Spec.NodeName, dry); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	out, err := h.store.Create(r.Context(), req.res, tok, storage.CreateOptions{DryRun: dry})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	created := out.(*v1.Token)
	if !dry {
		h.authn.Observe(created)
		created.Status.Token = bearer
	}
	h.respond(w, r, http.StatusCreated, created, nil)
}

// spendJoinUse lets the caller's join token mint a Node token for node, a
// name not yet registered, and (unless dry) consumes one of its uses. The
// use is taken with a compare-and-swap on the join token's resourceVersion
// after the checks on that same version, so two hosts joining at once with
// the last use cannot both get a token: the loser re-reads and is refused.
func (h *Handler) spendJoinUse(ctx context.Context, req *request, node string, dry bool) error {
	gr := req.res.GroupResource()
	for {
		obj, err := h.store.Get(ctx, req.res, "", req.user.TokenID)
		if apierrors.IsNotFound(err) {
			return apierrors.NewUnauthorized("the join token was revoked")
		}
		if err != nil {
			return fmt.Errorf("read join token %s: %w", req.user.TokenID, err)
		}
		join := obj.(*v1.Token)
		allowed := max(join.Spec.Uses, 1) // tokens from before use counts: one use
		if join.Status.Used >= allowed {
			return apierrors.NewForbidden(gr, "", fmt.Errorf("%s may not create another Node token: all %d of its uses are spent (create a new one with l4mctl token create join --uses N)", req.user.Name, allowed))
		}
		if err := h.checkNewNodeName(ctx, req, node); err != nil {
			return err
		}
		if dry {
			return nil
		}
		join.Status.Used++
		_, err = h.store.Update(ctx, req.res, join, storage.UpdateOptions{SpecAndStatus: true})
		if apierrors.IsConflict(err) && ctx.Err() == nil {
			continue // another join (or an admin's edit) came first: check again
		}
		if err != nil {
			return fmt.Errorf("spend a use of join token %s: %w", req.user.TokenID, err)
		}
		return nil
	}
}

// checkNewNodeName refuses a join for a node name already in use: a Node of
// that name, or a Node token bound to it. Taking over an existing node's
// identity needs an admin (l4mctl token create node NAME).
func (h *Handler) checkNewNodeName(ctx context.Context, req *request, node string) error {
	gr := req.res.GroupResource()
	_, err := h.store.Get(ctx, resources.Nodes, "", node)
	switch {
	case err == nil:
		return apierrors.NewForbidden(gr, "", fmt.Errorf("%s may not create a token for node %q: that Node is already registered, and only an admin gives an existing node a token (l4mctl token create node %s)", req.user.Name, node, node))
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("look up node %s: %w", node, err)
	}
	l, err := h.store.List(ctx, req.res, storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node), Limit: 1})
	if err != nil {
		return fmt.Errorf("look up tokens of node %s: %w", node, err)
	}
	if len(l.(*v1.TokenList).Items) > 0 {
		return apierrors.NewForbidden(gr, "", fmt.Errorf("%s may not create a token for node %q: that node already has a token, and only an admin gives an existing node another (l4mctl token create node %s)", req.user.Name, node, node))
	}
	return nil
}
