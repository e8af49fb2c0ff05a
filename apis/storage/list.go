package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// ListOptions select and page objects. Empty selectors match everything.
type ListOptions struct {
	Namespace     string
	LabelSelector labels.Selector
	FieldSelector fields.Selector
	// Limit caps the items returned; the list then carries a continue token.
	Limit int64
	// Continue resumes a paged list at the snapshot its first page saw.
	Continue string
	// ResourceVersion starts a watch after this revision ("" means now).
	ResourceVersion string
}

func (o ListOptions) matches(res *resources.Resource, obj v1.Object) bool {
	var set fields.Set
	if o.FieldSelector != nil {
		set = res.Fields(obj)
	}
	return o.matchesFields(res, obj, set)
}

// matchesFields is matches with obj's field set already made (res.Fields).
func (o ListOptions) matchesFields(res *resources.Resource, obj v1.Object, set fields.Set) bool {
	if res.Namespaced && o.Namespace != "" && obj.GetNamespace() != o.Namespace {
		return false
	}
	if o.LabelSelector != nil && !o.LabelSelector.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	if o.FieldSelector != nil && !o.FieldSelector.Matches(set) {
		return false
	}
	return true
}

func (o ListOptions) filtered() bool {
	return (o.LabelSelector != nil && !o.LabelSelector.Empty()) || (o.FieldSelector != nil && !o.FieldSelector.Empty())
}

// continueToken is what a paged list hands back: the snapshot revision and
// the key after which the next page starts.
type continueToken struct {
	Rev   int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(rev int64, after string) string {
	data, _ := json.Marshal(continueToken{Rev: rev, Start: after + "\x00"})
	return base64.RawURLEncoding.EncodeToString(data)
}

func decodeContinue(s, prefix string) (continueToken, error) {
	var tok continueToken
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(data, &tok)
	}
	if err != nil || tok.Rev <= 0 || len(tok.Start) < len(prefix) || tok.Start[:len(prefix)] != prefix {
		return tok, apierrors.NewBadRequest("invalid continue token: start the list again without it")
	}
	return tok, nil
}

// List returns the objects that match opts, from one consistent etcd
// snapshot, a page at a time when opts.Limit is set.
func (s *Store) List(ctx context.Context, res *resources.Resource, opts ListOptions) (v1.ListObject, error) {
	if opts.FieldSelector != nil {
		if err := res.CheckFieldSelector(opts.FieldSelector); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	}
	prefix := s.namespacePrefix(res, opts.Namespace)
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	if key, ok := s.singleKey(res, opts); ok {
		// One object at most: read its key, not the whole kind (a node
		// agent lists its own Node, among thousands, this way).
		start, end = key, key+"\x00"
	}
	var rev int64
	if opts.Continue != "" {
		tok, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return nil, err
		}
		rev, start = tok.Rev, tok.Start
	}

	var items []runtime.Object
	var next string
	var remaining int64
	for {
		getOpts := []clientv3.OpOption{clientv3.WithRange(end)}
		if rev > 0 {
			getOpts = append(getOpts, clientv3.WithRev(rev))
		}
		batch := opts.Limit - int64(len(items))
		if opts.Limit > 0 {
			if opts.filtered() && batch < 100 {
				batch = 100
			}
			getOpts = append(getOpts, clientv3.WithLimit(batch))
		}
		resp, err := s.client.Get(ctx, start, getOpts...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, apierrors.NewResourceExpired(fmt.Sprintf("the continue token is too old (revision %d was compacted): list again from the start", rev))
			}
			return nil, etcdError(err, "list %s", res.Plural)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		var lastKey string
		for i, kv := range resp.Kvs {
			lastKey = string(kv.Key)
			obj, err := decode(res, kv.Value, kv.ModRevision)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			if !opts.matches(res, obj) {
				continue
			}
			items = append(items, obj)
			if opts.Limit > 0 && int64(len(items)) == opts.Limit {
				if i < len(resp.Kvs)-1 || resp.More {
					next = encodeContinue(rev, lastKey)
					remaining = resp.Count - int64(i) - 1
				}
				break
			}
		}
		if next != "" || !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = lastKey + "\x00"
	}

	list := res.NewList()
	if err := meta.SetList(list, items); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("build %s list: %w", res.Kind, err))
	}
	list.SetResourceVersion(strconv.FormatInt(rev, 10))
	list.SetContinue(next)
	if next != "" && !opts.filtered() && remaining > 0 {
		list.SetRemainingItemCount(&remaining)
	}
	list.GetObjectKind().SetGroupVersionKind(v1.GroupVersion.WithKind(res.Kind + "List"))
	return list, nil
}

// singleKey is the one key a list can match, when its field selector
// requires an exact metadata.name in one namespace (or of a cluster-scoped
// kind), as Kubernetes' registry reads such a list with a single get.
func (s *Store) singleKey(res *resources.Resource, opts ListOptions) (string, bool) {
	if opts.FieldSelector == nil || (res.Namespaced && opts.Namespace == "") {
		return "", false
	}
	name, ok := opts.FieldSelector.RequiresExactMatch("metadata.name")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return s.key(res, opts.Namespace, name), true
}

// Count returns how many objects of a kind a namespace holds (all of them
// for an empty namespace).
func (s *Store) Count(ctx context.Context, res *resources.Resource, namespace string) (int64, error) {
	resp, err := s.client.Get(ctx, s.namespacePrefix(res, namespace), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdError(err, "count %s", res.Plural)
	}
	return resp.Count, nil
}
