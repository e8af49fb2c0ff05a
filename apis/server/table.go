package server

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/tables"
)

// tableRequest reads what a GET asks for: a meta.k8s.io Table (kubectl get
// sends "application/json;as=Table;v=v1;g=meta.k8s.io, application/json")
// or, when nil, the objects themselves. The first media range the server
// can answer wins, as kube-apiserver does; its includeObject parameter says
// what each row carries.
func tableRequest(r *http.Request) (*tables.TableOptions, error) {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		typ, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if typ != "application/json" && typ != "*/*" && typ != "application/*" {
			continue
		}
		if params["as"] == "" {
			return nil, nil // plain JSON first
		}
		if params["as"] != "Table" || params["g"] != metav1.GroupName || (params["v"] != "v1" && params["v"] != "v1beta1") {
			continue
		}
		o := &tables.TableOptions{APIVersion: metav1.GroupName + "/" + params["v"]}
		switch inc := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject")); inc {
		case "", metav1.IncludeMetadata, metav1.IncludeObject, metav1.IncludeNone:
			o.Include = inc
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("includeObject: %q is not None, Metadata or Object", inc))
		}
		return o, nil
	}
	return nil, nil
}

// asTable is obj (one object, or a list of them) as a Table for kind.
func asTable(kind string, obj any, o *tables.TableOptions) (any, error) {
	now := time.Now()
	if one, ok := obj.(v1.Object); ok {
		return tables.ToTable(kind, []v1.Object{one}, now, *o), nil
	}
	list, ok := obj.(v1.ListObject)
	if !ok {
		return nil, fmt.Errorf("a Table of %T", obj)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, fmt.Errorf("a Table of %T: %w", obj, err)
	}
	objs := make([]v1.Object, 0, len(items))
	for _, it := range items {
		o, ok := it.(v1.Object)
		if !ok {
			return nil, fmt.Errorf("a Table of %T: item %T", obj, it)
		}
		objs = append(objs, o)
	}
	t := tables.ToTable(kind, objs, now, *o)
	t.ResourceVersion, t.Continue, t.RemainingItemCount = list.GetResourceVersion(), list.GetContinue(), list.GetRemainingItemCount()
	return t, nil
}

// tableEvent is one watch event's line with its object as a Table; an
// event about no object of the kind (an error's Status) goes as it is.
func tableEvent(kind string, ev watch.Event, o *tables.TableOptions) ([]byte, error) {
	out := watchEvent{Type: ev.Type, Object: ev.Object}
	if obj, ok := ev.Object.(v1.Object); ok && ev.Type != watch.Bookmark {
		out.Object = tables.ToTable(kind, []v1.Object{redacted(obj).(v1.Object)}, time.Now(), *o)
	}
	line, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}
