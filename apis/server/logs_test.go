package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
)

// TestMain fails the package when a goroutine outlives the tests: each
// test closes its servers, and what they started must stop with them.
// Nothing is ignored: embedded etcd, its gRPC and the rest stop with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeAgent is a node agent's log server: it answers every log request
// with one line and counts the connections the API server opens to it.
type fakeAgent struct {
	srv *httptest.Server
	mu  sync.Mutex
	// opened and closed count connections.
	opened, closed int
}

func startFakeAgent(t *testing.T) *fakeAgent {
	a := &fakeAgent{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "L 12/02/2026 - 05:00:00: %s\n", r.URL.Path)
	}))
	a.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch st {
		case http.StateNew:
			a.opened++
		case http.StateClosed, http.StateHijacked:
			a.closed++
		}
	}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) conns() (opened, open int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.opened, a.opened - a.closed
}

// TestLogsReuseAgentConnections: reading a game's log many times opens one
// connection to its node's agent, not one per request that stays open; and
// the API server's Close closes it.
func TestLogsReuseAgentConnections(t *testing.T) {
	srv, admin := servertest.Start(t)
	agent := startFakeAgent(t)
	ctx := context.Background()
	publishAgent(t, admin, "host-a", agent.srv, "")
	if _, err := admin.Create(ctx, resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "versus", Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "host-a"}}, false); err != nil {
		t.Fatal(err)
	}
	const reads = 20
	for i := range reads {
		logs, err := admin.Logs(ctx, "default", "versus", false, 10)
		if err != nil {
			t.Fatalf("read %d of the log: %v", i, err)
		}
		body, err := io.ReadAll(logs)
		logs.Close()
		if err != nil || string(body) != "L 12/02/2026 - 05:00:00: /logs/default/versus\n" {
			t.Fatalf("read %d of the log: %q, %v", i, body, err)
		}
	}
	if opened, _ := agent.conns(); opened != 1 {
		t.Fatalf("%d log reads opened %d connections to the node agent, want 1", reads, opened)
	}
	srv.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, open := agent.conns(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			_, open := agent.conns()
			t.Fatalf("%d connections to the node agent still open 15s after the API server closed", open)
		}
	}
}
