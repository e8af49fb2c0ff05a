package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/left4me/left4me/apis/console"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/unit"
)

// Console session limits (the keepalive ones are console.Ping* and
// console.WriteTimeout, the same at every hop).
const (
	// consoleQueue is how many commands may wait for the one running;
	// more are refused (the API's rate limit keeps a person well below).
	consoleQueue = 8
	// consoleMaxLine cuts a journal line longer than this.
	consoleMaxLine = 64 << 10
)

// consoleCheckInterval is how often a session checks that its game still
// runs (a variable for the tests).
var consoleCheckInterval = time.Second

// consoleEnd is how a session ends: the close frame's code and reason.
type consoleEnd struct {
	code   websocket.StatusCode
	reason string
}

// consoleGone says why a session on Instance ns/name, opened on the game
// probed by opened, must end now, or "" while it may go on: the Instance
// is stopped, no longer bound here, or its game process is gone or
// another one (a restart makes a new probe).
func consoleGone(ns, name, node string, in *v1.Instance, bound bool, opened, cur *probe) string {
	switch {
	case !bound:
		return fmt.Sprintf("instance %s/%s is no longer on node %s", ns, name, node)
	case in.Spec.State == v1.StateStopped:
		return fmt.Sprintf("instance %s/%s stopped", ns, name)
	case cur != opened:
		return fmt.Sprintf("instance %s/%s: its game stopped", ns, name)
	}
	return ""
}

// consoleEnded is consoleGone on the agent's current view.
func (a *Agent) consoleEnded(ns, name string, opened *probe) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, bound := a.instances[key(ns, name)]
	return consoleGone(ns, name, a.o.NodeName, in, bound, opened, a.probes[unit.ID(ns, name)])
}

// serveConsole answers GET /console/{namespace}/{name}?tailLines=N: a
// WebSocket on which the game's new journal lines (after the last N) and
// the answers to the client's commands arrive as console.Messages. An
// Instance not bound here is refused with 404 and one not running with 409,
// before the upgrade. The session ends, with a close reason, when the game
// stops, the agent stops, or the client goes; its journalctl and
// goroutines end with it.
func (s *logServer) serveConsole(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := instanceName(w, r)
	if !ok {
		return
	}
	_, _, pr, err := s.a.rconTarget(ns, name)
	switch {
	case errors.Is(err, errNotBound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	tail := 0
	if n, err := strconv.Atoi(r.URL.Query().Get("tailLines")); err == nil && n >= 0 {
		tail = n
	}
	// Counted before the upgrade, while Shutdown still tracks the
	// connection: stop then waits for the session, which it no longer
	// sees once the connection is hijacked.
	s.sessions.Add(1)
	defer s.sessions.Done()
	// Only the API server reaches this server (its client certificate):
	// there is no browser Origin to check.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered
	}
	conn.SetReadLimit(console.MaxMessage)
	s.a.runConsole(r.Context(), conn, ns, name, pr, tail)
}

// runConsole serves one session until it ends, then closes conn with the
// reason and returns once its journalctl and goroutines are done.
func (a *Agent) runConsole(parent context.Context, conn *websocket.Conn, ns, name string, opened *probe, tail int) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		endOnce sync.Once
		end     consoleEnd
	)
	finish := func(code websocket.StatusCode, reason string) {
		endOnce.Do(func() { end = consoleEnd{code, reason} })
		cancel()
	}
	send := func(m console.Message) error {
		b, _ := json.Marshal(m)
		wctx, wcancel := context.WithTimeout(context.Background(), console.WriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}

	args := []string{"--unit", unit.ServiceName(unit.ID(ns, name)), "--output", "cat", "--no-pager", "--follow", "--lines", strconv.Itoa(tail)}
	cmd := exec.CommandContext(ctx, journalctl, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		conn.Close(websocket.StatusInternalError, "journalctl: "+truncateReason(err.Error()))
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		lines := bufio.NewScanner(out)
		lines.Buffer(make([]byte, 4096), consoleMaxLine)
		for lines.Scan() {
			if send(console.Message{Type: console.TypeLog, Line: lines.Text()}) != nil {
				finish(websocket.StatusGoingAway, "client gone")
				return
			}
		}
		if ctx.Err() == nil {
			finish(websocket.StatusInternalError, "the game's journal ended")
		}
	}()
	commands := make(chan string, consoleQueue)
	go func() {
		defer wg.Done()
		a.readConsole(conn, commands, send, finish)
	}()

	ping := time.NewTicker(console.PingInterval)
	defer ping.Stop()
	check := time.NewTicker(consoleCheckInterval)
	defer check.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case c := <-commands:
			res, err := a.execRCON(ctx, ns, name, c)
			m := console.Message{Type: console.TypeOutput, Command: c, Output: res.Output, Truncated: res.Truncated}
			if err != nil {
				m = console.Message{Type: console.TypeError, Command: c, Message: fmt.Sprintf("instance %s/%s: the game did not answer: %v", ns, name, err)}
			}
			if ctx.Err() == nil && send(m) != nil {
				finish(websocket.StatusGoingAway, "client gone")
			}
		case <-check.C:
			if reason := a.consoleEnded(ns, name, opened); reason != "" {
				finish(websocket.StatusNormalClosure, reason)
			}
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, console.PingTimeout)
			if conn.Ping(pctx) != nil && ctx.Err() == nil {
				finish(websocket.StatusGoingAway, "client gone")
			}
			pcancel()
		}
	}
	finish(websocket.StatusGoingAway, fmt.Sprintf("node agent %s is stopping", a.o.NodeName))
	conn.Close(end.code, truncateReason(end.reason))
	wg.Wait()
	cmd.Wait()
}

// readConsole reads the client's messages until the connection ends,
// queueing each valid command and answering anything else with an error
// message (the session goes on).
func (a *Agent) readConsole(conn *websocket.Conn, commands chan<- string, send func(console.Message) error, finish func(websocket.StatusCode, string)) {
	for {
		// Not the session's context: canceling a read closes the
		// connection, and the close must carry the session's reason.
		_, b, err := conn.Read(context.Background())
		if err != nil {
			finish(websocket.StatusGoingAway, "client gone")
			return
		}
		var m console.Message
		if err := json.Unmarshal(b, &m); err != nil || m.Type != console.TypeCommand {
			send(console.Message{Type: console.TypeError, Message: `not a console message: want {"type":"command","command":"..."}`})
			continue
		}
		if err := console.CheckCommand(m.Command); err != nil {
			send(console.Message{Type: console.TypeError, Command: m.Command, Message: err.Error()})
			continue
		}
		select {
		case commands <- m.Command:
		default:
			send(console.Message{Type: console.TypeError, Command: m.Command, Message: fmt.Sprintf("%d commands already wait for the game: this one is dropped", consoleQueue)})
		}
	}
}

// truncateReason keeps a close reason within the 123 bytes a close frame
// holds.
func truncateReason(s string) string {
	if len(s) <= 120 {
		return s
	}
	return strings.ToValidUTF8(s[:120], "") + "…"
}
