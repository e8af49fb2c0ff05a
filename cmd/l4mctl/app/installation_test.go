package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/cmd/l4mctl/app"
	"sigs.k8s.io/yaml"
)

// installFleet is what an operator sees mid-rollout of build 200 of
// Installation l4d2 (statuses written here as the installation controller,
// the nodes and the scheduler would):
//
//	n1: Ready, builds 200 and 100     n2: Failed (DownloadFailed), build 100
//	default/coop-1  n1  100  2 players, update pending (WhenEmpty)
//	default/coop-2  n1  200
//	default/coop-3  n2  100  its node lacks 200
//	default/vs-1    n1  100  3 players, update pending (Immediate)
//	default/vs-2    -   -    not placed
//	default/off     n2  100  stopped: not counted
//	team/coop-1     n1  200
//	default/beta-1  n1  100  Blueprint on another Installation: not counted
const installFleet = `apiVersion: left4me.io/v1alpha1
kind: Installation
metadata: {name: l4d2}
spec: {appID: 222860, branch: public, build: latest, checkInterval: 15m, nodeSelector: {pool: eu}}
---
apiVersion: left4me.io/v1alpha1
kind: Namespace
metadata: {name: team}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: versus}
spec: {installation: l4d2, rollout: {policy: Immediate}}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: beta}
spec: {installation: l4d2-beta}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop, namespace: team}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1}
spec: {blueprintRef: {name: coop}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-2}
spec: {blueprintRef: {name: coop}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-3}
spec: {blueprintRef: {name: coop}, nodeName: n2}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: vs-1}
spec: {blueprintRef: {name: versus}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: vs-2}
spec: {blueprintRef: {name: versus}}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: "off"}
spec: {blueprintRef: {name: coop}, nodeName: n2, state: Stopped}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: beta-1}
spec: {blueprintRef: {name: beta}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1, namespace: team}
spec: {blueprintRef: {name: coop}, nodeName: n1}
`

const diskFull = "steamcmd exited 8 after 3 attempts: no space left on device"

func newInstallEnv(t *testing.T) *env {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", installFleet))
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(time.Now().Add(-d)); return &t }
	e.patchStatus(resources.Installations, "", "l4d2", v1.InstallationStatus{
		LatestBuild: "200", WantedBuild: "200", Nodes: 2, Ready: 1, Failed: 1,
		Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: "NodesFailed",
			Message: "1/2 nodes ready with build 200; node n2: DownloadFailed: " + diskFull, LastTransitionTime: *ago(time.Minute)}}})
	for name, entry := range map[string]v1.NodeInstallation{
		"n1": {Name: "l4d2", Phase: v1.InstallReady, Builds: []string{"200", "100"}, LatestSeen: "200", CheckedAt: ago(2 * time.Minute)},
		"n2": {Name: "l4d2", Phase: v1.InstallFailed, Reason: "DownloadFailed", Message: diskFull, Builds: []string{"100"}, LatestSeen: "200", CheckedAt: ago(30 * time.Second)},
	} {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": "eu"}}}
		if _, err := e.cl.Create(context.Background(), resources.Nodes, n, false); err != nil {
			t.Fatal(err)
		}
		e.patchStatus(resources.Nodes, "", name, v1.NodeStatus{HeartbeatTime: ago(0), Installations: []v1.NodeInstallation{entry},
			Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat", LastTransitionTime: *ago(time.Hour)}}})
	}
	e.runs("default", "coop-1", "100", "pending", 2)
	e.runs("default", "coop-2", "200", "", 0)
	e.runs("default", "coop-3", "100", "", 1)
	e.runs("default", "vs-1", "100", "pending", 3)
	e.runs("default", "off", "100", "", 0)
	e.patchStatus(instances, "default", "off", map[string]any{"phase": v1.PhaseStopped})
	e.runs("default", "beta-1", "100", "", 0)
	e.runs("team", "coop-1", "200", "", 0)
	e.patchStatus(instances, "default", "vs-2", v1.InstanceStatus{Phase: v1.PhasePending, Conditions: []metav1.Condition{
		{Type: v1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: v1.ReasonInstallationNotReady,
			Message: "0/2 nodes available: 1 failed to install build 200, 1 full", LastTransitionTime: *ago(0)}}})
	return e
}

func (e *env) patchStatus(res *resources.Resource, ns, name string, status any) {
	e.t.Helper()
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.cl.PatchStatus(context.Background(), res, ns, name, patch); err != nil {
		e.t.Fatalf("status of %s %s/%s: %v", res.Singular, ns, name, err)
	}
}

// runs reports an Instance running build of l4d2 on its node, with a
// pending template when pending is set.
func (e *env) runs(ns, name, build, pending string, players int32) {
	e.t.Helper()
	obj, err := e.cl.Get(context.Background(), instances, ns, name)
	if err != nil {
		e.t.Fatal(err)
	}
	in := obj.(*v1.Instance)
	e.patchStatus(instances, ns, name, map[string]any{"phase": v1.PhaseRunning, "nodeName": in.Spec.NodeName,
		"installation": "l4d2", "build": build, "templateHash": "t-" + build, "pendingTemplateHash": orNull(pending),
		"players": players, "maxPlayers": 4})
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// fields is a table's rows split into cells, by the header's column
// names (cells must not hold spaces).
func fields(t *testing.T, table string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	header := strings.Fields(lines[0])
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(header) {
			t.Fatalf("row %q has %d cells, header %q %d", l, len(f), lines[0], len(header))
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		rows[f[0]] = row
	}
	return rows
}

func TestGetInstallations(t *testing.T) {
	e := newInstallEnv(t)
	for _, kind := range []string{"installations", "installation", "install"} {
		out := e.mustRun("get", kind)
		if !strings.HasPrefix(out, "NAME   BRANCH   BUILD    LATEST   WANTED   READY   DOWNLOADING   FAILED   AGE\n") {
			t.Fatalf("get %s header:\n%s", kind, out)
		}
		row := fields(t, out)["l4d2"]
		want := map[string]string{"BRANCH": "public", "BUILD": "latest", "LATEST": "200", "WANTED": "200", "READY": "1/2", "DOWNLOADING": "0", "FAILED": "1"}
		for col, v := range want {
			if row[col] != v {
				t.Errorf("get %s: %s is %q, want %q\n%s", kind, col, row[col], v, out)
			}
		}
	}
	wide := fields(t, e.mustRun("get", "install", "l4d2", "-o", "wide"))["l4d2"]
	if wide["APPID"] != "222860" || wide["CHECK-INTERVAL"] != "15m" || wide["SELECTOR"] != "pool=eu" {
		t.Fatalf("get -o wide: %v", wide)
	}
	if out := e.mustRun("get", "installation", "l4d2", "-o", "yaml"); !strings.Contains(out, "kind: Installation") || !strings.Contains(out, "wantedBuild: \"200\"") {
		t.Fatalf("-o yaml:\n%s", out)
	}
	if out := e.mustRun("get", "installations", "-o", "json"); !strings.Contains(out, `"kind": "List"`) || !strings.Contains(out, `"wantedBuild": "200"`) {
		t.Fatalf("-o json:\n%s", out)
	}
	if out := e.mustRun("get", "installations", "-o", "name"); out != "installation.left4me.io/l4d2\n" {
		t.Fatalf("-o name: %q", out)
	}
	// A pinned build with nothing reported yet.
	e.mustRun("apply", "-f", e.write("beta.yaml", "apiVersion: left4me.io/v1alpha1\nkind: Installation\nmetadata: {name: l4d2-beta}\nspec: {branch: beta, build: \"150\"}\n"))
	beta := fields(t, e.mustRun("get", "installations"))["l4d2-beta"]
	if beta["BRANCH"] != "beta" || beta["BUILD"] != "150" || beta["LATEST"] != "<none>" || beta["WANTED"] != "<none>" || beta["READY"] != "0/0" {
		t.Fatalf("a pinned Installation no node reported on: %v", beta)
	}
	_, errOut, err := e.run("", "get", "installation", "nope")
	if err == nil || !strings.Contains(errOut, `installation.left4me.io "nope" not found`) {
		t.Fatalf("get a missing installation: %v %q", err, errOut)
	}
}

func TestGetInstancesWideShowsBuild(t *testing.T) {
	e := newInstallEnv(t)
	rows := fields(t, e.mustRun("get", "instances", "-o", "wide"))
	for name, want := range map[string]string{"coop-1": "100", "coop-2": "200", "vs-2": "<none>"} {
		if rows[name]["BUILD"] != want {
			t.Errorf("%s: BUILD %q, want %q", name, rows[name]["BUILD"], want)
		}
	}
	if out := e.mustRun("get", "instances"); strings.Contains(out, "BUILD") {
		t.Fatalf("BUILD is a wide column:\n%s", out)
	}
}

// installationRow finds the row of describe's table whose first cell is first.
func installationRow(t *testing.T, out, first string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return l
		}
	}
	t.Fatalf("no row %s in:\n%s", first, out)
	return ""
}

// What CHECKED shows for n1 (checked 2m ago) and n2 (30s ago), however
// long the test took to get there.
var (
	checked2m      = regexp.MustCompile(` 2m(\d+s)? ago `)
	checkedSeconds = regexp.MustCompile(` \d+s ago `)
)

// contains is strings.Contains for a string, MatchString for a regexp.
func contains(s string, want any) bool {
	if re, ok := want.(*regexp.Regexp); ok {
		return re.MatchString(s)
	}
	return strings.Contains(s, want.(string))
}

func TestDescribeInstallation(t *testing.T) {
	e := newInstallEnv(t)
	// A third node, outside the selector, still reports an old build; a
	// fourth, selected, has not reported at all.
	for name, pool := range map[string]string{"n3": "us", "n4": "eu"} {
		if _, err := e.cl.Create(context.Background(), resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}, false); err != nil {
			t.Fatal(err)
		}
	}
	e.patchStatus(resources.Nodes, "", "n3", v1.NodeStatus{Installations: []v1.NodeInstallation{{Name: "l4d2", Phase: v1.InstallReady, Builds: []string{"100"}}}})
	ev := &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "l4d2.1", Namespace: "default"},
		InvolvedObject: v1.ObjectReference{Kind: "Installation", Name: "l4d2"}, Type: v1.EventTypeWarning, Reason: "NodeFailed",
		Message: "Node n2 cannot install build 200: DownloadFailed", LastTimestamp: metav1.Now(), Source: v1.EventSource{Component: "l4m-server"}}
	if _, err := e.cl.Create(context.Background(), events, ev, false); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("describe", "installation", "l4d2")
	for _, want := range []string{
		"Name:         l4d2\n", "Kind:         Installation\n", "  build: latest\n", "  wantedBuild: \"200\"\n",
		"Conditions:", "NodesFailed", "Nodes:\n  NODE   PHASE ", "REASON", "MESSAGE",
		"Events:", "Node n2 cannot install build 200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q", want)
		}
	}
	if strings.Contains(out, "Namespace:") {
		t.Errorf("an Installation has no namespace")
	}
	for node, want := range map[string][]any{
		"n1": {"Ready", "200,100", checked2m},
		"n2": {"Failed", "100", "DownloadFailed", diskFull},
		"n3": {"Ready", "100", "not selected by nodeSelector"},
		"n4": {"<none>", "not reported yet"},
	} {
		row := installationRow(t, out, node)
		for _, w := range want {
			if !contains(row, w) {
				t.Errorf("node %s's row lacks %q: %q", node, w, row)
			}
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	_, _, err := e.run("", "describe", "installation", "nope")
	if err == nil || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Fatalf("describe a missing installation: %v", err)
	}
}

func TestDescribeNodeShowsInstallations(t *testing.T) {
	e := newInstallEnv(t)
	out := e.mustRun("describe", "node", "n2")
	if !strings.Contains(out, "Installations:\n  NAME   PHASE ") {
		t.Fatalf("describe node lacks the Installations table:\n%s", out)
	}
	row := installationRow(t, out, "l4d2")
	for _, w := range []any{"Failed", "100", "200", checkedSeconds, "DownloadFailed", diskFull} {
		if !contains(row, w) {
			t.Errorf("row lacks %q: %q", w, row)
		}
	}
	if strings.Contains(out, "installations:") {
		t.Errorf("status YAML repeats the table:\n%s", out)
	}
	if _, err := e.cl.Create(context.Background(), resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}, false); err != nil {
		t.Fatal(err)
	}
	if out := e.mustRun("describe", "node", "bare"); !strings.Contains(out, "Installations: <none>\n") {
		t.Errorf("a node with no installations:\n%s", out)
	}
	// get nodes -o wide: each node's builds, per Installation.
	wide := e.mustRun("get", "nodes", "-o", "wide")
	for node, want := range map[string]string{"n1": " l4d2:200,100\n", "n2": " l4d2:100\n", "bare": " <none>\n"} {
		var line string
		for _, l := range strings.SplitAfter(wide, "\n") {
			if strings.HasPrefix(l, node+" ") {
				line = l
			}
		}
		if !strings.HasSuffix(line, want) {
			t.Errorf("get nodes -o wide, %s: %q, want it to end in %q\n%s", node, line, want, wide)
		}
	}
}

const midRollout = "installation/l4d2: 2 of 6 Instances on build 200; waiting for 4: " +
	"default/coop-1 (2 players, WhenEmpty), " +
	"default/coop-3 (build 200 not ready on node n2: DownloadFailed: " + diskFull + "), " +
	"default/vs-1 (Immediate restart pending, waiting for its turn under maxUnavailable 1), " +
	"default/vs-2 (not yet placed on a node: 0/2 nodes available: 1 failed to install build 200, 1 full)\n"

func TestRolloutStatusInstallation(t *testing.T) {
	e := newInstallEnv(t)
	for _, target := range []string{"installation/l4d2", "installations/l4d2", "install/l4d2", "installation.left4me.io/l4d2"} {
		out, _, err := e.run("", "rollout", "status", target, "--watch=false")
		var ee *app.ExitError
		if !errors.As(err, &ee) || ee.Code != 1 || out != midRollout {
			t.Fatalf("rollout status %s --watch=false: %v\n%q\nwant\n%q", target, err, out, midRollout)
		}
	}
	out, _, err := e.run("", "rollout", "status", "installation/l4d2", "--timeout", "300ms")
	if err == nil || err.Error() != "rollout of installation l4d2 not complete: timed out waiting" || out != midRollout {
		t.Fatalf("rollout status --timeout: %v\n%s", err, out)
	}
	// -n narrows it to one namespace.
	out, _, err = e.run("", "-n", "team", "rollout", "status", "installation/l4d2", "--watch=false")
	if err != nil || out != "installation/l4d2: rollout complete: 1 of 1 Instances on build 200\n" {
		t.Fatalf("rollout status -n team: %v %q", err, out)
	}

	// Follow it to the end: the players leave coop-1, n2 gets the build,
	// the scheduler places vs-2; each restarts onto 200.
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	var buf syncBuffer
	done := make(chan error, 1)
	go func() {
		cmd := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &buf, Err: &buf})
		cmd.SetArgs([]string{"--config", e.srv.AdminConfigPath, "rollout", "status", "installation/l4d2"})
		done <- cmd.ExecuteContext(ctx)
	}()
	waitFor(t, func() bool { return buf.String() != "" })
	e.runs("default", "coop-1", "200", "", 0)
	e.runs("default", "vs-1", "200", "", 3)
	waitFor(t, func() bool { return strings.Contains(buf.String(), "4 of 6 Instances on build 200; waiting for 2:") })
	e.patchStatus(resources.Nodes, "", "n2", map[string]any{"installations": []v1.NodeInstallation{{Name: "l4d2", Phase: v1.InstallReady, Builds: []string{"200", "100"}, LatestSeen: "200"}}})
	e.runs("default", "coop-3", "200", "", 0)
	if _, err := e.cl.Patch(context.Background(), instances, "default", "vs-2", "application/merge-patch+json", []byte(`{"spec":{"nodeName":"n2"}}`), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(buf.String(), "5 of 6 Instances on build 200; waiting for 1: default/vs-2 (starting on node n2)\n")
	})
	select {
	case err := <-done:
		t.Fatalf("rollout status ended before vs-2 ran build 200: %v\n%s", err, buf.String())
	default:
	}
	e.runs("default", "vs-2", "200", "", 0)
	if err := <-done; err != nil {
		t.Fatalf("rollout status --watch: %v\n%s", err, buf.String())
	}
	out = buf.String()
	if !strings.HasPrefix(out, midRollout) || !strings.HasSuffix(out, "installation/l4d2: rollout complete: 6 of 6 Instances on build 200\n") {
		t.Fatalf("rollout status --watch:\n%s", out)
	}
	if strings.Count(out, midRollout) != 1 {
		t.Fatalf("an unchanged line was printed again:\n%s", out)
	}
}

// A tenant may read Installations and Nodes but not list across
// namespaces: rollout status shows the tenant's namespace, and says so.
func TestRolloutStatusInstallationAsTenant(t *testing.T) {
	e := newInstallEnv(t)
	bearer := strings.TrimSpace(e.mustRun("token", "create", "user", "alice", "--role", "viewer:team", "--ttl", "1h"))
	cfg, err := client.LoadFile(e.srv.AdminConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Namespace = "team"
	data, _ := yaml.Marshal(cfg)
	path := e.write("alice.yaml", string(data))
	out, errOut, err := e.run("", "--config", path, "--token", bearer, "rollout", "status", "installation/l4d2", "--watch=false")
	if err != nil || out != "installation/l4d2: rollout complete: 1 of 1 Instances on build 200\n" ||
		errOut != "Showing namespace team only: you may not list Blueprints across namespaces.\n" {
		t.Fatalf("tenant rollout status: %v\n%q\n%q", err, out, errOut)
	}
}

func TestRolloutStatusBadInput(t *testing.T) {
	e := newInstallEnv(t)
	_, _, err := e.run("", "rollout", "status", "installation/nope", "--watch=false")
	if err == nil || !strings.Contains(err.Error(), `installation`) || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Fatalf("rollout status of a missing installation: %v", err)
	}
	for arg, want := range map[string]string{
		"node/n1":           `"node/n1": rollouts are of blueprints, instances and installations, not "node"`,
		"servers/x":         `"servers/x": rollouts are of blueprints, instances and installations, not "servers"`,
		"installation/":     `"installation/": want NAME or KIND/NAME`,
		"installation/a/b":  `"installation/a/b": want NAME or KIND/NAME`,
		"blueprint/missing": `"missing" not found`,
	} {
		if _, _, err := e.run("", "rollout", "status", arg, "--watch=false"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("rollout status %s: %v, want %q", arg, err, want)
		}
	}
	if _, _, err := e.run("", "rollout", "restart", "installation/l4d2"); err == nil || !strings.Contains(err.Error(), "rollout restart restarts a Blueprint's Instances") {
		t.Fatalf("rollout restart of an installation: %v", err)
	}
	if out := e.mustRun("rollout", "restart", "bp/coop"); out != "blueprint.left4me.io/coop restarted\n" {
		t.Fatalf("rollout restart bp/coop: %q", out)
	}
}
