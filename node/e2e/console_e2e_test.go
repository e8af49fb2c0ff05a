package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/console"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// TestConsoleEndToEnd: a console on a real game unit, through the API
// server and the node agent: `status` is answered by the game, a player
// joining makes its "Player joined" log line appear in the session,
// l4mctl console runs piped commands, and stopping the Instance closes the
// session with the reason; a console on the stopped game is refused with
// 409.
func TestConsoleEndToEnd(t *testing.T) {
	e := setup(t)
	e.create(&v1.Blueprint{ObjectMeta: meta_("coop")})
	e.create(&v1.Instance{ObjectMeta: meta_("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node}})
	e.waitFor("coop-1", "Ready", ready)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := e.admin.Console(ctx, "default", "coop-1", 0)
	if err != nil {
		t.Fatalf("console: %v\n%s", err, e.journal())
	}
	defer s.Close()
	// until reads the session until a message matches.
	until := func(what string, match func(console.Message) bool) {
		t.Helper()
		for {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("%s: the session ended: %v", what, err)
			}
			if match(m) {
				return
			}
		}
	}
	if err := s.Send(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	until("the answer to status", func(m console.Message) bool {
		return m.Type == console.TypeOutput && m.Command == "status" && strings.Contains(m.Output, "hostname: ") && strings.Contains(m.Output, "players : 0 humans")
	})
	if err := s.Send(ctx, "l4m_join Alice"); err != nil {
		t.Fatal(err)
	}
	until("the player's log line", func(m console.Message) bool {
		return m.Type == console.TypeLog && strings.Contains(m.Line, "Player joined: Alice")
	})

	// l4mctl console, scripted, beside the open session.
	var out, errOut bytes.Buffer
	cmd := app.NewCommand(app.Streams{In: strings.NewReader("status\n"), Out: &out, Err: &errOut})
	cmd.SetArgs([]string{"--config", e.srv.AdminConfigPath, "console", "coop-1"})
	if err := cmd.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "players : 1 humans") {
		t.Fatalf("echo status | l4mctl console coop-1: %v\nstdout %s\nstderr %s", err, out.String(), errOut.String())
	}

	patch(t, e.admin, "coop-1", `{"spec":{"state":"Stopped"}}`)
	for {
		_, err := s.Next(ctx)
		if err == nil {
			continue
		}
		var closed *client.ConsoleClosed
		if !errors.As(err, &closed) || !closed.Normal() || closed.Reason != "instance default/coop-1 stopped" {
			t.Fatalf("the session's end when the Instance stopped: %v", err)
		}
		break
	}
	e.waitFor("coop-1", "Stopped", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseStopped })
	_, err = e.admin.Console(ctx, "default", "coop-1", 0)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("a console on the stopped game: %v, want 409 not running", err)
	}
}
