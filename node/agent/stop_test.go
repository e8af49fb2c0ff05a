package agent

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
)

// TestMain fails the package when any goroutine outlives its tests: every
// test stops its agent (and its API server), so whatever still runs was
// leaked. Nothing is ignored: no dependency leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// agentGoroutines names, for each running goroutine of the agent (not the
// test's own), the agent function it is in, the innermost one first.
func agentGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	frame := regexp.MustCompile(`(?m)^github\.com/left4me/left4me/node/agent\.(\S+)\(.*\)$`)
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "node/agent.Test") {
			continue
		}
		m := frame.FindStringSubmatch(g)
		if m == nil {
			continue
		}
		out = append(out, regexp.MustCompile(`(\.func\d+)+$`).ReplaceAllString(m[1], ""))
	}
	return out
}

// agentStopped checks, once Run has returned, that no goroutine of the
// agent runs. A joined goroutine may still be on its way out (it has
// said it is done, it has not exited yet): those vanish at once, so the
// check allows a moment; one that Run did not wait for would still run.
func agentStopped(t *testing.T) {
	t.Helper()
	left := agentGoroutines()
	for deadline := time.Now().Add(5 * time.Second); len(left) != 0 && time.Now().Before(deadline); left = agentGoroutines() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Fatalf("Run returned while %v still run", left)
	}
}

// TestRunWaitsForReferenceWatches: Run returns only when the watches of
// Blueprints and Overlays it started (one pair per namespace) have
// stopped. The test holds the watches as they end: Run must still be
// running once everything else has stopped, and return once they may end.
func TestRunWaitsForReferenceWatches(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 2)
	t.Cleanup(func() { referenceWatchEnded = func() {} })
	referenceWatchEnded = func() { held <- struct{}{}; <-release }
	h := start(t)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	h.create(
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("bp"), Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "n1"}},
	)
	h.until("srv", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	watching := func() bool {
		h.agent.refsMu.Lock()
		defer h.agent.refsMu.Unlock()
		_, bp := h.agent.refs[refKey(blueprintRes, "default")]
		_, ov := h.agent.refs[refKey(overlayRes, "default")]
		return bp && ov
	}
	for deadline := time.Now().Add(15 * time.Second); !watching(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent does not watch the namespace's Blueprints and Overlays within 15s")
		}
	}

	h.stop()
	for range 2 {
		select {
		case <-held:
		case <-time.After(15 * time.Second):
			t.Fatalf("the reference watches did not end within 15s of the agent stopping: %v", agentGoroutines())
		}
	}
	// Wait until nothing of the agent runs but the held watches and who
	// waits for them, or until Run returns.
	waiting := map[string]bool{"(*Agent).Run": true, "(*Agent).followReferences": true, "(*Agent).watchReferences": true}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("Run returned while its reference watches still run: %v", agentGoroutines())
		default:
		}
		left := agentGoroutines()
		var others []string
		for _, f := range left {
			if !waiting[f] {
				others = append(others, f)
			}
		}
		if len(others) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stopped agent still runs %v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	released = true
	close(release)
	select {
	case err := <-h.done:
		h.done <- err
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s of its watches being able to end: %v", agentGoroutines())
	}
	agentStopped(t)
}

// fakeJournal stands in for journalctl: it prints a line, writes its pid
// where the test finds it, and then waits for more journal (forever).
func fakeJournal(t *testing.T) (pidFile string) {
	dir := t.TempDir()
	pidFile = filepath.Join(dir, "pid")
	script := filepath.Join(dir, "journalctl")
	body := "#!/bin/sh\necho \"L 12/02/2026 - 05:00:00: server started\"\necho $$ > " + pidFile + ".tmp\nmv " + pidFile + ".tmp " + pidFile + "\nexec sleep 3600\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctl
	journalctl = script
	t.Cleanup(func() { journalctl = old })
	return pidFile
}

// followedLog starts the agent with its log server and a game, and follows
// the game's log through the API server; it returns the stream's lines and
// the pid of the journal reader serving it.
func followedLog(t *testing.T) (*harness, *bufio.Scanner, func(), int) {
	pidFile := fakeJournal(t)
	h := startWith(t, func(srv *server.Server, o *Options) {
		o.LogsListen, o.CAPEM = "127.0.0.1:0", srv.CAPEM
	})
	h.create(
		&v1.Blueprint{ObjectMeta: om("bp"), Spec: v1.BlueprintSpec{}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "n1"}},
	)
	h.until("srv", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var stream interface {
		Read([]byte) (int, error)
		Close() error
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err := h.admin.Logs(ctx, "default", "srv", true, 10)
		if err == nil {
			stream = s
			break
		}
		if time.Now().After(deadline) { // the Node's log endpoint may lag
			t.Fatalf("follow the game's log: %v", err)
		}
	}
	lines := bufio.NewScanner(stream)
	if !lines.Scan() || !strings.Contains(lines.Text(), "server started") {
		t.Fatalf("first log line %q, %v", lines.Text(), lines.Err())
	}
	var pid int
	for deadline := time.Now().Add(15 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("the journal reader wrote no pid within 15s")
		}
	}
	return h, lines, func() { cancel(); stream.Close() }, pid
}

// alive: the process exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func waitGone(t *testing.T, pid int, why string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the journal reader (pid %d) still runs 15s after %s", pid, why)
		}
	}
}

// TestLogStreamEndsWhenAgentStops: a followed log ends (the player's
// l4mctl logs -f returns) when the node agent stops, and the agent leaves
// no journalctl behind.
func TestLogStreamEndsWhenAgentStops(t *testing.T) {
	h, lines, _, pid := followedLog(t)
	h.stop()
	select {
	case err := <-h.done:
		h.done <- err
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s with a log stream open: %v", agentGoroutines())
	}
	if alive(pid) {
		t.Fatalf("the agent's Run returned while its journal reader (pid %d) still runs", pid)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for lines.Scan() {
		}
	}()
	select {
	case <-ended:
	case <-time.After(15 * time.Second):
		t.Fatal("the followed log did not end within 15s of the agent stopping")
	}
	agentStopped(t)
}

// TestLogStreamEndsWhenClientGoes: when the reader of a followed log goes
// away, its journal reader on the node ends too.
func TestLogStreamEndsWhenClientGoes(t *testing.T) {
	_, _, hangUp, pid := followedLog(t)
	hangUp()
	waitGone(t, pid, "its client went away")
}
