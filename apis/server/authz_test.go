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
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// fixture is a server with two namespaces, two nodes and one Instance
// bound to each node, and a token for every kind of caller.
type fixture struct {
	s      *server.Server
	admin  *client.Client
	tokens map[string]string
	objs   map[string]v1.Object // by plural: the object item verbs act on
}

func newFixture(t *testing.T) *fixture {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	res := func(kind string) *resources.Resource { r, _ := resources.ByKind(kind); return r }
	must := func(obj v1.Object, err error) v1.Object {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	f := &fixture{s: s, admin: admin, tokens: map[string]string{}, objs: map[string]v1.Object{}}
	for _, ns := range []string{"team-a", "team-b"} {
		f.objs["namespaces"] = must(admin.Create(ctx, res("Namespace"), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, false))
	}
	f.objs["namespaces"] = must(admin.Get(ctx, res("Namespace"), "", "team-a"))
	for _, n := range []string{"node-2", "node-1"} {
		f.objs["nodes"] = must(admin.Create(ctx, res("Node"), &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, false))
		f.objs["leases"] = must(admin.Create(ctx, res("Lease"), lease(n, n), false))
	}
	f.objs["installations"] = must(admin.Create(ctx, res("Installation"), &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}}, false))
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "team-a"} }
	f.objs["overlays"] = must(admin.Create(ctx, res("Overlay"), &v1.Overlay{ObjectMeta: meta("ov"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}}, false))
	f.objs["blueprints"] = must(admin.Create(ctx, res("Blueprint"), &v1.Blueprint{ObjectMeta: meta("bp")}, false))
	must(admin.Create(ctx, res("Instance"), &v1.Instance{ObjectMeta: meta("inst-2"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "node-2"}}, false))
	f.objs["instances"] = must(admin.Create(ctx, res("Instance"), &v1.Instance{ObjectMeta: meta("inst-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "node-1"}}, false))
	f.objs["users"] = must(admin.Create(ctx, res("User"), &v1.User{ObjectMeta: metav1.ObjectMeta{Name: "alice"}, Spec: v1.UserSpec{Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "team-a"}}, Password: "alice's long password"}}, false))
	f.objs["events"] = must(admin.Create(ctx, res("Event"), &v1.Event{ObjectMeta: meta("ev"), InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "inst-1"}, Reason: "Test"}, false))

	f.tokens["admin"] = servertest.AdminToken(t, s)
	user := func(name string, roles ...v1.RoleBinding) string {
		return servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: name, Roles: roles})
	}
	f.tokens["editor-a"] = user("ed", v1.RoleBinding{Role: v1.RoleEditor, Namespace: "team-a"})
	f.tokens["viewer-a"] = user("vi", v1.RoleBinding{Role: v1.RoleViewer, Namespace: "team-a"})
	f.tokens["editor-b"] = user("eb", v1.RoleBinding{Role: v1.RoleEditor, Namespace: "team-b"})
	f.tokens["node-1"] = servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "node-1"})
	f.tokens["node-3"] = servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "node-3"}) // runs nothing
	f.tokens["join"] = servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenJoin})
	f.tokens["anonymous"] = ""
	f.tokens["garbage"] = "l4m.nosuchtoken.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	wrong := []byte(f.tokens["editor-a"])
	wrong[len(wrong)-1] ^= 1
	f.tokens["wrong-secret"] = string(wrong)
	past := metav1.NewTime(time.Now().Add(-time.Minute))
	f.tokens["expired"] = servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "old", Roles: []v1.RoleBinding{{Role: v1.RoleAdmin}}, ExpirationTime: &past})
	revoked := user("gone", v1.RoleBinding{Role: v1.RoleAdmin})
	id := strings.Split(revoked, ".")[1]
	if _, _, err := admin.Delete(ctx, res("Token"), "", id, false); err != nil {
		t.Fatal(err)
	}
	f.tokens["revoked"] = revoked
	tl, err := admin.List(ctx, res("Token"), "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.objs["tokens"] = &tl.(*v1.TokenList).Items[0]
	return f
}

// lease is a node's Lease as its agent renews it.
func lease(name, holder string) *v1.Lease {
	now := metav1.NowMicro()
	return &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LeaseSpec{HolderIdentity: holder, LeaseDurationSeconds: v1.NodeLeaseDurationSeconds, RenewTime: &now}}
}

func leaseJSON(name, holder string) string {
	data, _ := json.Marshal(lease(name, holder))
	return string(data)
}

// renewed is the named Lease as stored, renewed now: the body of the PUT
// an agent renews it with.
func renewed(t *testing.T, f *fixture, name string) string {
	t.Helper()
	obj, err := f.admin.Get(context.Background(), resources.Leases, "", name)
	if err != nil {
		t.Fatal(err)
	}
	l := obj.(*v1.Lease)
	now := metav1.NowMicro()
	l.Spec.RenewTime = &now
	data, _ := json.Marshal(l)
	return string(data)
}

// do sends one request as who and returns the HTTP code.
func (f *fixture) do(t *testing.T, who, method, path, contentType, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok := f.tokens[who]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := servertest.HTTPClient(f.s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 403 {
		data, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(data), "may not") && !strings.Contains(string(data), "may change only") && !strings.Contains(string(data), "may only") {
			t.Errorf("403 without a message saying what was refused: %s", data)
		}
	}
	return resp.StatusCode
}

// policy is the authorization table a reader can check by eye: for each
// caller, the "resource verb" pairs it may do on the fixture's objects
// (answered as answer says). Everything absent is 403 (401 for callers
// without a valid token). A node patching its own Node's finalizers is
// absent: it changes only status and labels (see extraCells).
var policy = map[string][]string{
	"editor-a": {
		"overlays *", "blueprints *", "instances *", "events *",
		"overlays/status get", "blueprints/status get", "instances/status get",
		"nodes get", "nodes list", "nodes watch", "nodes/status get", "namespaces get", "namespaces/status get",
		"leases get", "leases list", "leases watch",
		"installations get", "installations list", "installations watch", "installations/status get",
	},
	"viewer-a": {
		"overlays get", "overlays list", "overlays watch", "blueprints get", "blueprints list", "blueprints watch",
		"instances get", "instances list", "instances watch", "events get", "events list", "events watch",
		"overlays/status get", "blueprints/status get", "instances/status get",
		"nodes get", "nodes list", "nodes watch", "nodes/status get", "namespaces get", "namespaces/status get",
		"leases get", "leases list", "leases watch",
		"installations get", "installations list", "installations watch", "installations/status get",
	},
	"editor-b": {"nodes get", "nodes list", "nodes watch", "nodes/status get", "leases get", "leases list", "leases watch", "installations get", "installations list", "installations watch", "installations/status get"},
	"node-1": {
		"instances get", "instances update", "instances patch", "instances/status get", "instances/status update", "instances/status patch",
		"blueprints get", "blueprints list", "blueprints watch", "overlays get", "overlays list", "overlays watch",
		"blueprints/status get", "overlays/status get",
		"events get", "events list", "events watch", "events create", "events update", "events patch",
		"nodes get", "nodes create", "nodes update", "nodes/status get", "nodes/status update", "nodes/status patch",
		"leases get", "leases update", "leases patch",
		"installations get", "installations list", "installations watch", "installations/status get",
	},
	"node-3": {"installations get", "installations list", "installations watch", "installations/status get"},
	"join":   {"tokens create"},
}

var unauthenticated = []string{"anonymous", "garbage", "wrong-secret", "expired", "revoked"}

func allowed(who, resource, verb string) bool {
	if who == "admin" {
		return true
	}
	plural := strings.Split(resource, "/")[0]
	for _, p := range policy[who] {
		if p == resource+" "+verb || (p == plural+" *" && !strings.Contains(resource, "/")) {
			return true
		}
	}
	return false
}

// answer is what an allowed cell gets from the API: the exact 2xx of the
// verb, or 409 where the fixture makes the object exist already (a create
// of node-1) or the request conflict with what exists (deleting team-a,
// which still holds objects).
func answer(res *resources.Resource, verb string) int {
	switch {
	case verb == "create" && res.Kind == "Node":
		return http.StatusConflict // newBody keeps the name node-1
	case verb == "create":
		return http.StatusCreated
	case verb == "delete" && res.Kind == "Namespace":
		return http.StatusConflict // team-a holds objects
	}
	return http.StatusOK
}

// extraCell is one request beyond the verb grid, with the callers it is
// allowed to and what each gets; every other caller gets 403 (401 without
// a valid token). These are the node restriction's cells: what a node may
// write into its own Node, which Lease it may renew and which Events it
// may write.
type extraCell struct {
	name, method, path, ct, body string
	allowed                      map[string]int
}

func extraCells() []extraCell {
	nodes := base + "/nodes/node-1?dryRun=All"
	events := func(ns string) string { return base + "/namespaces/" + ns + "/events?dryRun=All" }
	event := func(kind, ns, about string) string {
		data, _ := json.Marshal(v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "about-" + about}, InvolvedObject: v1.ObjectReference{Kind: kind, Namespace: ns, Name: about}, Reason: "Test"})
		return string(data)
	}
	patch := server.MergePatchType
	leases := base + "/leases"
	return []extraCell{
		{"renew other node's Lease", "PATCH", leases + "/node-2?dryRun=All", patch, `{"spec":{"renewTime":"2030-01-01T00:00:00.000000Z"}}`, map[string]int{"admin": 200}},
		{"create own Lease", "POST", leases + "?dryRun=All", "application/json", leaseJSON("node-3", "node-3"), map[string]int{"admin": 201, "node-3": 201}},
		{"create own Lease held by another node", "POST", leases + "?dryRun=All", "application/json", leaseJSON("node-3", "node-1"), map[string]int{"admin": 201}},
		{"list own Lease", "GET", leases + "?fieldSelector=metadata.name%3Dnode-1", "", "", map[string]int{"admin": 200, "node-1": 200, "editor-a": 200, "viewer-a": 200, "editor-b": 200}},
		{"patch nodes labels", "PATCH", nodes, patch, `{"metadata":{"labels":{"region":"eu"}}}`, map[string]int{"admin": 200, "node-1": 200}},
		{"patch nodes node-restriction label", "PATCH", nodes, patch, `{"metadata":{"labels":{"node-restriction.left4me.io/pool":"a"}}}`, map[string]int{"admin": 200}},
		{"patch nodes annotations", "PATCH", nodes, patch, `{"metadata":{"annotations":{"note":"x"}}}`, map[string]int{"admin": 200}},
		{"patch nodes spec.capacity", "PATCH", nodes, patch, `{"spec":{"capacity":{"instances":500}}}`, map[string]int{"admin": 200}},
		{"patch nodes spec.portRange", "PATCH", nodes, patch, `{"spec":{"portRange":{"min":1024,"max":2000}}}`, map[string]int{"admin": 200}},
		{"create events about own Instance", "POST", events("team-a"), "application/json", event("Instance", "team-a", "inst-1"), map[string]int{"admin": 201, "editor-a": 201, "node-1": 201}},
		{"create events about other node's Instance", "POST", events("team-a"), "application/json", event("Instance", "team-a", "inst-2"), map[string]int{"admin": 201, "editor-a": 201}},
		{"create events about own Node", "POST", events("default"), "application/json", event("Node", "", "node-1"), map[string]int{"admin": 201, "node-1": 201}},
		{"create events about other Node", "POST", events("default"), "application/json", event("Node", "", "node-2"), map[string]int{"admin": 201}},
		{"create events about a Blueprint", "POST", events("team-a"), "application/json", event("Blueprint", "team-a", "bp"), map[string]int{"admin": 201, "editor-a": 201}},
		{"patch events onto other node's Instance", "PATCH", base + "/namespaces/team-a/events/ev?dryRun=All", patch, `{"involvedObject":{"name":"inst-2"}}`, map[string]int{"admin": 200, "editor-a": 200}},
	}
}

// logServer is node-1's log server as the agent runs it: TLS with a
// self-made certificate whose fingerprint the Node publishes; it answers
// logs, RCON and players.
func logServer(t *testing.T, f *fixture) {
	ls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/rcon/"):
			io.WriteString(w, `{"output":"hostname: test\n","truncated":false}`)
		case strings.HasPrefix(r.URL.Path, "/players/"):
			io.WriteString(w, `{"map":"c1m1_hotel","maxPlayers":4,"players":[]}`)
		default:
			io.WriteString(w, "L 12/02/2026 - 05:00:00: \"player<2>\" connected\n")
		}
	}))
	ls.StartTLS()
	t.Cleanup(ls.Close)
	sum := sha256.Sum256(ls.Certificate().Raw)
	port := ls.Listener.Addr().(*net.TCPAddr).Port
	patch, _ := json.Marshal(map[string]any{"status": v1.NodeStatus{Addresses: []string{"127.0.0.1"},
		LogsEndpoint: &v1.LogsEndpoint{Port: int32(port), CertSHA256: hex.EncodeToString(sum[:])}}})
	if _, err := f.admin.PatchStatus(context.Background(), resources.Nodes, "", "node-1", patch); err != nil {
		t.Fatal(err)
	}
}

// TestAuthorizationMatrix sends every verb on every resource (and the
// status subresource, logs, rcon and players) as every kind of caller, and the node
// restriction's extra cells, and asserts each answer exactly: the 2xx or
// 409 an allowed cell gets, 403 for a refused one, 401 without a valid
// token. No cell may answer 5xx.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	logServer(t, f)
	// node-1's Node as it is now (the log server's status patch moved it on).
	nodeNow, err := f.admin.Get(context.Background(), resources.Nodes, "", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	f.objs["nodes"] = nodeNow
	callers := append(append([]string{"admin"}, "editor-a", "viewer-a", "editor-b", "node-1", "node-3", "join"), unauthenticated...)
	var cells, allowedCells, denied, unauth int
	allowedBy := map[string]int{}
	check := func(who, what string, code, want int) {
		t.Helper()
		cells++
		switch {
		case code >= 500:
			t.Errorf("%s %s: got %d, a server error", who, what, code)
		case code != want:
			t.Errorf("%s %s: got %d, want %d", who, what, code, want)
		}
		switch want {
		case http.StatusUnauthorized:
			unauth++
		case http.StatusForbidden:
			denied++
		default:
			allowedCells++
			allowedBy[who]++
		}
	}
	expected := func(who string, allowed bool, code int) int {
		switch {
		case slices.Contains(unauthenticated, who):
			return http.StatusUnauthorized
		case !allowed:
			return http.StatusForbidden
		}
		return code
	}
	for _, res := range resources.All {
		obj := f.objs[res.Plural]
		if obj == nil {
			t.Fatalf("fixture lacks a %s", res.Kind)
		}
		ns := ""
		if res.Namespaced {
			ns = "team-a"
		}
		subs := []string{""}
		if res.StatusSubresource() {
			subs = append(subs, "status")
		}
		for _, sub := range subs {
			resource := res.Plural
			if sub != "" {
				resource += "/" + sub
			}
			item := client.Path(res, ns, obj.GetName(), sub)
			coll := client.Path(res, ns, "", "")
			current, _ := json.Marshal(obj)
			type verbCase struct {
				verb, method, path, ct, body string
			}
			verbs := []verbCase{
				{"get", "GET", item, "", ""},
				{"update", "PUT", item + "?dryRun=All", "application/json", string(current)},
				{"patch", "PATCH", item + "?dryRun=All", server.MergePatchType, `{"metadata":{"finalizers":["left4me.io/node-cleanup"]}}`},
			}
			if sub == "" {
				verbs = append(verbs,
					verbCase{"list", "GET", coll, "", ""},
					verbCase{"watch", "GET", coll + "?watch=true&timeoutSeconds=1", "", ""},
					verbCase{"create", "POST", coll + "?dryRun=All", "application/json", newBody(res, obj)},
					verbCase{"delete", "DELETE", item + "?dryRun=All", "", ""},
				)
			}
			for _, who := range callers {
				for _, vc := range verbs {
					body := vc.body
					if who == "join" && vc.verb == "create" && res.Kind == "Token" {
						body = `{"spec":{"type":"Node","nodeName":"node-9"}}`
					}
					code := f.do(t, who, vc.method, vc.path, vc.ct, body)
					check(who, vc.verb+" "+resource, code, expected(who, allowed(who, resource, vc.verb), answer(res, vc.verb)))
				}
			}
		}
	}
	for _, c := range extraCells() {
		for _, who := range callers {
			code := f.do(t, who, c.method, c.path, c.ct, c.body)
			want, ok := c.allowed[who]
			check(who, c.name, code, expected(who, ok, want))
		}
	}
	// Logs: editors and admins read the game log through node-1's log
	// server; everyone else is refused (or unauthenticated).
	logPath := base + "/namespaces/team-a/instances/inst-1/log"
	for _, who := range callers {
		code := f.do(t, who, "GET", logPath, "", "")
		check(who, "get instances/log", code, expected(who, who == "admin" || who == "editor-a", http.StatusOK))
	}
	// RCON changes the game: editors and admins. Players is a read: every
	// role in the namespace. Nodes serve both; they never ask.
	rconPath := base + "/namespaces/team-a/instances/inst-1/rcon"
	playersPath := base + "/namespaces/team-a/instances/inst-1/players"
	for _, who := range callers {
		code := f.do(t, who, "POST", rconPath, "application/json", `{"command":"status"}`)
		check(who, "create instances/rcon", code, expected(who, who == "admin" || who == "editor-a", http.StatusOK))
		code = f.do(t, who, "GET", playersPath, "", "")
		check(who, "get instances/players", code, expected(who, who == "admin" || who == "editor-a" || who == "viewer-a", http.StatusOK))
	}
	// The totals: 10 kinds × 7 verbs and 6 status subresources × 3 verbs,
	// 15 node-restriction cells, the log, rcon and players, for 12
	// callers; and how many cells each caller is allowed (admin: all 106;
	// every role and node reads Installations: 4 cells).
	const perCaller = 10*7 + 6*3 + 15 + 3
	wantAllowed := map[string]int{"admin": perCaller, "editor-a": 52, "viewer-a": 30, "editor-b": 12, "node-1": 37, "node-3": 5, "join": 1}
	sum := 0
	for who, n := range wantAllowed {
		sum += n
		if allowedBy[who] != n {
			t.Errorf("%s is allowed %d cells, want %d", who, allowedBy[who], n)
		}
	}
	t.Logf("authorization matrix: %d cells: %d allowed, %d denied, %d unauthenticated", cells, allowedCells, denied, unauth)
	if cells != 12*perCaller || allowedCells != sum || denied != 7*perCaller-sum || unauth != 5*perCaller {
		t.Errorf("matrix totals: %d cells (%d allowed, %d denied, %d unauthenticated), want %d (%d, %d, %d)",
			cells, allowedCells, denied, unauth, 12*perCaller, sum, 7*perCaller-sum, 5*perCaller)
	}
}

// newBody is a fresh object of the same kind for create cells. The Node
// keeps its name, node-1, which exists: its create cells answer 409.
func newBody(res *resources.Resource, like v1.Object) string {
	obj := like.DeepCopyObject().(v1.Object)
	obj.SetResourceVersion("")
	obj.SetUID("")
	if res.Kind != "Node" {
		obj.SetName(fmt.Sprintf("new-%s", res.Singular))
	}
	if n, ok := obj.(*v1.Node); ok {
		n.Status = v1.NodeStatus{}
	}
	if u, ok := obj.(*v1.User); ok {
		u.Spec.Password = "a new user's password" // write-only: never in what the API returns
	}
	data, _ := json.Marshal(obj)
	return string(data)
}

// TestNodeRestriction: a node credential cannot reach another node's
// Instances, rewrite a spec, or list beyond itself.
func TestNodeRestriction(t *testing.T) {
	f := newFixture(t)
	base := "/apis/left4me.io/v1alpha1/namespaces/team-a/instances"
	nodes := "/apis/left4me.io/v1alpha1/nodes"
	leases := "/apis/left4me.io/v1alpha1/leases"
	events := func(ns string) string { return "/apis/left4me.io/v1alpha1/namespaces/" + ns + "/events" }
	event := func(name, kind, ns, about string) string {
		data, _ := json.Marshal(v1.Event{ObjectMeta: metav1.ObjectMeta{Name: name}, InvolvedObject: v1.ObjectReference{Kind: kind, Namespace: ns, Name: about}, Reason: "Test"})
		return string(data)
	}
	// An admin labels node-1 node-restriction.left4me.io/pool and caps it.
	labelled, err := f.admin.Patch(context.Background(), resources.Nodes, "", "node-1", server.MergePatchType, []byte(`{"metadata":{"labels":{"node-restriction.left4me.io/pool":"a"}},"spec":{"capacity":{"instances":10}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, ct, body string
		want                         int
	}{
		{"read own instance", "GET", base + "/inst-1", "", "", 200},
		{"read other node's instance", "GET", base + "/inst-2", "", "", 403},
		{"list own instances", "GET", base + "?fieldSelector=spec.nodeName%3Dnode-1", "", "", 200},
		{"list all instances", "GET", base, "", "", 403},
		{"list other node's instances", "GET", base + "?fieldSelector=spec.nodeName%3Dnode-2", "", "", 403},
		{"watch own instances across namespaces", "GET", "/apis/left4me.io/v1alpha1/instances?watch=true&timeoutSeconds=1&fieldSelector=spec.nodeName%3Dnode-1", "", "", 200},
		{"write own status", "PATCH", base + "/inst-1/status", server.MergePatchType, `{"status":{"phase":"Running"}}`, 200},
		{"write other node's status", "PATCH", base + "/inst-2/status", server.MergePatchType, `{"status":{"phase":"Running"}}`, 403},
		{"change own instance's spec", "PATCH", base + "/inst-1", server.MergePatchType, `{"spec":{"port":27999}}`, 403},
		{"move own instance to another node", "PATCH", base + "/inst-1", server.MergePatchType, `{"spec":{"nodeName":"node-2"}}`, 403},
		{"label own instance", "PATCH", base + "/inst-1", server.MergePatchType, `{"metadata":{"labels":{"x":"y"}}}`, 403},
		{"add own finalizer", "PATCH", base + "/inst-1", server.MergePatchType, `{"metadata":{"finalizers":["left4me.io/node-cleanup"]}}`, 200},
		{"delete own instance", "DELETE", base + "/inst-1", "", "", 403},
		{"create an instance", "POST", base, "application/json", `{"metadata":{"name":"x"},"spec":{"blueprintRef":{"name":"bp"},"nodeName":"node-1"}}`, 403},
		{"update other Node", "PATCH", "/apis/left4me.io/v1alpha1/nodes/node-2", server.MergePatchType, `{"spec":{"unschedulable":true}}`, 403},
		// Its own Lease, and no other: one node cannot keep another alive.
		{"renew own Lease", "PUT", leases + "/node-1", "application/json", renewed(t, f, "node-1"), 200},
		{"renew other node's Lease", "PUT", leases + "/node-2", "application/json", renewed(t, f, "node-2"), 403},
		{"renew other node's Lease by patch", "PATCH", leases + "/node-2", server.MergePatchType, `{"spec":{"renewTime":"2030-01-01T00:00:00.000000Z"}}`, 403},
		{"create other node's Lease", "POST", leases, "application/json", leaseJSON("node-9", "node-9"), 403},
		{"hand own Lease to another node", "PATCH", leases + "/node-1", server.MergePatchType, `{"spec":{"holderIdentity":"node-2"}}`, 403},
		{"delete own Lease", "DELETE", leases + "/node-1", "", "", 403},
		{"list all Leases", "GET", leases, "", "", 403},
		{"watch own Lease", "GET", leases + "?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dnode-1", "", "", 200},
		{"update own Node", "PATCH", "/apis/left4me.io/v1alpha1/nodes/node-1/status", server.MergePatchType, `{"status":{"agentVersion":"test"}}`, 200},
		{"read blueprints of a namespace it does not run in", "GET", "/apis/left4me.io/v1alpha1/namespaces/team-b/blueprints", "", "", 403},
		{"read tokens", "GET", "/apis/left4me.io/v1alpha1/tokens", "", "", 403},
		{"read metrics", "GET", "/metrics", "", "", 403},
		// Its own Node: status and labels outside node-restriction.left4me.io/.
		{"raise own Node's capacity", "PATCH", nodes + "/node-1", server.MergePatchType, `{"spec":{"capacity":{"instances":500}}}`, 403},
		{"widen own Node's port range", "PATCH", nodes + "/node-1", server.MergePatchType, `{"spec":{"portRange":{"min":1024,"max":2000}}}`, 403},
		{"cordon own Node", "PATCH", nodes + "/node-1", server.MergePatchType, `{"spec":{"unschedulable":true}}`, 403},
		{"replace own Node's spec", "PUT", nodes + "/node-1", "application/json", `{"metadata":{"name":"node-1","resourceVersion":"` + labelled.GetResourceVersion() + `","labels":{"node-restriction.left4me.io/pool":"a"}},"spec":{"capacity":{"instances":500}}}`, 403},
		{"give own Node a node-restriction label", "PATCH", nodes + "/node-1", server.MergePatchType, `{"metadata":{"labels":{"node-restriction.left4me.io/tier":"trusted"}}}`, 403},
		{"give own Node a node-restriction subdomain label", "PATCH", nodes + "/node-1", server.MergePatchType, `{"metadata":{"labels":{"eu.node-restriction.left4me.io/tier":"trusted"}}}`, 403},
		{"drop own Node's node-restriction label", "PATCH", nodes + "/node-1", server.MergePatchType, `{"metadata":{"labels":{"node-restriction.left4me.io/pool":null}}}`, 403},
		{"annotate own Node", "PATCH", nodes + "/node-1", server.MergePatchType, `{"metadata":{"annotations":{"x":"y"}}}`, 403},
		{"label own Node", "PATCH", nodes + "/node-1", server.MergePatchType, `{"metadata":{"labels":{"region":"eu"}}}`, 200},
		{"label other Node", "PATCH", nodes + "/node-2", server.MergePatchType, `{"metadata":{"labels":{"region":"eu"}}}`, 403},
		// Events: only about itself and the Instances bound to it.
		{"event about own Instance", "POST", events("team-a"), "application/json", event("e1", "Instance", "team-a", "inst-1"), 201},
		{"event about other node's Instance", "POST", events("team-a"), "application/json", event("e2", "Instance", "team-a", "inst-2"), 403},
		{"event about own Instance filed elsewhere", "POST", events("team-b"), "application/json", event("e3", "Instance", "", "inst-1"), 403},
		{"event about own Node", "POST", events("default"), "application/json", event("e4", "Node", "", "node-1"), 201},
		{"event about other Node", "POST", events("default"), "application/json", event("e5", "Node", "", "node-2"), 403},
		{"event about a Blueprint", "POST", events("team-a"), "application/json", event("e6", "Blueprint", "team-a", "bp"), 403},
		{"retarget an event to other node's Instance", "PATCH", events("team-a") + "/ev", server.MergePatchType, `{"involvedObject":{"name":"inst-2"}}`, 403},
		{"update an event about own Instance", "PATCH", events("team-a") + "/ev", server.MergePatchType, `{"count":2}`, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code := f.do(t, "node-1", tc.method, tc.path, tc.ct, tc.body); code != tc.want {
				t.Fatalf("got %d, want %d", code, tc.want)
			}
		})
	}
	// Nothing the node was refused changed its Node; its own label stuck.
	obj, err := f.admin.Get(context.Background(), resources.Nodes, "", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	n := obj.(*v1.Node)
	if n.Spec.Capacity.Instances != 10 || n.Spec.PortRange.Min == 1024 || n.Labels["node-restriction.left4me.io/pool"] != "a" ||
		n.Labels["node-restriction.left4me.io/tier"] != "" || n.Labels["region"] != "eu" || len(n.Annotations) > 0 {
		t.Fatalf("Node after the node's attempts: spec %+v labels %v annotations %v", n.Spec, n.Labels, n.Annotations)
	}
	// Nothing the node was refused renewed or moved node-2's Lease.
	obj, err = f.admin.Get(context.Background(), resources.Leases, "", "node-2")
	if err != nil {
		t.Fatal(err)
	}
	if l := obj.(*v1.Lease); l.Spec.HolderIdentity != "node-2" || l.Spec.RenewTime.Year() == 2030 {
		t.Fatalf("node-2's Lease after node-1's attempts: %+v", l.Spec)
	}
	// Nothing the node was refused changed the Instance.
	in, err := f.admin.Get(context.Background(), resources.Instances, "team-a", "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	got := in.(*v1.Instance)
	if got.Spec.Port != 0 || got.Spec.NodeName != "node-1" || got.Labels["x"] == "y" || got.Status.Phase != v1.PhaseRunning {
		t.Fatalf("instance after the node's attempts: %+v %+v labels %v", got.Spec, got.Status, got.Labels)
	}
}

// TestJoinFlow: a join token obtains a Node token bound to one node, and can
// do nothing else.
func TestJoinFlow(t *testing.T) {
	f := newFixture(t)
	tokens := resources.Tokens
	join := servertest.ClientWithToken(t, f.s, f.tokens["join"])
	ctx := context.Background()
	out, err := join.Create(ctx, tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: "host-new"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	nodeTok := out.(*v1.Token).Status.Token
	if nodeTok == "" || !strings.HasPrefix(nodeTok, "l4m.") {
		t.Fatalf("no bearer token in the create response: %+v", out.(*v1.Token).Status)
	}
	_, err = join.Create(ctx, tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1.TokenSpec{Type: v1.TokenUser, User: "me", Roles: []v1.RoleBinding{{Role: v1.RoleAdmin}}}}, false)
	if err == nil || !strings.Contains(err.Error(), "may only create a Node token") {
		t.Fatalf("join token minted an admin token: %v", err)
	}
	node := servertest.ClientWithToken(t, f.s, nodeTok)
	nodes := resources.Nodes
	// Registering itself, a node describes the host, but gives itself no
	// node-restriction label and does not cordon itself.
	for what, bad := range map[string]*v1.Node{
		"a node-restriction label": {ObjectMeta: metav1.ObjectMeta{Name: "host-new", Labels: map[string]string{"node-restriction.left4me.io/tier": "trusted"}}},
		"unschedulable":            {ObjectMeta: metav1.ObjectMeta{Name: "host-new"}, Spec: v1.NodeSpec{Unschedulable: true}},
	} {
		if _, err := node.Create(ctx, nodes, bad, false); !apierrors.IsForbidden(err) {
			t.Errorf("a node registering itself with %s: %v, want 403", what, err)
		}
	}
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-new", Labels: map[string]string{"region": "eu"}},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 30000, Max: 30100}, Capacity: v1.NodeCapacity{Instances: 8}}}
	if _, err := node.Create(ctx, nodes, n, false); err != nil {
		t.Fatalf("new node registering itself: %v", err)
	}
	n.Name = "host-other"
	if _, err := node.Create(ctx, nodes, n, false); err == nil {
		t.Fatal("a node token registered a Node of another name")
	}
	// The stored token never holds the secret.
	list, _ := f.admin.List(ctx, tokens, "", client.ListOptions{})
	for _, tk := range list.(*v1.TokenList).Items {
		if tk.Status.Token != "" || tk.Status.SecretHash == "" || strings.Contains(tk.Status.SecretHash, strings.Split(nodeTok, ".")[2]) {
			t.Fatalf("stored token %s leaks: %+v", tk.Name, tk.Status)
		}
	}
}
