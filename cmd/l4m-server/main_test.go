package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/apis/storage"
)

// l4mServer is `l4m-server ARGS...` running in this process until stop.
type l4mServer struct {
	t       *testing.T
	dataDir string
	cancel  context.CancelFunc
	done    chan error
}

func startL4mServer(t *testing.T, args ...string) *l4mServer {
	t.Helper()
	addr, err := storage.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := &l4mServer{t: t, dataDir: t.TempDir(), done: make(chan error, 1)}
	cmd := newCommand()
	cmd.SetArgs(append([]string{"--data-dir", s.dataDir, "--listen", addr}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// stop is SIGTERM: the context ends; it returns what the command returned.
func (s *l4mServer) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("l4m-server did not stop within 30s")
		return nil
	}
}

// admin waits for the admin config the server writes once it serves.
func (s *l4mServer) admin() (*client.Client, *client.File) {
	s.t.Helper()
	path := filepath.Join(s.dataDir, "admin.yaml")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if f, err := client.LoadFile(path); err == nil {
			c, err := client.New(client.Config{Server: f.Server, Token: f.Token, CAData: []byte(f.CertificateAuthorityData)})
			if err != nil {
				s.t.Fatal(err)
			}
			return c, f
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %s within 30s", path)
		}
	}
}

// leaderGauge is the left4me_controllers_leader line of /metrics.
func (s *l4mServer) leaderGauge() string {
	s.t.Helper()
	_, f := s.admin()
	req, _ := http.NewRequest(http.MethodGet, f.Server+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := servertest.HTTPClientFor([]byte(f.CertificateAuthorityData)).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "left4me_controllers_leader ") {
			return l
		}
	}
	return "(none)"
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

// TestServesAndRunsTheControllers: l4m-server alone leads, its scheduler
// places an Instance on a Ready node (the --scheduler-policy given), and
// SIGTERM stops it cleanly.
func TestServesAndRunsTheControllers(t *testing.T) {
	s := startL4mServer(t, "--scheduler-policy", "Pack", "--leader-lease-ttl", "2s", "--identity", "server-1")
	c, _ := s.admin()
	eventually(t, "the server to lead", func() bool { return s.leaderGauge() == "left4me_controllers_leader 1" })
	ctx := context.Background()
	if _, err := c.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, false); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	st, _ := json.Marshal(map[string]any{"status": v1.NodeStatus{HeartbeatTime: &now, Conditions: []metav1.Condition{
		{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: now}}}})
	if _, err := c.PatchStatus(ctx, resources.Nodes, "", "n1", st); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}, false); err != nil {
		t.Fatal(err)
	}
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "versus-1", Namespace: "default"}, Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := c.Create(ctx, resources.Instances, in, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "versus-1 scheduled onto n1", func() bool {
		obj, err := c.Get(ctx, resources.Instances, "default", "versus-1")
		return err == nil && obj.(*v1.Instance).Spec.NodeName == "n1" && obj.(*v1.Instance).GamePort() != 0
	})
	if err := s.stop(); err != nil {
		t.Fatalf("stopped with %v", err)
	}
}

// TestDisableControllers: --disable-controllers serves the API and never
// leads; the leader gauge is there, at 0.
func TestDisableControllers(t *testing.T) {
	s := startL4mServer(t, "--disable-controllers")
	c, _ := s.admin()
	if _, err := c.List(context.Background(), resources.Namespaces, "", client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.leaderGauge(); got != "left4me_controllers_leader 0" {
		t.Fatalf("/metrics: %q", got)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stopped with %v", err)
	}
}

// TestLeaseTTLOfWholeSeconds: a lease etcd cannot grant (it counts whole
// seconds; 500ms would become its default of a minute) is refused by name
// before anything is written.
func TestLeaseTTLOfWholeSeconds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "server")
	addr, err := storage.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := newCommand()
	cmd.SetArgs([]string{"--data-dir", dir, "--listen", addr, "--leader-lease-ttl", "500ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var got error
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("l4m-server --leader-lease-ttl 500ms started instead of refusing")
	}
	cancel()
	if got == nil || !strings.Contains(got.Error(), "--leader-lease-ttl") || !strings.Contains(got.Error(), "500ms") {
		t.Fatalf("error: %v", got)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the data dir was touched: %v", err)
	}
}
