package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// l4mctl runs one l4mctl command as the admin.
func (e *env) l4mctl(args ...string) string {
	e.t.Helper()
	var out, errb bytes.Buffer
	cmd := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	cmd.SetArgs(append([]string{"--config", e.srv.AdminConfigPath}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		e.t.Fatalf("l4mctl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestRolloutRestartRestartsEveryGame: l4mctl rollout restart changes no
// file of any game, yet every game restarts (new PID, new start time),
// never more than the Blueprint's maxUnavailable at once, and the events say
// a restart was requested.
func TestRolloutRestartRestartsEveryGame(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	names := []string{"coop-1", "coop-2", "coop-3"}
	e.create(&v1.Blueprint{ObjectMeta: meta_("coop"), Spec: v1.BlueprintSpec{Rollout: v1.RolloutSpec{MaxUnavailable: 1}}})
	for _, n := range names {
		e.create(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node}})
	}
	type run struct {
		pid   int32
		start time.Time
	}
	before := map[string]run{}
	for _, n := range names {
		in := e.waitFor(n, "Ready", ready)
		before[n] = run{in.Status.MainPID, in.Status.StartTime.Time}
	}
	if out := e.l4mctl("rollout", "restart", "blueprint/coop"); out != "blueprint.left4me.io/coop restarted\n" {
		t.Fatalf("rollout restart: %q", out)
	}
	// Watch every game until all run anew; count how many are not Ready
	// at once (from the node's reports, which is what the rollout counts).
	maxDown := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, err := e.admin.List(ctx, instances, "default", client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		items, _ := meta.ExtractList(list)
		down, restarted := 0, 0
		for _, it := range items {
			in := it.(*v1.Instance)
			if !ready(in) {
				down++
			}
			if b := before[in.Name]; in.Status.MainPID != 0 && in.Status.MainPID != b.pid && in.Status.StartTime != nil && !in.Status.StartTime.Time.Before(b.start) && ready(in) {
				restarted++
			}
		}
		maxDown = max(maxDown, down)
		if restarted == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s %d of %d games restarted:\n%s", restarted, len(names), e.l4mctl("get", "instances", "-o", "wide"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if maxDown > 1 {
		t.Errorf("%d games were down at once; maxUnavailable is 1", maxDown)
	}
	if out := e.l4mctl("rollout", "status", "coop", "--timeout", "30s"); !strings.Contains(out, "rollout complete: 3 of 3") {
		t.Errorf("rollout status after the restart: %q", out)
	}
	evs, err := e.admin.List(ctx, resources.Events, "default", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := meta.ExtractList(evs)
	requested := map[string]bool{}
	for _, it := range items {
		ev := it.(*v1.Event)
		if ev.Reason == "RolloutRestart" && strings.Contains(ev.Message, "requested by l4mctl rollout restart") {
			requested[ev.InvolvedObject.Name] = true
		}
	}
	for _, n := range names {
		if !requested[n] {
			t.Errorf("%s has no RolloutRestart event saying a restart was requested", n)
		}
	}
}
