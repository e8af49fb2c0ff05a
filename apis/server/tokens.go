package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

// createToken stores a new token under a generated ID and answers with the
// bearer token, the only time it is ever shown. A join token may create
// only a Node token.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, req *request) {
	dry, err := dryRun(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	data, err := readBody(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, err := decodeStrict(req.res, data)
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
	if err := checkIdentity(req, tok); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := admit(req, tok); err != nil {
		h.writeError(w, r, err)
		return
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

// onlyFinalizersChanged enforces the node role's rule on the main resource:
// a node adds and removes its finalizer, and changes nothing else.
func onlyFinalizersChanged(req *request, cur, next any) error {
	strip := func(o any) (map[string]any, error) {
		data, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		delete(m, "status")
		md, _ := m["metadata"].(map[string]any)
		keep := map[string]any{}
		for _, k := range []string{"labels", "annotations", "ownerReferences"} {
			if v, ok := md[k]; ok {
				keep[k] = v
			}
		}
		m["metadata"] = keep
		return m, nil
	}
	a, err := strip(cur)
	if err != nil {
		return err
	}
	b, err := strip(next)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(a, b) {
		return apierrors.NewForbidden(req.res.GroupResource(), req.name,
			fmt.Errorf("%s may change only metadata.finalizers of an Instance bound to it, never its spec, labels or annotations", req.user.Name))
	}
	return nil
}
