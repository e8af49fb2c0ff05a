package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/node/steam"
)

// steamcmdOn puts the steamcmd double at the node's default steamcmd path
// on the single e2e host, "Steam" holding build id with failure (or none).
func (e *env) steamcmdOn(id, failure string) {
	e.t.Helper()
	dir := filepath.Join(e.sb.Left4meDir, "steamcmd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "steamcmd.sh")); err != nil {
		build(e.t, "github.com/left4me/left4me/hack/steamcmd-double", filepath.Join(dir, "steamcmd.sh"))
		build(e.t, "github.com/left4me/left4me/hack/srcds-double", filepath.Join(dir, "srcds-double"))
	}
	data, _ := json.Marshal(steamRemote{Branches: map[string]steamBranch{"public": {BuildID: id, Size: buildSize}}, Failure: failure})
	if err := os.WriteFile(filepath.Join(dir, "remote.json.tmp"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "remote.json.tmp"), filepath.Join(dir, "remote.json")); err != nil {
		e.t.Fatal(err)
	}
}

// nodeInstallation waits until the node reports l4d2 as cond wants.
func (e *env) nodeInstallation(what string, timeout time.Duration, cond func(v1.NodeInstallation) bool) v1.NodeInstallation {
	e.t.Helper()
	var last v1.NodeInstallation
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		obj, err := e.admin.Get(context.Background(), resources.Nodes, "", e.node)
		if err != nil {
			continue
		}
		if ni := obj.(*v1.Node).Status.NodeInstallationFor("l4d2"); ni != nil {
			if last = *ni; cond(last) {
				return last
			}
		}
	}
	logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "-u", "l4m-steamcmd-*", "--no-pager", "-n", "60")
	e.t.Fatalf("the node never reported l4d2 %s; last %+v\n%s", what, last, logs)
	return last
}

// TestAgentKilledMidDownload: the agent is killed with -9 while steamcmd
// (in a unit of its own) hangs half way through a download. The Instance
// waiting for the game never starts on the half download; the restarted
// agent stops the leftover steamcmd, resumes into the same staging
// directory, and the game starts on the complete, sealed build.
func TestAgentKilledMidDownload(t *testing.T) {
	e := setup(t)
	// A hand-made installation/ is there too (setup makes one): once an
	// Installation exists, games run on its builds, never on that.
	e.steamcmdOn(buildA, "timeout")
	e.create(&v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}})
	e.create(&v1.Blueprint{ObjectMeta: meta_("coop")},
		&v1.Instance{ObjectMeta: meta_("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: e.node}})
	e.nodeInstallation("downloading", 60*time.Second, func(ni v1.NodeInstallation) bool { return ni.Downloading == buildA })
	e.eventually("steamcmd half way", 30*time.Second, func() bool {
		log, _ := os.ReadFile(filepath.Join(e.sb.Left4meDir, "log", "steamcmd", "install.log"))
		return strings.Contains(string(log), "progress: 50.00")
	})
	e.sb.MustExec(t, "systemctl", "kill", "-s", "KILL", "l4m-node")
	e.waitAgentGone()
	// A oneshot unit is "activating" while its command runs.
	if st, _ := e.sb.Exec("systemctl", "show", "-P", "ActiveState", "l4m-steamcmd-install.service"); strings.TrimSpace(st) != "activating" {
		t.Fatalf("steamcmd's unit should outlive the agent (its own cgroup), it is %q", strings.TrimSpace(st))
	}
	if in := e.get("coop-1"); in.Status.MainPID != 0 || ready(in) {
		t.Fatalf("the game started before its build was ready: %+v", in.Status)
	}

	// Steam serves the build again; the agent comes back.
	e.steamcmdOn(buildA, "")
	e.startAgent()
	in := e.waitFor("coop-1", "Ready on the build", func(in *v1.Instance) bool { return ready(in) && in.Status.Build == buildA })
	if in.Status.Installation != "l4d2" {
		t.Fatalf("status.installation %q", in.Status.Installation)
	}
	dir := filepath.Join(e.sb.Left4meDir, "installation", "l4d2", "builds", buildA)
	got, complete, err := steam.InstalledBuild(filepath.Join(dir, "steamapps", "appmanifest_222860.acf"))
	if err != nil || got != buildA || !complete {
		t.Fatalf("the build's manifest: build %q complete %v: %v", got, complete, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("builds/ holds %v, want only %s", entries, buildA)
	}
	if _, err := os.Stat(filepath.Join(e.sb.Left4meDir, "installation", "l4d2", "staging", "download")); !os.IsNotExist(err) {
		t.Fatalf("the staging copy should have become the build: %v", err)
	}
	if st, _ := e.sb.Exec("systemctl", "show", "-P", "ActiveState", "l4m-steamcmd-install.service"); strings.TrimSpace(st) == "activating" || strings.TrimSpace(st) == "active" {
		t.Fatalf("a steamcmd unit is still %s after the build was sealed", strings.TrimSpace(st))
	}
	if ni := e.nodeInstallation("ready", 10*time.Second, func(ni v1.NodeInstallation) bool { return ni.Phase == v1.InstallReady }); !slices.Equal(ni.Builds, []string{buildA}) {
		t.Fatalf("node reports builds %v", ni.Builds)
	}
}

// eventually polls cond (a file, a unit) until it holds.
func (e *env) eventually(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	e.t.Fatalf("%s: not within %s", what, timeout)
}
