package ui_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
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

// fixture is a real l4m-server (embedded etcd, HTTPS) with namespaces
// team-a and team-b, a Node, a Blueprint and an Instance in each.
type fixture struct {
	s     *server.Server
	admin *client.Client
	// game is who plays on every Instance of node-1, as its agent answers.
	game *game
}

// game is the players node-1's agent reports.
type game struct {
	mu      sync.Mutex
	players []v1.Player
	stopped bool
}

func (g *game) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
}

func (g *game) isStopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

func (g *game) join(p v1.Player) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.players = append(g.players, p)
}

func (g *game) answer() v1.InstancePlayers {
	g.mu.Lock()
	defer g.mu.Unlock()
	return v1.InstancePlayers{Map: "c1m1_hotel", MaxPlayers: 8, Players: append([]v1.Player{}, g.players...)}
}

const password = "a long enough password"

func newFixture(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	s, admin := servertest.StartWith(t, opts)
	f := &fixture{s: s, admin: admin, game: &game{}}
	ctx := context.Background()
	must := func(_ v1.Object, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: v1.NodeSpec{Capacity: v1.NodeCapacity{Instances: 10}}}, false))
	must(admin.PatchStatus(ctx, resources.Nodes, "", "node-1", nodeStatus(t, startLogServer(t, f.game))))
	for _, ns := range []string{"team-a", "team-b"} {
		must(admin.Create(ctx, resources.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, false))
		must(admin.Create(ctx, resources.Overlays, &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "mods", Namespace: ns}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}}, false))
		must(admin.Create(ctx, resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: ns}, Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}}, false))
		must(admin.Create(ctx, resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: ns + "-1", Namespace: ns},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "node-1"}}, false))
	}
	return f
}

// startLogServer is node-1's agent log server: every log it is asked for
// is one line naming the path; its consoles are fakeConsole; players are
// g's (409 once g is stopped).
func startLogServer(t *testing.T, g *game) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "L 12/02/2026 - 05:00:00: the log of %s\n", r.URL.Path)
	})
	mux.HandleFunc("GET /console/{ns}/{name}", fakeConsole)
	mux.HandleFunc("GET /players/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if g.isStopped() {
			http.Error(w, "instance "+r.PathValue("ns")+"/"+r.PathValue("name")+" is not running", http.StatusConflict)
			return
		}
		json.NewEncoder(w).Encode(g.answer())
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// nodeStatus is node-1's status as its agent reports it: Ready, a build,
// and the log server's address and certificate.
func nodeStatus(t *testing.T, logs *httptest.Server) []byte {
	host, port, _ := net.SplitHostPort(logs.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	sum := sha256.Sum256(logs.Certificate().Raw)
	st := map[string]any{"status": v1.NodeStatus{
		Addresses:     []string{host},
		LogsEndpoint:  &v1.LogsEndpoint{Port: int32(p), CertSHA256: hex.EncodeToString(sum[:])},
		Conditions:    []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Heartbeat", LastTransitionTime: metav1.Now()}},
		Installations: []v1.NodeInstallation{{Name: "l4d2", Phase: "Ready", Builds: []string{"9001"}}},
	}}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// user makes a password user with roles ("admin", "viewer:team-a", ...).
func (f *fixture) user(t *testing.T, name string, roles ...string) {
	t.Helper()
	var rb []v1.RoleBinding
	for _, r := range roles {
		role, ns, _ := strings.Cut(r, ":")
		rb = append(rb, v1.RoleBinding{Role: role, Namespace: ns})
	}
	if _, err := f.admin.Create(context.Background(), resources.Users, &v1.User{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.UserSpec{Roles: rb, Password: password}}, false); err != nil {
		t.Fatal(err)
	}
}

// markReady writes an Instance's status as its node would: Running, an
// address, a map, players and Ready=True.
func (f *fixture) markReady(t *testing.T, ns, name string, port int32) {
	t.Helper()
	ctx := context.Background()
	obj, err := f.admin.Get(ctx, resources.Instances, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	in := obj.(*v1.Instance)
	in.Status.Phase, in.Status.NodeName, in.Status.Address, in.Status.Port = v1.PhaseRunning, "node-1", "192.0.2.10", port
	in.Status.Map, in.Status.Players, in.Status.MaxPlayers = "c1m1_hotel", 2, 8
	in.Status.Conditions = []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "A2S answers", LastTransitionTime: metav1.Now()}}
	if _, err := f.admin.UpdateStatus(ctx, resources.Instances, in); err != nil {
		t.Fatal(err)
	}
}

// browser is an HTTP client with a cookie jar that sends Origin like a
// browser's form posts.
type browser struct {
	t    *testing.T
	f    *fixture
	http *http.Client
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.s.CAPEM)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, f: f, http: hc}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get returns the answer's code, body and headers.
func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.http.Get(b.f.s.URL() + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// csrf is the CSRF token of the form on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body, _ := b.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("%s has no CSRF field:\n%s", path, body)
	}
	return m[1]
}

// post sends a form with Origin set (origin "" leaves it out).
func (b *browser) post(path, origin string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.f.s.URL()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) origin() string { return b.f.s.URL() }

// login logs in through the form and fails the test unless it works.
func (b *browser) login(name, pw string) {
	b.t.Helper()
	code, body, h := b.post("/ui/login", b.origin(), url.Values{"csrf": {b.csrf("/ui/login")}, "username": {name}, "password": {pw}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		b.t.Fatalf("login as %s: %d %s\n%s", name, code, h.Get("Location"), body)
	}
}
