package storage_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

// testPortClaimRace: twenty writers race for port 27015 on one node, half by
// creating Instances that name it, half by binding unbound Instances to it
// the way the scheduler does. Exactly one may win.
func testPortClaimRace(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	var unbound []*v1.Instance
	for i := range 10 {
		unbound = append(unbound, mustCreate(t, s, newInstance(fmt.Sprintf("free-%d", i), "")).(*v1.Instance))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			in := newInstance(fmt.Sprintf("named-%d", i), "node-1")
			in.Spec.Port = 27015
			_, err := s.Create(ctx, instances, in, storage.CreateOptions{})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			b := unbound[i].DeepCopy()
			b.Spec.NodeName, b.Status.Port = "node-1", 27015
			_, err := s.Update(ctx, instances, b, storage.UpdateOptions{SpecAndStatus: true})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case apierrors.IsConflict(err) && strings.Contains(err.Error(), "port 27015 on node node-1 is already used by Instance default/"):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers got port 27015 on node-1; want exactly 1", wins)
	}
	claims, err := s.PortClaims(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 {
		t.Fatalf("claims on node-1 = %v, want one", claims)
	}
	// The same port on another node is free.
	other := newInstance("other-node", "node-2")
	other.Spec.Port = 27015
	mustCreate(t, s, other)
}

// testPortClaimLifecycle: a claim moves with the Instance's port and node and
// goes when the Instance is gone (not while a finalizer holds it).
func testPortClaimLifecycle(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	in := newInstance("a", "node-1")
	in.Spec.Port = 27015
	in.Finalizers = []string{"example.com/hold"}
	cur := mustCreate(t, s, in).(*v1.Instance)
	wantClaims := func(node string, want map[int32]string) {
		t.Helper()
		got, err := s.PortClaims(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("claims on %s = %v, want %v", node, got, want)
		}
	}
	wantClaims("node-1", map[int32]string{27015: "default/a"})

	cur.Spec.Port = 27016
	cur = mustUpdate(t, s, cur)
	wantClaims("node-1", map[int32]string{27016: "default/a"})

	// A user's port that another Instance holds is refused, and nothing changes.
	b := newInstance("b", "node-1")
	b.Spec.Port = 27016
	if _, err := s.Create(ctx, instances, b, storage.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("create on a taken port: %v, want 409", err)
	}
	if _, err := s.Get(ctx, instances, "default", "b"); !apierrors.IsNotFound(err) {
		t.Fatalf("refused Instance was stored: %v", err)
	}
	// Dry runs see the conflict too.
	if _, err := s.Create(ctx, instances, b, storage.CreateOptions{DryRun: true}); !apierrors.IsConflict(err) {
		t.Fatalf("dry-run create on a taken port: %v, want 409", err)
	}

	// Unbinding releases the claim; binding elsewhere takes one there.
	cur.Spec.NodeName = "node-2"
	mustUpdate(t, s, cur)
	wantClaims("node-1", map[int32]string{})
	wantClaims("node-2", map[int32]string{27016: "default/a"})

	if _, _, err := s.Delete(ctx, instances, "default", "a", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantClaims("node-2", map[int32]string{27016: "default/a"})
	cur = mustGet(t, s, "a")
	cur.Finalizers = nil
	if _, err := s.Update(ctx, instances, cur, storage.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantClaims("node-2", map[int32]string{})

	// Deleting an Instance without finalizers frees its port at once.
	c := newInstance("c", "node-2")
	c.Spec.Port = 27016
	mustCreate(t, s, c)
	if _, _, err := s.Delete(ctx, instances, "default", "c", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantClaims("node-2", map[int32]string{})
}

func mustUpdate(t *testing.T, s *storage.Store, in *v1.Instance) *v1.Instance {
	t.Helper()
	out, err := s.Update(context.Background(), instances, in, storage.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out.(*v1.Instance)
}

func mustGet(t *testing.T, s *storage.Store, name string) *v1.Instance {
	t.Helper()
	out, err := s.Get(context.Background(), instances, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*v1.Instance)
}

// testUpdateWithCurrent: a controller's cached copy saves the read, and a
// stale one cannot sneak a write past a newer version.
func testUpdateWithCurrent(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	cached := mustCreate(t, s, newInstance("a", "")).(*v1.Instance)
	next := cached.DeepCopy()
	next.Spec.Hostname = "first"
	if _, err := s.Update(ctx, instances, next, storage.UpdateOptions{Current: cached}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "a"); got.Spec.Hostname != "first" || got.Generation != 2 || got.UID != cached.UID {
		t.Fatalf("after an update with the cached copy: %+v", got.ObjectMeta)
	}
	stale := cached.DeepCopy()
	stale.Spec.Hostname = "second"
	if _, err := s.Update(ctx, instances, stale, storage.UpdateOptions{Current: cached}); !apierrors.IsConflict(err) {
		t.Fatalf("update from a stale cached copy: %v, want 409", err)
	}
	if got := mustGet(t, s, "a"); got.Spec.Hostname != "first" {
		t.Fatalf("the stale write landed: %q", got.Spec.Hostname)
	}
}
