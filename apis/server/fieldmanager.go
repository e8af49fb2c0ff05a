package server

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/openapi"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/validation"
)

// fieldManagers keep metadata.managedFields as kube-apiserver does, with
// apimachinery's own field manager over the generated OpenAPI schemas:
// every write records which manager set which fields (operation Update),
// and a server-side apply (operation Apply) merges the applier's fields
// into the object, taking only those nobody else owns unless forced.
// There is one per kind and subresource, as the reset fields differ: on
// the main resource nobody owns status (the store keeps it), on /status
// nobody owns spec or metadata.
type fieldManagers map[string]*managedfields.FieldManager

func newFieldManagers() (fieldManagers, error) {
	schemas, err := openapi.Schemas()
	if err != nil {
		return nil, err
	}
	tc, err := managedfields.NewTypeConverter(schemas, false)
	if err != nil {
		return nil, fmt.Errorf("field manager: type converter: %w", err)
	}
	apiVersion := fieldpath.APIVersion(v1.APIVersion)
	fms := fieldManagers{}
	for _, res := range resources.All {
		for _, sub := range []string{"", "status"} {
			if sub == "status" && !res.StatusSubresource() {
				continue
			}
			reset := map[fieldpath.APIVersion]fieldpath.Filter{}
			switch {
			case sub == "status":
				reset[apiVersion] = fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata")))
			case res.HasStatus:
				reset[apiVersion] = fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("status")))
			}
			fm, err := managedfields.NewDefaultFieldManager(tc, typedConverter{}, defaulter{}, creater{}, res.GroupVersionKind(), v1.GroupVersion, sub, reset)
			if err != nil {
				return nil, fmt.Errorf("field manager for %s %s: %w", res.Kind, sub, err)
			}
			fms[res.Kind+"/"+sub] = fm
		}
	}
	return fms, nil
}

func (f fieldManagers) forRequest(req *request) *managedfields.FieldManager {
	return f[req.res.Kind+"/"+req.subresource]
}

// track records a non-apply write in obj's managedFields: the fields of
// obj that differ from live (nil on create) become manager's. A writer
// under restrictions (the node role: req.decision.Admit) cannot write
// managedFields itself: what it sends is replaced by live's, or a node
// could hand a tenant's fields to another manager and have the tenant's
// next apply delete them. Should the field manager fail, live's
// managedFields are kept, not lost.
func (f fieldManagers) track(req *request, manager string, live, obj v1.Object) v1.Object {
	fm := f.forRequest(req)
	if fm == nil {
		return obj
	}
	if live == nil {
		live = req.res.New()
		live.GetObjectKind().SetGroupVersionKind(req.res.GroupVersionKind())
	} else {
		live = live.DeepCopyObject().(v1.Object)
		live.GetObjectKind().SetGroupVersionKind(req.res.GroupVersionKind())
	}
	obj.GetObjectKind().SetGroupVersionKind(req.res.GroupVersionKind())
	if req.decision.Admit != nil {
		obj.SetManagedFields(live.GetManagedFields())
	}
	out, err := fm.Update(live, obj, manager)
	if o, ok := out.(v1.Object); err == nil && ok {
		return o
	}
	obj.SetManagedFields(live.GetManagedFields())
	return obj
}

// MaxFieldManagerLength bounds a manager's name, as kube-apiserver does.
const MaxFieldManagerLength = 128

// managerOf names who makes a write: the fieldManager parameter, else the
// client's program from its User-Agent ("kubectl", "l4mctl"), as
// kube-apiserver does. A name that is too long or not printable is a
// 400 naming the parameter.
func managerOf(r *http.Request) (string, error) {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		if len(m) > MaxFieldManagerLength || strings.IndexFunc(m, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
			return "", apierrors.NewBadRequest(fmt.Sprintf("fieldManager: must be at most %d printable characters", MaxFieldManagerLength))
		}
		return m, nil
	}
	ua := r.UserAgent()
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	ua = strings.Map(func(c rune) rune {
		if unicode.IsPrint(c) {
			return c
		}
		return -1
	}, ua)
	if len(ua) > MaxFieldManagerLength {
		ua = ua[:MaxFieldManagerLength]
	}
	if ua == "" {
		ua = "unknown"
	}
	return ua, nil
}

// typedConverter is the field manager's ObjectConvertor for the one
// version there is: it turns the unstructured objects the merge produces
// into the kind's Go type, and leaves typed objects as they are.
type typedConverter struct{}

func (typedConverter) Convert(in, out, _ any) error {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("convert %T: only unstructured objects convert", in)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out)
}

func (typedConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	gvk := in.GetObjectKind().GroupVersionKind()
	if target, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{gvk}); !ok || target.GroupVersion() != v1.GroupVersion {
		return nil, fmt.Errorf("convert %s: only %s is served", gvk, v1.APIVersion)
	}
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return in, nil
	}
	res, ok := resources.ByKind(gvk.Kind)
	if !ok {
		return nil, fmt.Errorf("convert: no kind %q", gvk.Kind)
	}
	out := res.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, fmt.Errorf("convert %s: %w", gvk.Kind, err)
	}
	out.GetObjectKind().SetGroupVersionKind(gvk)
	return out, nil
}

func (typedConverter) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// defaulter fills in what the server defaults, so a merged object has
// what a written one would.
type defaulter struct{}

func (defaulter) Default(in runtime.Object) {
	if o, ok := in.(v1.Object); ok {
		validation.Default(o)
	}
}

// creater makes an empty object of a kind.
type creater struct{}

func (creater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	res, ok := resources.ByKind(gvk.Kind)
	if !ok || gvk.GroupVersion() != v1.GroupVersion {
		return nil, fmt.Errorf("no kind %s", gvk)
	}
	obj := res.New()
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}
