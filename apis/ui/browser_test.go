package ui_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotDir is where the browser test saves its screenshots:
// $L4M_UI_SCREENSHOTS, or a temporary directory named in the log.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("L4M_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s (set L4M_UI_SCREENSHOTS to keep them)", dir)
	return dir
}

// serverSPKI is the base64 SHA-256 of the server certificate's public key,
// which Chromium is told to trust (it has no way to take our CA alone
// without a system trust store).
func serverSPKI(t *testing.T, f *fixture) string {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.s.CAPEM)
	u, _ := url.Parse(f.s.URL())
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// newChromium starts headless Chromium with a fresh profile and every
// flag that keeps it off the network (the machine has none: without them
// it keeps trying to reach Google).
func newChromium(t *testing.T, f *fixture) context.Context {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is missing (apt-get install chromium); CI installs it and runs this test", chromiumPath)
		}
		t.Fatalf("CI is set but %s is missing: .ci/run installs chromium", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("ignore-certificate-errors-spki-list", serverSPKI(t, f)),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	return bctx
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func browserLogin(t *testing.T, ctx context.Context, base, name string) {
	t.Helper()
	do(t, ctx, "log in as "+name,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.SendKeys(chromedp.ID("username"), name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("instances")),
	)
}

// TestDashboardInChromium drives the dashboard in a real headless
// Chromium: log in through the form, watch two Instances turn Ready on
// the fleet page without a reload (their status written as a node
// writes it), restart and stop one with the confirmation, visit each page; then as a
// viewer: no buttons, and a forged POST and one without the CSRF token
// are refused by the server.
func TestDashboardInChromium(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "alice", "admin")
	f.user(t, "vic", "viewer:team-a")
	ctx := newChromium(t, f)
	dir := screenshotDir(t)
	base := f.s.URL()

	browserLogin(t, ctx, base, "alice")
	do(t, ctx, "the fleet's live stream connects", chromedp.WaitVisible(chromedp.CSS("#live.on")))
	screenshot(t, ctx, dir, "login-then-fleet")
	// A mark on the page: a reload would lose it.
	eval[bool](t, ctx, `window.l4mMark = true`)
	for _, row := range []string{"team-a/team-a-1", "team-b/team-b-1"} {
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#instances tr[data-key=%q] td:last-child').textContent`, row)); got != "-" {
			t.Fatalf("%s is Ready %q before any status", row, got)
		}
	}
	f.markReady(t, "team-a", "team-a-1", 27015)
	f.markReady(t, "team-b", "team-b-1", 27016)
	do(t, ctx, "both Instances turn Ready on the page",
		chromedp.WaitVisible(chromedp.CSS(`#instances tr[data-key="team-a/team-a-1"] td.ready-True`)),
		chromedp.WaitVisible(chromedp.CSS(`#instances tr[data-key="team-b/team-b-1"] td.ready-True`)),
	)
	if !eval[bool](t, ctx, `window.l4mMark === true`) {
		t.Fatal("the fleet page reloaded")
	}
	row := eval[string](t, ctx, `document.querySelector('#instances tr[data-key="team-a/team-a-1"]').textContent`)
	for _, want := range []string{"Running", "node-1", "192.0.2.10:27015", "c1m1_hotel", "2/8"} {
		if !strings.Contains(row, want) {
			t.Errorf("the live row %q lacks %q", row, want)
		}
	}
	if used := eval[string](t, ctx, `document.querySelector('#nodes tr[data-key="node-1"] td:nth-child(4)').textContent`); used != "2/10" {
		t.Errorf("node-1 shows %q Instances, want 2/10", used)
	}
	// A new Instance appears, and a deleted one goes, without a reload.
	if _, err := f.admin.Create(context.Background(), resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "team-a-2", Namespace: "team-a"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}, false); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "the new Instance's row appears", chromedp.WaitVisible(chromedp.CSS(`#instances tr[data-key="team-a/team-a-2"]`)))
	if order := eval[string](t, ctx, `[...document.querySelectorAll("#instances tbody tr")].map(r => r.dataset.key).join(" ")`); order != "team-a/team-a-1 team-a/team-a-2 team-b/team-b-1" {
		t.Errorf("the rows are %q, want them in namespace/name order", order)
	}
	screenshot(t, ctx, dir, "fleet-ready")
	if _, _, err := f.admin.Delete(context.Background(), resources.Instances, "team-a", "team-a-2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#instances tr[data-key="team-a/team-a-2"]') === null`)); err != nil {
		t.Errorf("the deleted Instance's row stays: %v", err)
	}
	if !eval[bool](t, ctx, `window.l4mMark === true`) {
		t.Fatal("the fleet page reloaded")
	}

	// Stop, confirmed in the browser's dialog.
	var dialogs sync.WaitGroup
	dctx, stopDialogs := context.WithCancel(ctx)
	confirmed := make(chan string, 2)
	dialogs.Go(func() {
		for ev, err := range chromedp.Events(dctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			confirmed <- ev.Message
			chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})
	do(t, ctx, "open the Instance page", chromedp.Navigate(base+"/ui/namespaces/team-a/instances/team-a-1"), chromedp.WaitVisible(chromedp.ID("stop")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("log").textContent.includes("the log of /logs/team-a/team-a-1")`)); err != nil {
		t.Errorf("the game's log does not reach the page: %v", err)
	}
	// The console: a command's answer and a new log line appear live.
	do(t, ctx, "the console connects", chromedp.WaitVisible(chromedp.CSS("#console-state.on")))
	do(t, ctx, "send status", chromedp.SendKeys(chromedp.ID("console-input"), "status"), chromedp.Click(chromedp.ID("console-send")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#console .console-output")?.textContent.includes("hostname: fake game")`)); err != nil {
		t.Errorf("the answer to status does not appear in the console: %v", err)
	}
	do(t, ctx, "send l4m_join", chromedp.SendKeys(chromedp.ID("console-input"), "l4m_join Alice"), chromedp.Click(chromedp.ID("console-send")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`[...document.querySelectorAll("#console .console-log")].some(s => s.textContent === "Player joined: Alice\n")`)); err != nil {
		t.Errorf("the new log line does not appear in the console: %v", err)
	}
	if text := eval[string](t, ctx, `document.getElementById("console").textContent`); strings.Contains(text, "undefined") {
		t.Errorf("the console shows %q", text)
	}
	screenshot(t, ctx, dir, "instance-admin")
	// Restart, confirmed: the page comes back with the restart asked for,
	// which the game (started by its node with template t1) has not seen.
	f.patchStatus(t, "team-a", "team-a-1", map[string]any{"templateHash": "t1"})
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("restart"))); err != nil {
		t.Fatalf("click Restart: %v", err)
	}
	at := annotations(t, f, "team-a", "team-a-1")[v1.AnnotationRestartedAt]
	if got := eval[string](t, ctx, `document.getElementById("restart-requested").textContent`); at == "" || got != at {
		t.Errorf("after Restart the page says it was requested at %q; the annotation is %q", got, at)
	}
	if got := eval[string](t, ctx, `document.getElementById("rollout").textContent`); got != "not yet seen by its node" {
		t.Errorf("after Restart the page says the rollout is %q", got)
	}
	screenshot(t, ctx, dir, "instance-restart")
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatalf("click Stop: %v", err)
	}
	stopDialogs()
	dialogs.Wait()
	for _, want := range []string{"Restart team-a-1?", "Stop team-a-1?"} {
		select {
		case msg := <-confirmed:
			if !strings.Contains(msg, want) {
				t.Errorf("the confirmation says %q, want %q", msg, want)
			}
		default:
			t.Errorf("%s asked for no confirmation", want)
		}
	}
	if got := state(t, f, "team-a", "team-a-1"); got != v1.StateStopped {
		t.Errorf("after Stop in the browser spec.state is %q", got)
	}
	do(t, ctx, "blueprint page", chromedp.Navigate(base+"/ui/namespaces/team-a/blueprints/coop"), chromedp.WaitVisible(chromedp.CSS(".rollout-status")))
	screenshot(t, ctx, dir, "blueprint")
	do(t, ctx, "overlay page", chromedp.Navigate(base+"/ui/namespaces/team-a/overlays/mods"), chromedp.WaitVisible(chromedp.CSS(".rollout-status")))
	screenshot(t, ctx, dir, "overlay")

	// The viewer.
	do(t, ctx, "log out", chromedp.Navigate(base+"/ui/"), chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login-form")))
	browserLogin(t, ctx, base, "vic")
	if eval[bool](t, ctx, `document.body.textContent.includes("team-b-1")`) {
		t.Error("a team-a viewer sees team-b-1 on the fleet page")
	}
	do(t, ctx, "the viewer's Instance page", chromedp.Navigate(base+"/ui/namespaces/team-a/instances/team-a-1"), chromedp.WaitVisible(chromedp.ID("conditions")))
	// Viewers see who plays; a player who joins shows without a reload.
	if got := eval[string](t, ctx, `document.getElementById("players-summary").textContent`); got != "No players on team-a/team-a-1 (map c1m1_hotel)." {
		t.Errorf("the players summary before anyone joined: %q", got)
	}
	eval[bool](t, ctx, `window.l4mMark = true`)
	f.game.join(v1.Player{Name: "Alice \"the\" Zoë", Score: 4, DurationSeconds: 312, SteamID: "STEAM_1:0:12345", Ping: 48})
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#players tbody").textContent.includes("Alice \"the\" ZoëSTEAM_1:0:12345405:1248")`)); err != nil {
		t.Errorf("the joined player does not show: %v", err)
	}
	if got := eval[string](t, ctx, `document.getElementById("players-summary").textContent`); got != "Map c1m1_hotel, 1/8 players" || !eval[bool](t, ctx, `window.l4mMark === true`) {
		t.Errorf("after the join the summary is %q (or the page reloaded)", got)
	}
	screenshot(t, ctx, dir, "instance-viewer")
	if eval[bool](t, ctx, `document.querySelector("#start, #stop, #restart") !== null`) {
		t.Error("the viewer's page has Start/Stop/Restart buttons")
	}
	if eval[bool](t, ctx, `document.querySelector("#console, #console-input") !== null`) {
		t.Error("the viewer's page has a console")
	}
	// A console opened by hand is refused by the server (403 to the
	// upgrade: the WebSocket closes without opening).
	if opened := eval[bool](t, ctx, `new Promise(done => {
			const ws = new WebSocket("wss://" + location.host + location.pathname + "/console?csrf=" + document.querySelector("input[name=csrf]").value);
			ws.onopen = () => done(true); ws.onclose = () => done(false); })`); opened {
		t.Error("the viewer's hand-made console WebSocket opened")
	}
	post := func(form string) int {
		return eval[int](t, ctx, `(async () => {
			const r = await fetch(location.pathname + "/state", {method: "POST", credentials: "same-origin",
				headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: `+form+`});
			return r.status; })()`)
	}
	csrf := `new URLSearchParams({state: "Running", csrf: document.querySelector("input[name=csrf]").value})`
	if code := post(csrf); code != 403 {
		t.Errorf("the viewer's forged Start with the session's CSRF token: %d, want 403", code)
	}
	if code := post(`"state=Running"`); code != 403 {
		t.Errorf("a Start without the CSRF token: %d, want 403", code)
	}
	if got := state(t, f, "team-a", "team-a-1"); got != v1.StateStopped {
		t.Errorf("the viewer's POSTs changed spec.state to %q", got)
	}
}
