package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/storage/etcdtest"
)

var (
	instances  = resources.Instances
	blueprints = resources.Blueprints
	nodes      = resources.Nodes
	namespaces = resources.Namespaces
)

const base = "/apis/left4me.io/v1alpha1"

func instance(name string) *v1.Instance {
	return &v1.Instance{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "node-1"},
	}
}

// call does a raw HTTP request and decodes the answer as a Status when it
// is an error.
func call(t *testing.T, s *server.Server, method, path, contentType, body string) (int, []byte) {
	t.Helper()
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return callWith(t, s, method, path, h, body)
}

// callWith is call with the request's headers (the admin's token added).
func callWith(t *testing.T, s *server.Server, method, path string, h http.Header, body string) (int, []byte) {
	t.Helper()
	return callWithToken(t, s, servertest.AdminToken(t, s), method, path, h, body)
}

// callWithToken is callWith as another bearer token's holder.
func callWithToken(t *testing.T, s *server.Server, token, method, path string, h http.Header, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := servertest.HTTPClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func status(t *testing.T, data []byte) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a metav1.Status: %s", data)
	}
	return st
}

func TestDiscoveryAndHealth(t *testing.T) {
	s, _ := servertest.Start(t)
	code, body := call(t, s, "GET", "/apis", "", "")
	if code != 200 || !strings.Contains(string(body), `"name":"left4me.io"`) {
		t.Fatalf("/apis: %d %s", code, body)
	}
	code, body = call(t, s, "GET", base, "", "")
	var rl metav1.APIResourceList
	if err := json.Unmarshal(body, &rl); code != 200 || err != nil {
		t.Fatalf("resource list: %d %v", code, err)
	}
	found := map[string]metav1.APIResource{}
	for _, r := range rl.APIResources {
		found[r.Name] = r
	}
	if r := found["instances"]; !r.Namespaced || r.Kind != "Instance" {
		t.Fatalf("instances in discovery: %+v", r)
	}
	if _, ok := found["instances/status"]; !ok {
		t.Fatal("instances/status missing from discovery")
	}
	if r := found["nodes"]; r.Namespaced {
		t.Fatal("nodes must be cluster-scoped")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := call(t, s, "GET", p, "", ""); code != 200 || string(body) != "ok" {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	call(t, s, "GET", base+"/namespaces/default/instances", "", "")
	code, body = call(t, s, "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(string(body), `left4me_apiserver_requests_total{code="200",resource="instances",verb="list"} 1`) {
		t.Fatalf("metrics do not count the list: %d\n%s", code, body)
	}
}

func TestDefaultNamespaceExists(t *testing.T) {
	_, c := servertest.Start(t)
	ns, err := c.Get(context.Background(), namespaces, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	if ns.(*v1.Namespace).Status.Phase != v1.NamespaceActive {
		t.Fatalf("default namespace phase %q", ns.(*v1.Namespace).Status.Phase)
	}
}

func TestCRUDThroughClient(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	obj, err := c.Create(ctx, instances, instance("srv1"), false)
	if err != nil {
		t.Fatal(err)
	}
	in := obj.(*v1.Instance)
	if in.Spec.State != v1.StateRunning || in.Generation != 1 || in.UID == "" {
		t.Fatalf("created object not defaulted/identified: state %q gen %d uid %q", in.Spec.State, in.Generation, in.UID)
	}
	// Update with the current resourceVersion, then with a stale one.
	stale := in.DeepCopy()
	in.Spec.Hostname = "EU #1"
	updated, err := c.Update(ctx, instances, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetGeneration() != 2 {
		t.Fatalf("generation %d after spec change", updated.GetGeneration())
	}
	stale.Spec.Hostname = "lost update"
	if _, err := c.Update(ctx, instances, stale, false); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want 409, got %v", err)
	}
	// Status subresource.
	st := updated.(*v1.Instance).DeepCopy()
	st.Status.Phase = v1.PhaseRunning
	st.Status.ObservedGeneration = st.Generation
	if _, err := c.UpdateStatus(ctx, instances, st); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Get(ctx, instances, "default", "srv1")
	if got.(*v1.Instance).Status.Phase != v1.PhaseRunning || got.(*v1.Instance).Spec.Hostname != "EU #1" {
		t.Fatalf("after status write: %+v", got.(*v1.Instance).Status)
	}
	// Delete, then delete again: 404.
	if _, gone, err := c.Delete(ctx, instances, "default", "srv1", false); err != nil || !gone {
		t.Fatalf("delete: gone=%v err=%v", gone, err)
	}
	if _, _, err := c.Delete(ctx, instances, "default", "srv1", false); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: want 404, got %v", err)
	}
}

func TestFinalizerDeletion(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	in := instance("srv1")
	in.Finalizers = []string{"left4me.io/node-cleanup"}
	if _, err := c.Create(ctx, instances, in, false); err != nil {
		t.Fatal(err)
	}
	obj, gone, err := c.Delete(ctx, instances, "default", "srv1", false)
	if err != nil || gone || obj.GetDeletionTimestamp() == nil {
		t.Fatalf("delete with finalizer: gone=%v err=%v", gone, err)
	}
	// The node finishes its cleanup and drops the finalizer with a JSON patch.
	patch := `[{"op":"remove","path":"/metadata/finalizers"}]`
	if _, err := c.Patch(ctx, instances, "default", "srv1", server.JSONPatchType, []byte(patch), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, instances, "default", "srv1"); !apierrors.IsNotFound(err) {
		t.Fatalf("object should be gone with its last finalizer: %v", err)
	}
}

func TestPatch(t *testing.T) {
	s, c := servertest.Start(t)
	ctx := context.Background()
	if _, err := c.Create(ctx, instances, instance("srv1"), false); err != nil {
		t.Fatal(err)
	}
	out, err := c.Patch(ctx, instances, "default", "srv1", server.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"gold"}},"spec":{"port":27020}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if in := out.(*v1.Instance); in.Labels["tier"] != "gold" || in.Spec.Port != 27020 || in.Generation != 2 {
		t.Fatalf("merge patch: labels %v port %d gen %d", in.Labels, in.Spec.Port, in.Generation)
	}
	out, err = c.Patch(ctx, instances, "default", "srv1", server.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/state","value":"Stopped"}]`), false)
	if err != nil || out.(*v1.Instance).Spec.State != v1.StateStopped {
		t.Fatalf("json patch: %v", err)
	}
	// A patch that makes the object invalid is refused and changes nothing.
	_, err = c.Patch(ctx, instances, "default", "srv1", server.MergePatchType, []byte(`{"spec":{"port":1}}`), false)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.port") {
		t.Fatalf("invalid patch: %v", err)
	}
	// A patch with a stale resourceVersion is a compare-and-swap: 409.
	_, err = c.Patch(ctx, instances, "default", "srv1", server.MergePatchType, []byte(`{"metadata":{"resourceVersion":"1"},"spec":{"port":27030}}`), false)
	if !apierrors.IsConflict(err) {
		t.Fatalf("stale pinned patch: want 409, got %v", err)
	}
	// A patch that adds an unknown field is refused.
	_, err = c.Patch(ctx, instances, "default", "srv1", server.MergePatchType, []byte(`{"spec":{"prot":1}}`), false)
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.prot"`) {
		t.Fatalf("patch with unknown field: %v", err)
	}
	code, body := call(t, s, "PATCH", base+"/namespaces/default/instances/srv1", "application/strategic-merge-patch+json", `{}`)
	if code != http.StatusUnsupportedMediaType {
		t.Fatalf("unsupported patch type: %d %s", code, body)
	}
	got, _ := c.Get(ctx, instances, "default", "srv1")
	if got.(*v1.Instance).Spec.Port != 27020 {
		t.Fatalf("a refused patch changed the object: port %d", got.(*v1.Instance).Spec.Port)
	}
}

// TestBadInput: each bad request gets the right code and a message that
// names the problem, and leaves nothing behind.
func TestBadInput(t *testing.T) {
	s, c := servertest.Start(t)
	coll := base + "/namespaces/default/instances"
	valid := `{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"NAME"},"spec":{"blueprintRef":{"name":"coop"}}}`
	big := `{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"big","annotations":{"a":"` + strings.Repeat("x", server.MaxBodyBytes) + `"}},"spec":{"blueprintRef":{"name":"coop"}}}`
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"unknown field", "POST", coll, strings.Replace(valid, `"spec":{`, `"spec":{"prot":1,`, 1), 400, `unknown field "spec.prot"`},
		{"mistyped field", "POST", coll, strings.Replace(valid, `"spec":{`, `"spec":{"port":"27015",`, 1), 400, "spec.port"},
		{"invalid name", "POST", coll, strings.Replace(valid, "NAME", "Bad_Name", 1), 422, `metadata.name: Invalid value: "Bad_Name"`},
		{"invalid value", "POST", coll, strings.Replace(valid, `"spec":{`, `"spec":{"hostname":"a\nb",`, 1), 422, "spec.hostname"},
		{"wrong kind", "POST", coll, strings.Replace(valid, `"kind":"Instance"`, `"kind":"Blueprint"`, 1), 400, `kind "Blueprint" does not match`},
		{"wrong apiVersion", "POST", coll, strings.Replace(valid, "left4me.io/v1alpha1", "left4me.io/v2", 1), 400, "apiVersion"},
		{"namespace mismatch", "POST", coll, strings.Replace(valid, `"name":"NAME"`, `"name":"a","namespace":"other"`, 1), 400, "does not match the namespace in the URL"},
		{"missing namespace", "POST", base + "/namespaces/nowhere/instances", strings.Replace(valid, "NAME", "a", 1), 404, `namespaces.left4me.io "nowhere" not found`},
		{"namespaced kind at cluster URL", "POST", base + "/instances", strings.Replace(valid, "NAME", "a", 1), 400, "live in namespaces"},
		{"cluster kind under a namespace", "GET", base + "/namespaces/default/nodes", "", 400, "cluster-scoped"},
		{"unknown resource", "GET", base + "/namespaces/default/servers", "", 404, "could not find the requested resource"},
		{"unknown subresource", "GET", coll + "/a/scale", "", 404, "could not find"},
		{"body over 1 MiB", "POST", coll, big, 413, "over the limit"},
		{"malformed JSON", "POST", coll, `{"apiVersion":`, 400, "decode Instance"},
		{"bad label selector", "GET", coll + "?labelSelector=a%20b%20c", "", 400, "labelSelector"},
		{"unsupported field selector", "GET", coll + "?fieldSelector=spec.hostname%3Dx", "", 400, "field label not supported"},
		{"bad dryRun", "POST", coll + "?dryRun=Yes", strings.Replace(valid, "NAME", "a", 1), 400, "dryRun"},
		{"get missing", "GET", coll + "/missing", "", 404, `instances.left4me.io "missing" not found`},
		{"name mismatch on PUT", "PUT", coll + "/a", strings.Replace(valid, "NAME", "b", 1), 400, "does not match the name in the URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, s, tc.method, tc.path, "application/json", tc.body)
			st := status(t, body)
			if code != tc.code || int(st.Code) != tc.code {
				t.Fatalf("code %d (status says %d), want %d: %s", code, st.Code, tc.code, st.Message)
			}
			if !strings.Contains(st.Message, tc.want) {
				t.Fatalf("message %q does not contain %q", st.Message, tc.want)
			}
		})
	}
	// Invalid objects carry field causes a client can show.
	_, body := call(t, s, "POST", coll, "application/json", strings.Replace(strings.Replace(valid, "NAME", "a", 1), `"spec":{`, `"spec":{"port":80,`, 1))
	if st := status(t, body); st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "spec.port" {
		t.Fatalf("causes: %+v", st.Details)
	}
	// Nothing of the above was stored.
	list, err := c.List(context.Background(), instances, "", client.ListOptions{})
	if err != nil || len(list.(*v1.InstanceList).Items) != 0 {
		t.Fatalf("bad input left objects behind: %v %v", list, err)
	}
}

func TestDryRun(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	out, err := c.Create(ctx, instances, instance("srv1"), true)
	if err != nil || out.(*v1.Instance).Spec.State != v1.StateRunning {
		t.Fatalf("dry-run create: %v", err)
	}
	if _, err := c.Get(ctx, instances, "default", "srv1"); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create stored: %v", err)
	}
	bad := instance("srv2")
	bad.Spec.Port = 5
	if _, err := c.Create(ctx, instances, bad, true); !apierrors.IsInvalid(err) {
		t.Fatalf("dry run must still validate: %v", err)
	}
}

func TestListPagingAndSelectors(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		in := instance(fmt.Sprintf("srv%02d", i))
		in.Labels = map[string]string{"mode": []string{"coop", "versus"}[i%2]}
		in.Spec.NodeName = fmt.Sprintf("node-%d", i%3)
		if _, err := c.Create(ctx, instances, in, false); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := client.ListOptions{Limit: 5}
	pages := 0
	for {
		l, err := c.List(ctx, instances, "default", opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, i := range l.(*v1.InstanceList).Items {
			names = append(names, i.Name)
		}
		if l.GetContinue() == "" {
			break
		}
		opts.Continue = l.GetContinue()
	}
	if pages != 3 || len(names) != 12 {
		t.Fatalf("paging: %d pages, %d items", pages, len(names))
	}
	l, err := c.List(ctx, instances, "", client.ListOptions{LabelSelector: "mode=versus", FieldSelector: "spec.nodeName=node-1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range l.(*v1.InstanceList).Items {
		got = append(got, i.Name)
	}
	if fmt.Sprint(got) != "[srv01 srv07]" {
		t.Fatalf("selectors across namespaces: %v", got)
	}
}

func TestWatchThroughHTTP(t *testing.T) {
	_, c := servertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, instances, "default", client.ListOptions{FieldSelector: "spec.nodeName=node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	other := instance("elsewhere")
	other.Spec.NodeName = "node-2"
	if _, err := c.Create(ctx, instances, other, false); err != nil {
		t.Fatal(err)
	}
	created, err := c.Create(ctx, instances, instance("mine"), false)
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.ResultChan()
	if ev.Type != watch.Added || ev.Object.(v1.Object).GetName() != "mine" {
		t.Fatalf("first event: %s %v", ev.Type, ev.Object)
	}
	if ev.Object.(v1.Object).GetResourceVersion() != created.GetResourceVersion() {
		t.Fatal("event resourceVersion differs from the create's")
	}
	if _, _, err := c.Delete(ctx, instances, "default", "mine", false); err != nil {
		t.Fatal(err)
	}
	ev = <-w.ResultChan()
	if ev.Type != watch.Deleted || ev.Object.(v1.Object).GetName() != "mine" {
		t.Fatalf("second event: %s %v", ev.Type, ev.Object)
	}
}

func TestWatchFromCompactedRevision(t *testing.T) {
	s, c := servertest.Start(t)
	ctx := context.Background()
	first, err := c.Create(ctx, instances, instance("a"), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, instances, instance("b"), false); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Store.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Etcd.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, err = c.Watch(ctx, instances, "default", client.ListOptions{ResourceVersion: first.GetResourceVersion()})
	if !apierrors.IsResourceExpired(err) || apierrors.ReasonForError(err) != metav1.StatusReasonExpired {
		t.Fatalf("watch from compacted revision: want 410 Expired, got %v", err)
	}
	if se, ok := err.(*apierrors.StatusError); !ok || se.ErrStatus.Code != http.StatusGone {
		t.Fatalf("want HTTP 410, got %v", err)
	}
}

// TestConcurrentUpdatesThroughAPI: racing PUTs of one read; exactly one
// lands, the others get 409.
func TestConcurrentUpdatesThroughAPI(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	obj, err := c.Create(ctx, blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			b := obj.(*v1.Blueprint).DeepCopy()
			b.Spec.Game.MaxPlayers = int32(i + 1)
			_, err := c.Update(ctx, blueprints, b, false)
			results <- err
		}(i)
	}
	ok, conflicts := 0, 0
	for i := 0; i < 8; i++ {
		switch err := <-results; {
		case err == nil:
			ok++
		case apierrors.IsConflict(err):
			conflicts++
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 || conflicts != 7 {
		t.Fatalf("%d updates landed and %d conflicted; want 1 and 7", ok, conflicts)
	}
}

func TestNamespaces(t *testing.T) {
	_, c := servertest.Start(t)
	ctx := context.Background()
	if _, err := c.Create(ctx, namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, false); err != nil {
		t.Fatal(err)
	}
	in := instance("srv1")
	in.Namespace = "team-a"
	if _, err := c.Create(ctx, instances, in, false); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Delete(ctx, namespaces, "", "team-a", false)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("delete non-empty namespace: %v", err)
	}
	if _, _, err := c.Delete(ctx, instances, "team-a", "srv1", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Delete(ctx, namespaces, "", "team-a", false); err != nil {
		t.Fatal(err)
	}
	// Nodes are cluster-scoped and reachable without a namespace.
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-a"}}
	if _, err := c.Create(ctx, nodes, n, false); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, nodes, "", "host-a")
	if err != nil || got.(*v1.Node).Spec.PortRange.Min == 0 {
		t.Fatalf("node: %v %v", got, err)
	}
}

func TestYAMLBody(t *testing.T) {
	s, _ := servertest.Start(t)
	body := "apiVersion: left4me.io/v1alpha1\nkind: Overlay\nmetadata: {name: mods}\nspec: {source: {path: mods}}\n"
	code, data := call(t, s, "POST", base+"/namespaces/default/overlays", "application/yaml", body)
	if code != 201 || !bytes.Contains(data, []byte(`"path":"mods"`)) {
		t.Fatalf("YAML create: %d %s", code, data)
	}
}

// TestServerOnExternalEtcd: --etcd-endpoints points l4m-server at an
// external etcd (Debian's etcd-server here) instead of the embedded one.
func TestServerOnExternalEtcd(t *testing.T) {
	_, endpoint := etcdtest.External(t)
	s, c := servertest.StartWith(t, server.Options{EtcdEndpoints: []string{endpoint}})
	ctx := context.Background()
	if _, err := c.Create(ctx, instances, instance("srv1"), false); err != nil {
		t.Fatal(err)
	}
	// The object is in the external etcd under the left4me prefix.
	resp, err := s.Etcd.Get(ctx, "/left4me/instances/default/srv1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("object not in the external etcd: %v %v", resp, err)
	}
	if s.EtcdEndpoints[0] != endpoint {
		t.Fatalf("server uses %v, want %s", s.EtcdEndpoints, endpoint)
	}
}

// TestServerOnExternalEtcdWithTLS: client TLS to an external etcd that
// requires client certificates (--etcd-cafile/--etcd-certfile/--etcd-keyfile).
func TestServerOnExternalEtcdWithTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Ensure(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := pki.IssueFiles(dir, "etcd", []string{"127.0.0.1", "localhost"}, true)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := pki.IssueFiles(dir, "l4m-etcd-client", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, pki.CACertFile)
	_, endpoint := etcdtest.ExternalWith(t, &etcdtest.TLSFiles{CA: ca, Cert: serverCert, Key: serverKey})
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fatalf("endpoint %s", endpoint)
	}
	// Without a client certificate the server refuses to start, saying why.
	_, err = server.Start(context.Background(), server.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", EtcdEndpoints: []string{endpoint}, EtcdCAFile: ca, Log: logr.Discard()})
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("start without a client certificate: %v", err)
	}
	_, c := servertest.StartWith(t, server.Options{EtcdEndpoints: []string{endpoint}, EtcdCAFile: ca, EtcdCertFile: clientCert, EtcdKeyFile: clientKey})
	if _, err := c.Create(context.Background(), instances, instance("srv1"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), instances, "default", "srv1"); err != nil {
		t.Fatal(err)
	}
}

// TestClientFailsOver: with several servers configured, a client whose
// server is gone carries on through the next one.
func TestClientFailsOver(t *testing.T) {
	s, _ := servertest.Start(t)
	dead, err := storage.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Server: "https://" + dead + "," + s.URL(), Token: servertest.AdminToken(t, s), CAData: s.CAPEM})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second request goes straight to the live server
		if _, err := c.List(context.Background(), resources.Namespaces, "", client.ListOptions{}); err != nil {
			t.Fatalf("list through the second server: %v", err)
		}
	}
	if _, err := client.New(client.Config{Server: s.URL() + ",ftp://x"}); err == nil || !strings.Contains(err.Error(), `"ftp://x"`) {
		t.Fatalf("a bad second URL: %v", err)
	}
}
