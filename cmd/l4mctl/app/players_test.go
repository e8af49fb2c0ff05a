package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// TestPlayers: l4mctl players prints the map, the count and a table (the
// game's time format, "-" where RCON told nothing, a bot without ping, a
// name's escape sequence defused); one sentence when nobody plays; -o
// json and yaml; -n; the API's refusal.
func TestPlayers(t *testing.T) {
	e := newEnv(t)
	e.agentNode("host-a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/players/default/coop-1":
			io.WriteString(w, `{"map":"c2m1_highway","maxPlayers":8,"warning":"RCON status failed: timeout","players":[`+
				`{"name":"Alice","score":12,"durationSeconds":312,"userID":2,"steamID":"STEAM_1:0:12345","ping":48,"state":"active"},`+
				`{"name":"Bob \"the\" Builder","score":3,"durationSeconds":3723,"userID":3,"steamID":"STEAM_1:1:999","ping":112,"state":"active"},`+
				`{"name":"Zoë\u001b[2J","score":0,"durationSeconds":5},`+
				`{"name":"Coach","score":0,"durationSeconds":0,"userID":4,"steamID":"BOT","state":"active","bot":true}]}`)
		case "/players/team/empty":
			io.WriteString(w, `{"map":"c5m1_waterfront","maxPlayers":4,"players":[]}`)
		default:
			http.Error(w, "instance is not running", http.StatusConflict)
		}
	}))
	if _, err := e.cl.Create(context.Background(), resources.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, false); err != nil {
		t.Fatal(err)
	}
	e.instanceOn("default", "coop-1", "host-a")
	e.instanceOn("team", "empty", "host-a")
	e.instanceOn("default", "stopped", "host-a")

	out, errOut, err := e.run("", "players", "coop-1")
	if err != nil {
		t.Fatal(err)
	}
	want := "default/coop-1: map c2m1_highway, 4/8 players\n" +
		"NAME                STEAMID           SCORE   TIME      PING\n" +
		"Alice               STEAM_1:0:12345   12      05:12     48\n" +
		"Bob \"the\" Builder   STEAM_1:1:999     3       1:02:03   112\n" +
		"Zoë\uFFFD[2J             -                 0       00:05     -\n" +
		"Coach               BOT               0       00:00     -\n"
	if out != want {
		t.Fatalf("table:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut, "warning: RCON status failed: timeout") {
		t.Fatalf("the warning is not on stderr: %q", errOut)
	}
	if out := e.mustRun("players", "-n", "team", "empty"); out != "No players on team/empty (map c5m1_waterfront).\n" {
		t.Fatalf("empty: %q", out)
	}
	var got v1.InstancePlayers
	if err := json.Unmarshal([]byte(e.mustRun("players", "coop-1", "-o", "json")), &got); err != nil || len(got.Players) != 4 || got.Players[1].Ping != 112 {
		t.Fatalf("-o json: %+v %v", got, err)
	}
	if out := e.mustRun("players", "coop-1", "-o", "yaml"); !strings.Contains(out, "map: c2m1_highway\n") || !strings.Contains(out, "steamID: STEAM_1:0:12345\n") {
		t.Fatalf("-o yaml:\n%s", out)
	}
	if _, _, err := e.run("", "players", "coop-1", "-o", "wide"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("-o wide: %v", err)
	}
	if _, _, err := e.run("", "players", "stopped"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("a stopped Instance: %v", err)
	}
}
