package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/validation"
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
	if req.res.Kind == "Token" {
		h.writeError(w, r, methodNotAllowed(r.Method+" "+ApplyPatchType, req.res.Plural+" (a token is created with POST: the server makes its secret and shows it once)"))
		return
	}
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
	cfg, cfgObj, err := appliedConfiguration(req, data)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	fm := h.fields.forRequest(req)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !retryPause(r.Context(), attempt) {
			h.writeError(w, r, apierrors.NewTimeoutError("the object kept changing while it was applied to; try again", 1))
			return
		}
		cur, err := h.store.Get(r.Context(), req.res, req.namespace, req.name)
		creating := apierrors.IsNotFound(err)
		req.creating = creating
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
				err = configError(req, cfgObj, err)
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
			if apierrors.IsAlreadyExists(err) {
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
		if apierrors.IsConflict(err) && !pinned {
			continue // written meanwhile: merge again onto what is there now
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
func appliedConfiguration(req *request, data []byte) (map[string]any, v1.Object, error) {
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil || cfg == nil {
		return nil, nil, apierrors.NewBadRequest("decode the apply patch: it must be one YAML or JSON object")
	}
	if cfg["apiVersion"] == nil || cfg["kind"] == nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("an apply patch names its apiVersion (%s) and kind (%s)", v1.APIVersion, req.res.Kind))
	}
	obj, unknown, err := decodeReporting(req, data)
	if err != nil {
		return nil, nil, err
	}
	if obj.GetName() == "" {
		obj.SetName(req.name)
		unstructured.SetNestedField(cfg, req.name, "metadata", "name")
	}
	if err := checkIdentity(req, obj); err != nil {
		return nil, nil, err
	}
	if req.res.Namespaced {
		unstructured.SetNestedField(cfg, req.namespace, "metadata", "namespace")
	}
	for _, path := range unknown { // only under Warn or Ignore: Strict refused them
		dropField(cfg, path)
	}
	return cfg, obj, nil
}

// configError explains a configuration the field manager cannot merge
// (two cvars of one name: a list keyed by name holds each key once) as a
// POST of it would be explained, when validation finds why.
func configError(req *request, cfg v1.Object, err error) error {
	obj := cfg.DeepCopyObject().(v1.Object)
	validation.Default(obj)
	if errs := validation.Validate(obj); len(errs) > 0 {
		var dup field.ErrorList
		for _, e := range errs {
			if e.Type == field.ErrorTypeDuplicate {
				dup = append(dup, e)
			}
		}
		if len(dup) > 0 {
			return invalid(req.res, obj.GetName(), dup)
		}
	}
	return apierrors.NewBadRequest("apply: " + err.Error())
}

// retryPause waits a little longer before each retry of an apply whose
// object changed underneath it (with jitter, so racing appliers spread
// out), and reports false once the request's time is up.
func retryPause(ctx context.Context, attempt int) bool {
	d := time.Duration(min(attempt, 20)) * 5 * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) + 1))
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// dropField deletes one field from cfg, by the path the strict decoder
// reported it at ("spec.cvars[1].vaule"), leaving every other field, zero
// values included, as the applier wrote it.
func dropField(cfg map[string]any, path string) {
	var cur any = cfg
	parts := splitPath(path)
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				delete(c, p.key)
				return
			}
			cur = c[p.key]
		default:
			return
		}
		for _, idx := range p.indexes {
			list, ok := cur.([]any)
			if !ok || idx < 0 || idx >= len(list) {
				return
			}
			cur = list[idx]
		}
	}
}

type pathPart struct {
	key     string
	indexes []int
}

// splitPath splits "spec.cvars[1].vaule" into spec, cvars [1], vaule.
func splitPath(path string) []pathPart {
	var out []pathPart
	for _, seg := range strings.Split(path, ".") {
		p := pathPart{key: seg}
		if i := strings.IndexByte(seg, '['); i >= 0 {
			p.key = seg[:i]
			for _, ix := range strings.Split(strings.TrimSuffix(seg[i+1:], "]"), "][") {
				n, err := strconv.Atoi(ix)
				if err != nil {
					return nil
				}
				p.indexes = append(p.indexes, n)
			}
		}
		out = append(out, p)
	}
	return out
}
