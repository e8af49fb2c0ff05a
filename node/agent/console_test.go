package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/left4me/left4me/apis/console"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// consoleFixture is an agent bound to ns/up (its game a fake RCON server),
// ns/stopped and ns/nopw, serving its console route on loopback, with a
// journal the test appends to.
type consoleFixture struct {
	a       *Agent
	srv     *httptest.Server
	ls      *logServer
	journal string // the game's journal file
	pidFile string // where the journal reader writes its pid
	stop    context.CancelFunc
}

func startConsole(t *testing.T) *consoleFixture {
	t.Helper()
	dir := t.TempDir()
	f := &consoleFixture{a: rconAgent(t, fakeRCON(t, "s3cret-password-1")), journal: filepath.Join(dir, "journal"), pidFile: filepath.Join(dir, "pid")}
	if err := os.WriteFile(f.journal, []byte("an old line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "journalctl")
	body := "#!/bin/sh\necho $$ > " + f.pidFile + ".tmp\nmv " + f.pidFile + ".tmp " + f.pidFile + "\nexec tail -n 0 -f " + f.journal + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	oldJournal, oldCheck := journalctl, consoleCheckInterval
	journalctl, consoleCheckInterval = script, 20*time.Millisecond
	t.Cleanup(func() { journalctl, consoleCheckInterval = oldJournal, oldCheck })
	f.ls = &logServer{a: f.a}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/{ns}/{name}", f.ls.serveConsole)
	f.srv = httptest.NewUnstartedServer(mux)
	base, stop := context.WithCancel(context.Background())
	f.stop = stop
	f.srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	f.srv.Start()
	t.Cleanup(func() { stop(); f.srv.Close(); f.ls.sessions.Wait() })
	return f
}

func (f *consoleFixture) dial(t *testing.T, name string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/console/ns/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(console.MaxServerMessage)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// pid waits for the session's journal reader to start and returns its pid.
func (f *consoleFixture) pid(t *testing.T) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(f.pidFile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the journal reader wrote no pid within 10s")
		}
	}
}

func (f *consoleFixture) appendJournal(t *testing.T, line string) {
	t.Helper()
	j, err := os.OpenFile(f.journal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func sendCommand(t *testing.T, c *websocket.Conn, raw string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(raw)); err != nil {
		t.Fatal(err)
	}
}

func command(cmd string) string {
	b, _ := json.Marshal(console.Message{Type: console.TypeCommand, Command: cmd})
	return string(b)
}

// next reads the next message, failing after 10s or on a close.
func next(t *testing.T, c *websocket.Conn) console.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m console.Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message %s: %v", b, err)
	}
	return m
}

// closed reads until the session closes and returns its close status.
func closed(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the session ended without a close frame: %v", err)
		}
		return ce
	}
}

func TestConsoleSession(t *testing.T) {
	f := startConsole(t)
	c := f.dial(t, "up")
	pid := f.pid(t)

	sendCommand(t, c, command("echo hello world"))
	if m := next(t, c); m.Type != console.TypeOutput || m.Command != "echo hello world" || m.Output != "hello world\n" {
		t.Fatalf("answer %+v", m)
	}
	f.appendJournal(t, "Player joined: Alice")
	if m := next(t, c); m.Type != console.TypeLog || m.Line != "Player joined: Alice" {
		t.Fatalf("log line %+v", m)
	}
	// Refused commands get an error message; the session goes on.
	for raw, says := range map[string]string{
		command("status\nquit"):              "control character 0x0a",
		command(strings.Repeat("x", 513)):    "513 bytes, at most 512",
		command(""):                          "command: required",
		`{"type":"exec","command":"status"}`: "not a console message",
		`status`:                             "not a console message",
	} {
		sendCommand(t, c, raw)
		if m := next(t, c); m.Type != console.TypeError || !strings.Contains(m.Message, says) {
			t.Errorf("%q: %+v, want an error saying %q", raw, m, says)
		}
	}
	sendCommand(t, c, command("echo still here"))
	if m := next(t, c); m.Type != console.TypeOutput || m.Output != "still here\n" {
		t.Fatalf("after refusals: %+v", m)
	}

	// The Instance is set Stopped: the session closes, saying so.
	f.a.mu.Lock()
	in := f.a.instances[key("ns", "up")].DeepCopy()
	in.Spec.State = v1.StateStopped
	f.a.instances[key("ns", "up")] = in
	f.a.mu.Unlock()
	if ce := closed(t, c); ce.Code != websocket.StatusNormalClosure || ce.Reason != "instance ns/up stopped" {
		t.Fatalf("close %v", ce)
	}
	waitGone(t, pid, "the session ended")
}

func TestConsoleRefusedBeforeUpgrade(t *testing.T) {
	f := startConsole(t)
	for name, want := range map[string]int{"absent": http.StatusNotFound, "stopped": http.StatusConflict, "nopw": http.StatusConflict} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/console/ns/"+name, nil)
		cancel()
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want HTTP %d", name, resp, err, want)
		}
	}
}

// TestConsoleClientVanishes: a client that drops its connection ends the
// session on the agent, journal reader included.
func TestConsoleClientVanishes(t *testing.T) {
	f := startConsole(t)
	c := f.dial(t, "up")
	pid := f.pid(t)
	c.CloseNow()
	waitGone(t, pid, "its client went away")
	done := make(chan struct{})
	go func() { f.ls.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the session's handler did not return within 10s of its client going")
	}
}

// TestConsoleAgentStops: the agent stopping closes its sessions, saying
// so.
func TestConsoleAgentStops(t *testing.T) {
	f := startConsole(t)
	c := f.dial(t, "up")
	pid := f.pid(t)
	f.stop()
	if ce := closed(t, c); ce.Code != websocket.StatusGoingAway || ce.Reason != "node agent n1 is stopping" {
		t.Fatalf("close %v", ce)
	}
	waitGone(t, pid, "the agent stopped")
}

func TestConsoleGone(t *testing.T) {
	running := &v1.Instance{}
	stopped := &v1.Instance{Spec: v1.InstanceSpec{State: v1.StateStopped}}
	p, other := &probe{}, &probe{}
	for _, c := range []struct {
		in     *v1.Instance
		bound  bool
		cur    *probe
		reason string
	}{
		{running, true, p, ""},
		{stopped, true, p, "instance ns/x stopped"},
		{nil, false, nil, "instance ns/x is no longer on node n1"},
		{running, true, nil, "instance ns/x: its game stopped"},
		{running, true, other, "instance ns/x: its game stopped"},
	} {
		if got := consoleGone("ns", "x", "n1", c.in, c.bound, p, c.cur); got != c.reason {
			t.Errorf("%+v: %q, want %q", c, got, c.reason)
		}
	}
}
