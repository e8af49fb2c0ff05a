package app_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/apis/console"
	"github.com/left4me/left4me/apis/console/consoletest"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// Keys as a terminal sends them.
const (
	keyHome      = "\x01" // Ctrl-A
	keyInterrupt = "\x03" // Ctrl-C
	keyEOF       = "\x04" // Ctrl-D
	keyEnter     = "\r"
	keyLeft      = "\x1b[D"
	keyUp        = "\x1b[A"
)

// recordingAgent is a console route that keeps each command it receives;
// "quit" closes the session as a stopped game does.
type recordingAgent struct {
	mu       sync.Mutex
	commands []string
}

func (a *recordingAgent) handler() http.Handler {
	return consoletest.Handler("L: server cfg file is server.cfg", func(_ *http.Request, cmd string) ([]console.Message, string) {
		a.mu.Lock()
		a.commands = append(a.commands, cmd)
		a.mu.Unlock()
		if cmd == "quit" {
			return nil, "instance default/coop-1 stopped"
		}
		return []console.Message{consoletest.Log("L: rcon from 127.0.0.1: command " + cmd), consoletest.Output(cmd, "ran <"+cmd+">")}, ""
	})
}

func (a *recordingAgent) received() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.commands)
}

// ttySession is l4mctl console running on a pseudo-terminal, as it does
// when an admin types into it.
type ttySession struct {
	t      *testing.T
	ptm    *os.File
	tty    *os.File
	screen syncBuffer
	done   chan error
}

func (e *env) consoleOnTTY(name string) *ttySession {
	e.t.Helper()
	ptm, tty, err := pty.Open()
	if err != nil {
		e.t.Fatalf("open a pty: %v", err)
	}
	if err := pty.Setsize(ptm, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		e.t.Fatal(err)
	}
	s := &ttySession{t: e.t, ptm: ptm, tty: tty, done: make(chan error, 1)}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&s.screen, ptm) // ends when the pty closes
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := app.NewCommand(app.Streams{In: tty, Out: tty, Err: tty})
	cmd.SetArgs([]string{"--config", e.srv.AdminConfigPath, "console", name})
	go func() { s.done <- cmd.ExecuteContext(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		tty.Close()
		ptm.Close()
		<-copied
	})
	return s
}

func (s *ttySession) typeKeys(keys ...string) {
	s.t.Helper()
	if _, err := io.WriteString(s.ptm, strings.Join(keys, "")); err != nil {
		s.t.Fatalf("type: %v", err)
	}
}

// waitScreen waits until text has been shown count times.
func (s *ttySession) waitScreen(text string, count int) {
	s.t.Helper()
	deadline := time.Now().Add(waitBound)
	for strings.Count(s.screen.String(), text) < count {
		if time.Now().After(deadline) {
			s.t.Fatalf("%q not shown %d times; the screen:\n%s", text, count, s.screen.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cooked reports whether the terminal echoes and edits lines again, as a
// shell expects after the console exits.
func (s *ttySession) cooked() bool {
	s.t.Helper()
	// Not tty.Fd(): it would put the file in blocking mode, and closing it
	// would no longer end a read.
	conn, err := s.tty.SyscallConn()
	if err != nil {
		s.t.Fatal(err)
	}
	var tio *unix.Termios
	if cerr := conn.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); cerr != nil {
		s.t.Fatal(cerr)
	}
	if err != nil {
		s.t.Fatalf("read the terminal's mode: %v", err)
	}
	return tio.Lflag&unix.ECHO != 0 && tio.Lflag&unix.ICANON != 0
}

// exit waits for the command's end.
func (s *ttySession) exit() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(waitBound):
		s.t.Fatalf("console still running after %s; the screen:\n%s", waitBound, s.screen.String())
		return nil
	}
}

// TestConsoleOnATerminal: on a terminal, l4mctl console is a prompt with
// line editing and history; Ctrl-C clears the line without sending it,
// Ctrl-D leaves with status 0, and the game stopping ends the session with
// its reason, also with status 0, the terminal given back as it was.
func TestConsoleOnATerminal(t *testing.T) {
	e := newEnv(t)
	agent := &recordingAgent{}
	e.agentNode("host-a", agent.handler())
	e.instanceOn("default", "coop-1", "host-a")

	s := e.consoleOnTTY("coop-1")
	s.waitScreen("coop-1> ", 1)
	s.waitScreen("L: server cfg file is server.cfg", 1)

	// Line editing: the start of the line and a step left.
	s.typeKeys("tatus", keyHome, "s", keyEnter)
	s.waitScreen("ran <status>", 1)
	s.typeKeys("say i", keyLeft, "h", keyEnter)
	s.waitScreen("ran <say hi>", 1)
	s.waitScreen("L: rcon from 127.0.0.1: command say hi", 1)

	// Ctrl-C drops the line; history brings back the command before last.
	s.typeKeys("kick everyone", keyInterrupt)
	s.waitScreen("^C", 1)
	s.typeKeys(keyUp, keyUp, keyEnter)
	s.waitScreen("ran <status>", 2)

	s.typeKeys(keyEOF)
	if err := s.exit(); err != nil {
		t.Fatalf("Ctrl-D: %v; the screen:\n%s", err, s.screen.String())
	}
	if !s.cooked() {
		t.Fatal("Ctrl-D left the terminal in raw mode")
	}
	if got, want := agent.received(), []string{"status", "say hi", "status"}; !slices.Equal(got, want) {
		t.Fatalf("the game received %q, want %q", got, want)
	}

	// The game stops while the prompt waits.
	s = e.consoleOnTTY("coop-1")
	s.waitScreen("coop-1> ", 1)
	s.typeKeys("quit", keyEnter)
	s.waitScreen("console closed: instance default/coop-1 stopped", 1)
	if err := s.exit(); err != nil {
		t.Fatalf("the game stopping: %v; the screen:\n%s", err, s.screen.String())
	}
	if !s.cooked() {
		t.Fatal("the terminal was left in raw mode")
	}

	// A console that cannot open fails with the API's reason and leaves
	// the terminal as it was.
	s = e.consoleOnTTY("absent")
	if err := s.exit(); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("an absent Instance: %v", err)
	}
	if !s.cooked() {
		t.Fatal("a console that failed to open left the terminal in raw mode")
	}
}
