package e2e

import (
	"bytes"
	"context"
	"fmt"
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
	// Follow every change of every game (a watch: no short-lived state is
	// missed) until all run anew, and count how many are being restarted at
	// once, from the node's reports: a game is down from the moment its unit
	// stops being active or runs a new process, until that new process is
	// first Ready. (A Ready game that later misses A2S answers under load
	// is not being restarted.)
	list, err := e.admin.List(ctx, instances, "default", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	w, err := e.admin.Watch(wctx, instances, "default", client.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	latest := map[string]*v1.Instance{}
	items, _ := meta.ExtractList(list)
	for _, it := range items {
		latest[it.(*v1.Instance).Name] = it.(*v1.Instance)
	}
	maxDown, worst := 0, ""
	done := map[string]bool{}
	for len(done) < len(names) {
		down := 0
		var snapshot []string
		for _, n := range names {
			in := latest[n]
			b := before[n]
			newProcess := in.Status.MainPID != 0 && in.Status.MainPID != b.pid
			if newProcess && ready(in) {
				done[n] = true
			}
			active := meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
			if !done[n] && (!active || newProcess) {
				down++
			}
			snapshot = append(snapshot, fmt.Sprintf("%s pid %d active %v ready %v", n, in.Status.MainPID, active, ready(in)))
		}
		if down > maxDown {
			maxDown, worst = down, strings.Join(snapshot, "; ")
		}
		if len(done) == len(names) {
			break
		}
		ev, ok := <-w.ResultChan()
		if !ok {
			t.Fatalf("after 90s %d of %d games restarted:\n%s", len(done), len(names), e.l4mctl("get", "instances", "-o", "wide"))
		}
		if in, isInstance := ev.Object.(*v1.Instance); isInstance {
			latest[in.Name] = in
		}
	}
	for _, n := range names {
		if in := latest[n]; in.Status.StartTime == nil || in.Status.StartTime.Time.Before(before[n].start) {
			t.Errorf("%s: start time %v is before the old process's %s", n, in.Status.StartTime, before[n].start)
		}
	}
	if maxDown > 1 {
		t.Errorf("%d games were being restarted at once (%s); maxUnavailable is 1", maxDown, worst)
	}
	if out := e.l4mctl("rollout", "status", "coop", "--timeout", "30s"); !strings.Contains(out, "rollout complete: 3 of 3") {
		t.Errorf("rollout status after the restart: %q", out)
	}
	evs, err := e.admin.List(ctx, resources.Events, "default", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items, _ = meta.ExtractList(evs)
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

// TestRolloutRestartInstance: l4mctl rollout restart instance/x restarts x
// alone (its unit's MainPID changes, its sibling's does not); with a player
// on x the next one waits, and UpdatePending says so and how to force it;
// --force restarts it with the player on it.
func TestRolloutRestartInstance(t *testing.T) {
	e := setup(t)
	e.create(&v1.Blueprint{ObjectMeta: meta_("coop")})
	for _, n := range []string{"x", "y"} {
		e.create(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node}})
	}
	x, y := e.waitFor("x", "Ready", ready), e.waitFor("y", "Ready", ready)
	// restartedTo waits until x runs a new process, Ready, started with
	// its current restartedAt.
	restartedTo := func(what string, pid int32) *v1.Instance {
		t.Helper()
		return e.waitFor("x", what, func(in *v1.Instance) bool {
			return ready(in) && in.Status.MainPID != 0 && in.Status.MainPID != pid &&
				in.Status.RestartedAt != "" && in.Status.RestartedAt == in.Annotations[v1.AnnotationRestartedAt]
		})
	}
	siblingUntouched := func() {
		t.Helper()
		if now := e.get("y"); now.Status.MainPID != y.Status.MainPID || now.Status.TemplateHash != y.Status.TemplateHash {
			t.Fatalf("y was restarted too: pid %d -> %d, template %s -> %s", y.Status.MainPID, now.Status.MainPID, y.Status.TemplateHash, now.Status.TemplateHash)
		}
	}

	if out := e.l4mctl("rollout", "restart", "instance/x"); out != "instance.left4me.io/x restarted\n" {
		t.Fatalf("rollout restart instance/x: %q", out)
	}
	x = restartedTo("the restart of an empty game", x.Status.MainPID)
	siblingUntouched()

	joinPlayer(t, e, "x", x.Status.Port, "Louis")
	e.waitFor("x", "the player in status", func(in *v1.Instance) bool { return in.Status.Players == 1 })
	e.l4mctl("rollout", "restart", "instance/x")
	held := e.waitFor("x", "the restart held for the player", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceUpdatePending)
		return c != nil && c.Status == "True" && c.Reason == v1.ReasonRestartRequested
	})
	c := meta.FindStatusCondition(held.Status.Conditions, v1.InstanceUpdatePending)
	if !strings.Contains(c.Message, "once no players are on it") || !strings.Contains(c.Message, "l4mctl rollout restart --force instance/x restarts it now") {
		t.Errorf("UpdatePending message %q", c.Message)
	}
	if now := e.get("x"); now.Status.MainPID != x.Status.MainPID || now.Status.Players != 1 {
		t.Fatalf("x restarted with a player on it: pid %d -> %d, players %d", x.Status.MainPID, now.Status.MainPID, now.Status.Players)
	}

	e.l4mctl("rollout", "restart", "--force", "instance/x")
	restartedTo("the forced restart", x.Status.MainPID)
	siblingUntouched()
	if c := meta.FindStatusCondition(e.get("x").Status.Conditions, v1.InstanceUpdatePending); c == nil || c.Status != "False" {
		t.Errorf("UpdatePending after the forced restart: %+v", c)
	}
}
