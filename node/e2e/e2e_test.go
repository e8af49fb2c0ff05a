// Package e2e proves the node agent against real parts: l4m-server outside,
// l4m-node inside a sandbox host booted with real systemd, real overlayfs,
// and the game double answering A2S from inside.
package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/leader"
	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/a2s"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/unit"
)

var (
	nodesRes   = resources.Nodes
	instances  = resources.Instances
	blueprints = resources.Blueprints
)

type env struct {
	t     *testing.T
	sb    *sandboxtest.Sandbox
	admin *client.Client
	node  string
	srv   *controllertest.Server
	opts  server.Options
	join  string
	// metrics is the agent's --metrics-bind-address: a free loopback
	// port, as the sandbox shares this network namespace (the default
	// port could be taken).
	metrics string
}

func build(t *testing.T, pkg, dest string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dest, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
}

// nodeSettings are the node: keys of node.yaml a test sets (cmd/l4m-node's
// nodeSettings); zero fields are left out, so the node's defaults apply.
type nodeSettings struct {
	// SteamAPIURL points the Workshop at a Steam Web API double.
	SteamAPIURL string `json:"steamAPIURL,omitempty"`
	// OverlayFileRoots are where file:// Overlay URLs may read below.
	OverlayFileRoots []string `json:"overlayFileRoots,omitempty"`
}

// nodeYAML is node.yaml as setup writes it: the API server's URL and CA,
// no token yet, and the test's node settings.
type nodeYAML struct {
	client.File `json:",inline"`
	Node        *nodeSettings `json:"node,omitempty"`
}

func setup(t *testing.T) *env { return setupWith(t, nodeSettings{}) }

// setupWith is setup with node.yaml's node: settings.
func setupWith(t *testing.T, node nodeSettings) *env {
	sandboxtest.Skip(t)
	// A fixed port and data dir, so the server can stop and come back as
	// the same server (same URL, CA and tokens).
	addr, err := storage.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	opts := server.Options{DataDir: t.TempDir(), Listen: addr}
	srv, admin := controllertest.StartServer(t, opts, leader.Options{})
	sb := sandboxtest.Boot(t, "e2e")
	host := sb.Left4meDir
	for _, d := range []string{"installation/left4dead2/cfg", "overlays/maps/left4dead2/cfg", "bin"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	build(t, "github.com/left4me/left4me/hack/srcds-double", filepath.Join(host, "installation", "srcds_run"))
	build(t, "github.com/left4me/left4me/cmd/l4m-node", filepath.Join(host, "bin", "l4m-node"))
	os.WriteFile(filepath.Join(host, "installation/left4dead2/steam.inf"), []byte("ClientVersion=2243\nPatchVersion=2.2.4.3\n"), 0o644)
	os.WriteFile(filepath.Join(host, "overlays/maps/left4dead2/cfg/server.cfg"), []byte("hostname \"Hostname From Overlay\"\n"), 0o644)
	// An overlay whose path is a symlink out of the overlays root.
	os.Symlink("/etc", filepath.Join(host, "overlays", "escape"))

	// The node joins with a join token: node.yaml starts without a token.
	join := servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenJoin})
	file := nodeYAML{File: client.File{Server: srv.URL(), CertificateAuthorityData: string(srv.CAPEM)}}
	if node.SteamAPIURL != "" || len(node.OverlayFileRoots) > 0 {
		file.Node = &node
	}
	cfg, _ := yaml.Marshal(file)
	os.WriteFile(filepath.Join(host, "node.yaml"), cfg, 0o600)
	metrics, err := storage.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sb: sb, admin: admin, node: "e2e", srv: srv, opts: opts, join: join, metrics: metrics}
	e.startAgent()
	return e
}

// startAgent runs l4m-node inside the sandbox as a hardened service: its
// own mount namespace (ProtectSystem=strict), which is exactly where the
// predecessor's mounts got lost.
func (e *env) startAgent() {
	args := []string{"systemd-run", "--unit=l4m-node", "-p", "ProtectSystem=strict", "-p", "PrivateTmp=yes",
		"-p", "ReadWritePaths=/var/lib/left4me /run/systemd/system /etc",
		"/var/lib/left4me/bin/l4m-node", "--config", "/var/lib/left4me/node.yaml", "--node-name", e.node, "--port-range", "31000-31100", "--logs-listen", "127.0.0.1:0", "--join-token", e.join,
		"--metrics-bind-address", e.metrics}
	if v := os.Getenv("L4M_AGENT_V"); v != "" {
		args = append(args, "-v", v)
	}
	if w := os.Getenv("L4M_AGENT_WORKERS"); w != "" {
		args = append(args, "--workers", w)
	}
	if v := os.Getenv("L4M_AGENT_STARTS"); v != "" {
		args = append(args, "--max-parallel-starts", v)
	}
	if os.Getenv("L4M_AGENT_CPUPROFILE") != "" {
		// Written when the agent stops (see stopAgentForProfile).
		args = append(args, "--cpuprofile", "/var/lib/left4me/agent.prof")
	}
	e.sb.MustExec(e.t, args...)
}

// waitAgentGone waits until systemd has reaped the killed agent.
func (e *env) waitAgentGone() {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := e.sb.Exec("systemctl", "show", "-P", "ActiveState", "l4m-node")
		if st = strings.TrimSpace(st); st == "failed" || st == "inactive" {
			e.sb.Exec("systemctl", "reset-failed", "l4m-node")
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the killed agent is still %s", st)
		}
	}
}

// waitSynced waits until an agent started after since reports that it has
// reconciled every Instance bound to its node.
func (e *env) waitSynced(since time.Time) {
	e.t.Helper()
	var last *metav1.Condition
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		obj, err := e.admin.Get(context.Background(), resources.Nodes, "", e.node)
		if err != nil {
			continue
		}
		last = meta.FindStatusCondition(obj.(*v1.Node).Status.Conditions, v1.NodeInstancesSynced)
		if last != nil && last.Status == metav1.ConditionTrue && !last.LastTransitionTime.Time.Before(since.Truncate(time.Second)) {
			return
		}
	}
	e.t.Fatalf("the agent started at %s never reported its first full sync: %+v", since.Format(time.TimeOnly), last)
}

func (e *env) get(name string) *v1.Instance {
	obj, err := e.admin.Get(context.Background(), instances, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return obj.(*v1.Instance)
}

// waitFor polls an Instance until cond holds (with the last state on failure).
func (e *env) waitFor(name, what string, cond func(*v1.Instance) bool) *v1.Instance {
	e.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var in *v1.Instance
	for time.Now().Before(deadline) {
		obj, err := e.admin.Get(context.Background(), instances, "default", name)
		if err == nil {
			in = obj.(*v1.Instance)
			if cond(in) {
				return in
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "-u", "l4m-*", "--no-pager", "-n", "60")
	e.t.Fatalf("%s: waited 45s for %s; last status %+v\n%s", name, what, in, logs)
	return nil
}

func ready(in *v1.Instance) bool {
	return in.Status.ObservedGeneration == in.Generation && meta.IsStatusConditionTrue(in.Status.Conditions, v1.ConditionReady)
}

func queryInfo(t *testing.T, port int32) *a2s.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := a2s.QueryInfo(ctx, "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatalf("A2S from outside the sandbox: %v", err)
	}
	return info
}

func (e *env) create(objs ...v1.Object) {
	for _, o := range objs {
		res, _ := resources.ByKind(strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1alpha1."))
		if _, err := e.admin.Create(context.Background(), res, o, false); err != nil {
			e.t.Fatal(err)
		}
	}
}

func meta_(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "default"} }

func TestNodeAgentEndToEnd(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	port := int32(31000 + rand.IntN(90))
	e.create(
		&v1.Overlay{ObjectMeta: meta_("maps"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "maps"}}},
		&v1.Blueprint{ObjectMeta: meta_("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"maps"}, Game: v1.GameSpec{Map: "c2m1_highway", MaxPlayers: 4}}},
		&v1.Instance{ObjectMeta: meta_("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node, Port: port}},
	)

	// apply → Ready, answering A2S outside the sandbox with the overlay's hostname.
	in := e.waitFor("coop-1", "Ready", ready)
	info := queryInfo(t, port)
	if info.Name != "Hostname From Overlay" || info.Map != "c2m1_highway" || info.MaxPlayers != 4 {
		t.Fatalf("A2S_INFO %+v", info)
	}
	if in.Status.Phase != v1.PhaseRunning || in.Status.MaxPlayers != 4 || in.Status.UnitName != "l4m-default.coop-1.service" || in.Status.MainPID == 0 {
		t.Fatalf("status %+v", in.Status)
	}
	if !contains(in.Finalizers, "left4me.io/node-cleanup") {
		t.Fatalf("no finalizer: %v", in.Finalizers)
	}
	pid := in.Status.MainPID
	// The game's own namespace holds its overlay; the host's copy goes, so
	// the host's mount table does not grow with its games.
	merged := "/var/lib/left4me/runtime/default.coop-1/merged"
	hostReleased := func() (bool, string) {
		out, _ := e.sb.Exec("findmnt", "-n", merged)
		return strings.TrimSpace(out) == "", "the host still mounts it: " + out
	}
	e.until("the host lets go of coop-1's overlay", 20*time.Second, hostReleased)
	if got := e.merged("coop-1", "left4dead2/cfg/server.cfg"); !strings.Contains(got, "rcon_password") {
		t.Fatalf("the game's view of its tree lacks the generated server.cfg: %q", got)
	}
	// A crash: systemd restarts the game (Restart=on-failure), whose start
	// job mounts the overlay again first, and the agent lets go of it again.
	e.sb.MustExec(t, "kill", "-KILL", strconv.Itoa(int(pid)))
	in = e.waitFor("coop-1", "Ready after a crash", func(in *v1.Instance) bool { return ready(in) && in.Status.MainPID != pid && in.Status.MainPID != 0 })
	if info := queryInfo(t, port); info.Name != "Hostname From Overlay" {
		t.Fatalf("after the crash restart A2S says %+v", info)
	}
	e.until("the host lets go of coop-1's overlay after the crash restart", 20*time.Second, hostReleased)
	pid = in.Status.MainPID

	// The join token bought a node token, saved privately in node.yaml.
	saved, err := client.LoadFile(filepath.Join(e.sb.Left4meDir, "node.yaml"))
	if err != nil || !strings.HasPrefix(saved.Token, "l4m.") || saved.Token == e.join {
		t.Fatalf("node.yaml after joining: %+v %v", saved, err)
	}
	if st, _ := os.Stat(filepath.Join(e.sb.Left4meDir, "node.yaml")); st.Mode().Perm() != 0o600 {
		t.Fatalf("node.yaml mode %v", st.Mode().Perm())
	}

	// Logs through the API server, from the agent's log server.
	checkLogs(t, e)

	// kill -9 of the agent and a restart keep the same game PID.
	e.sb.MustExec(t, "systemctl", "kill", "-s", "KILL", "l4m-node")
	e.waitAgentGone()
	restarted := time.Now()
	e.startAgent()
	// Compare only once the new agent has reconciled every Instance: it
	// says so in its Node's InstancesSynced condition.
	e.waitSynced(restarted)
	svcPID := strings.TrimSpace(e.sb.MustExec(t, "systemctl", "show", "-P", "MainPID", unit.ServiceName("default.coop-1")))
	if svcPID != strconv.Itoa(int(pid)) {
		t.Fatalf("game restarted with the agent: PID %d -> %s", pid, svcPID)
	}

	// A Blueprint edit restarts the game with the new arguments.
	bp, _ := e.admin.Get(ctx, blueprints, "default", "coop")
	b := bp.(*v1.Blueprint)
	b.Spec.Game.MaxPlayers = 6
	if _, err := e.admin.Update(ctx, blueprints, b, false); err != nil {
		t.Fatal(err)
	}
	e.waitFor("coop-1", "6 slots", func(in *v1.Instance) bool { return ready(in) && in.Status.MaxPlayers == 6 })
	if info := queryInfo(t, port); info.MaxPlayers != 6 {
		t.Fatalf("after the edit A2S says %d slots", info.MaxPlayers)
	}

	// Stopped unmounts and keeps the upper dir; Running resumes on it.
	marker := filepath.Join(e.sb.Left4meDir, "runtime", "default.coop-1", "upper", "kept.txt")
	os.WriteFile(marker, []byte("x"), 0o644)
	patch(t, e.admin, "coop-1", `{"spec":{"state":"Stopped"}}`)
	e.waitFor("coop-1", "Stopped", func(in *v1.Instance) bool {
		return in.Status.Phase == v1.PhaseStopped && in.Status.ObservedGeneration == in.Generation
	})
	if out, _ := e.sb.Exec("findmnt", "-n", "/var/lib/left4me/runtime/default.coop-1/merged"); strings.TrimSpace(out) != "" {
		t.Fatalf("still mounted after Stopped: %s", out)
	}
	patch(t, e.admin, "coop-1", `{"spec":{"state":"Running"}}`)
	e.waitFor("coop-1", "Ready again", ready)
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the upper dir was not kept across Stopped/Running")
	}

	// With l4m-server down the game keeps answering, and status catches up
	// when the server is back.
	running := strings.TrimSpace(e.sb.MustExec(t, "systemctl", "show", "-P", "MainPID", unit.ServiceName("default.coop-1")))
	e.srv.Close()
	// 30 s without the control plane, the game asked every half second.
	for down := time.Now(); time.Since(down) < 30*time.Second; time.Sleep(500 * time.Millisecond) {
		if info := queryInfo(t, port); info.Name != "Hostname From Overlay" {
			t.Fatalf("%s after the API went down A2S says %+v", time.Since(down).Truncate(time.Second), info)
		}
	}
	if svc := strings.TrimSpace(e.sb.MustExec(t, "systemctl", "show", "-P", "MainPID", unit.ServiceName("default.coop-1"))); svc != running {
		t.Fatalf("the game restarted while the API was down: PID %s -> %s", running, svc)
	}
	e.srv, e.admin = controllertest.StartServer(t, e.opts, leader.Options{})
	joinPlayer(t, e, "coop-1", port, "Zoey")
	e.waitFor("coop-1", "the joined player in status", func(in *v1.Instance) bool { return in.Status.Players == 1 })

	// An overlay reference that escapes on disk: a clear condition, no mount, no unit.
	e.create(
		&v1.Overlay{ObjectMeta: meta_("escape"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "escape"}}},
		&v1.Blueprint{ObjectMeta: meta_("bad"), Spec: v1.BlueprintSpec{Overlays: []string{"escape"}}},
		&v1.Instance{ObjectMeta: meta_("bad1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bad"}, NodeName: e.node}},
	)
	bad := e.waitFor("bad1", "the overlay refused", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
		return c != nil && c.Status == metav1.ConditionFalse
	})
	c := meta.FindStatusCondition(bad.Status.Conditions, v1.InstanceOverlaysReady)
	if c.Reason != "InvalidOverlay" || !strings.Contains(c.Message, `"escape"`) || !strings.Contains(c.Message, "outside the overlays root") {
		t.Fatalf("condition %+v", c)
	}
	if _, err := os.Stat(filepath.Join(e.sb.Left4meDir, "..")); err == nil {
		if out, _ := e.sb.Exec("ls", "/run/systemd/system"); strings.Contains(out, "default.bad1") {
			t.Fatalf("a unit was written for the refused instance: %s", out)
		}
	}

	// Delete: the finalizer holds the Instance until the host is clean.
	if _, _, err := e.admin.Delete(ctx, instances, "default", "coop-1", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, err := e.admin.Get(ctx, instances, "default", "coop-1")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "--no-pager", "-n", "40")
			t.Fatalf("coop-1 not deleted within 45s: %+v\n%s", e.get("coop-1").ObjectMeta, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	assertGone(t, e, "default.coop-1")

	// An Instance that vanishes while the agent is down (its finalizer
	// forced off) leaves an orphan game; the agent's next start removes it,
	// and nothing else.
	e.create(&v1.Instance{ObjectMeta: meta_("orphan-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node, Port: port}})
	e.waitFor("orphan-1", "Ready", ready)
	e.sb.MustExec(t, "systemctl", "stop", "l4m-node")
	patch(t, e.admin, "orphan-1", `{"metadata":{"finalizers":null}}`)
	if _, _, err := e.admin.Delete(ctx, instances, "default", "orphan-1", false); err != nil {
		t.Fatal(err)
	}
	queryInfo(t, port) // still running: nobody told the host
	e.sb.Exec("systemctl", "reset-failed", "l4m-node")
	e.startAgent()
	deadline = time.Now().Add(30 * time.Second)
	for {
		// Units go first, then the files: wait for both.
		out, _ := e.sb.Exec("ls", "/run/systemd/system")
		_, rtErr := os.Stat(filepath.Join(e.sb.Left4meDir, "runtime", "default.orphan-1"))
		_, inErr := os.Stat(filepath.Join(e.sb.Left4meDir, "instances", "default.orphan-1"))
		if !strings.Contains(out, "default.orphan-1") && !strings.Contains(out, unit.MountName(unit.Paths{Root: "/var/lib/left4me"}, "default.orphan-1")) && os.IsNotExist(rtErr) && os.IsNotExist(inErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan units not removed: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	assertGone(t, e, "default.orphan-1")
	if _, err := e.sb.Exec("systemctl", "is-active", "systemd-journald"); err != nil {
		t.Fatal("cleanup touched other units")
	}
}

// assertGone checks that nothing of an Instance is left on the host.
func assertGone(t *testing.T, e *env, id string) {
	t.Helper()
	units, _ := e.sb.Exec("ls", "/run/systemd/system")
	mounts, _ := e.sb.Exec("cat", "/proc/self/mountinfo")
	// The mount unit's name escapes "-" as \x2d: look for both spellings.
	mountUnit := unit.MountName(unit.Paths{Root: "/var/lib/left4me"}, id)
	if strings.Contains(units, id) || strings.Contains(units, mountUnit) || strings.Contains(mounts, id) {
		t.Fatalf("%s left behind: units %q", id, units)
	}
	if active, _ := e.sb.Exec("systemctl", "list-units", "--no-legend", "--plain", "--all", mountUnit, unit.ServiceName(id)); strings.TrimSpace(active) != "" {
		t.Fatalf("%s: systemd still knows its units:\n%s", id, active)
	}
	for _, d := range []string{"runtime/" + id, "instances/" + id} {
		if _, err := os.Stat(filepath.Join(e.sb.Left4meDir, d)); err == nil {
			t.Fatalf("%s left behind", d)
		}
	}
}

func patch(t *testing.T, c *client.Client, name, body string) {
	t.Helper()
	if _, err := c.Patch(context.Background(), instances, "default", name, "application/merge-patch+json", []byte(body), false); err != nil {
		t.Fatal(err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// joinPlayer simulates a player through the double's RCON command, with
// the password the node generated (readable only by root on the host).
func joinPlayer(t *testing.T, e *env, instance string, port int32, name string) {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(e.sb.Left4meDir, "instances", unit.ID("default", instance), "rcon_password"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rcon.Dial(ctx, "127.0.0.1:"+strconv.Itoa(int(port)), strings.TrimSpace(string(pw)))
	if err != nil {
		t.Fatalf("rcon with the node's password: %v", err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, "l4m_join "+name); err != nil {
		t.Fatal(err)
	}
}

// checkLogs: an editor reads the game's journal through the API; a viewer
// may not; and the agent's log server refuses anyone but the API server.
func checkLogs(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := e.admin.Logs(ctx, "default", "coop-1", false, 20)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(data), `srcds-double: "Hostname From Overlay"`) {
		t.Fatalf("logs: %q", data)
	}
	if strings.Contains(string(data), "rcon_password") {
		t.Fatal("the log shows the RCON password")
	}
	viewer := servertest.ClientWithToken(t, e.srv.Server, servertest.NewToken(t, e.admin, v1.TokenSpec{Type: v1.TokenUser, User: "vic", Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}}))
	if _, err := viewer.Logs(ctx, "default", "coop-1", false, 5); !apierrors.IsForbidden(err) {
		t.Fatalf("viewer reading logs: %v", err)
	}
	obj, err := e.admin.Get(ctx, nodesRes, "", e.node)
	if err != nil {
		t.Fatal(err)
	}
	ep := obj.(*v1.Node).Status.LogsEndpoint
	if ep == nil || ep.CertSHA256 == "" {
		t.Fatalf("node publishes no log server: %+v", obj.(*v1.Node).Status)
	}
	// Straight to the agent, with a valid node token but no API server
	// certificate: refused in the TLS handshake.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/logs/default/coop-1", ep.Port), nil)
	req.Header.Set("Authorization", "Bearer "+servertest.AdminToken(t, e.srv.Server))
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the agent served logs without the API server's certificate: %d", resp.StatusCode)
	}
}
