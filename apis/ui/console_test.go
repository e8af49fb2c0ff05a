package ui_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/left4me/left4me/apis/console"
	"github.com/left4me/left4me/apis/console/consoletest"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/ui"
)

// fakeConsole is a node agent's console as the game double makes it:
// "status" answers with the server's facts (and the path it was asked on), "l4m_join NAME" writes a
// "Player joined" log line.
var fakeConsole = consoletest.Handler("L 12/02/2026 - 05:00:00: console opened", func(r *http.Request, cmd string) ([]console.Message, string) {
	if name, ok := strings.CutPrefix(cmd, "l4m_join "); ok {
		return []console.Message{consoletest.Log("Player joined: " + name), consoletest.Output(cmd, "")}, ""
	}
	if cmd == "status" {
		return []console.Message{consoletest.Output(cmd, "hostname: fake game on "+r.URL.Path+"\nmap     : c1m1_hotel\nplayers : 0 humans, 0 bots (8 max)\n")}, ""
	}
	return []console.Message{consoletest.Output(cmd, "Unknown command \""+cmd+"\"\n")}, ""
})

// dialConsole opens the dashboard's console WebSocket with b's session
// cookie, Origin origin and CSRF token csrf; it returns the connection or
// the refusal's HTTP code.
func (b *browser) dialConsole(path, origin, csrf string) (*websocket.Conn, int) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	hc := *b.http
	hc.Timeout = 0 // a session lasts
	c, resp, err := websocket.Dial(ctx, b.f.s.URL()+path+"/console?csrf="+csrf, &websocket.DialOptions{HTTPClient: &hc, HTTPHeader: h})
	if err != nil {
		if resp == nil {
			b.t.Fatalf("console %s: %v", path, err)
		}
		return nil, resp.StatusCode
	}
	b.t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// TestConsoleRefusals: the dashboard's console opens for an editor from
// this origin with the session's CSRF token, and for nobody else: a
// viewer gets the API's 403, another origin and a missing or wrong token
// are refused before the API is asked.
func TestConsoleRefusals(t *testing.T) {
	ui.SetRecheckInterval(200 * time.Millisecond)
	t.Cleanup(func() { ui.SetRecheckInterval(10 * time.Second) })
	f := newFixture(t, server.Options{})
	f.user(t, "ed", "editor:team-a")
	f.user(t, "vic", "viewer:team-a")
	const page = "/ui/namespaces/team-a/instances/team-a-1"

	vic := f.browser(t)
	vic.login("vic", password)
	_, body, _ := vic.get(page)
	if strings.Contains(body, `id="console-input"`) {
		t.Error("the viewer's Instance page has a console input")
	}
	if _, code := vic.dialConsole(page, vic.origin(), vic.csrf("/ui/login")); code != http.StatusForbidden {
		t.Errorf("the viewer's console: %d, want 403", code)
	}

	ed := f.browser(t)
	ed.login("ed", password)
	_, body, _ = ed.get(page)
	if !strings.Contains(body, `id="console-input"`) {
		t.Fatalf("the editor's Instance page has no console:\n%s", body)
	}
	csrf := csrfField.FindStringSubmatch(body)[1]
	for what, c := range map[string]struct{ origin, csrf string }{
		"another origin": {"https://evil.example", csrf},
		"no Origin":      {"", csrf},
		"no CSRF token":  {ed.origin(), ""},
		"a wrong token":  {ed.origin(), "x" + csrf},
	} {
		if _, code := ed.dialConsole(page, c.origin, c.csrf); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", what, code)
		}
	}
	if _, code := ed.dialConsole("/ui/namespaces/team-b/instances/team-b-1", ed.origin(), csrf); code != http.StatusForbidden {
		t.Errorf("team-b's console for a team-a editor: %d, want 403", code)
	}

	c, code := ed.dialConsole(page, ed.origin(), csrf)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("the editor's console: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "console opened") {
		t.Fatalf("greeting %s, %v", b, err)
	}
	cmd, _ := json.Marshal(console.Message{Type: console.TypeCommand, Command: "status"})
	if err := c.Write(ctx, websocket.MessageText, cmd); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "hostname: fake game on /console/team-a/team-a-1") {
		t.Fatalf("answer %s, %v", b, err)
	}
	// Logging out ends the session within the recheck interval.
	ed.post("/ui/logout", ed.origin(), map[string][]string{"csrf": {csrf}})
	for {
		if _, _, err := c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("the session ended without a close: %v", err)
			}
			break
		}
	}
}
