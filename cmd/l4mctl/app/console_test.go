package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/left4me/left4me/apis/console"
	"github.com/left4me/left4me/apis/console/consoletest"
)

// consoleAgent is a node agent's console route: each command's answer
// follows a log line naming it; "quit" closes the session as a stopped
// game does.
func consoleAgent() http.Handler {
	return consoletest.Handler("", func(_ *http.Request, cmd string) ([]console.Message, string) {
		if cmd == "quit" {
			return nil, "instance default/coop-1 stopped"
		}
		return []console.Message{consoletest.Log("L: rcon from 127.0.0.1: command " + cmd), consoletest.Output(cmd, "ran <"+cmd+">")}, ""
	})
}

// TestConsoleScripted: without a terminal, l4mctl console runs standard
// input's lines one after the other, printing log lines and answers in
// order, and exits after the last answer; a stopped game ends it with its
// reason and status 0; refusals fail it.
func TestConsoleScripted(t *testing.T) {
	e := newEnv(t)
	e.agentNode("host-a", consoleAgent())
	e.instanceOn("default", "coop-1", "host-a")
	out, errOut, err := e.run("status\n\n  say hi  \n", "console", "coop-1")
	want := "L: rcon from 127.0.0.1: command status\nran <status>\nL: rcon from 127.0.0.1: command say hi\nran <say hi>\n"
	if err != nil || out != want || errOut != "" {
		t.Fatalf("console: %v\nstdout %q, want %q\nstderr %q", err, out, want, errOut)
	}

	out, errOut, err = e.run("status\nquit\nnever sent\n", "console", "coop-1")
	if err != nil || !strings.HasSuffix(out, "ran <status>\n") || strings.Contains(out, "never") || errOut != "l4mctl: console closed: instance default/coop-1 stopped\n" {
		t.Fatalf("the game stopping: %v\nstdout %q\nstderr %q", err, out, errOut)
	}

	out, errOut, err = e.run(strings.Repeat("x", 513)+"\nstatus\n", "console", "coop-1")
	if err == nil || !strings.Contains(errOut, "513 bytes, at most 512") || !strings.HasSuffix(out, "ran <status>\n") {
		t.Fatalf("a command too long: %v\nstdout %q\nstderr %q", err, out, errOut)
	}

	if _, _, err := e.run("status\n", "console", "absent"); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("an absent Instance: %v", err)
	}
}
