// Package storage keeps left4me objects in etcd with Kubernetes semantics:
// one key per object, resourceVersion is the etcd revision, every write is a
// compare-and-swap transaction (no lost updates), generation counts spec
// changes, finalizers hold deletion, and one etcd watch per resource feeds
// every client's watch.
//
// Storage does not default or validate objects; the API server does that
// before it calls here. Storage enforces what must hold whatever the caller:
// identity fields, optimistic concurrency, namespaces that exist.
package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// EventTTL is how long an Event lives after its last write.
const EventTTL = time.Hour

// Options configure a Store.
type Options struct {
	// Prefix is the etcd key prefix of every object (default "/left4me").
	Prefix string
	// WatchCacheSize is how many recent events per resource a watch can
	// resume from without its own etcd watch (default 10,000).
	WatchCacheSize int
	Log            logr.Logger
}

// Store is the etcd-backed object store. Create it with New and run Start
// before serving watches.
type Store struct {
	client  *clientv3.Client
	prefix  string
	log     logr.Logger
	cacheSz int

	mu      sync.Mutex
	caches  map[string]*watchCache
	started bool

	leaseMu      sync.Mutex
	eventLease   clientv3.LeaseID
	eventLeaseAt time.Time
}

// New returns a Store on an etcd client. The client stays the caller's.
func New(client *clientv3.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "/left4me"
	}
	if opts.WatchCacheSize <= 0 {
		opts.WatchCacheSize = 10000
	}
	return &Store{client: client, prefix: opts.Prefix, log: opts.Log, cacheSz: opts.WatchCacheSize, caches: map[string]*watchCache{}}
}

// Prefix is the etcd key prefix of every object: whatever else keeps keys
// beside them for the same servers (the leader election) uses it too.
func (s *Store) Prefix() string { return s.prefix }

// CreateOptions, UpdateOptions and DeleteOptions carry ?dryRun=All: the whole
// request is checked, including the etcd preconditions, and nothing is written.
type CreateOptions struct {
	DryRun bool
	// MaxInNamespace, when above 0, is the most objects of this kind the
	// namespace may hold: the create is refused with 403 when it would
	// hold more. The count and the write are one step, so concurrent
	// creates never overshoot it (see quotaGuard).
	MaxInNamespace int
}

// UpdateOptions: Status selects the status subresource. SpecAndStatus
// writes both at once; only in-process controllers use it, for what must be
// one atomic step (the scheduler's binding: node, port and condition).
type UpdateOptions struct {
	DryRun        bool
	Status        bool
	SpecAndStatus bool
	// Current, when set, is the object as stored at obj's resourceVersion
	// (a controller's cached copy), which saves reading it back: the
	// write's compare-and-swap on that revision proves it current.
	Current v1.Object
}

// DeleteOptions: Preconditions mirror metav1.Preconditions.
type DeleteOptions struct {
	DryRun          bool
	ResourceVersion string
	UID             types.UID
}

func (s *Store) resourcePrefix(res *resources.Resource) string {
	return s.prefix + "/" + res.Plural + "/"
}

// namespacePrefix ends with "/" so that namespace "a" never matches "ab".
func (s *Store) namespacePrefix(res *resources.Resource, ns string) string {
	if !res.Namespaced || ns == "" {
		return s.resourcePrefix(res)
	}
	return s.resourcePrefix(res) + ns + "/"
}

func (s *Store) key(res *resources.Resource, ns, name string) string {
	if res.Namespaced {
		return s.resourcePrefix(res) + ns + "/" + name
	}
	return s.resourcePrefix(res) + name
}

var namespaceResource = resources.Namespaces

func (s *Store) namespaceKey(ns string) string {
	return s.key(namespaceResource, "", ns)
}

// Get returns one object.
func (s *Store) Get(ctx context.Context, res *resources.Resource, ns, name string) (v1.Object, error) {
	resp, err := s.client.Get(ctx, s.key(res, ns, name))
	if err != nil {
		return nil, etcdError(err, "get %s %s", res.Kind, name)
	}
	if len(resp.Kvs) == 0 {
		return nil, apierrors.NewNotFound(res.GroupResource(), name)
	}
	return decode(res, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Create stores a new object. The caller has defaulted and validated it.
// Identity fields come from here: uid, creationTimestamp, generation 1.
func (s *Store) Create(ctx context.Context, res *resources.Resource, obj v1.Object, opts CreateOptions) (v1.Object, error) {
	obj = obj.DeepCopyObject().(v1.Object)
	if obj.GetName() == "" {
		return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "")})
	}
	if obj.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("metadata.resourceVersion must not be set on create")
	}
	obj.SetUID(uuid.NewUUID())
	obj.SetCreationTimestamp(metav1.Now())
	obj.SetGeneration(1)
	obj.SetDeletionTimestamp(nil)
	obj.SetDeletionGracePeriodSeconds(nil)
	key := s.key(res, obj.GetNamespace(), obj.GetName())
	data, err := encode(res, obj)
	if err != nil {
		return nil, err
	}

	conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	if res.Namespaced {
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(s.namespaceKey(obj.GetNamespace())), ">", 0))
	}
	if opts.DryRun {
		if err := s.checkCreate(ctx, res, obj, key); err != nil {
			return nil, err
		}
		if _, err := s.quotaGuard(ctx, res, obj, opts.MaxInNamespace); err != nil {
			return nil, err
		}
		return obj, s.claimConflict(ctx, res, obj)
	}
	putOpts, err := s.putOptions(ctx, res, obj)
	if err != nil {
		return nil, err
	}
	claimCmps, claimOps := s.claimTxn(res, nil, obj)
	var resp *clientv3.TxnResponse
	retries := 0
	for {
		quotaCmps, err := s.quotaGuard(ctx, res, obj, opts.MaxInNamespace)
		if err != nil {
			return nil, err
		}
		ops := append([]clientv3.Op{clientv3.OpPut(key, string(data), putOpts...)}, claimOps...)
		if res.Namespaced {
			ops = append(ops, clientv3.OpPut(s.quotaGuardKey(res, obj.GetNamespace()), ""))
		}
		resp, err = s.client.Txn(ctx).If(slices.Concat(conds, claimCmps, quotaCmps)...).Then(ops...).Commit()
		if err != nil {
			if transient(err) && retries < maxTransientRetries {
				// Its outcome is unknown: the next round finds out (our
				// UID in the key means it was written).
				retries++
				s.log.V(1).Info("etcd busy; trying the create again", "kind", res.Kind, "name", obj.GetName(), "error", err.Error())
				if err := sleepCtx(ctx, time.Duration(retries)*100*time.Millisecond); err != nil {
					return nil, etcdError(err, "create %s %s", res.Kind, obj.GetName())
				}
				continue
			}
			return nil, etcdError(err, "create %s %s", res.Kind, obj.GetName())
		}
		if resp.Succeeded {
			break
		}
		if retries > 0 {
			if stored, err := s.Get(ctx, res, obj.GetNamespace(), obj.GetName()); err == nil && stored.GetUID() == obj.GetUID() {
				return stored, nil // the round whose answer was lost did write it
			}
		}
		if err := s.checkCreate(ctx, res, obj, key); err != nil {
			return nil, err
		}
		if err := s.claimConflict(ctx, res, obj); err != nil {
			return nil, err
		}
		if len(quotaCmps) == 0 {
			return nil, conflict(res, obj.GetName())
		}
		// Another create of this kind in this namespace came first: count
		// again. Each round one of the racing creates wins, so this ends.
		if err := ctx.Err(); err != nil {
			return nil, etcdError(err, "create %s %s", res.Kind, obj.GetName())
		}
	}
	obj.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return obj, nil
}

// quotaGuardKey is written by every create of res in ns. It lives outside
// every resource's prefix, so no list, count or watch of objects sees it.
func (s *Store) quotaGuardKey(res *resources.Resource, ns string) string {
	return s.prefix + "/quotaguards/" + res.Plural + "/" + ns
}

// quotaGuard enforces MaxInNamespace. It reads the namespace's count of res
// and the guard key's revision at one etcd revision, refuses (403, as
// Kubernetes' quota does) when the namespace is full, and otherwise returns
// the compare that makes the create's transaction fail if any other create
// of this kind in this namespace committed since the count. Deletes and
// expiring Events only lower the count, so they need no guard. No limit, or
// a cluster-scoped kind: no compare.
func (s *Store) quotaGuard(ctx context.Context, res *resources.Resource, obj v1.Object, limit int) ([]clientv3.Cmp, error) {
	if limit <= 0 || !res.Namespaced {
		return nil, nil
	}
	ns := obj.GetNamespace()
	guard := s.quotaGuardKey(res, ns)
	var resp *clientv3.TxnResponse
	var err error
	for retries := 0; ; retries++ {
		resp, err = s.client.Txn(ctx).Then(
			clientv3.OpGet(guard),
			clientv3.OpGet(s.namespacePrefix(res, ns), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Commit()
		if err == nil || !transient(err) || retries >= maxTransientRetries {
			break
		}
		// A read: safe to ask again.
		if serr := sleepCtx(ctx, time.Duration(retries+1)*100*time.Millisecond); serr != nil {
			err = serr
			break
		}
	}
	if err != nil {
		return nil, etcdError(err, "count %s in namespace %s", res.Plural, ns)
	}
	var guardRev int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		guardRev = kvs[0].ModRevision
	}
	if n := resp.Responses[1].GetResponseRange().Count; n >= int64(limit) {
		return nil, apierrors.NewForbidden(res.GroupResource(), obj.GetName(), fmt.Errorf("exceeded quota: namespace %q already holds %d %s (the limit)", ns, n, res.Plural))
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(guard), "=", guardRev)}, nil
}

// eventLeaseShare is how long one lease serves the Events written: they
// expire between EventTTL and EventTTL plus this after their last write,
// for one lease grant a minute instead of one per Event.
const eventLeaseShare = time.Minute

// putOptions binds an Event to a lease, so it expires EventTTL after its
// last write; other kinds live until deleted.
func (s *Store) putOptions(ctx context.Context, res *resources.Resource, obj v1.Object) ([]clientv3.OpOption, error) {
	if res.Kind != "Event" {
		return nil, nil
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.eventLease == 0 || time.Since(s.eventLeaseAt) > eventLeaseShare {
		lease, err := s.client.Grant(ctx, int64((EventTTL+eventLeaseShare)/time.Second))
		if err != nil {
			return nil, etcdError(err, "grant lease for event %s", obj.GetName())
		}
		s.eventLease, s.eventLeaseAt = lease.ID, time.Now()
	}
	return []clientv3.OpOption{clientv3.WithLease(s.eventLease)}, nil
}

// checkCreate explains why a create cannot succeed (or returns nil when it
// could, for dry runs).
func (s *Store) checkCreate(ctx context.Context, res *resources.Resource, obj v1.Object, key string) error {
	resp, err := s.client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return etcdError(err, "create %s %s", res.Kind, obj.GetName())
	}
	if resp.Count > 0 {
		return apierrors.NewAlreadyExists(res.GroupResource(), obj.GetName())
	}
	if res.Namespaced {
		resp, err := s.client.Get(ctx, s.namespaceKey(obj.GetNamespace()), clientv3.WithCountOnly())
		if err != nil {
			return etcdError(err, "create %s %s", res.Kind, obj.GetName())
		}
		if resp.Count == 0 {
			return apierrors.NewNotFound(namespaceResource.GroupResource(), obj.GetNamespace())
		}
	}
	return nil
}

// Update replaces an object if obj.resourceVersion is still the current one
// (409 Conflict otherwise). The main resource keeps the stored status; the
// status subresource keeps everything but status. When the last finalizer of
// an object being deleted goes, the object goes with it.
func (s *Store) Update(ctx context.Context, res *resources.Resource, obj v1.Object, opts UpdateOptions) (v1.Object, error) {
	if opts.Status && !res.StatusSubresource() {
		return nil, apierrors.NewNotFound(res.GroupResource(), obj.GetName()+"/status")
	}
	rv, err := parseRV(obj.GetResourceVersion())
	if err != nil {
		return nil, err
	}
	if rv == 0 {
		return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), obj.GetName(), field.ErrorList{
			field.Required(field.NewPath("metadata", "resourceVersion"), "must be the resourceVersion you read (updates are compare-and-swap)")})
	}
	cur := opts.Current
	if cur == nil || cur.GetResourceVersion() != obj.GetResourceVersion() {
		if cur, err = s.Get(ctx, res, obj.GetNamespace(), obj.GetName()); err != nil {
			return nil, err
		}
	}
	if cur.GetResourceVersion() != obj.GetResourceVersion() {
		return nil, conflict(res, obj.GetName())
	}
	next, err := s.merge(res, cur, obj, opts)
	if err != nil {
		return nil, err
	}
	key := s.key(res, obj.GetNamespace(), obj.GetName())
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rv)

	if next.GetDeletionTimestamp() != nil && len(next.GetFinalizers()) == 0 {
		if opts.DryRun {
			return next, nil
		}
		_, claimOps := s.claimTxn(res, cur, nil)
		resp, err := s.client.Txn(ctx).If(cmp).Then(append([]clientv3.Op{clientv3.OpDelete(key)}, claimOps...)...).Commit()
		if err != nil {
			return nil, etcdError(err, "delete %s %s", res.Kind, obj.GetName())
		}
		if !resp.Succeeded {
			return nil, conflict(res, obj.GetName())
		}
		next.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
		return next, nil
	}
	claimCmps, claimOps := s.claimTxn(res, cur, next)
	if opts.DryRun {
		if len(claimCmps) > 0 {
			return next, s.claimConflict(ctx, res, next)
		}
		return next, nil
	}
	data, err := encode(res, next)
	if err != nil {
		return nil, err
	}
	putOpts, err := s.putOptions(ctx, res, obj)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Txn(ctx).If(append([]clientv3.Cmp{cmp}, claimCmps...)...).Then(append([]clientv3.Op{clientv3.OpPut(key, string(data), putOpts...)}, claimOps...)...).Commit()
	if err != nil {
		return nil, etcdError(err, "update %s %s", res.Kind, obj.GetName())
	}
	if !resp.Succeeded {
		if len(claimCmps) > 0 {
			if err := s.claimConflict(ctx, res, next); err != nil {
				return nil, err
			}
		}
		return nil, conflict(res, obj.GetName())
	}
	next.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
	return next, nil
}

// merge builds the object to store from the current one and the caller's.
func (s *Store) merge(res *resources.Resource, cur, in v1.Object, opts UpdateOptions) (v1.Object, error) {
	if opts.Status {
		next, err := withStatusOf(res, cur, in)
		if err != nil {
			return nil, fmt.Errorf("merge status of %s %s: %w", res.Kind, in.GetName(), err)
		}
		keepManagedFields(next, cur, in)
		return next, nil
	}
	next := in.DeepCopyObject().(v1.Object)
	if res.HasStatus && !opts.SpecAndStatus {
		var err error
		if next, err = withStatusOf(res, next, cur); err != nil {
			return nil, fmt.Errorf("keep status of %s %s: %w", res.Kind, in.GetName(), err)
		}
	}
	next.SetUID(cur.GetUID())
	next.SetCreationTimestamp(cur.GetCreationTimestamp())
	next.SetDeletionTimestamp(cur.GetDeletionTimestamp())
	next.SetDeletionGracePeriodSeconds(cur.GetDeletionGracePeriodSeconds())
	next.SetGeneration(cur.GetGeneration())
	next.SetResourceVersion(cur.GetResourceVersion())
	keepManagedFields(next, cur, in)
	if cur.GetDeletionTimestamp() != nil {
		for _, f := range next.GetFinalizers() {
			if !slices.Contains(cur.GetFinalizers(), f) {
				return nil, apierrors.NewForbidden(res.GroupResource(), in.GetName(),
					fmt.Errorf("metadata.finalizers: no new finalizer (%q) can be added while the object is being deleted", f))
			}
		}
	}
	same, err := specEqual(cur, next)
	if err != nil {
		return nil, fmt.Errorf("compare spec of %s %s: %w", res.Kind, in.GetName(), err)
	}
	if !same {
		next.SetGeneration(cur.GetGeneration() + 1)
	}
	return next, nil
}

// Delete removes an object, or marks it for deletion while finalizers
// remain. It returns the object as it was last stored and whether it is
// gone. Deleting a Namespace that still holds objects is refused (409).
func (s *Store) Delete(ctx context.Context, res *resources.Resource, ns, name string, opts DeleteOptions) (v1.Object, bool, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.Get(ctx, res, ns, name)
		if err != nil {
			return nil, false, err
		}
		if opts.UID != "" && opts.UID != cur.GetUID() {
			return nil, false, apierrors.NewConflict(res.GroupResource(), name, fmt.Errorf("precondition failed: uid is %s, not %s", cur.GetUID(), opts.UID))
		}
		if opts.ResourceVersion != "" && opts.ResourceVersion != cur.GetResourceVersion() {
			return nil, false, conflict(res, name)
		}
		rv, _ := parseRV(cur.GetResourceVersion())
		key := s.key(res, ns, name)
		conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rv)}
		var op clientv3.Op
		gone := len(cur.GetFinalizers()) == 0
		var ops []clientv3.Op
		if gone {
			op = clientv3.OpDelete(key)
			_, claimOps := s.claimTxn(res, cur, nil)
			ops = append(ops, claimOps...)
			if res == namespaceResource {
				empty, err := s.namespaceConditions(ctx, name)
				if err != nil {
					return nil, false, err
				}
				conds = append(conds, empty...)
				// Events expire anyway; they do not keep a namespace alive.
				events := resources.Events
				ops = append(ops, clientv3.OpDelete(s.namespacePrefix(events, name), clientv3.WithPrefix()))
				// The quota guards of an empty namespace guard nothing.
				for _, r := range resources.All {
					if r.Namespaced {
						ops = append(ops, clientv3.OpDelete(s.quotaGuardKey(r, name)))
					}
				}
			}
		} else {
			if cur.GetDeletionTimestamp() != nil {
				return cur, false, nil
			}
			next := cur.DeepCopyObject().(v1.Object)
			now := metav1.Now()
			next.SetDeletionTimestamp(&now)
			zero := int64(0)
			next.SetDeletionGracePeriodSeconds(&zero)
			data, err := encode(res, next)
			if err != nil {
				return nil, false, err
			}
			op = clientv3.OpPut(key, string(data))
			cur = next
		}
		if opts.DryRun {
			return cur, gone, nil
		}
		resp, err := s.client.Txn(ctx).If(conds...).Then(append([]clientv3.Op{op}, ops...)...).Commit()
		if err != nil {
			return nil, false, etcdError(err, "delete %s %s", res.Kind, name)
		}
		if resp.Succeeded {
			cur.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
			return cur, gone, nil
		}
		if res == namespaceResource {
			if err := s.checkNamespaceEmpty(ctx, name); err != nil {
				return nil, false, err
			}
		}
		if opts.ResourceVersion != "" || attempt >= 5 {
			return nil, false, conflict(res, name)
		}
		// The object changed between our read and our write; look again.
	}
}

// namespaceConditions are true while the namespace holds no objects but
// Events. They go into the same transaction as the delete, so a create that
// races the delete either lands first (and the delete fails) or fails itself.
func (s *Store) namespaceConditions(ctx context.Context, ns string) ([]clientv3.Cmp, error) {
	if err := s.checkNamespaceEmpty(ctx, ns); err != nil {
		return nil, err
	}
	var conds []clientv3.Cmp
	for _, r := range resources.All {
		if r.Namespaced && r.Kind != "Event" {
			conds = append(conds, clientv3.Compare(clientv3.CreateRevision(s.namespacePrefix(r, ns)), "=", 0).WithPrefix())
		}
	}
	return conds, nil
}

func (s *Store) checkNamespaceEmpty(ctx context.Context, ns string) error {
	for _, r := range resources.All {
		if !r.Namespaced || r.Kind == "Event" {
			continue
		}
		resp, err := s.client.Get(ctx, s.namespacePrefix(r, ns), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return etcdError(err, "count %s in namespace %s", r.Plural, ns)
		}
		if resp.Count > 0 {
			return apierrors.NewConflict(namespaceResource.GroupResource(), ns,
				fmt.Errorf("namespace %q is not empty: it still holds %d %s; delete them first", ns, resp.Count, r.Plural))
		}
	}
	return nil
}

// EnsureNamespace creates a namespace unless it exists (the default one at
// first start).
func (s *Store) EnsureNamespace(ctx context.Context, name string) error {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NamespaceStatus{Phase: v1.NamespaceActive}}
	_, err := s.Create(ctx, namespaceResource, ns, CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("ensure namespace %s: %w", name, err)
	}
	return nil
}

// CurrentRevision is etcd's revision now.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, etcdError(err, "read current revision")
	}
	return resp.Header.Revision, nil
}

func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q: must be a number", rv))
	}
	return n, nil
}

func conflict(res *resources.Resource, name string) error {
	return apierrors.NewConflict(res.GroupResource(), name,
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))
}

// etcdError turns an etcd failure into a 500 (or 504 on a deadline) that
// says what was being done.
// maxTransientRetries bounds how often a request is tried again after etcd
// answered that its leader changed or timed out (a member died): about
// 1.5 s of waiting in all, enough for a cluster to elect a new leader.
const maxTransientRetries = 5

// transient: etcd could not say what became of the request because its
// leader changed or did not answer in time; asking again is how a client
// gets through a member's death.
func transient(err error) bool {
	e := rpctypes.Error(err)
	if errors.Is(e, rpctypes.ErrLeaderChanged) || errors.Is(e, rpctypes.ErrNoLeader) ||
		errors.Is(e, rpctypes.ErrTimeout) || errors.Is(e, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(e, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	// The connection to the member broke mid-request (it was killed: "error
	// reading from server: EOF"); the client's balancer takes another
	// member on the next try. Writes are safe to try again as after a
	// leader change: the next round finds out what became of the first.
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func etcdError(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, context.DeadlineExceeded) {
		return apierrors.NewTimeoutError(msg+": etcd did not answer in time", 1)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return apierrors.NewInternalError(fmt.Errorf("%s: %w", msg, err))
}

// keepManagedFields stores the managedFields the caller sent (the API
// server's field manager computed them for this write), or keeps the
// current ones when it sent none (a controller's write in this process,
// which the field manager does not see).
func keepManagedFields(next, cur, in v1.Object) {
	if mf := in.GetManagedFields(); mf != nil {
		next.SetManagedFields(mf)
	} else {
		next.SetManagedFields(cur.GetManagedFields())
	}
}
