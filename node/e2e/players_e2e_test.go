package e2e

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestRCONAndPlayersOfARealGame drives a real game (the double, in its
// systemd unit on a sandbox host) through the API: RCON status names the
// overlay's hostname; changelevel changes the map A2S reports; players
// who join show with the SteamID and ping RCON status gives each of them
// (matched by name, not position); once the Instance is Stopped, RCON and
// players answer 409 at once.
func TestRCONAndPlayersOfARealGame(t *testing.T) {
	e := setup(t)
	port := e.runCoop1()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rcon := func(command string) string {
		t.Helper()
		res, err := e.admin.RCON(ctx, "default", "coop-1", command)
		if err != nil {
			t.Fatalf("rcon %s: %v", command, err)
		}
		return res.Output
	}

	if out := rcon("status"); !strings.Contains(out, "hostname: Hostname From Overlay\n") || !strings.Contains(out, "map     : c2m1_highway\n") {
		t.Fatalf("rcon status:\n%s", out)
	}
	rcon("changelevel c2m3_coaster")
	if got := queryInfo(t, port).Map; got != "c2m3_coaster" {
		t.Fatalf("A2S reports map %q after changelevel", got)
	}
	e.waitFor("coop-1", "the new map in status", func(in *v1.Instance) bool { return in.Status.Map == "c2m3_coaster" })

	names := []string{"Alice", `Bob "the" Builder`, "Zoë"}
	for _, n := range names {
		rcon("l4m_join " + n)
	}
	rcon("l4m_bot Coach")
	status := rcon("status")
	ps, err := e.admin.Players(ctx, "default", "coop-1")
	if err != nil {
		t.Fatal(err)
	}
	if ps.Map != "c2m3_coaster" || ps.MaxPlayers != 4 || ps.Warning != "" || len(ps.Players) != 4 {
		t.Fatalf("players: %+v", ps)
	}
	pings := map[int32]bool{}
	for i, n := range names {
		p := ps.Players[i]
		// The status line of this name: # id slot "NAME" STEAMID time ping ...
		line := ""
		for l := range strings.Lines(status) {
			if strings.Contains(l, ` "`+n+`" `) {
				line = l
			}
		}
		f := strings.Fields(line[strings.LastIndex(line, `"`)+1:])
		if p.Name != n || len(f) < 3 || p.SteamID != f[0] || p.SteamID == "" || strconv.Itoa(int(p.Ping)) != f[2] || p.State != "active" {
			t.Errorf("player %d: %+v; its status line %q", i, p, line)
		}
		pings[p.Ping] = true
	}
	if len(pings) < 2 {
		t.Errorf("every player has the same ping %v: the double should vary them", pings)
	}
	if bot := ps.Players[3]; bot.Name != "Coach" || !bot.Bot || bot.SteamID != "BOT" {
		t.Errorf("the bot: %+v", bot)
	}
	if out := e.l4mctl("players", "coop-1"); !strings.HasPrefix(out, "default/coop-1: map c2m3_coaster, 4/4 players\nNAME ") || !strings.Contains(out, "Alice ") {
		t.Errorf("l4mctl players:\n%s", out)
	}

	patch(t, e.admin, "coop-1", `{"spec":{"state":"Stopped"}}`)
	conflict := func(what string, call func() error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			began := time.Now()
			err := call()
			if took := time.Since(began); took > 3*time.Second {
				t.Fatalf("%s of a stopping Instance took %v (%v)", what, took, err)
			}
			if apierrors.IsConflict(err) && strings.Contains(err.Error(), "not running") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s of a Stopped Instance: %v, want 409 not running", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	conflict("rcon", func() error { _, err := e.admin.RCON(ctx, "default", "coop-1", "status"); return err })
	conflict("players", func() error { _, err := e.admin.Players(ctx, "default", "coop-1"); return err })
}

// runCoop1 runs Instance coop-1 (map c2m1_highway, 4 players, the "maps"
// overlay's hostname) on a random port of the node's range, and returns
// the port once it is Ready.
func (e *env) runCoop1() int32 {
	e.t.Helper()
	port := int32(31000 + rand.IntN(90))
	e.create(
		&v1.Overlay{ObjectMeta: meta_("maps"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "maps"}}},
		&v1.Blueprint{ObjectMeta: meta_("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"maps"}, Game: v1.GameSpec{Map: "c2m1_highway", MaxPlayers: 4}}},
		&v1.Instance{ObjectMeta: meta_("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node, Port: port}},
	)
	e.waitFor("coop-1", "Ready", ready)
	return port
}
