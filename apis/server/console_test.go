package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/console"
	"github.com/left4me/left4me/apis/console/consoletest"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// consoleAgent is a node agent's console route: it greets with a log
// line, answers "echo X" with X, closes the session on "quit" as the real
// one does when the game stops, and refuses default/stopped with 409.
type consoleAgent struct {
	srv *httptest.Server
	mu  sync.Mutex
	// seen are the commands that reached the agent.
	seen []string
	// ended receives once per session whose handler returned.
	ended chan struct{}
}

func startConsoleAgent(t *testing.T) *consoleAgent {
	a := &consoleAgent{ended: make(chan struct{}, 16)}
	session := consoletest.Handler("hello from versus", func(r *http.Request, cmd string) ([]console.Message, string) {
		a.mu.Lock()
		a.seen = append(a.seen, cmd)
		a.mu.Unlock()
		if cmd == "quit" {
			return nil, "instance default/" + r.PathValue("name") + " stopped"
		}
		return []console.Message{consoletest.Output(cmd, strings.TrimPrefix(cmd, "echo ")+"\n")}, ""
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "stopped" {
			http.Error(w, "instance default/stopped is not running", http.StatusConflict)
			return
		}
		defer func() { a.ended <- struct{}{} }()
		session(w, r)
	})
	a.srv = httptest.NewUnstartedServer(mux)
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *consoleAgent) commands() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// consoleFixture is agentFixture with a console agent.
func consoleFixture(t *testing.T) (*server.Server, *consoleAgent, map[string]string) {
	agent := startConsoleAgent(t)
	srv, tokens := agentFixture(t, agent.srv)
	return srv, agent, tokens
}

func openConsole(t *testing.T, srv *server.Server, token, instance string) (*client.ConsoleSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := servertest.ClientWithToken(t, srv, token).Console(ctx, "default", instance, 0)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// nextMessage reads the session's next message within 10s.
func nextMessage(t *testing.T, s *client.ConsoleSession) console.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	return m
}

func TestConsoleRoles(t *testing.T) {
	srv, _, tokens := consoleFixture(t)
	for who, want := range map[string]int{"admin": 0, "editor": 0, "viewer": 403, "editor-b": 403, "node": 403} {
		s, err := openConsole(t, srv, tokens[who], "versus")
		if want != 0 {
			var se apierrors.APIStatus
			if !errors.As(err, &se) || int(se.Status().Code) != want {
				t.Errorf("%s: %v, want HTTP %d", who, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", who, err)
			continue
		}
		if m := nextMessage(t, s); m.Type != console.TypeLog || m.Line != "hello from versus" {
			t.Errorf("%s: first message %+v", who, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Send(ctx, "echo hi "+who); err != nil {
			t.Fatal(err)
		}
		cancel()
		if m := nextMessage(t, s); m.Type != console.TypeOutput || m.Output != "hi "+who+"\n" {
			t.Errorf("%s: answer %+v", who, m)
		}
	}
	for instance, c := range map[string]struct {
		code int
		says string
	}{
		"stopped": {409, "node host-a: instance default/stopped is not running"},
		"lost":    {503, "node host-lost is not Ready"},
		"nowhere": {400, "runs on no node"},
		"absent":  {404, "not found"},
	} {
		_, err := openConsole(t, srv, tokens["editor"], instance)
		var se apierrors.APIStatus
		if !errors.As(err, &se) || int(se.Status().Code) != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want HTTP %d saying %q", instance, err, c.code, c.says)
		}
	}
}

// TestConsoleCommands: refused commands get an error message and never
// reach the agent; the session goes on; each command and the open are
// audited; the agent's close reason reaches the client.
func TestConsoleCommands(t *testing.T) {
	srv, agent, tokens := consoleFixture(t)
	s, err := openConsole(t, srv, tokens["editor"], "versus")
	if err != nil {
		t.Fatal(err)
	}
	nextMessage(t, s) // the greeting
	send := func(cmd string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Send(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	for cmd, says := range map[string]string{
		"status\nquit":           "control character 0x0a",
		strings.Repeat("x", 513): "513 bytes, at most 512",
		"":                       "command: required",
	} {
		send(cmd)
		if m := nextMessage(t, s); m.Type != console.TypeError || !strings.Contains(m.Message, says) {
			t.Errorf("%q: %+v, want an error saying %q", cmd, m, says)
		}
	}
	send("echo after")
	if m := nextMessage(t, s); m.Type != console.TypeOutput || m.Output != "after\n" {
		t.Fatalf("after refusals: %+v", m)
	}
	if got := agent.commands(); len(got) != 1 || got[0] != "echo after" {
		t.Fatalf("the agent saw %q, want only the allowed command", got)
	}
	// The rate limit is rcon's: a burst of 10, then refusals.
	limited := false
	for i := 0; i < 12 && !limited; i++ {
		send("echo burst")
		m := nextMessage(t, s)
		limited = m.Type == console.TypeError && strings.Contains(m.Message, "RCON commands a second")
	}
	if !limited {
		t.Fatal("12 commands at once were all sent on")
	}
	audit, err := os.ReadFile(filepath.Join(filepath.Dir(srv.AdminConfigPath), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"user":"ed","tokenID":`,
		`"verb":"create","resource":"instances","subresource":"console","namespace":"default","name":"versus","code":101`,
		`"subresource":"console","namespace":"default","name":"versus","code":200,"remote":`,
		`"code":400,"remote":`,
		`"code":429,"remote":`,
		`"command":"echo after"`,
	} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}

	// The game stops: the agent closes, and the client hears why (the
	// admin: the editor's commands are spent).
	s2, err := openConsole(t, srv, tokens["admin"], "versus")
	if err != nil {
		t.Fatal(err)
	}
	nextMessage(t, s2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s2.Send(ctx, "quit"); err != nil {
		t.Fatal(err)
	}
	_, err = s2.Next(ctx)
	var closed *client.ConsoleClosed
	if !errors.As(err, &closed) || !closed.Normal() || closed.Reason != "instance default/versus stopped" {
		t.Fatalf("end: %v, want a normal close naming the stopped instance", err)
	}
}

// TestConsoleClientVanishes: a client that drops its connection ends the
// agent's side of the session.
func TestConsoleClientVanishes(t *testing.T) {
	srv, agent, tokens := consoleFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + tokens["editor"]}}
	c, _, err := websocket.Dial(ctx, srv.URL()+"/apis/left4me.io/v1alpha1/namespaces/default/instances/versus/console",
		&websocket.DialOptions{HTTPClient: servertest.HTTPClient(srv), HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil { // the greeting: the agent's session is up
		t.Fatal(err)
	}
	c.CloseNow()
	select {
	case <-agent.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's session did not end within 10s of the client vanishing")
	}

	// A message over the limit closes the session (1009), the agent's too.
	c, _, err = websocket.Dial(ctx, srv.URL()+"/apis/left4me.io/v1alpha1/namespaces/default/instances/versus/console",
		&websocket.DialOptions{HTTPClient: servertest.HTTPClient(srv), HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, make([]byte, console.MaxMessage+1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("after a message over the limit: %v, want a 1009 close", err)
	}
	select {
	case <-agent.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's session did not end within 10s of the client vanishing")
	}
}
