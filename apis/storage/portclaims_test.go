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
	if len(claims) != 2 || claims[27015] == "" || claims[28015] != claims[27015] {
		t.Fatalf("claims on node-1 = %v, want the winner's game and client ports", claims)
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
	wantClaims("node-1", map[int32]string{27015: "default/a", 28015: "default/a"})

	// A's client port is no one else's game port, and its game port no
	// one else's client port.
	for port, msg := range map[int32]string{
		28015: "port 28015 on node node-1 is already used by Instance default/a",
		26015: "port 27015 on node node-1 (the client port of game port 26015) is already used by Instance default/a",
	} {
		clash := newInstance("clash", "node-1")
		clash.Spec.Port = port
		if _, err := s.Create(ctx, instances, clash, storage.CreateOptions{}); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("create on port %d: %v, want 409 %q", port, err, msg)
		}
	}
	wantClaims("node-1", map[int32]string{27015: "default/a", 28015: "default/a"})

	// Moving by the offset keeps the shared port and swaps the others.
	cur.Spec.Port = 28015
	cur = mustUpdate(t, s, cur)
	wantClaims("node-1", map[int32]string{28015: "default/a", 29015: "default/a"})

	cur.Spec.Port = 27016
	cur = mustUpdate(t, s, cur)
	wantClaims("node-1", map[int32]string{27016: "default/a", 28016: "default/a"})

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
	wantClaims("node-2", map[int32]string{27016: "default/a", 28016: "default/a"})

	if _, _, err := s.Delete(ctx, instances, "default", "a", storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantClaims("node-2", map[int32]string{27016: "default/a", 28016: "default/a"})
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

// testClientPortClaimRace: thirty writers race on node-1 for ports that
// overlap only through the client port (game + 1000): Instances naming
// 27015 (27015, 28015), naming 28015 (28015, 29015), and unbound ones bound
// to 27015 the way the scheduler does. Every pair shares a port, so exactly
// one may win, and only its two claims exist afterwards.
func testClientPortClaimRace(t *testing.T, s *storage.Store, _ *clientv3.Client) {
	ctx := context.Background()
	var unbound []*v1.Instance
	for i := range 10 {
		unbound = append(unbound, mustCreate(t, s, newInstance(fmt.Sprintf("free-%d", i), "")).(*v1.Instance))
	}
	var wg sync.WaitGroup
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 30)
	for i := range 10 {
		for _, port := range []int32{27015, 28015} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := newInstance(fmt.Sprintf("named-%d-%d", port, i), "node-1")
				in.Spec.Port = port
				_, err := s.Create(ctx, instances, in, storage.CreateOptions{})
				results <- result{in.Name, err}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := unbound[i].DeepCopy()
			b.Spec.NodeName, b.Status.Port = "node-1", 27015
			_, err := s.Update(ctx, instances, b, storage.UpdateOptions{SpecAndStatus: true})
			results <- result{b.Name, err}
		}()
	}
	wg.Wait()
	close(results)
	var winners []string
	for r := range results {
		switch {
		case r.err == nil:
			winners = append(winners, r.name)
		case apierrors.IsConflict(r.err) && strings.Contains(r.err.Error(), " on node node-1 ") &&
			strings.Contains(r.err.Error(), "is already used by Instance default/"):
		default:
			t.Errorf("%s: unexpected error: %v", r.name, r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%v all got overlapping ports on node-1; want exactly one winner", winners)
	}
	w := mustGet(t, s, winners[0])
	claims, err := s.PortClaims(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]string{w.GamePort(): "default/" + w.Name, w.GamePort() + 1000: "default/" + w.Name}
	if fmt.Sprint(claims) != fmt.Sprint(want) {
		t.Fatalf("claims on node-1 = %v, want %v", claims, want)
	}
}

// testRepairPortClaims: an etcd written before client ports were claimed
// holds game-port claims only. The repair takes the missing client-port
// claims and reports, without stealing, one another Instance holds.
func testRepairPortClaims(t *testing.T, s *storage.Store, c *clientv3.Client) {
	ctx := context.Background()
	// dropClaim removes a claim the way an older version never wrote it.
	dropClaim := func(owner string, port int32) {
		t.Helper()
		resp, err := c.Get(ctx, "/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			if strings.HasSuffix(string(kv.Key), fmt.Sprintf("/portclaims/node-1/%d", port)) && string(kv.Value) == owner {
				if _, err := c.Delete(ctx, string(kv.Key)); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("no claim of %s on port %d", owner, port)
	}
	legacy := newInstance("legacy-game", "node-1")
	legacy.Spec.Port = 27015
	mustCreate(t, s, legacy)
	dropClaim("default/legacy-game", 28015)
	// What the old version let through: a game on the other's client port.
	clash := newInstance("legacy-clash", "node-1")
	clash.Spec.Port = 28015
	mustCreate(t, s, clash)
	quiet := newInstance("legacy-quiet", "node-1")
	quiet.Spec.Port = 27020
	mustCreate(t, s, quiet)
	dropClaim("default/legacy-quiet", 28020)

	for round := range 2 {
		repaired, conflicts, err := s.RepairPortClaims(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 - round; repaired != want {
			t.Errorf("round %d: repaired %d claims, want %d", round, repaired, want)
		}
		const msg = "Instance default/legacy-game binds port 28015 on node node-1 (the client port of game port 27015), which Instance default/legacy-clash holds"
		if len(conflicts) != 1 || conflicts[0].Error() != msg {
			t.Errorf("round %d: conflicts %v, want [%s]", round, conflicts, msg)
		}
	}
	claims, err := s.PortClaims(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]string{27015: "default/legacy-game", 28015: "default/legacy-clash", 29015: "default/legacy-clash",
		27020: "default/legacy-quiet", 28020: "default/legacy-quiet"}
	if fmt.Sprint(claims) != fmt.Sprint(want) {
		t.Fatalf("claims on node-1 after the repair = %v, want %v", claims, want)
	}
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
