package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/hack/sandboxtest"
)

// The packages test, like the fleet test, runs in a network namespace of
// its own: a bridge with 10.78.0.1, a bare sandbox host for the server
// (10.78.0.2) and one for the node (10.78.0.3), which install nothing but
// what make deb built.
const (
	debNetnsEnv  = "L4M_DEB_NETNS"
	debDirEnv    = "L4M_DEB_DIR"
	debBridge    = "l4mdebbr0"
	debGateway   = "10.78.0.1"
	debServerIP  = "10.78.0.2"
	debNodeIP    = "10.78.0.3"
	debVersion1  = "0.9.0+e2e1"
	debVersion2  = "0.9.0+e2e2"
	debServerBox = "deb-server"
	debNodeBox   = "deb-node"
)

// TestDebianPackages installs the packages make deb builds on bare sandbox
// hosts with dpkg, as an admin would: the units are enabled and started by
// the packages (nothing by hand), a second dpkg -i changes nothing, an
// upgrade restarts the server onto the new build, remove stops it and
// keeps its state, purge removes the state.
func TestDebianPackages(t *testing.T) {
	if !inDebNetns(t) {
		return
	}
	dir := os.Getenv(debDirEnv)
	srv := sandboxtest.BootWith(t, debServerBox, sandboxtest.Options{Addr: debServerIP + "/24", Bridge: debBridge})
	node := sandboxtest.BootWith(t, debNodeBox, sandboxtest.Options{Addr: debNodeIP + "/24", Bridge: debBridge})
	deb := func(v, pkg string) string { return filepath.Join(dir, v, pkg+"_"+v+"_amd64.deb") }
	for _, sb := range []*sandboxtest.Sandbox{srv, node} {
		// This machine's image is a container's, whose policy-rc.d keeps
		// packages from starting services; a real host has none.
		sb.MustExec(t, "rm", "-f", "/usr/sbin/policy-rc.d")
	}

	// The server host: l4mctl and l4m-server, started by the package.
	srv.MustExec(t, "dpkg", "-i", deb(debVersion1, "l4mctl"), deb(debVersion1, "l4m-server"))
	waitUnit(t, srv, "l4m-server.service", "active")
	admin := "/var/lib/left4me/server/admin.yaml"
	waitExec(t, srv, "test", "-s", admin)
	if out := waitExec(t, srv, "l4mctl", "--config", admin, "version"); !strings.Contains(out, debVersion1) {
		t.Errorf("l4mctl version against the packaged server:\n%s", out)
	}
	if out := srv.MustExec(t, "systemctl", "is-enabled", "l4m-server.service"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("l4m-server is %q, not enabled", out)
	}
	if out := srv.MustExec(t, "man", "-w", "l4mctl-apply"); !strings.Contains(out, "/usr/share/man/man1/l4mctl-apply.1.gz") {
		t.Errorf("no man page for l4mctl apply: %s", out)
	}
	if out := srv.MustExec(t, "bash", "-c", "source /usr/share/bash-completion/completions/l4mctl && complete -p l4mctl"); !strings.Contains(out, "l4mctl") {
		t.Errorf("no bash completion: %s", out)
	}

	// dpkg -i of the same packages again: still configured, still running.
	srv.MustExec(t, "dpkg", "-i", deb(debVersion1, "l4mctl"), deb(debVersion1, "l4m-server"))
	waitUnit(t, srv, "l4m-server.service", "active")
	waitExec(t, srv, "l4mctl", "--config", admin, "get", "namespaces")

	// The node host: l4m-node, enabled, its start skipped until joined.
	node.MustExec(t, "dpkg", "-i", deb(debVersion1, "l4m-node"))
	if out := node.MustExec(t, "systemctl", "is-enabled", "l4m-node.service"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("l4m-node is %q, not enabled", out)
	}
	if out, _ := node.Exec("systemctl", "show", "-p", "ConditionResult", "-p", "ActiveState", "l4m-node.service"); !strings.Contains(out, "ConditionResult=no") || !strings.Contains(out, "ActiveState=inactive") {
		t.Errorf("an unjoined l4m-node should be skipped by its ExecCondition:\n%s", out)
	}
	for _, acct := range []string{"l4m-steamcmd", "l4m-fetch"} {
		if out := node.MustExec(t, "getent", "passwd", acct); !strings.Contains(out, ":left4me ") {
			t.Errorf("service account %s: %q", acct, out)
		}
	}
	if out := node.MustExec(t, "stat", "-c", "%a", "/etc/left4me/node.yaml"); strings.TrimSpace(out) != "600" {
		t.Errorf("/etc/left4me/node.yaml is mode %s", out)
	}

	// Join: a wrong CA hash is refused and changes nothing; the right one
	// writes node.yaml and starts the agent.
	token := joinTokenRE.FindString(srv.MustExec(t, "l4mctl", "--config", admin, "token", "create", "join"))
	caHash := strings.TrimSpace(srv.MustExec(t, "l4mctl", "--config", admin, "config", "ca-hash"))
	if token == "" || !strings.HasPrefix(caHash, "sha256:") {
		t.Fatalf("join token %q, CA hash %q", token, caHash)
	}
	serverURL := "https://" + debServerIP + ":6443"
	// What the samples' Overlays fetch (hack/sample-sources.sh, as make
	// run makes it), and the admin's settings in node.yaml before the join,
	// which join keeps: where file:// sources may be read, and the Steam
	// Web API double (on the bridge) for the Workshop.
	data := t.TempDir()
	if out, err := exec.Command(filepath.Join(repoRoot(), "hack", "sample-sources.sh"), node.Left4meDir, data).CombinedOutput(); err != nil {
		t.Fatalf("sample sources: %v\n%s", err, out)
	}
	steamURL := startSteamAPI(t, filepath.Join(data, "steam"))
	node.MustExec(t, "bash", "-c", "printf 'node:\\n  overlayFileRoots: [/var/lib/left4me/archives]\\n  steamAPIURL: "+steamURL+"\\n' > /etc/left4me/node.yaml")
	out, err := node.Exec("l4m-node", "join", serverURL, "--token", token, "--ca-hash", "sha256:"+strings.Repeat("ab", 32), "--address", debNodeIP)
	if err == nil || !strings.Contains(out, caHash) {
		t.Fatalf("a join with a wrong CA hash: %v\n%s", err, out)
	}
	before := node.MustExec(t, "cat", "/etc/left4me/node.yaml")
	if _, err := node.Exec("l4m-node", "check-joined"); err == nil || !strings.Contains(before, "steamAPIURL") || strings.Contains(before, "token") {
		t.Fatalf("a refused join wrote node.yaml:\n%s", before)
	}
	installSteamcmdOn(t, node.Left4meDir)
	node.MustExec(t, "l4m-node", "join", serverURL, "--token", token, "--ca-hash", caHash, "--address", debNodeIP, "--node-name", debNodeBox)
	waitUnit(t, node, "l4m-node.service", "active")

	// From outside, with the packaged l4mctl: the samples, Ready through the
	// steamcmd, Workshop and game doubles.
	l4mctl := extractL4mctl(t, deb(debVersion1, "l4mctl"))
	cfg := outsideConfig(t, filepath.Join(srv.Left4meDir, "server", "admin.yaml"), serverURL)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(l4mctl, append([]string{"--config", cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("l4mctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("apply", "-f", filepath.Join(repoRoot(), "config", "samples"), "--wait", "--timeout", "5m")
	game := instanceOf(t, run("get", "instance", "coop-1", "-o", "json"))
	if game.Status.MainPID == 0 || game.Status.NodeName != debNodeBox {
		t.Fatalf("coop-1: %+v", game.Status)
	}
	t.Logf("coop-1 Ready on %s: unit %s, PID %d, build %s", game.Status.NodeName, game.Status.UnitName, game.Status.MainPID, game.Status.Build)

	// Upgrade both with the game running: it keeps its process.
	run("apply", "-f", writeFile(t, "team-a.yaml", "apiVersion: left4me.io/v1alpha1\nkind: Namespace\nmetadata: {name: team-a}\n"))
	srv.MustExec(t, "dpkg", "-i", deb(debVersion2, "l4mctl"), deb(debVersion2, "l4m-server"))
	waitUnit(t, srv, "l4m-server.service", "active")
	node.MustExec(t, "dpkg", "-i", deb(debVersion2, "l4m-node"))
	waitUnit(t, node, "l4m-node.service", "active")
	if out := waitExec(t, srv, "l4mctl", "--config", admin, "version"); !strings.Contains(out, debVersion2) {
		t.Errorf("after the upgrade:\n%s", out)
	}
	if out := run("get", "namespaces"); !strings.Contains(out, "team-a") {
		t.Errorf("the upgrade lost the server's data:\n%s", out)
	}
	waitFor(t, 2*time.Minute, "coop-1 Ready on the new node agent, same game process", func() bool {
		in := instanceOf(t, run("get", "instance", "coop-1", "-o", "json"))
		return in.Status.MainPID == game.Status.MainPID && in.Status.Phase == v1.PhaseRunning && nodeAgentVersion(t, run("get", "node", debNodeBox, "-o", "json")) == debVersion2
	})

	t.Logf("upgraded to %s; coop-1 still PID %d", debVersion2, game.Status.MainPID)

	// Removing l4m-node stops the agent, not the game. Purge while it
	// runs keeps its files (and says so); once an admin stopped the game,
	// a reinstall and purge removes the node's state, config and accounts.
	node.MustExec(t, "dpkg", "-r", "l4m-node")
	waitUnit(t, node, "l4m-node.service", "inactive")
	gamePID := func() string {
		return strings.TrimSpace(node.MustExec(t, "systemctl", "show", "-p", "MainPID", "--value", game.Status.UnitName))
	}
	if pid := gamePID(); pid != fmt.Sprint(game.Status.MainPID) {
		t.Errorf("removing l4m-node touched the game: MainPID %s, was %d", pid, game.Status.MainPID)
	}
	if out := node.MustExec(t, "dpkg", "-P", "l4m-node"); !strings.Contains(out, "games still run") {
		t.Errorf("purge with a game running did not say it keeps the state:\n%s", out)
	}
	if pid := gamePID(); pid != fmt.Sprint(game.Status.MainPID) {
		t.Errorf("purge touched the running game: MainPID %s", pid)
	}
	node.MustExec(t, "test", "-d", "/var/lib/left4me/installation")
	node.MustExec(t, "systemctl", "stop", "l4m-*") // the admin stops the games (and their overlays' mounts)
	node.MustExec(t, "dpkg", "-i", deb(debVersion2, "l4m-node"))
	node.MustExec(t, "dpkg", "-i", deb(debVersion2, "l4m-node")) // twice: still configured
	if out, _ := node.Exec("systemctl", "show", "-p", "ConditionResult", "l4m-node.service"); !strings.Contains(out, "ConditionResult=no") {
		t.Errorf("a reinstalled, unjoined l4m-node should be skipped:\n%s", out)
	}
	if out := node.MustExec(t, "dpkg", "-P", "l4m-node"); strings.Contains(out, "keeping") {
		t.Errorf("purge with every game stopped kept the state:\n%s", out)
	}
	if out, _ := node.Exec("ls", "-A", "/var/lib/left4me"); strings.TrimSpace(out) != "" {
		t.Errorf("purge left the node's state: %s", out)
	}
	if out, err := node.Exec("test", "-e", "/etc/left4me/node.yaml"); err == nil {
		t.Errorf("purge left /etc/left4me/node.yaml: %s", out)
	}
	for _, acct := range []string{"l4m-steamcmd", "l4m-fetch"} {
		if out, err := node.Exec("getent", "passwd", acct); err == nil {
			t.Errorf("purge left the %s account: %s", acct, out)
		}
	}

	// Remove stops the server and keeps its state; purge removes it.
	srv.MustExec(t, "dpkg", "-r", "l4m-server")
	waitUnit(t, srv, "l4m-server.service", "inactive")
	srv.MustExec(t, "test", "-s", admin)
	srv.MustExec(t, "dpkg", "-P", "l4m-server")
	if out, err := srv.Exec("test", "-e", "/var/lib/left4me/server"); err == nil {
		t.Errorf("purge left /var/lib/left4me/server: %s", out)
	}
}

var joinTokenRE = regexp.MustCompile(`l4m\.[A-Za-z0-9]+\.[A-Za-z0-9_-]+`)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startSteamAPI runs the Steam Web API double (built by the outer test) on
// the bridge with the samples' catalog, until the test ends; it returns
// its URL.
func startSteamAPI(t *testing.T, dir string) string {
	t.Helper()
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(filepath.Join(os.Getenv(debDirEnv), "steam-api-double"), "--listen", debGateway+":0", "--allow-non-loopback",
		"--catalog", filepath.Join(dir, "catalog.json"), "--addr-file", addrFile)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var addr []byte
	waitFor(t, 10*time.Second, "the Steam Web API double listening", func() bool {
		addr, _ = os.ReadFile(addrFile)
		return len(bytes.TrimSpace(addr)) > 0
	})
	return "http://" + string(bytes.TrimSpace(addr))
}

// installSteamcmdOn puts the steamcmd double (built by the outer test)
// where a packaged l4m-node looks for steamcmd, with "Steam" holding the
// Installation sample's branch.
func installSteamcmdOn(t *testing.T, left4me string) {
	t.Helper()
	dir := filepath.Join(left4me, "steamcmd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv(debDirEnv)
	copyPath(t, filepath.Join(bin, "steamcmd-double"), filepath.Join(dir, "steamcmd.sh"))
	copyPath(t, filepath.Join(bin, "srcds_run"), filepath.Join(dir, "srcds-double"))
	data, _ := json.Marshal(steamRemote{Branches: map[string]steamBranch{"public": {BuildID: buildA, Size: buildSize}}})
	if err := os.WriteFile(filepath.Join(dir, "remote.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// extractL4mctl unpacks the l4mctl package's binary, to run it from
// outside the hosts.
func extractL4mctl(t *testing.T, deb string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	return filepath.Join(dir, "usr", "bin", "l4mctl")
}

// outsideConfig is the server's admin config with the server's address
// on the bridge instead of its loopback.
func outsideConfig(t *testing.T, adminYAML, serverURL string) string {
	t.Helper()
	data, err := os.ReadFile(adminYAML)
	if err != nil {
		t.Fatal(err)
	}
	var f client.File
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	f.Server = serverURL
	out, _ := yaml.Marshal(f)
	return writeFile(t, "admin.yaml", string(out))
}

func instanceOf(t *testing.T, js string) *v1.Instance {
	t.Helper()
	var in v1.Instance
	if err := json.Unmarshal([]byte(js), &in); err != nil {
		t.Fatalf("not an Instance: %v\n%s", err, js)
	}
	return &in
}

// nodeAgentVersion is the l4m-node version a Node reports.
func nodeAgentVersion(t *testing.T, js string) string {
	t.Helper()
	var n v1.Node
	if err := json.Unmarshal([]byte(js), &n); err != nil {
		t.Fatalf("not a Node: %v\n%s", err, js)
	}
	return n.Status.AgentVersion
}

// waitUnit waits until a unit's ActiveState is want.
func waitUnit(t *testing.T, sb *sandboxtest.Sandbox, unit, want string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := sb.Exec("systemctl", "show", "-p", "ActiveState", "--value", unit)
		if last = strings.TrimSpace(out); last == want {
			return
		}
	}
	st, _ := sb.Exec("systemctl", "status", "--no-pager", unit)
	t.Fatalf("%s on %s is %q, not %q after 60s:\n%s", unit, sb.Name, last, want, st)
}

// waitExec retries a command inside the sandbox until it succeeds (a
// server that just started answers a moment later) and returns its output.
func waitExec(t *testing.T, sb *sandboxtest.Sandbox, args ...string) string {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if out, err = sb.Exec(args...); err == nil {
			return out
		}
	}
	t.Fatalf("%s on %s: %v\n%s", strings.Join(args, " "), sb.Name, err, out)
	return ""
}

// inDebNetns reports whether this process runs inside the packages test's
// network namespace. When it does not, it builds the packages (two
// versions, for the upgrade), makes the namespace and runs the test again
// inside it.
func inDebNetns(t *testing.T) bool {
	t.Helper()
	sandboxtest.Skip(t)
	for _, bin := range []string{"dpkg-deb", "ip", "nsenter", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("the packages test needs %s", bin)
		}
	}
	if os.Getenv(debNetnsEnv) != "" {
		return true
	}
	// The sandboxes see the host's files below their own root, so the
	// packages go where both can read them.
	dir, err := os.MkdirTemp("/var/tmp", "l4m-deb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	repo := repoRoot()
	for pkg, name := range map[string]string{"hack/srcds-double": "srcds_run", "hack/steamcmd-double": "steamcmd-double", "hack/steam-api-double": "steam-api-double"} {
		build(t, "github.com/left4me/left4me/"+pkg, filepath.Join(dir, name))
	}
	for _, v := range []string{debVersion1, debVersion2} {
		cmd := exec.Command("make", "--no-print-directory", "deb", "DEB_OUT="+filepath.Join(dir, v), "DEB_VERSION="+v)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make deb %s: %v\n%s", v, err, out)
		}
	}
	testNetns{name: fmt.Sprintf("l4mdeb%d", os.Getpid()), bridge: debBridge, gateway: debGateway,
		boxes: []string{debServerBox, debNodeBox}, timeout: "20m"}.runInside(t, debNetnsEnv+"=1", debDirEnv+"="+dir)
	return false
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %s: %s", timeout, what)
}
