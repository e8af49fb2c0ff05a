package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

func TestLoginAndLogout(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "alice", "admin")
	b := f.browser(t)
	if code, _, h := b.get("/ui/"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/login") {
		t.Fatalf("the fleet without a session: %d %s, want a redirect to the login page", code, h.Get("Location"))
	}
	if code, body, _ := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {"alice"}, "password": {"wrong password!!"}}); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
		t.Errorf("a wrong password: %d, want 401 saying so\n%s", code, body)
	}
	b.login("alice", password)
	code, body, _ := b.get("/ui/")
	if code != http.StatusOK || !strings.Contains(body, "team-a-1") || !strings.Contains(body, "node-1") {
		t.Fatalf("the fleet after login: %d\n%s", code, body)
	}
	if !strings.Contains(body, "user:alice") {
		t.Error("the page does not say who is logged in")
	}
	if code, _, h := b.post("/ui/logout", b.origin(), url.Values{"csrf": {b.csrf("/ui/")}}); code != http.StatusSeeOther || h.Get("Location") != "/ui/login" {
		t.Errorf("logout: %d %s", code, h.Get("Location"))
	}
	if code, _, _ := b.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("the fleet after logout: %d, want the login redirect", code)
	}
}

func TestTokenLoginAndRevocation(t *testing.T) {
	f := newFixture(t, server.Options{})
	tok, id := newUserToken(t, f, v1.RoleBinding{Role: v1.RoleViewer, Namespace: "team-a"})
	b := f.browser(t)
	nodeToken := servertest.NewToken(t, f.admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "node-1"})
	if code, _, _ := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "token": {nodeToken}}); code != http.StatusUnauthorized {
		t.Errorf("a node token's login: %d, want 401", code)
	}
	code, _, h := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "token": {tok}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		t.Fatalf("token login: %d %s", code, h.Get("Location"))
	}
	if code, body, _ := b.get("/ui/"); code != http.StatusOK || !strings.Contains(body, "team-a-1") {
		t.Fatalf("fleet with a token session: %d", code)
	}
	if _, _, err := f.admin.Delete(context.Background(), resources.Tokens, "", id, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := b.get("/ui/")
		if code == http.StatusSeeOther {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked token's session still gets %d", code)
		}
		time.Sleep(50 * time.Millisecond) // the token watch brings the revocation
	}
}

func newUserToken(t *testing.T, f *fixture, roles ...v1.RoleBinding) (bearer, id string) {
	t.Helper()
	out, err := f.admin.Create(context.Background(), resources.Tokens, &v1.Token{Spec: v1.TokenSpec{Type: v1.TokenUser, User: "tok", Roles: roles}}, false)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*v1.Token).Status.Token, out.GetName()
}

func TestSessionExpiresAndDeletedUsersAreOut(t *testing.T) {
	f := newFixture(t, server.Options{DashboardSessionTTL: 2 * time.Second})
	f.user(t, "alice", "admin")
	f.user(t, "bob", "admin")
	alice, bob := f.browser(t), f.browser(t)
	alice.login("alice", password)
	bob.login("bob", password)
	if _, _, err := f.admin.Delete(context.Background(), resources.Users, "", "bob", false); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := bob.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("a deleted user's session: %d, want the login redirect", code)
	}
	if code, _, _ := alice.get("/ui/"); code != http.StatusOK {
		t.Fatalf("a fresh session: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := alice.get("/ui/")
		if code == http.StatusSeeOther {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its 2s TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "alice", "admin")
	b := f.browser(t)
	b.login("alice", password)
	if _, err := f.admin.Patch(context.Background(), resources.Users, "", "alice", "application/merge-patch+json", []byte(`{"spec":{"password":"another long password"}}`), false); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := b.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("a session of the old password: %d, want the login redirect", code)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "ed", "editor:team-a")
	b := f.browser(t)
	b.login("ed", password)
	page := "/ui/namespaces/team-a/instances/team-a-1"
	action := page + "/state"
	token := b.csrf(page)
	for name, c := range map[string]struct {
		origin string
		form   url.Values
	}{
		"no CSRF token":    {b.origin(), url.Values{"state": {"Stopped"}}},
		"wrong CSRF token": {b.origin(), url.Values{"state": {"Stopped"}, "csrf": {"x" + token}}},
		"foreign Origin":   {"https://evil.example", url.Values{"state": {"Stopped"}, "csrf": {token}}},
		"no Origin":        {"", url.Values{"state": {"Stopped"}, "csrf": {token}}},
	} {
		if code, _, _ := b.post(action, c.origin, c.form); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if state(t, f, "team-a", "team-a-1") != v1.StateRunning {
		t.Fatal("a refused POST changed spec.state")
	}
	if code, body, _ := b.post(action, b.origin(), url.Values{"state": {"Stopped"}, "csrf": {token}}); code != http.StatusSeeOther {
		t.Fatalf("the editor's Stop: %d\n%s", code, body)
	}
	if got := state(t, f, "team-a", "team-a-1"); got != v1.StateStopped {
		t.Errorf("after Stop spec.state is %q", got)
	}
	// The login form has its own CSRF token.
	if code, _, _ := f.browser(t).post("/ui/login", b.origin(), url.Values{"username": {"ed"}, "password": {password}}); code != http.StatusForbidden {
		t.Errorf("a login POST without the form's token: %d, want 403", code)
	}
}

func state(t *testing.T, f *fixture, ns, name string) v1.InstanceState {
	t.Helper()
	obj, err := f.admin.Get(context.Background(), resources.Instances, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*v1.Instance).Spec.State
}

// TestRolesPerPage: a viewer sees its namespace and no buttons, is refused
// another namespace's pages and any action (by the API's Authorizer, 403),
// and the fleet lists only what it may see.
func TestRolesPerPage(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "vic", "viewer:team-a")
	b := f.browser(t)
	b.login("vic", password)
	code, body, _ := b.get("/ui/")
	if code != http.StatusOK || !strings.Contains(body, "team-a-1") || strings.Contains(body, "team-b-1") {
		t.Fatalf("a team-a viewer's fleet: %d, want team-a-1 and not team-b-1\n%s", code, body)
	}
	page := "/ui/namespaces/team-a/instances/team-a-1"
	code, body, _ = b.get(page)
	if code != http.StatusOK || strings.Contains(body, `id="stop"`) || strings.Contains(body, `id="start"`) || strings.Contains(body, `id="log"`) {
		t.Fatalf("a viewer's instance page: %d, want no Start/Stop and no log\n%s", code, body)
	}
	for _, p := range []string{"/ui/namespaces/team-b/instances/team-b-1", "/ui/namespaces/team-b/blueprints/coop", "/ui/namespaces/team-b/overlays/mods"} {
		if code, _, _ := b.get(p); code != http.StatusForbidden {
			t.Errorf("%s for a team-a viewer: %d, want 403", p, code)
		}
	}
	for _, p := range []string{"/ui/namespaces/team-a/blueprints/coop", "/ui/namespaces/team-a/overlays/mods"} {
		if code, body, _ := b.get(p); code != http.StatusOK || !strings.Contains(body, "team-a-1") {
			t.Errorf("%s for a team-a viewer: %d\n%s", p, code, body)
		}
	}
	code, body, _ = b.post(page+"/state", b.origin(), url.Values{"state": {"Stopped"}, "csrf": {b.csrf(page)}})
	if code != http.StatusForbidden || !strings.Contains(body, "viewer role only reads") {
		t.Errorf("a viewer's forged Stop: %d, want the API's 403\n%s", code, body)
	}
	if code, _, _ := b.get(page + "/log"); code != http.StatusForbidden {
		t.Errorf("a viewer's log stream: %d, want 403", code)
	}
	if state(t, f, "team-a", "team-a-1") != v1.StateRunning {
		t.Error("the viewer's POST changed spec.state")
	}
}

// TestEditorReadsTheGameLog: the Instance page streams the game's log
// through the API's log relay, for editors.
func TestEditorReadsTheGameLog(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "ed", "editor:team-a")
	b := f.browser(t)
	b.login("ed", password)
	page := "/ui/namespaces/team-a/instances/team-a-1"
	if _, body, _ := b.get(page); !strings.Contains(body, `id="log"`) || !strings.Contains(body, `id="stop"`) {
		t.Errorf("an editor's Instance page lacks the log or Stop")
	}
	code, body, _ := b.get(page + "/log")
	if code != http.StatusOK || body != "L 12/02/2026 - 05:00:00: the log of /logs/team-a/team-a-1\n" {
		t.Errorf("the log: %d %q", code, body)
	}
}

// TestViewersSeePlayers: the Instance page lists who plays, for viewers
// too, names escaped; its refresh sends the same as JSON; another
// namespace's players are refused; a stopped game's page says so.
func TestViewersSeePlayers(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "vic", "viewer:team-a")
	b := f.browser(t)
	b.login("vic", password)
	page := "/ui/namespaces/team-a/instances/team-a-1"
	if code, body, _ := b.get(page); code != http.StatusOK || !strings.Contains(body, "No players on team-a/team-a-1 (map c1m1_hotel).") {
		t.Fatalf("nobody plays: %d\n%s", code, body)
	}
	f.game.join(v1.Player{Name: "<b>Alice</b>", Score: 4, DurationSeconds: 312, SteamID: "STEAM_1:0:12345", Ping: 48})
	f.game.join(v1.Player{Name: "Coach", SteamID: "BOT", Bot: true})
	code, body, _ := b.get(page)
	if code != http.StatusOK || !strings.Contains(body, "Map c1m1_hotel, 2/8 players") ||
		!strings.Contains(body, "<tr><td>&lt;b&gt;Alice&lt;/b&gt;</td><td>STEAM_1:0:12345</td><td>4</td><td>05:12</td><td>48</td></tr>") ||
		!strings.Contains(body, "<tr><td>Coach</td><td>BOT</td><td>0</td><td>00:00</td><td>-</td></tr>") {
		t.Fatalf("two players: %d\n%s", code, body)
	}
	code, body, _ = b.get(page + "/players")
	var view struct {
		Summary string
		Rows    []struct{ Name, SteamID, Ping string }
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &view) != nil || view.Summary != "Map c1m1_hotel, 2/8 players" ||
		len(view.Rows) != 2 || view.Rows[0].Name != "<b>Alice</b>" || view.Rows[0].Ping != "48" {
		t.Fatalf("the refresh: %d %s", code, body)
	}
	if code, _, _ := b.get("/ui/namespaces/team-b/instances/team-b-1/players"); code != http.StatusForbidden {
		t.Fatalf("another namespace's players: %d, want 403", code)
	}
	// A stopped game: the page says why nobody is listed, in the agent's words.
	f.game.stop()
	code, body, _ = b.get(page)
	if code != http.StatusOK || !strings.Contains(body, "Players unavailable (409): node node-1: instance team-a/team-a-1 is not running") || strings.Contains(body, "Alice") {
		t.Fatalf("a stopped game's page: %d\n%s", code, body)
	}
}

func TestSecurityHeadersAndCookie(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "alice", "admin")
	b := f.browser(t)
	for _, p := range []string{"/ui/login", "/ui/static/app.js", "/ui/nothing-here"} {
		_, _, h := b.get(p)
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: Content-Security-Policy %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, h)
		}
	}
	_, body, _ := b.get("/ui/login")
	if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") {
		t.Error("the login page has inline script")
	}
	code, _, h := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {"alice"}, "password": {password}})
	if code != http.StatusSeeOther {
		t.Fatal(code)
	}
	var ck string
	for _, c := range h.Values("Set-Cookie") {
		if strings.HasPrefix(c, "l4m_session=") {
			ck = c
		}
	}
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie %q lacks %s", ck, attr)
		}
	}
	if v := strings.TrimPrefix(strings.Split(ck, ";")[0], "l4m_session="); len(v) != 43 {
		t.Errorf("session id %q is not 256 bits (43 base64url characters)", v)
	}
}

// TestFailedLoginsAreSlowedDown: wrong passwords spend the API's
// failed-login bucket for the address; once empty, even the right password
// gets 429, and so do API requests from there.
func TestFailedLoginsAreSlowedDown(t *testing.T) {
	f := newFixture(t, server.Options{FailedLoginQPS: 0.01, FailedLoginBurst: 3})
	f.user(t, "alice", "admin")
	b := f.browser(t)
	for i := range 3 {
		if code, _, _ := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {"alice"}, "password": {"guess number " + string(rune('a'+i))}}); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	code, _, h := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {"alice"}, "password": {password}})
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("the right password after the guesses: %d (Retry-After %q), want 429", code, h.Get("Retry-After"))
	}
	req, _ := http.NewRequest(http.MethodGet, f.s.URL()+"/apis/left4me.io/v1alpha1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.AdminToken(t, f.s))
	resp, err := servertest.HTTPClient(f.s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the API from the same address: %d, want 429", resp.StatusCode)
	}
}

// TestLoginsAndActionsAreAudited: logins (failed too), Start/Stop and
// logouts are in the API's audit log under the user's name.
func TestLoginsAndActionsAreAudited(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, server.Options{DataDir: dir})
	f.user(t, "ed", "editor:team-a")
	b := f.browser(t)
	b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {"ed"}, "password": {"not the password"}})
	b.login("ed", password)
	page := "/ui/namespaces/team-a/instances/team-a-1"
	if code, _, _ := b.post(page+"/state", b.origin(), url.Values{"state": {"Stopped"}, "csrf": {b.csrf(page)}}); code != http.StatusSeeOther {
		t.Fatalf("Stop: %d", code)
	}
	b.post("/ui/logout", b.origin(), url.Values{"csrf": {b.csrf("/ui/")}})
	data, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"user":"user:ed","verb":"login","resource":"ui","code":401`,
		`"user":"user:ed","verb":"login","resource":"ui","code":303`,
		`"user":"user:ed","verb":"patch","resource":"instances","namespace":"team-a","name":"team-a-1","code":200`,
		`"user":"user:ed","verb":"logout","resource":"ui","code":303`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the audit log lacks %s:\n%s", want, data)
		}
	}
}
