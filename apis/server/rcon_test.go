package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// rconAgent is a node agent's RCON and players routes: it runs "echo X"
// as X, lists one player, and answers 409 for the Instance named
// "stopped", as the real one does for a game that is not running.
type rconAgent struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func startRCONAgent(t *testing.T) *rconAgent {
	a := &rconAgent{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rcon/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Command string }
		json.NewDecoder(r.Body).Decode(&body)
		a.mu.Lock()
		a.seen = append(a.seen, body.Command)
		a.mu.Unlock()
		if r.PathValue("name") == "stopped" {
			http.Error(w, "instance default/stopped is not running", http.StatusConflict)
			return
		}
		fmt.Fprintf(w, `{"output":%q,"truncated":false}`, strings.TrimPrefix(body.Command, "echo ")+"\n")
	})
	// Players: a game with one player; the agent's answer carries a field
	// the API does not pass on.
	mux.HandleFunc("GET /players/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "stopped":
			http.Error(w, "instance default/stopped is not running", http.StatusConflict)
			return
		case "hung":
			<-r.Context().Done()
			return
		}
		io.WriteString(w, `{"map":"c2m1_highway","maxPlayers":8,"players":[{"name":"Alice","score":3,"durationSeconds":312,"userID":2,`+
			`"steamID":"STEAM_1:0:12345","ping":48,"loss":0,"state":"active","adr":"192.168.1.5:27005"}]}`)
	})
	a.srv = httptest.NewUnstartedServer(mux)
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *rconAgent) commands() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// rconFixture: Instances default/versus, default/stopped and default/hung
// (whose players the agent never answers) on node host-a (the fake
// agent), default/lost on host-lost (not Ready), default/nowhere on no
// node; tokens for each role.
func rconFixture(t *testing.T) (*server.Server, *rconAgent, map[string]string) {
	agent := startRCONAgent(t)
	srv, tokens := agentFixture(t, agent.srv)
	return srv, agent, tokens
}

// agentFixture is an API server whose nodes host-a and host-lost (not
// Ready) have their agent at agentSrv, with rconFixture's Instances and
// tokens.
func agentFixture(t *testing.T, agentSrv *httptest.Server) (*server.Server, map[string]string) {
	srv, admin := servertest.Start(t)
	ctx := context.Background()
	publishAgent(t, admin, "host-a", agentSrv, "True")
	publishAgent(t, admin, "host-lost", agentSrv, "False")
	for name, node := range map[string]string{"versus": "host-a", "stopped": "host-a", "hung": "host-a", "lost": "host-lost", "nowhere": ""} {
		if _, err := admin.Create(ctx, resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: node}}, false); err != nil {
			t.Fatal(err)
		}
	}
	user := func(name string, roles ...v1.RoleBinding) string {
		return servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: name, Roles: roles})
	}
	return srv, map[string]string{
		"admin":    servertest.AdminToken(t, srv),
		"editor":   user("ed", v1.RoleBinding{Role: v1.RoleEditor, Namespace: "default"}),
		"viewer":   user("vi", v1.RoleBinding{Role: v1.RoleViewer, Namespace: "default"}),
		"editor-b": user("eb", v1.RoleBinding{Role: v1.RoleEditor, Namespace: "team-b"}),
		// The node the game runs on: it serves RCON, it does not ask for it.
		"node": servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "host-a"}),
	}
}

// publishAgent makes Node name whose agent's log server is srv, its Ready
// condition ready ("" for none), as an agent's registration would.
func publishAgent(t *testing.T, admin *client.Client, name string, srv *httptest.Server, ready string) {
	t.Helper()
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	sum := sha256.Sum256(srv.Certificate().Raw)
	if _, err := admin.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27030}}}, false); err != nil {
		t.Fatal(err)
	}
	conds := ""
	if ready != "" {
		conds = fmt.Sprintf(`,"conditions":[{"type":"Ready","status":%q,"reason":"Test","message":"test","lastTransitionTime":"2026-12-02T00:00:00Z"}]`, ready)
	}
	status := fmt.Sprintf(`{"status":{"addresses":[%q],"logsEndpoint":{"port":%d,"certSHA256":%q}%s}}`, host, p, hex.EncodeToString(sum[:]), conds)
	if _, err := admin.PatchStatus(ctx, resources.Nodes, "", name, []byte(status)); err != nil {
		t.Fatal(err)
	}
}

func postRCON(t *testing.T, srv *server.Server, token, instance, body string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/apis/left4me.io/v1alpha1/namespaces/default/instances/"+instance+"/rcon", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := servertest.HTTPClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

func TestRCONRolesAndInputs(t *testing.T) {
	srv, agent, tokens := rconFixture(t)
	for who, want := range map[string]int{"admin": 200, "editor": 200, "viewer": 403, "editor-b": 403, "node": 403} {
		code, body, _ := postRCON(t, srv, tokens[who], "versus", `{"command":"echo hi `+who+`"}`)
		if code != want {
			t.Errorf("%s: %d %s, want %d", who, code, body, want)
		}
		if code == 200 && body != `{"output":"hi `+who+`\n","truncated":false}` {
			t.Errorf("%s: output %s", who, body)
		}
	}
	for _, c := range []struct {
		name, instance, body string
		want                 int
		says                 string
	}{
		{"empty", "versus", `{"command":""}`, 400, "command"},
		{"newline smuggles a second command", "versus", `{"command":"status\nquit"}`, 400, "command"},
		{"DEL", "versus", `{"command":"status\u007f"}`, 400, "command"},
		{"too long", "versus", `{"command":"` + strings.Repeat("x", 513) + `"}`, 400, "command"},
		{"not JSON", "versus", `status`, 400, "body"},
		{"no node", "nowhere", `{"command":"status"}`, 400, "no node"},
		{"node not Ready", "lost", `{"command":"status"}`, 503, "host-lost"},
		{"agent says not running", "stopped", `{"command":"status"}`, 409, "not running"},
		{"no such instance", "absent", `{"command":"status"}`, 404, "absent"},
	} {
		code, body, _ := postRCON(t, srv, tokens["editor"], c.instance, c.body)
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, code, body, c.want, c.says)
		}
	}
	// The audit record says who ran which command.
	audit, err := os.ReadFile(filepath.Join(filepath.Dir(srv.AdminConfigPath), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(audit), `"subresource":"rcon","namespace":"default","name":"versus","code":200`) || !strings.Contains(string(audit), `"command":"echo hi editor"`) {
		t.Errorf("audit log lacks the editor's command:\n%s", audit)
	}
	// A refused command is recorded too, its DEL visible as \x7f.
	if !strings.Contains(string(audit), `"command":"status\\x7f"`) {
		t.Errorf("audit log lacks the refused command with its DEL escaped:\n%s", audit)
	}
	// Only valid commands, to Ready nodes, reached the agent.
	if got := agent.commands(); len(got) != 3 || got[2] != "status" {
		t.Errorf("the agent ran %q, want the two echoes and the stopped one's status", got)
	}
}

func TestRCONRateLimitPerUser(t *testing.T) {
	srv, _, tokens := rconFixture(t)
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		code, body, hdr := postRCON(t, srv, tokens["editor"], "versus", `{"command":"echo x"}`)
		switch code {
		case 200:
		case 429:
			limited = true
			if hdr.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %s", body)
			}
		default:
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	if !limited {
		t.Fatal("30 commands in a row were never limited")
	}
	// Another user's bucket is untouched.
	if code, body, _ := postRCON(t, srv, tokens["admin"], "versus", `{"command":"echo x"}`); code != 200 {
		t.Fatalf("admin after editor was limited: %d %s", code, body)
	}
}
