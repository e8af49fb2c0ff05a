package storage_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/storage/etcdtest"
)

var (
	instances  = resources.Instances
	namespaces = resources.Namespaces
	events     = resources.Events
	nodes      = resources.Nodes
)

func TestStorageEmbedded(t *testing.T) {
	runSuite(t, etcdtest.Embedded(t).Client)
}

// TestStorageExternal runs the same suite against Debian's etcd-server, the
// way a multi-server deployment uses an external cluster.
func TestStorageExternal(t *testing.T) {
	c, _ := etcdtest.External(t)
	runSuite(t, c)
}

func runSuite(t *testing.T, client *clientv3.Client) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *storage.Store, c *clientv3.Client)
	}{
		{"CreateAssignsIdentity", testCreate},
		{"NamespaceMustExist", testNamespaceMustExist},
		{"UpdateConflict", testUpdateConflict},
		{"UpdateRace", testUpdateRace},
		{"Generation", testGeneration},
		{"StatusSubresource", testStatus},
		{"Finalizers", testFinalizers},
		{"DeleteNamespace", testDeleteNamespace},
		{"ListSelectorsAndPaging", testList},
		{"Watch", testWatch},
		{"WatchFieldSelector", testWatchFieldSelector},
		{"WatchSlowClient", testWatchSlowClient},
		{"WatchOwnNode", testWatchOwnNode},
		{"WatchResumeAndCompaction", testWatchCompacted},
		{"DryRun", testDryRun},
		{"EventsExpire", testEventLease},
		{"PortClaimRace", testPortClaimRace},
		{"PortClaimLifecycle", testPortClaimLifecycle},
		{"ClientPortClaimRace", testClientPortClaimRace},
		{"RepairPortClaims", testRepairPortClaims},
		{"UpdateWithCurrent", testUpdateWithCurrent},
		{"QuotaExactUnderConcurrentCreates", testQuotaExact},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Each case gets its own key prefix: a fresh, empty store.
			s := storage.New(client, storage.Options{Prefix: fmt.Sprintf("/t%d-%d", time.Now().UnixNano(), i), Log: logr.Discard()})
			if err := s.StartWatching(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.EnsureNamespace(ctx, "default"); err != nil {
				t.Fatal(err)
			}
			tc.fn(t, s, client)
		})
	}
}

func newInstance(name, node string) *v1.Instance {
	return &v1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "l4d2"}},
		Spec:       v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: node, State: v1.StateRunning},
	}
}

func mustCreate(t *testing.T, s *storage.Store, obj v1.Object) v1.Object {
	t.Helper()
	res, _ := resources.ByKind(fmt.Sprintf("%T", obj)[len("*v1alpha1."):])
	out, err := s.Create(context.Background(), res, obj, storage.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", obj.GetName(), err)
	}
	return out
}

func testCreate(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	out := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	if out.UID == "" || out.CreationTimestamp.IsZero() || out.Generation != 1 || out.ResourceVersion == "" {
		t.Fatalf("identity not assigned: uid=%q created=%v gen=%d rv=%q", out.UID, out.CreationTimestamp, out.Generation, out.ResourceVersion)
	}
	got, err := s.Get(ctx, instances, "default", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetUID() != out.UID || got.GetResourceVersion() != out.ResourceVersion {
		t.Fatalf("get returned uid=%s rv=%s, want %s %s", got.GetUID(), got.GetResourceVersion(), out.UID, out.ResourceVersion)
	}
	if _, err := s.Create(ctx, instances, newInstance("a", "n1"), storage.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: want AlreadyExists, got %v", err)
	}
	if _, err := s.Get(ctx, instances, "default", "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing: want NotFound, got %v", err)
	}
	if _, _, err := s.Delete(ctx, instances, "default", "missing", storage.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete missing: want NotFound, got %v", err)
	}
}

func testNamespaceMustExist(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	in := newInstance("a", "")
	in.Namespace = "nowhere"
	_, err := s.Create(context.Background(), instances, in, storage.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("create in missing namespace: want NotFound, got %v", err)
	}
	list, err := s.List(context.Background(), instances, storage.ListOptions{})
	if err != nil || len(list.(*v1.InstanceList).Items) != 0 {
		t.Fatalf("the refused create left something behind: %v %v", list, err)
	}
}

func testUpdateConflict(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	first := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	second := first.DeepCopy()
	first.Spec.Hostname = "one"
	if _, err := s.Update(ctx, instances, first, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	second.Spec.Hostname = "two"
	if _, err := s.Update(ctx, instances, second, storage.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}
	got, _ := s.Get(ctx, instances, "default", "a")
	if h := got.(*v1.Instance).Spec.Hostname; h != "one" {
		t.Fatalf("stale update changed the object: hostname %q", h)
	}
	noRV := got.DeepCopyObject().(*v1.Instance)
	noRV.ResourceVersion = ""
	if _, err := s.Update(ctx, instances, noRV, storage.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("update without resourceVersion: want Invalid, got %v", err)
	}
}

// testUpdateRace: many writers update from the same read; exactly one wins.
func testUpdateRace(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	base := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			in := base.DeepCopy()
			in.Spec.Hostname = fmt.Sprintf("writer-%d", i)
			_, err := s.Update(ctx, instances, in, storage.UpdateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case apierrors.IsConflict(err):
				conflicts++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || conflicts != 15 {
		t.Fatalf("racing updates: %d won, %d conflicted; want 1 and 15", wins, conflicts)
	}
}

func testGeneration(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	in := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	in.Labels["tier"] = "gold"
	out, err := s.Update(ctx, instances, in, storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.GetGeneration() != 1 {
		t.Fatalf("label change bumped generation to %d", out.GetGeneration())
	}
	in = out.(*v1.Instance)
	in.Spec.State = v1.StateStopped
	out, err = s.Update(ctx, instances, in, storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.GetGeneration() != 2 {
		t.Fatalf("spec change: generation %d, want 2", out.GetGeneration())
	}
	// Identity fields cannot be overwritten by an update.
	in = out.(*v1.Instance)
	uid := in.UID
	in.UID = "forged"
	in.Generation = 99
	out, err = s.Update(ctx, instances, in, storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.GetUID() != uid || out.GetGeneration() != 2 {
		t.Fatalf("update changed identity: uid %s gen %d", out.GetUID(), out.GetGeneration())
	}
}

func testStatus(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	in := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	// The main resource ignores status.
	in.Status.Phase = v1.PhaseRunning
	out, err := s.Update(ctx, instances, in, storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.(*v1.Instance).Status.Phase; p != "" {
		t.Fatalf("main update wrote status.phase %q", p)
	}
	// The status subresource changes only status.
	in = out.(*v1.Instance)
	in.Status.Phase = v1.PhaseRunning
	in.Spec.Hostname = "sneaky"
	in.Labels = map[string]string{"x": "y"}
	out, err = s.Update(ctx, instances, in, storage.UpdateOptions{Status: true})
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1.Instance)
	if got.Status.Phase != v1.PhaseRunning || got.Spec.Hostname != "" || got.Labels["x"] == "y" || got.Generation != 1 {
		t.Fatalf("status update: phase %q hostname %q labels %v gen %d", got.Status.Phase, got.Spec.Hostname, got.Labels, got.Generation)
	}
	stored, _ := s.Get(ctx, instances, "default", "a")
	if stored.(*v1.Instance).Status.Phase != v1.PhaseRunning {
		t.Fatal("status not stored")
	}
}

func testFinalizers(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	in := newInstance("a", "n1")
	in.Finalizers = []string{"left4me.io/node-cleanup"}
	mustCreate(t, s, in)
	obj, gone, err := s.Delete(ctx, instances, "default", "a", storage.DeleteOptions{})
	if err != nil || gone {
		t.Fatalf("delete with finalizer: gone=%v err=%v", gone, err)
	}
	if obj.GetDeletionTimestamp() == nil {
		t.Fatal("deletionTimestamp not set")
	}
	cur, err := s.Get(ctx, instances, "default", "a")
	if err != nil || cur.GetDeletionTimestamp() == nil {
		t.Fatalf("object should remain, marked for deletion: %v %v", cur, err)
	}
	add := cur.DeepCopyObject().(*v1.Instance)
	add.Finalizers = append(add.Finalizers, "other/finalizer")
	if _, err := s.Update(ctx, instances, add, storage.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("adding a finalizer while deleting: want Forbidden, got %v", err)
	}
	drop := cur.DeepCopyObject().(*v1.Instance)
	drop.Finalizers = nil
	if _, err := s.Update(ctx, instances, drop, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, instances, "default", "a"); !apierrors.IsNotFound(err) {
		t.Fatalf("after the last finalizer: want NotFound, got %v", err)
	}
}

func testDeleteNamespace(t *testing.T, s *storage.Store, c *clientv3.Client) {
	ctx := context.Background()
	if err := s.EnsureNamespace(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureNamespace(ctx, "team-b"); err != nil {
		t.Fatal(err)
	}
	in := newInstance("a", "")
	in.Namespace = "team-b" // a namespace whose name extends "team"
	mustCreate(t, s, in)
	in = newInstance("a", "")
	in.Namespace = "team"
	mustCreate(t, s, in)
	if _, _, err := s.Delete(ctx, namespaces, "", "team", storage.DeleteOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("delete non-empty namespace: want Conflict, got %v", err)
	}
	if _, err := s.Get(ctx, namespaces, "", "team"); err != nil {
		t.Fatalf("refused delete removed the namespace: %v", err)
	}
	if _, _, err := s.Delete(ctx, instances, "team", "a", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, gone, err := s.Delete(ctx, namespaces, "", "team", storage.DeleteOptions{}); err != nil || !gone {
		t.Fatalf("delete empty namespace: gone=%v err=%v", gone, err)
	}
	if _, err := s.Get(ctx, instances, "team-b", "a"); err != nil {
		t.Fatalf("deleting team touched team-b: %v", err)
	}
	// Nothing of the deleted namespace stays in etcd (its quota guard
	// included); team-b's stays.
	resp, err := c.Get(ctx, s.Prefix()+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	keptB := false
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if strings.HasSuffix(k, "/team") || strings.Contains(k, "/team/") {
			t.Errorf("key %s of the deleted namespace left in etcd", k)
		}
		keptB = keptB || strings.HasSuffix(k, "quotaguards/instances/team-b")
	}
	if !keptB {
		t.Error("team-b's quota guard went with team")
	}
}

func testList(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		in := newInstance(fmt.Sprintf("srv%02d", i), fmt.Sprintf("n%d", i%3))
		if i%5 == 0 {
			in.Labels["mode"] = "versus"
		}
		mustCreate(t, s, in)
	}
	names := func(l v1.ListObject) []string {
		var out []string
		for _, i := range l.(*v1.InstanceList).Items {
			out = append(out, i.Name)
		}
		return out
	}
	sel, _ := labels.Parse("mode=versus")
	l, err := s.List(ctx, instances, storage.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l); fmt.Sprint(got) != "[srv00 srv05 srv10 srv15 srv20]" {
		t.Fatalf("label selector: %v", got)
	}
	l, err = s.List(ctx, instances, storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l); len(got) != 8 || got[0] != "srv01" {
		t.Fatalf("field selector spec.nodeName=n1: %v", got)
	}
	// metadata.name reads that one key: never its longer neighbours, and
	// the selector's other terms still filter.
	for _, tc := range []struct{ ns, sel, want string }{
		{"default", "metadata.name=srv01", "[srv01]"},
		{"default", "metadata.name=srv0", "[]"},
		{"default", "metadata.name=srv01,spec.nodeName=n1", "[srv01]"},
		{"default", "metadata.name=srv01,spec.nodeName=n2", "[]"},
		{"default", "metadata.name!=srv01,spec.nodeName=n1", "[srv04 srv07 srv10 srv13 srv16 srv19 srv22]"},
		{"", "metadata.name=srv01", "[srv01]"}, // across namespaces: not one key, still right
		{"other", "metadata.name=srv01", "[]"},
	} {
		sel, err := fields.ParseSelector(tc.sel)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.List(ctx, instances, storage.ListOptions{Namespace: tc.ns, FieldSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(names(l)); got != tc.want {
			t.Errorf("namespace %q, field selector %s: %s, want %s", tc.ns, tc.sel, got, tc.want)
		}
	}
	if _, err := s.List(ctx, instances, storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.bogus", "x")}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unknown field selector: want BadRequest, got %v", err)
	}

	// Paging: 10 + 10 + 5, from one snapshot even when writes happen between pages.
	var all []string
	opts := storage.ListOptions{Limit: 10}
	for page := 0; ; page++ {
		l, err := s.List(ctx, instances, opts)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, names(l)...)
		if page == 0 {
			if rem := l.GetRemainingItemCount(); rem == nil || *rem != 15 {
				t.Fatalf("remainingItemCount after page 1: %v", rem)
			}
			mustCreate(t, s, newInstance("srv99", "n0"))
		}
		if l.GetContinue() == "" {
			break
		}
		opts.Continue = l.GetContinue()
	}
	if len(all) != 25 || all[24] != "srv24" {
		t.Fatalf("paged list: %d items %v", len(all), all)
	}
	// Paging with a selector still fills pages.
	l, err = s.List(ctx, instances, storage.ListOptions{Limit: 2, FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l); fmt.Sprint(got) != "[srv02 srv05]" || l.GetContinue() == "" {
		t.Fatalf("filtered page: %v continue=%q", got, l.GetContinue())
	}
	if _, err := s.List(ctx, instances, storage.ListOptions{Continue: "garbage"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("bad continue token: want BadRequest, got %v", err)
	}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func expect(t *testing.T, w watch.Interface, typ watch.EventType, name string) v1.Object {
	t.Helper()
	ev := next(t, w)
	obj, ok := ev.Object.(v1.Object)
	if ev.Type != typ || !ok || obj.GetName() != name {
		t.Fatalf("watch: got %s %v, want %s %s", ev.Type, ev.Object, typ, name)
	}
	return obj
}

func testWatch(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	w, err := s.Watch(ctx, instances, storage.ListOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := mustCreate(t, s, newInstance("a", "n1")).(*v1.Instance)
	added := expect(t, w, watch.Added, "a")
	if added.GetResourceVersion() != in.ResourceVersion {
		t.Fatalf("ADDED rv %s, want %s", added.GetResourceVersion(), in.ResourceVersion)
	}
	in.Spec.Hostname = "x"
	if _, err := s.Update(ctx, instances, in, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, w, watch.Modified, "a").(*v1.Instance); got.Spec.Hostname != "x" {
		t.Fatalf("MODIFIED carries hostname %q", got.Spec.Hostname)
	}
	if _, _, err := s.Delete(ctx, instances, "default", "a", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Deleted, "a")
	w.Stop()
	for range w.ResultChan() {
	}
}

// testWatchFieldSelector: nodes watching their own Instances (the watch
// cache files them by spec.nodeName) see an Instance bound to them as
// ADDED and moved away as DELETED, and are not woken by anyone else's;
// watchers it cannot file that way (all Instances, a != selector, a label
// selector beside the node) see what their selectors say.
func testWatchFieldSelector(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	open := func(opts storage.ListOptions) watch.Interface {
		t.Helper()
		w, err := s.Watch(ctx, instances, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	n1 := open(storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n1")})
	n2 := open(storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n2")})
	unbound := open(storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "")})
	all := open(storage.ListOptions{Namespace: "default"})
	notN1 := open(storage.ListOptions{FieldSelector: fields.OneTermNotEqualSelector("spec.nodeName", "n1")})
	n1Versus := open(storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "n1"), LabelSelector: labels.SelectorFromSet(labels.Set{"mode": "versus"})})

	mustCreate(t, s, newInstance("other", "n3"))
	in := mustCreate(t, s, newInstance("mine", "")).(*v1.Instance)
	move := func(node string) {
		t.Helper()
		in.Spec.NodeName = node
		out, err := s.Update(ctx, instances, in, storage.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		in = out.(*v1.Instance)
	}
	move("n1") // the scheduler binds it
	move("n2") // and moves it
	if _, _, err := s.Delete(ctx, instances, "default", "mine", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A last Instance on every node: each watcher's next event after the
	// expected ones must be this one, so nothing else came in between.
	last := newInstance("last", "n1")
	last.Labels["mode"] = "versus"
	mustCreate(t, s, last)
	last2 := newInstance("last2", "n2")
	mustCreate(t, s, last2)
	last3 := newInstance("last3", "")
	mustCreate(t, s, last3)

	type ev struct {
		typ  watch.EventType
		name string
	}
	for _, tc := range []struct {
		name string
		w    watch.Interface
		want []ev
	}{
		{"node n1", n1, []ev{{watch.Added, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "last"}}},
		{"node n2", n2, []ev{{watch.Added, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "last2"}}},
		{"unbound", unbound, []ev{{watch.Added, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "last3"}}},
		{"all", all, []ev{{watch.Added, "other"}, {watch.Added, "mine"}, {watch.Modified, "mine"}, {watch.Modified, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "last"}}},
		{"not n1", notN1, []ev{{watch.Added, "other"}, {watch.Added, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "mine"}, {watch.Deleted, "mine"}, {watch.Added, "last2"}}},
		{"n1 versus", n1Versus, []ev{{watch.Added, "last"}}},
	} {
		for _, want := range tc.want {
			got := next(t, tc.w)
			if obj, ok := got.Object.(v1.Object); got.Type != want.typ || !ok || obj.GetName() != want.name {
				t.Fatalf("%s watcher: got %s %v, want %s %s", tc.name, got.Type, got.Object, want.typ, want.name)
			}
		}
	}
}

// testWatchOwnNode: a node agent watching its own Node by name (filed by
// metadata.name) sees its Node's changes and no other's.
func testWatchOwnNode(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	w, err := s.Watch(ctx, nodes, storage.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "node-a")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}})
	mine := mustCreate(t, s, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}).(*v1.Node)
	mine.Labels = map[string]string{"pool": "eu"}
	if _, err := s.Update(ctx, nodes, mine, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-aa"}})
	if _, _, err := s.Delete(ctx, nodes, "", "node-a", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Added, "node-a")
	if got := expect(t, w, watch.Modified, "node-a"); got.GetLabels()["pool"] != "eu" {
		t.Fatalf("MODIFIED carries labels %v", got.GetLabels())
	}
	expect(t, w, watch.Deleted, "node-a")
}

// testWatchSlowClient: a watcher that stops reading falls behind by the
// cache's buffer and its watch ends; what it was handed still arrives in
// order, and it resumes from the last resourceVersion it saw without
// losing an event.
func testWatchSlowClient(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	w, err := s.Watch(ctx, instances, storage.ListOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const total = 1200 // more than the 1,024 events a watcher may fall behind
	for i := 0; i < total; i++ {
		mustCreate(t, s, newInstance(fmt.Sprintf("i-%04d", i), "n1"))
	}
	seen, rv := 0, ""
	for ev := range w.ResultChan() {
		obj := ev.Object.(v1.Object)
		if want := fmt.Sprintf("i-%04d", seen); ev.Type != watch.Added || obj.GetName() != want {
			t.Fatalf("event %d: got %s %s, want ADDED %s", seen, ev.Type, obj.GetName(), want)
		}
		seen, rv = seen+1, obj.GetResourceVersion()
	}
	if seen == 0 || seen >= total {
		t.Fatalf("the stalled watcher got %d of %d events before its watch ended; want it ended part-way", seen, total)
	}
	w2, err := s.Watch(ctx, instances, storage.ListOptions{Namespace: "default", ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	for ; seen < total; seen++ {
		expect(t, w2, watch.Added, fmt.Sprintf("i-%04d", seen))
	}
}

func testWatchCompacted(t *testing.T, s *storage.Store, c *clientv3.Client) {
	ctx := context.Background()
	first := mustCreate(t, s, newInstance("a", "n1"))
	mustCreate(t, s, newInstance("b", "n1"))
	// Resume from the first create: the second arrives from history.
	w, err := s.Watch(ctx, instances, storage.ListOptions{ResourceVersion: first.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Added, "b")
	w.Stop()
	last := mustCreate(t, s, newInstance("c", "n1"))
	rev, _ := s.CurrentRevision(ctx)
	if _, err := c.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, err = s.Watch(ctx, instances, storage.ListOptions{ResourceVersion: first.GetResourceVersion()})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from compacted revision: want 410 Gone, got %v", err)
	}
	if code := apierrors.ReasonForError(err); code != metav1.StatusReasonExpired {
		t.Fatalf("reason %s", code)
	}
	// The present is still watchable.
	w, err = s.Watch(ctx, instances, storage.ListOptions{ResourceVersion: last.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, newInstance("d", "n1"))
	expect(t, w, watch.Added, "d")
}

func testDryRun(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	out, err := s.Create(ctx, instances, newInstance("a", "n1"), storage.CreateOptions{DryRun: true})
	if err != nil || out.GetName() != "a" {
		t.Fatalf("dry-run create: %v %v", out, err)
	}
	if _, err := s.Get(ctx, instances, "default", "a"); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create stored the object: %v", err)
	}
	in := mustCreate(t, s, newInstance("a", "n1"))
	if _, _, err := s.Delete(ctx, instances, "default", "a", storage.DeleteOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, instances, "default", "a"); err != nil {
		t.Fatalf("dry-run delete removed the object: %v", err)
	}
	upd := in.DeepCopyObject().(*v1.Instance)
	upd.Spec.Hostname = "changed"
	if _, err := s.Update(ctx, instances, upd, storage.UpdateOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, instances, "default", "a")
	if got.(*v1.Instance).Spec.Hostname != "" || got.GetResourceVersion() != in.GetResourceVersion() {
		t.Fatal("dry-run update changed the object")
	}
}

func testEventLease(t *testing.T, s *storage.Store, c *clientv3.Client) {
	ctx := context.Background()
	ev := &v1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "a.1", Namespace: "default"},
		InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "a"},
		Type:           v1.EventTypeNormal, Reason: "Scheduled", Message: "bound to n1",
	}
	mustCreate(t, s, ev)
	list, err := s.List(ctx, events, storage.ListOptions{Namespace: "default"})
	if err != nil || len(list.(*v1.EventList).Items) != 1 {
		t.Fatalf("event list: %v %v", list, err)
	}
	// The event's key is bound to a lease of one hour (and at most a minute
	// more: Events written within a minute share one lease).
	resp, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, kv := range resp.Kvs {
		if string(kv.Value) != "" && kv.Lease != 0 {
			ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			if err != nil {
				t.Fatal(err)
			}
			if ttl.GrantedTTL < int64(storage.EventTTL/time.Second) || ttl.GrantedTTL > int64((storage.EventTTL+time.Minute)/time.Second) {
				t.Fatalf("event lease TTL %d", ttl.GrantedTTL)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no event key carries a lease")
	}
	_ = nodes
}

// testQuotaExact: 200 creates from 16 goroutines against a cap of 50 end
// with exactly 50 objects; every other create is refused with 403 and a
// message naming the quota. Counting and then writing in two steps let
// creates racing at the cap all pass (10,012 objects for 10,000).
func testQuotaExact(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	const limit, creates, workers = 50, 200, 16
	names := make(chan string, creates)
	for i := 0; i < creates; i++ {
		names <- fmt.Sprintf("srv-%03d", i)
	}
	close(names)
	var mu sync.Mutex
	created, refused := 0, 0
	var other []error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				_, err := s.Create(ctx, instances, newInstance(name, ""), storage.CreateOptions{MaxInNamespace: limit})
				mu.Lock()
				switch {
				case err == nil:
					created++
				case apierrors.IsForbidden(err) && strings.Contains(err.Error(), `exceeded quota: namespace "default" already holds 50 instances`):
					refused++
				default:
					other = append(other, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	list, err := s.List(ctx, instances, storage.ListOptions{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.(*v1.InstanceList).Items); n != limit || created != limit || refused != creates-limit {
		t.Fatalf("cap %d: %d stored, %d creates succeeded, %d refused", limit, n, created, refused)
	}
	// Another kind in the same namespace has its own count; a dry run at
	// the cap is refused like the real thing.
	if _, err := s.Create(ctx, events, &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"}}, storage.CreateOptions{MaxInNamespace: limit}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, instances, newInstance("one-more", ""), storage.CreateOptions{DryRun: true, MaxInNamespace: limit}); !apierrors.IsForbidden(err) {
		t.Fatalf("dry run at the cap: %v", err)
	}
}
