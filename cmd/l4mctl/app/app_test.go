package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/cmd/l4mctl/app"
	"sigs.k8s.io/yaml"
)

var (
	instances  = resources.Instances
	blueprints = resources.Blueprints
	events     = resources.Events
)

type env struct {
	t   *testing.T
	srv *server.Server
	cl  *client.Client
	dir string
}

func newEnv(t *testing.T) *env {
	// No config file of the developer's may leak into the tests.
	t.Setenv("L4MCONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv, cl := servertest.Start(t)
	return &env{t: t, srv: srv, cl: cl, dir: t.TempDir()}
}

// run executes l4mctl with args against the test server.
func (e *env) run(stdin string, args ...string) (string, string, error) {
	e.t.Helper()
	return e.runCtx(context.Background(), stdin, args...)
}

func (e *env) runCtx(ctx context.Context, stdin string, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	cmd := app.NewCommand(app.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	cmd.SetArgs(append([]string{"--config", e.srv.AdminConfigPath}, args...))
	err := cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.run("", args...)
	if err != nil {
		e.t.Fatalf("l4mctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (e *env) write(name, content string) string {
	p := filepath.Join(e.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) get(res *resources.Resource, name string) v1.Object {
	e.t.Helper()
	obj, err := e.cl.Get(context.Background(), res, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return obj
}

const fleet = `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata:
  name: coop
  labels: {fleet: eu}
spec:
  game: {map: c1m1_hotel, maxPlayers: 4}
  cvars:
    - {name: sv_alltalk, value: "1"}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: srv1
  labels: {fleet: eu}
spec:
  blueprintRef: {name: coop}
  hostname: "EU #1"
  nodeName: node-1
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: srv2
  labels: {fleet: eu}
spec:
  blueprintRef: {name: coop}
  nodeName: node-1
`

func TestApplyCreateUnchangedConfigured(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	out := e.mustRun("apply", "-f", f)
	want := "blueprint.left4me.io/coop created\ninstance.left4me.io/srv1 created\ninstance.left4me.io/srv2 created\n"
	if out != want {
		t.Fatalf("first apply:\n%s\nwant:\n%s", out, want)
	}
	if out := e.mustRun("apply", "-f", f); strings.Count(out, "unchanged") != 3 {
		t.Fatalf("second apply should change nothing:\n%s", out)
	}
	e.write("fleet.yaml", strings.Replace(fleet, "maxPlayers: 4", "maxPlayers: 8", 1))
	out = e.mustRun("apply", "-f", f)
	if !strings.Contains(out, "blueprint.left4me.io/coop configured") || strings.Count(out, "unchanged") != 2 {
		t.Fatalf("apply after edit:\n%s", out)
	}
	if bp := e.get(blueprints, "coop").(*v1.Blueprint); bp.Spec.Game.MaxPlayers != 8 || bp.Generation != 2 {
		t.Fatalf("edit not stored: maxPlayers %d generation %d", bp.Spec.Game.MaxPlayers, bp.Generation)
	}
}

// TestApplyThreeWayMerge: fields someone else set survive a re-apply;
// fields removed from the file are removed from the object.
func TestApplyThreeWayMerge(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	e.mustRun("apply", "-f", f)
	ctx := context.Background()
	// Another writer (an operator, a controller) adds a label and a port.
	if _, err := e.cl.Patch(ctx, instances, "default", "srv1", server.MergePatchType,
		[]byte(`{"metadata":{"labels":{"owner":"ops"}},"spec":{"port":27099}}`), false); err != nil {
		t.Fatal(err)
	}
	// The file drops the hostname and changes nothing else about srv1.
	e.write("fleet.yaml", strings.Replace(fleet, "  hostname: \"EU #1\"\n", "", 1))
	out := e.mustRun("apply", "-f", f)
	if !strings.Contains(out, "instance.left4me.io/srv1 configured") {
		t.Fatalf("apply:\n%s", out)
	}
	in := e.get(instances, "srv1").(*v1.Instance)
	if in.Spec.Hostname != "" {
		t.Fatalf("hostname removed from the file is still set: %q", in.Spec.Hostname)
	}
	if in.Labels["owner"] != "ops" || in.Spec.Port != 27099 {
		t.Fatalf("fields set by others were lost: labels %v port %d", in.Labels, in.Spec.Port)
	}
	if in.Labels["fleet"] != "eu" {
		t.Fatalf("applied label lost: %v", in.Labels)
	}
	// The defaulted state was never in the file and stays.
	if in.Spec.State != v1.StateRunning {
		t.Fatalf("defaulted field lost: state %q", in.Spec.State)
	}
}

func TestApplyPrune(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	e.mustRun("apply", "-f", f, "--prune", "-l", "fleet=eu")
	// Something applied by another pipeline, and something created by hand:
	// neither may be pruned.
	other := strings.ReplaceAll(strings.Split(fleet, "---")[1], "srv1", "other")
	other = strings.Replace(other, "fleet: eu", "fleet: us", 1)
	e.mustRun("apply", "-f", e.write("other.yaml", other))
	hand := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: "default", Labels: map[string]string{"fleet": "eu"}},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := e.cl.Create(context.Background(), instances, hand, false); err != nil {
		t.Fatal(err)
	}
	// srv2 leaves the file.
	e.write("fleet.yaml", strings.Join(strings.Split(fleet, "---")[:2], "---"))
	out, _, err := e.run("", "apply", "-f", f, "--prune", "-l", "fleet=eu", "--dry-run=server")
	if err != nil || !strings.Contains(out, "instance.left4me.io/srv2 pruned (server dry run)") {
		t.Fatalf("dry-run prune: %v\n%s", err, out)
	}
	e.get(instances, "srv2") // still there after the dry run
	out = e.mustRun("apply", "-f", f, "--prune", "-l", "fleet=eu")
	if !strings.Contains(out, "instance.left4me.io/srv2 pruned") || strings.Count(out, "pruned") != 1 {
		t.Fatalf("prune output:\n%s", out)
	}
	if _, err := e.cl.Get(context.Background(), instances, "default", "srv2"); !apierrors.IsNotFound(err) {
		t.Fatalf("srv2 should be pruned: %v", err)
	}
	e.get(instances, "other")
	e.get(instances, "by-hand")
	if _, _, err := e.run("", "apply", "-f", f, "--prune"); err == nil {
		t.Fatal("--prune without a selector must be refused")
	}
}

func TestApplyReportsEachDocument(t *testing.T) {
	e := newEnv(t)
	bad := fleet + "---\napiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: bad}\nspec:\n  blueprintRef: {name: coop}\n  port: 80\n"
	out, errOut, err := e.run("", "apply", "-f", e.write("fleet.yaml", bad))
	if err == nil {
		t.Fatal("apply with an invalid document must fail")
	}
	if strings.Count(out, "created") != 3 {
		t.Fatalf("the valid documents should be applied:\n%s", out)
	}
	if !strings.Contains(errOut, "fleet.yaml:30: instance.left4me.io/bad") || !strings.Contains(errOut, "spec.port: Invalid value: 80") {
		t.Fatalf("error should name file, line, object and field:\n%s", errOut)
	}
	if _, err := e.cl.Get(context.Background(), instances, "default", "bad"); !apierrors.IsNotFound(err) {
		t.Fatal("the invalid document was stored")
	}
}

func TestApplyMalformedChangesNothing(t *testing.T) {
	e := newEnv(t)
	broken := fleet + "---\napiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata:\n  name: x\n   oops: [\n"
	_, errOut, err := e.run("", "apply", "-f", e.write("fleet.yaml", broken))
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml: malformed YAML: yaml: line 3") && !strings.Contains(err.Error(), "fleet.yaml: malformed YAML") {
		t.Fatalf("malformed YAML: %v %s", err, errOut)
	}
	if !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error should carry the file's line number: %v", err)
	}
	l, _ := e.cl.List(context.Background(), instances, "", client.ListOptions{})
	if len(l.(*v1.InstanceList).Items) != 0 {
		t.Fatal("a malformed file must apply nothing")
	}
	_, _, err = e.run("", "apply", "-f", e.write("k.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"))
	if err == nil || !strings.Contains(err.Error(), `k.yaml:1: unknown apiVersion "v1"`) {
		t.Fatalf("unknown apiVersion: %v", err)
	}
}

func TestApplyDryRunAndStdin(t *testing.T) {
	e := newEnv(t)
	out, _, err := e.run(fleet, "apply", "-f", "-", "--dry-run=server")
	if err != nil || strings.Count(out, "created (server dry run)") != 3 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := e.cl.Get(context.Background(), blueprints, "default", "coop"); !apierrors.IsNotFound(err) {
		t.Fatal("server dry run stored an object")
	}
	out, _, err = e.run(fleet, "apply", "-f", "-")
	if err != nil || strings.Count(out, "created") != 3 {
		t.Fatalf("apply from stdin: %v\n%s", err, out)
	}
}

func TestDiff(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	e.mustRun("apply", "-f", f)
	if out, _, err := e.run("", "diff", "-f", f); err != nil || out != "" {
		t.Fatalf("diff of applied files: %v\n%s", err, out)
	}
	e.write("fleet.yaml", strings.Replace(fleet, "maxPlayers: 4", "maxPlayers: 6", 1))
	out, _, err := e.run("", "diff", "-f", f)
	var ee *app.ExitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("diff with changes must exit 1, got %v", err)
	}
	if !strings.Contains(out, "--- live/blueprint.left4me.io/coop") || !strings.Contains(out, "-    maxPlayers: 4") || !strings.Contains(out, "+    maxPlayers: 6") {
		t.Fatalf("diff output:\n%s", out)
	}
	if bp := e.get(blueprints, "coop").(*v1.Blueprint); bp.Spec.Game.MaxPlayers != 4 {
		t.Fatal("diff changed the object")
	}
}

// TestApplyWait: --wait returns once the Instance's status catches up and
// it is Ready (written here the way the node agent will write it).
func TestApplyWait(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", strings.Join(strings.Split(fleet, "---")[:2], "---"))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		client.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			obj, err := e.cl.Get(ctx, instances, "default", "srv1")
			if err != nil {
				return false, nil
			}
			in := obj.(*v1.Instance)
			in.Status.ObservedGeneration = in.Generation
			in.Status.Phase = v1.PhaseRunning
			meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered"})
			_, err = e.cl.UpdateStatus(ctx, instances, in)
			return err == nil, nil
		})
	}()
	out, errOut, err := e.run("", "apply", "-f", f, "--wait", "--timeout", waitBound.String())
	if err != nil || !strings.Contains(out, "instance.left4me.io/srv1 running") {
		t.Fatalf("apply --wait: %v\n%s\n%s", err, out, errOut)
	}
	// Nothing makes srv2 Ready: --wait times out and says why.
	e.write("two.yaml", strings.Split(fleet, "---")[2])
	_, _, err = e.run("", "apply", "-f", filepath.Join(e.dir, "two.yaml"), "--wait", "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "timed out waiting for instance.left4me.io/srv2") {
		t.Fatalf("apply --wait timeout: %v", err)
	}
}

func TestGet(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", fleet))
	out := e.mustRun("get", "instances")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "srv1 ") {
		t.Fatalf("table:\n%s", out)
	}
	// Columns are aligned: every row's PHASE starts where the header's does.
	col := strings.Index(lines[0], "PHASE")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "Pending") {
			t.Fatalf("misaligned row %q (PHASE at %d)", l, col)
		}
	}
	if out := e.mustRun("get", "inst", "-o", "wide"); !strings.Contains(out, "BLUEPRINT") || !strings.Contains(out, "coop") {
		t.Fatalf("wide:\n%s", out)
	}
	if out := e.mustRun("get", "instance", "srv1", "-o", "yaml"); !strings.Contains(out, "kind: Instance") || !strings.Contains(out, "hostname: 'EU #1'") || strings.Contains(out, "managedFields") {
		t.Fatalf("yaml (kind, hostname, no managedFields):\n%s", out)
	}
	if out := e.mustRun("get", "instance", "srv1", "-o", "yaml", "--show-managed-fields"); !strings.Contains(out, "managedFields:") || !strings.Contains(out, "operation: Update") {
		t.Fatalf("yaml --show-managed-fields:\n%s", out)
	}
	if out := e.mustRun("get", "instances", "-o", "json"); !strings.Contains(out, `"kind": "List"`) || strings.Count(out, `"kind": "Instance"`) != 2 {
		t.Fatalf("json list:\n%s", out)
	}
	if out := e.mustRun("get", "instances", "-o", "name"); out != "instance.left4me.io/srv1\ninstance.left4me.io/srv2\n" {
		t.Fatalf("name:\n%s", out)
	}
	if out := e.mustRun("get", "instances", "-A"); !strings.HasPrefix(out, "NAMESPACE") || !strings.Contains(out, "default") {
		t.Fatalf("-A:\n%s", out)
	}
	if out := e.mustRun("get", "instances", "-l", "fleet=none"); out != "" {
		t.Fatalf("empty selector result should print nothing on stdout: %q", out)
	}
	if out := e.mustRun("get", "instances", "--field-selector", "metadata.name=srv2", "--no-headers"); !strings.HasPrefix(out, "srv2") || strings.Contains(out, "NAME") {
		t.Fatalf("field selector:\n%s", out)
	}
	_, errOut, err := e.run("", "get", "instance", "nope")
	if err == nil || !strings.Contains(errOut, `instance.left4me.io "nope" not found`) {
		t.Fatalf("get missing: %v %s", err, errOut)
	}
	if _, _, err := e.run("", "get", "servers"); err == nil || !strings.Contains(err.Error(), `resource type "servers"`) {
		t.Fatalf("unknown kind: %v", err)
	}
	if out := e.mustRun("get", "ns"); !strings.Contains(out, "default") || !strings.Contains(out, "Active") {
		t.Fatalf("namespaces:\n%s", out)
	}
}

func TestGetWatch(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", fleet))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string)
	var buf syncBuffer
	go func() {
		cmd := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &buf, Err: &buf})
		cmd.SetArgs([]string{"--config", e.srv.AdminConfigPath, "get", "instances", "-w"})
		cmd.ExecuteContext(ctx)
		done <- buf.String()
	}()
	// Once the list is printed, change srv2; the watch prints its new row.
	waitFor(t, func() bool { return strings.Contains(buf.String(), "srv2") })
	if _, err := e.cl.Patch(context.Background(), instances, "default", "srv2", server.MergePatchType, []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(buf.String(), "srv2") == 2 })
	cancel()
	out := <-done
	if strings.Count(out, "NAME") != 1 {
		t.Fatalf("header should be printed once:\n%s", out)
	}
}

func TestDescribeShowsConditionsAndEvents(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", fleet))
	ctx := context.Background()
	in := e.get(instances, "srv1").(*v1.Instance)
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceReady, Status: metav1.ConditionFalse, Reason: "NoA2SAnswer", Message: "3 queries unanswered"})
	if _, err := e.cl.UpdateStatus(ctx, instances, in); err != nil {
		t.Fatal(err)
	}
	ev := &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "srv1.1", Namespace: "default"},
		InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "srv1"}, Type: v1.EventTypeWarning, Reason: "MountFailed",
		Message: "overlay maps/x escapes the root", LastTimestamp: metav1.Now(), Source: v1.EventSource{Component: "l4m-node"}}
	if _, err := e.cl.Create(ctx, events, ev, false); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("describe", "instance", "srv1")
	for _, want := range []string{"Name:         srv1", "hostname: 'EU #1'", "Conditions:", "NoA2SAnswer", "3 queries unanswered", "Events:", "MountFailed", "escapes the root"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "last-applied") {
		t.Fatalf("describe should hide the last-applied annotation:\n%s", out)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	e.mustRun("apply", "-f", f)
	if out := e.mustRun("delete", "instance", "srv1"); out != "instance.left4me.io \"srv1\" deleted\n" {
		t.Fatalf("delete:\n%s", out)
	}
	_, errOut, err := e.run("", "delete", "instance", "srv1")
	if err == nil || !strings.Contains(errOut, "NotFound") {
		t.Fatalf("deleting a deleted instance: %v %s", err, errOut)
	}
	if _, _, err := e.run("", "delete", "instance", "srv1", "--ignore-not-found"); err != nil {
		t.Fatal(err)
	}
	// An object held by a finalizer: delete --wait waits until it is released.
	ctx := context.Background()
	if _, err := e.cl.Patch(ctx, instances, "default", "srv2", server.MergePatchType, []byte(`{"metadata":{"finalizers":["left4me.io/node-cleanup"]}}`), false); err != nil {
		t.Fatal(err)
	}
	// The node's part: once delete has marked srv2, release it.
	released := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, waitBound)
		defer cancel()
		released <- client.WaitFor(wctx, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
			obj, err := e.cl.Get(ctx, instances, "default", "srv2")
			if err != nil || obj.GetDeletionTimestamp() == nil {
				return false, nil
			}
			_, err = e.cl.Patch(ctx, instances, "default", "srv2", server.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), false)
			return err == nil, nil
		})
	}()
	if out := e.mustRun("delete", "-f", f, "--ignore-not-found"); !strings.Contains(out, `instance.left4me.io "srv2" deleted`) || !strings.Contains(out, `blueprint.left4me.io "coop" deleted`) {
		t.Fatalf("delete -f:\n%s", out)
	}
	if err := <-released; err != nil {
		t.Fatalf("srv2 was never marked for deletion: %v", err)
	}
	if _, err := e.cl.Get(ctx, instances, "default", "srv2"); !apierrors.IsNotFound(err) {
		t.Fatalf("srv2 still there: %v", err)
	}
}

func TestConfigFile(t *testing.T) {
	e := newEnv(t)
	admin, err := client.LoadFile(e.srv.AdminConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	admin.Namespace = "team"
	data, _ := yaml.Marshal(admin)
	cfg := e.write("config.yaml", string(data))
	t.Setenv("L4MCONFIG", cfg)
	var out, errb bytes.Buffer
	cmd := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	cmd.SetArgs([]string{"get", "instances"})
	cmd.ExecuteContext(context.Background())
	if !strings.Contains(errb.String(), "No resources found in team namespace.") {
		t.Fatalf("config file not used: out %q err %q", out.String(), errb.String())
	}
	t.Setenv("L4MCONFIG", filepath.Join(e.dir, "missing.yaml"))
	cmd = app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	cmd.SetArgs([]string{"get", "instances"})
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("a named config file that is missing must be an error: %v", err)
	}
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("version")
	if !strings.Contains(out, "Client Version: ") || !strings.Contains(out, "Server Version: ") {
		t.Fatalf("version:\n%s", out)
	}
}

// TestEveryKindPrints: `get` has a table for every kind the server serves.
func TestEveryKindPrints(t *testing.T) {
	e := newEnv(t)
	for _, res := range resources.All {
		if _, _, err := e.run("", "get", res.Plural, "-A", "-o", "wide"); err != nil {
			t.Errorf("get %s: %v", res.Plural, err)
		}
	}
}

// TestJoinCommand: token create join says how a host joins, its CA pinned
// by the hash of the CA in l4mctl's config (what openssl computes on the
// server: apis/pki's TestCAHashIsOpenSSLs); config ca-hash prints the hash
// alone. A config with no CA has no hash to give.
func TestJoinCommand(t *testing.T) {
	e := newEnv(t)
	hashes, err := pki.CAHashesPEM(e.srv.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	pin := hashes[0]
	if got := strings.TrimSpace(e.mustRun("config", "ca-hash")); got != pin {
		t.Fatalf("config ca-hash = %q; want %s", got, pin)
	}
	out, errOut, err := e.run("", "token", "create", "join")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	if !strings.HasPrefix(token, "l4m.") || strings.Contains(token, "\n") {
		t.Fatalf("stdout %q; want the token alone", out)
	}
	want := "l4m-node join " + e.srv.URL() + " --token " + token + " --ca-hash " + pin
	if !strings.Contains(errOut, want) {
		t.Fatalf("stderr %q; want the join command %q", errOut, want)
	}
	out = e.mustRun("token", "create", "join", "--print-join-command")
	fields := strings.Fields(out)
	if len(fields) != 7 || strings.Join(fields[:3], " ") != "l4m-node join "+e.srv.URL() || fields[3] != "--token" || !strings.HasPrefix(fields[4], "l4m.") || fields[5] != "--ca-hash" || fields[6] != pin {
		t.Fatalf("--print-join-command printed %q", out)
	}
	if _, _, err := e.run("", "token", "create", "node", "host-1", "--print-join-command"); err == nil || !strings.Contains(err.Error(), "only for token create join") {
		t.Fatalf("--print-join-command for a node token: %v", err)
	}

	// The same admin, trusting the system's roots instead of the CA.
	admin, err := client.LoadFile(e.srv.AdminConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	admin.CertificateAuthorityData = ""
	data, _ := yaml.Marshal(admin)
	noCA := e.write("no-ca.yaml", string(data))
	cmd := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	cmd.SetArgs([]string{"--config", noCA, "config", "ca-hash"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "names no CA") {
		t.Fatalf("config ca-hash without a CA: %v", err)
	}
}

// TestTokens: an admin mints a namespaced editor token with l4mctl, the
// holder uses it, the admin revokes it.
func TestTokens(t *testing.T) {
	e := newEnv(t)
	out, errOut, err := e.run("", "token", "create", "user", "alice", "--role", "editor:default", "--ttl", "1h", "--description", "test")
	if err != nil {
		t.Fatalf("token create: %v %s", err, errOut)
	}
	bearer := strings.TrimSpace(out)
	if !strings.HasPrefix(bearer, "l4m.") || !strings.Contains(errOut, "not shown again") {
		t.Fatalf("token create printed %q / %q", out, errOut)
	}
	list := e.mustRun("token", "list")
	id := strings.Split(bearer, ".")[1]
	if !strings.Contains(list, id) || !strings.Contains(list, "editor:default") || strings.Contains(list, strings.Split(bearer, ".")[2]) {
		t.Fatalf("token list:\n%s", list)
	}
	alice := func(args ...string) (string, string, error) {
		return e.run("", append([]string{"--token", bearer}, args...)...)
	}
	if _, errOut, err := alice("apply", "-f", e.write("f.yaml", fleet)); err != nil {
		t.Fatalf("editor apply: %v %s", err, errOut)
	}
	if _, _, err := alice("get", "namespaces"); err == nil || !strings.Contains(err.Error(), "alice may not list namespaces") {
		t.Fatalf("editor listing namespaces: %v", err)
	}
	if _, _, err := alice("token", "list"); err == nil || !strings.Contains(err.Error(), "only admins manage tokens") {
		t.Fatalf("editor listing tokens: %v", err)
	}
	if out := e.mustRun("token", "revoke", id); !strings.Contains(out, "deleted") {
		t.Fatalf("revoke: %s", out)
	}
	waitFor(t, func() bool {
		_, _, err := alice("get", "instances")
		return err != nil && strings.Contains(err.Error(), "valid bearer token is required")
	})
	if _, _, err := e.run("", "token", "create", "user", "bob"); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("user token without role: %v", err)
	}
	if _, _, err := e.run("", "token", "create", "user", "bob", "--role", "editor"); err == nil || !strings.Contains(err.Error(), "spec.roles[0].namespace") {
		t.Fatalf("editor without namespace: %v", err)
	}
	join := strings.TrimSpace(e.mustRun("token", "create", "join", "--ttl", "10m"))
	if !strings.HasPrefix(join, "l4m.") {
		t.Fatalf("join token: %q", join)
	}
	// A join token for three hosts, expiring in the default 24 hours: the
	// list shows both.
	join3 := strings.TrimSpace(e.mustRun("token", "create", "join", "--uses", "3"))
	row := ""
	for _, l := range strings.Split(e.mustRun("token", "list"), "\n") {
		if strings.HasPrefix(l, strings.Split(join3, ".")[1]) {
			row = l
		}
	}
	if !strings.Contains(row, "3 of 3") || !strings.Contains(row, "in 23h") && !strings.Contains(row, "in 24h") {
		t.Fatalf("token list row of a fresh three-use join token: %q", row)
	}
	if _, _, err := e.run("", "token", "create", "user", "bob", "--role", "admin", "--uses", "2"); err == nil || !strings.Contains(err.Error(), "only for token create join") {
		t.Fatalf("user token with --uses: %v", err)
	}
}
