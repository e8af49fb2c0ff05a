package leader_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/apis/storage/etcdtest"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/leader"
)

// waitFor polls cond for up to 20 s (the machine is small and loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}

// leaderGauge is the left4me_controllers_leader line of the server's
// /metrics, as a scraper sees it.
func leaderGauge(t *testing.T, s *controllertest.Server) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.AdminToken(t, s.Server))
	resp, err := servertest.HTTPClient(s.Server).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "left4me_controllers_leader ") {
			return l
		}
	}
	t.Fatalf("/metrics has no left4me_controllers_leader:\n%s", body)
	return ""
}

// campaigners are the election's keys: one per server campaigning.
func campaigners(t *testing.T, etcd *clientv3.Client) []string {
	t.Helper()
	resp, err := etcd.Get(context.Background(), "/left4me/leader/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Value))
	}
	return out
}

// TestLeaderElection: two servers on one external etcd both serve the API;
// exactly one runs the controllers (and says so on /metrics), and when it
// goes the other takes over and schedules.
func TestLeaderElection(t *testing.T) {
	_, endpoint := etcdtest.External(t)
	opts := server.Options{EtcdEndpoints: []string{endpoint}}
	a, ac := controllertest.StartServer(t, opts, leader.Options{LeaseTTL: 2 * time.Second, Identity: "server-a"})
	b, bc := controllertest.StartServer(t, opts, leader.Options{LeaseTTL: 2 * time.Second, Identity: "server-b"})
	// Both campaign; the one that leads is the one etcd put first.
	waitFor(t, "both servers campaigning and one leading", func() bool {
		return len(campaigners(t, a.Etcd)) == 2 && (a.Leader.Leading() || b.Leader.Leading())
	})
	if a.Leader.Leading() == b.Leader.Leading() {
		t.Fatalf("leading: a %v, b %v; want exactly one", a.Leader.Leading(), b.Leader.Leading())
	}
	leading, follower, fc := a, b, bc
	if b.Leader.Leading() {
		leading, follower, fc = b, a, ac
	}
	if got := leaderGauge(t, leading); got != "left4me_controllers_leader 1" {
		t.Fatalf("the leader's /metrics: %q", got)
	}
	if got := leaderGauge(t, follower); got != "left4me_controllers_leader 0" {
		t.Fatalf("the follower's /metrics: %q", got)
	}
	// The follower serves the API too.
	if _, err := fc.Create(context.Background(), resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, false); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	leading.Close()
	waitFor(t, "the follower to lead", follower.Leader.Leading)
	t.Logf("takeover after a graceful stop: %s", time.Since(began).Round(time.Millisecond))
	if got := leaderGauge(t, follower); got != "left4me_controllers_leader 1" {
		t.Fatalf("the new leader's /metrics: %q", got)
	}
	// Its scheduler works: an Instance on a Ready node gets a port.
	now := metav1.Now()
	st, _ := json.Marshal(map[string]any{"status": v1.NodeStatus{HeartbeatTime: &now, Conditions: []metav1.Condition{
		{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: now}}}})
	if _, err := fc.PatchStatus(context.Background(), resources.Nodes, "", "n1", st); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Create(context.Background(), resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}, false); err != nil {
		t.Fatal(err)
	}
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "i1", Namespace: "default"}, Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := fc.Create(context.Background(), resources.Instances, in, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new leader to schedule", func() bool {
		obj, err := fc.Get(context.Background(), resources.Instances, "default", "i1")
		return err == nil && obj.(*v1.Instance).Spec.NodeName == "n1" && obj.(*v1.Instance).GamePort() != 0
	})
}

// logLines collects a logger's lines for tests that check what it said.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// TestStepsDownWhenTheLeaseIsLost: when etcd drops the leader's lease (a
// partition longer than the TTL looks the same), the controllers stop and
// the server campaigns again on a new lease instead of leading on without
// one.
func TestStepsDownWhenTheLeaseIsLost(t *testing.T) {
	var logs logLines
	s, _ := controllertest.StartServer(t, server.Options{}, leader.Options{LeaseTTL: 2 * time.Second, Identity: "server-a",
		Log: funcr.New(logs.add, funcr.Options{})})
	lease := func() clientv3.LeaseID {
		resp, err := s.Etcd.Get(context.Background(), "/left4me/leader/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 {
			return 0
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	waitFor(t, "leading", s.Leader.Leading)
	first := lease()
	if first == 0 {
		t.Fatal("the leader has no election key")
	}
	if _, err := s.Etcd.Revoke(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the controllers to stop", func() bool { return logs.count(`"msg"="stopped leading"`) == 1 })
	if logs.count(`"msg"="lost the leader lease"`) != 1 {
		t.Fatalf("no word of the lost lease in the log:\n%s", strings.Join(logs.lines, "\n"))
	}
	waitFor(t, "leading again on a new lease", func() bool {
		l := lease()
		return s.Leader.Leading() && l != 0 && l != first && logs.count(`"msg"="leading: running the controllers"`) == 2
	})
}

// TestLeaseTTLMustBeWholeSeconds: etcd grants leases in whole seconds, and
// a TTL that rounds to 0 would silently become its default of a minute.
func TestLeaseTTLMustBeWholeSeconds(t *testing.T) {
	for _, ttl := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, -time.Second} {
		err := leader.ValidateLeaseTTL(ttl)
		if err == nil || !strings.Contains(err.Error(), "leader lease TTL "+ttl.String()) {
			t.Errorf("TTL %s: %v", ttl, err)
		}
	}
	for _, ttl := range []time.Duration{0, time.Second, leader.DefaultLeaseTTL} {
		if err := leader.ValidateLeaseTTL(ttl); err != nil {
			t.Errorf("TTL %s: %v", ttl, err)
		}
	}
}
