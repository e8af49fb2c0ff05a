package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

func getPlayers(t *testing.T, srv *server.Server, token, instance string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/apis/left4me.io/v1alpha1/namespaces/default/instances/"+instance+"/players", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := servertest.HTTPClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestPlayersRolesAndRefusals: every role that reads the namespace sees
// who plays (viewers too); other namespaces and nodes do not; a node that
// is not Ready is not dialed, and the agent's refusals keep its words.
// Nothing is written: the Instance's resourceVersion does not move.
func TestPlayersRolesAndRefusals(t *testing.T) {
	srv, _, tokens := rconFixture(t)
	admin := servertest.ClientWithToken(t, srv, tokens["admin"])
	before, err := admin.Get(context.Background(), resources.Instances, "default", "versus")
	if err != nil {
		t.Fatal(err)
	}
	for who, want := range map[string]int{"admin": 200, "editor": 200, "viewer": 200, "editor-b": 403, "node": 403} {
		code, body := getPlayers(t, srv, tokens[who], "versus")
		if code != want {
			t.Errorf("%s: %d %s, want %d", who, code, body, want)
			continue
		}
		if code != 200 {
			continue
		}
		var got v1.InstancePlayers
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.Map != "c2m1_highway" || got.MaxPlayers != 8 ||
			len(got.Players) != 1 || got.Players[0] != (v1.Player{Name: "Alice", Score: 3, DurationSeconds: 312, UserID: 2, SteamID: "STEAM_1:0:12345", Ping: 48, State: "active"}) {
			t.Errorf("%s: %s (%v)", who, body, err)
		}
		if strings.Contains(body, "192.168.1.5") {
			t.Errorf("%s: a player's address passed through: %s", who, body)
		}
	}
	for _, c := range []struct {
		name, instance string
		want           int
		says           string
	}{
		{"no node", "nowhere", 400, "no node"},
		{"node not Ready", "lost", 503, "host-lost"},
		{"agent says not running", "stopped", 409, "not running"},
		{"no such instance", "absent", 404, "absent"},
	} {
		code, body := getPlayers(t, srv, tokens["viewer"], c.instance)
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, code, body, c.want, c.says)
		}
	}
	// A node Ready on paper whose agent does not answer: 503 in bounded time.
	began := time.Now()
	if code, body := getPlayers(t, srv, tokens["viewer"], "hung"); code != http.StatusServiceUnavailable || !strings.Contains(body, "host-a") {
		t.Errorf("hung agent: %d %s, want 503 naming host-a", code, body)
	}
	if took := time.Since(began); took > 8*time.Second {
		t.Errorf("the hung agent held the request %v", took)
	}
	after, err := admin.Get(context.Background(), resources.Instances, "default", "versus")
	if err != nil {
		t.Fatal(err)
	}
	if after.GetResourceVersion() != before.GetResourceVersion() {
		t.Fatalf("asking for players wrote the Instance: resourceVersion %s -> %s", before.GetResourceVersion(), after.GetResourceVersion())
	}
	// Only GET: the subresource is not writable.
	code := 0
	func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/apis/left4me.io/v1alpha1/namespaces/default/instances/versus/players", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tokens["admin"])
		resp, err := servertest.HTTPClient(srv).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code = resp.StatusCode
	}()
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("POST players: %d", code)
	}
}
