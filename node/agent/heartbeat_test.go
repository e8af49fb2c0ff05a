package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// reported is a status as reportedStatus makes it, heartbeat at hb.
func reported(hb time.Time, mut ...func(*v1.NodeStatus)) v1.NodeStatus {
	since := metav1.NewTime(time.Date(2026, 12, 4, 0, 0, 0, 123456789, time.UTC))
	h := metav1.NewTime(hb)
	st := v1.NodeStatus{
		Addresses: []string{"10.0.0.7"}, HeartbeatTime: &h, AgentVersion: "v1.2.3",
		Installation:  v1.LegacyInstallation{Present: true, Build: "2.2.4.3"},
		Installations: []v1.NodeInstallation{{Name: "l4d2", Phase: v1.InstallReady, Builds: []string{"123"}}},
		LogsEndpoint:  &v1.LogsEndpoint{Port: 7443, CertSHA256: "ab"},
		Conditions: []metav1.Condition{
			{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat", Message: "l4m-node is running", LastTransitionTime: since},
			{Type: v1.NodeInstancesSynced, Status: metav1.ConditionTrue, Reason: "Synced", Message: "every Instance bound here reconciled since l4m-node started", LastTransitionTime: since},
		},
	}
	for _, m := range mut {
		m(&st)
	}
	return st
}

// storedAs is st as the API keeps it: what a write of st's patch stored
// (times in seconds) and a field the agent does not write.
func storedAs(t *testing.T, st v1.NodeStatus, mut ...func(*v1.NodeStatus)) *v1.NodeStatus {
	t.Helper()
	patch, err := statusPatch(st)
	if err != nil {
		t.Fatal(err)
	}
	var out v1.NodeStatus
	out.ObservedGeneration = 4
	changed, err := statusChanged(out, patch)
	if err != nil || !changed {
		t.Fatalf("writing into an empty status changes nothing (%v)", err)
	}
	if out, err = mergeStatus(out, patch); err != nil {
		t.Fatal(err)
	}
	for _, m := range mut {
		m(&out)
	}
	return &out
}

func TestStatusWriteDue(t *testing.T) {
	written := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	report := 5 * time.Minute
	later := written.Add(10 * time.Second)
	tests := []struct {
		name     string
		stored   func(t *testing.T) *v1.NodeStatus
		reported v1.NodeStatus
		renewed  bool
		now      time.Time
		want     bool
		wantWhy  string
	}{
		{"the API's copy is not known yet", func(*testing.T) *v1.NodeStatus { return nil }, reported(later), true, later, true, "not known"},
		{"nothing changed but heartbeatTime", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) }, reported(later), true, later, false, ""},
		{"nothing changed, sub-second times the API drops", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) {
				s.Conditions[0].LastTransitionTime.Time = s.Conditions[0].LastTransitionTime.Add(time.Microsecond)
			}), true, later, false, ""},
		{"nothing changed, the Lease not renewed: the status is the heartbeat", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) }, reported(later), false, later, true, "Lease"},
		{"the report period is over", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) }, reported(written.Add(report)), true, written.Add(report), true, "report period"},
		{"just inside the report period", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) }, reported(written.Add(report - time.Second)), true, written.Add(report - time.Second), false, ""},
		{"the node's clock went back", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) }, reported(written.Add(-time.Hour)), true, written.Add(-time.Hour), true, "report period"},
		{"no heartbeatTime stored", func(t *testing.T) *v1.NodeStatus {
			return storedAs(t, reported(written), func(s *v1.NodeStatus) { s.HeartbeatTime = nil })
		}, reported(later), true, later, true, "report period"},
		{"the node lifecycle controller marked it Ready=Unknown", func(t *testing.T) *v1.NodeStatus {
			return storedAs(t, reported(written), func(s *v1.NodeStatus) {
				s.Conditions[0].Status, s.Conditions[0].Reason = metav1.ConditionUnknown, "NodeStatusUnknown"
			})
		}, reported(later), true, later, true, "changed"},
		{"Ready moved (heartbeats failed meanwhile)", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.Conditions[0].LastTransitionTime = metav1.NewTime(later) }), true, later, true, "changed"},
		{"an Installation's build is ready", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.Installations[0].Builds = []string{"124", "123"} }), true, later, true, "changed"},
		{"the last Installation dropped out", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.Installations = nil }), true, later, true, "changed"},
		{"an Overlay appeared", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) {
				s.Overlays = []v1.NodeOverlay{{Namespace: "default", Name: "maps", Digest: "sha256:aa", Phase: "Ready"}}
			}), true, later, true, "changed"},
		{"another address", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.Addresses = []string{"10.0.0.8"} }), true, later, true, "changed"},
		{"the agent upgraded", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.AgentVersion = "v1.2.4" }), true, later, true, "changed"},
		// A merge patch leaves what it does not name: a log server that is
		// gone stays in the API, so the same report would write forever if
		// the comparison did not apply the patch as the server does.
		{"no log server any more: the patch cannot drop it, so no write", func(t *testing.T) *v1.NodeStatus { return storedAs(t, reported(written)) },
			reported(later, func(s *v1.NodeStatus) { s.LogsEndpoint = nil }), true, later, false, ""},
		{"a field the agent does not write differs", func(t *testing.T) *v1.NodeStatus {
			return storedAs(t, reported(written), func(s *v1.NodeStatus) { s.ObservedGeneration = 9 })
		}, reported(later), true, later, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := statusPatch(tc.reported)
			if err != nil {
				t.Fatal(err)
			}
			due, why, err := statusWriteDue(tc.stored(t), patch, tc.renewed, tc.now, report)
			if err != nil {
				t.Fatal(err)
			}
			if due != tc.want || !strings.Contains(why, tc.wantWhy) {
				t.Fatalf("statusWriteDue = %v (%q), want %v (%q)", due, why, tc.want, tc.wantWhy)
			}
		})
	}
}

func TestRenewedLease(t *testing.T) {
	t0 := metav1.NewMicroTime(time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC))
	now := metav1.NewMicroTime(t0.Add(10 * time.Second))
	held := &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "host-a", ResourceVersion: "41"},
		Spec: v1.LeaseSpec{HolderIdentity: "host-a", LeaseDurationSeconds: 40, AcquireTime: &t0, RenewTime: &t0}}
	tests := []struct {
		name        string
		cur         *v1.Lease
		wantAcquire metav1.MicroTime
		wantRV      string
	}{
		{"none yet: created, acquired now", nil, now, ""},
		{"held: renewed, acquired when it was", held, t0, "41"},
		{"held by another: taken, acquired now", func() *v1.Lease { l := held.DeepCopy(); l.Spec.HolderIdentity = "host-b"; return l }(), now, "41"},
		{"held, never acquired (written by hand): acquired now", func() *v1.Lease { l := held.DeepCopy(); l.Spec.AcquireTime = nil; return l }(), now, "41"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := renewedLease(tc.cur, "host-a", now, 60)
			if got.Name != "host-a" || got.ResourceVersion != tc.wantRV || got.Spec.HolderIdentity != "host-a" || got.Spec.LeaseDurationSeconds != 60 ||
				!got.Spec.RenewTime.Equal(&now) || !got.Spec.AcquireTime.Equal(&tc.wantAcquire) {
				t.Fatalf("renewedLease = %+v %+v", got.ObjectMeta, got.Spec)
			}
			if got.Spec.RenewTime == got.Spec.AcquireTime {
				t.Fatal("renewTime and acquireTime share one pointer: renewing later would move both")
			}
		})
	}
	if !held.Spec.RenewTime.Equal(&t0) {
		t.Fatal("renewedLease changed the Lease it was given")
	}
}

// TestIdleHeartbeatRenewsOnlyTheLease: an agent with nothing to report
// renews its Lease every period and leaves its Node alone; a Ready=Unknown
// someone else writes is put right at once (the agent watches its Node);
// labels an admin adds reach the agent without it writing anything.
func TestIdleHeartbeatRenewsOnlyTheLease(t *testing.T) {
	h := startBare(t, func(_ *server.Server, o *Options) { o.Heartbeat, o.StatusReport = 50*time.Millisecond, time.Hour })
	ctx := context.Background()
	node := func() *v1.Node {
		t.Helper()
		obj, err := h.admin.Get(ctx, nodeRes, "", "n1")
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*v1.Node)
	}
	waitNode := func(what string, cond func(*v1.Node) bool) *v1.Node {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if obj, err := h.admin.Get(ctx, nodeRes, "", "n1"); err == nil && cond(obj.(*v1.Node)) {
				return obj.(*v1.Node)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s within 15s", what)
		return nil
	}
	// renewals waits until the Lease was renewed n times more.
	renewals := func(n int) *v1.Lease {
		t.Helper()
		var last *v1.Lease
		deadline := time.Now().Add(15 * time.Second)
		for seen := 0; seen < n && time.Now().Before(deadline); {
			obj, err := h.admin.Get(ctx, leaseRes, "", "n1")
			if err == nil {
				l := obj.(*v1.Lease)
				if last == nil || l.ResourceVersion != last.ResourceVersion {
					if last != nil {
						seen++
					}
					last = l
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if last == nil || time.Now().After(deadline) {
			t.Fatalf("the Lease was not renewed %d times within 15s: %+v", n, last)
		}
		return last
	}
	synced := waitNode("InstancesSynced=True", func(n *v1.Node) bool { return meta.IsStatusConditionTrue(n.Status.Conditions, v1.NodeInstancesSynced) })
	l := renewals(5)
	if l.Spec.HolderIdentity != "n1" || l.Spec.LeaseDurationSeconds != v1.NodeLeaseDurationSeconds || l.Spec.AcquireTime == nil || l.Spec.RenewTime.Before(l.Spec.AcquireTime) {
		t.Fatalf("the Lease: %+v", l.Spec)
	}
	if n := node(); n.ResourceVersion != synced.ResourceVersion {
		t.Fatalf("the Node was written while nothing it reports changed: %+v", n.Status)
	}

	// The node lifecycle controller's verdict, which the node contradicts.
	n := node()
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "test"})
	if _, err := h.admin.UpdateStatus(ctx, nodeRes, n); err != nil {
		t.Fatal(err)
	}
	waitNode("Ready=True again", func(n *v1.Node) bool {
		c := meta.FindStatusCondition(n.Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == "AgentHeartbeat"
	})

	labelled, err := h.admin.Patch(ctx, nodeRes, "", "n1", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"zone":"x"}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.agent.inst.mu.Lock()
		zone := h.agent.inst.labels["zone"]
		h.agent.inst.mu.Unlock()
		if zone == "x" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not see its Node's new label within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	renewals(3)
	if n := node(); n.ResourceVersion != labelled.GetResourceVersion() {
		t.Fatalf("a label wrote the Node's status: %+v", n.Status)
	}
}

// TestLeaseRenewalRecovers: a renewal is one update of the copy the agent
// holds; when someone else changed or removed the Lease meanwhile, the
// renewal reads it again (or creates it) and gets through in the same
// heartbeat.
func TestLeaseRenewalRecovers(t *testing.T) {
	srv, admin := servertest.Start(t)
	node := servertest.ClientWithToken(t, srv, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "n1"}))
	a := New(Options{Client: node, NodeName: "n1", Log: testr.New(t)})
	t.Cleanup(a.queue.ShutDown) // Run, which is not called, would
	ctx := context.Background()
	get := func() *v1.Lease {
		t.Helper()
		obj, err := admin.Get(ctx, leaseRes, "", "n1")
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*v1.Lease)
	}
	renew := func(what string) *v1.Lease {
		t.Helper()
		if err := a.renewLeaseOnce(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return get()
	}
	first := renew("the first renewal (a create)")
	if first.Spec.HolderIdentity != "n1" || first.Spec.AcquireTime == nil || !first.Spec.RenewTime.Equal(first.Spec.AcquireTime) {
		t.Fatalf("the created Lease: %+v", first.Spec)
	}
	again := renew("a renewal of the held copy")
	if !again.Spec.RenewTime.After(first.Spec.RenewTime.Time) || !again.Spec.AcquireTime.Equal(first.Spec.AcquireTime) {
		t.Fatalf("renewed: %+v, was %+v", again.Spec, first.Spec)
	}
	// An admin labels it: the agent's copy is stale.
	if _, err := admin.Patch(ctx, leaseRes, "", "n1", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), false); err != nil {
		t.Fatal(err)
	}
	afterEdit := renew("a renewal after someone else's write")
	if !afterEdit.Spec.RenewTime.After(again.Spec.RenewTime.Time) || afterEdit.Labels["x"] != "y" {
		t.Fatalf("renewed over the admin's edit: %+v %v", afterEdit.Spec, afterEdit.Labels)
	}
	if _, _, err := admin.Delete(ctx, leaseRes, "", "n1", false); err != nil {
		t.Fatal(err)
	}
	recreated := renew("a renewal after the Lease was deleted")
	if recreated.UID == first.UID || !recreated.Spec.AcquireTime.After(first.Spec.AcquireTime.Time) {
		t.Fatalf("not acquired anew: %+v (uid %s, was %s)", recreated.Spec, recreated.UID, first.UID)
	}
}
