package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// encode writes obj as stored in etcd: with apiVersion and kind, without
// resourceVersion (etcd's revision is the truth). It clears obj's
// resourceVersion: callers pass a copy they own and set it afterwards.
func encode(res *resources.Resource, obj v1.Object) ([]byte, error) {
	obj.SetResourceVersion("")
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", res.Kind, obj.GetName(), err)
	}
	return data, nil
}

// decode reads a stored object and stamps it with the revision it was
// written at.
func decode(res *resources.Resource, data []byte, rev int64) (v1.Object, error) {
	obj := res.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", res.Kind, err)
	}
	obj.SetResourceVersion(strconv.FormatInt(rev, 10))
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return obj, nil
}

// topLevel splits an object into its top-level JSON fields, so spec and
// status can be compared and swapped for every kind alike.
func topLevel(obj v1.Object) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// specEqual reports whether everything but metadata and status is the same:
// that is what a user asked for, and what generation counts.
func specEqual(a, b v1.Object) (bool, error) {
	ma, err := topLevel(a)
	if err != nil {
		return false, err
	}
	mb, err := topLevel(b)
	if err != nil {
		return false, err
	}
	for _, m := range []map[string]json.RawMessage{ma, mb} {
		delete(m, "metadata")
		delete(m, "status")
		delete(m, "apiVersion")
		delete(m, "kind")
	}
	if len(ma) != len(mb) {
		return false, nil
	}
	for k, va := range ma {
		if !bytes.Equal(va, mb[k]) {
			return false, nil
		}
	}
	return true, nil
}

// withStatusOf returns a copy of dst whose status is src's.
func withStatusOf(res *resources.Resource, dst, src v1.Object) (v1.Object, error) {
	md, err := topLevel(dst)
	if err != nil {
		return nil, err
	}
	ms, err := topLevel(src)
	if err != nil {
		return nil, err
	}
	if st, ok := ms["status"]; ok {
		md["status"] = st
	} else {
		delete(md, "status")
	}
	data, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	out := res.New()
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	return out, nil
}
