package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

// ApplyPatchType is server-side apply's media type (kubectl apply
// --server-side, l4mctl apply --server-side).
const ApplyPatchType = "application/apply-patch+yaml"

// forceOf reads the force parameter: true or false (absent: false), only
// for an apply.
func forceOf(r *http.Request, apply bool) (bool, error) {
	v := r.URL.Query().Get("force")
	switch {
	case v == "":
		return false, nil
	case !apply:
		return false, apierrors.NewBadRequest("force: may only be set on an apply patch (" + ApplyPatchType + ")")
	case v == "true":
		return true, nil
	case v == "false":
		return false, nil
	}
	return false, apierrors.NewBadRequest(fmt.Sprintf("force: must be true or false, not %q", v))
}

// apply is server-side apply: the body is the applier's whole intent for
// the object (its "applied configuration"); the fields it names become
// its fieldManager's, merged into the live object (created when there is
// none). A field another manager owns with a different value is a 409
// naming the field and the manager, unless force=true takes it over. The
// configuration is checked first as a POST body is (unknown, duplicate
// and mistyped fields named, as fieldValidation asks), and the merged
// object is defaulted, validated and admitted as every write is.
func (h *Handler) apply(w http.ResponseWriter, r *http.Request, req *request, dry bool, data []byte) {
	manager := r.URL.Query().Get("fieldManager")
	if manager == "" {
		h.writeError(w, r, apierrors.NewBadRequest("fieldManager: Required value: is required for apply patch (kubectl and l4mctl send their own)"))
		return
	}
	if _, err := managerOf(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	force, err := forceOf(r, true)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	cfg, err := appliedConfiguration(req, data)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	fm := h.fields.forRequest(req)
	for attempt := 0; ; attempt++ {
		cur, err := h.store.Get(r.Context(), req.res, req.namespace, req.name)
		creating := apierrors.IsNotFound(err)
		if creating && req.subresource != "" {
			h.writeError(w, r, err) // a status is applied to an object that exists
			return
		}
		if err != nil && !creating {
			h.writeError(w, r, err)
			return
		}
		live := req.res.New()
		if creating {
			live.SetName(req.name)
			live.SetNamespace(req.namespace)
		} else {
			live = cur.DeepCopyObject().(v1.Object)
		}
		live.GetObjectKind().SetGroupVersionKind(req.res.GroupVersionKind())
		merged, err := fm.Apply(live, &unstructured.Unstructured{Object: runtime.DeepCopyJSON(cfg)}, manager, force)
		if err != nil {
			if _, ok := err.(apierrors.APIStatus); !ok {
				err = apierrors.NewBadRequest("apply: " + err.Error())
			}
			h.writeError(w, r, err)
			return
		}
		obj, ok := merged.(v1.Object)
		if !ok {
			h.writeError(w, r, fmt.Errorf("apply: merged %T is no object", merged))
			return
		}
		obj.GetObjectKind().SetGroupVersionKind(req.res.GroupVersionKind())
		if err := checkIdentity(req, obj); err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := admit(req, obj); err != nil {
			h.writeError(w, r, err)
			return
		}
		var admitCur v1.Object
		if !creating {
			admitCur = cur
		}
		withStatus, err := admitWrite(r.Context(), req, admitCur, obj)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if creating {
			out, err := h.store.Create(r.Context(), req.res, obj, storage.CreateOptions{DryRun: dry, MaxInNamespace: h.maxObjects})
			if apierrors.IsAlreadyExists(err) && attempt < 5 {
				continue // created meanwhile: apply onto it
			}
			writeWarnings(w, req.warnings)
			h.respond(w, r, http.StatusCreated, out, err)
			return
		}
		pinned := obj.GetResourceVersion() != "" && obj.GetResourceVersion() != cur.GetResourceVersion()
		if obj.GetResourceVersion() == "" {
			obj.SetResourceVersion(cur.GetResourceVersion())
		}
		out, err := h.store.Update(r.Context(), req.res, obj, userWriteOptions(storage.UpdateOptions{DryRun: dry, Status: req.subresource == "status", Current: cur}, withStatus))
		if apierrors.IsConflict(err) && !pinned && attempt < 5 {
			continue
		}
		writeWarnings(w, req.warnings)
		h.respond(w, r, http.StatusOK, out, err)
		return
	}
}

// appliedConfiguration checks an apply patch as a POST body is checked
// (decode: unknown, duplicate and mistyped fields, per fieldValidation;
// the name, namespace and kind against the URL) and returns it as the
// field manager takes it: only the fields the kind has (under Warn or
// Ignore the unknown ones are dropped, as they would be from a POST),
// apiVersion, kind and namespace filled in.
func appliedConfiguration(req *request, data []byte) (map[string]any, error) {
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil || cfg == nil {
		return nil, apierrors.NewBadRequest("decode the apply patch: it must be one YAML or JSON object")
	}
	if cfg["apiVersion"] == nil || cfg["kind"] == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("an apply patch names its apiVersion (%s) and kind (%s)", v1.APIVersion, req.res.Kind))
	}
	obj, err := decode(req, data)
	if err != nil {
		return nil, err
	}
	if obj.GetName() == "" {
		obj.SetName(req.name)
		unstructured.SetNestedField(cfg, req.name, "metadata", "name")
	}
	if err := checkIdentity(req, obj); err != nil {
		return nil, err
	}
	if req.res.Namespaced {
		unstructured.SetNestedField(cfg, req.namespace, "metadata", "namespace")
	}
	if req.validation != fieldValidationStrict { // Strict refused them already
		known, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		pruneUnknown(cfg, known)
	}
	return cfg, nil
}

// pruneUnknown deletes from cfg what the typed round trip (known) lost:
// the fields the kind does not have.
func pruneUnknown(cfg, known map[string]any) {
	for k, v := range cfg {
		kv, ok := known[k]
		if !ok {
			delete(cfg, k)
			continue
		}
		switch t := v.(type) {
		case map[string]any:
			if km, ok := kv.(map[string]any); ok {
				pruneUnknown(t, km)
			}
		case []any:
			if kl, ok := kv.([]any); ok && len(kl) == len(t) {
				for i := range t {
					m, ok1 := t[i].(map[string]any)
					km, ok2 := kl[i].(map[string]any)
					if ok1 && ok2 {
						pruneUnknown(m, km)
					}
				}
			}
		}
	}
}
