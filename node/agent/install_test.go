package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/unit"
)

// branchSteam is a Steamcmd for the agent's tests: "Steam" holds one build
// on the branch, a download writes what steamcmd leaves (the manifest,
// steam.inf, srcds_run) as the steamcmd account, and a test can make the
// next downloads fail. The real runner is tested with the steamcmd double
// in node/steamcmd.
type branchSteam struct {
	mu       sync.Mutex
	build    string
	fail     error
	checks   int
	installs []string // dirs
	acct     gameuser.Account
}

type steamFailure struct{ reason, msg string }

func (f steamFailure) Error() string         { return f.msg }
func (f steamFailure) FailureReason() string { return f.reason }

func (s *branchSteam) publish(build string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.build = build
}

func (s *branchSteam) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *branchSteam) Account() (gameuser.Account, error) { return s.acct, nil }

func (s *branchSteam) Check(ctx context.Context, appID int32, branch string) (string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
	return s.build, 1 << 20, nil
}

func (s *branchSteam) Install(ctx context.Context, appID int32, branch, dir string, size int64) (string, error) {
	s.mu.Lock()
	build, fail := s.build, s.fail
	s.installs = append(s.installs, dir)
	s.mu.Unlock()
	if fail != nil {
		// Half a download stays behind, as steamcmd leaves it.
		os.MkdirAll(filepath.Join(dir, "steamapps", "downloading"), 0o755)
		return "", fail
	}
	files := map[string]string{
		"steamapps/appmanifest_222860.acf": `"AppState" { "buildid" "` + build + `" }`,
		"left4dead2/steam.inf":             "PatchVersion=2.2.4." + build[len(build)-1:] + "\n",
		"srcds_run":                        "#!/bin/sh\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			return "", err
		}
		if err := os.Chown(p, s.acct.UID, s.acct.GID); err != nil {
			return "", err
		}
	}
	return build, nil
}

// installHarness is the agent harness with an Installation "l4d2" and a
// steamcmd whose branch holds build 100.
func installHarness(t *testing.T) (*harness, *branchSteam) {
	steam := &branchSteam{build: "100", acct: gameuser.Account{Name: "l4m-steamcmd", UID: 479999, GID: 479999}}
	h := startWith(t, func(_ *server.Server, o *Options) { o.Steamcmd = steam })
	if _, err := h.admin.Create(context.Background(), installationRes, &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}}, false); err != nil {
		t.Fatal(err)
	}
	return h, steam
}

// nodeInstallation waits until the node reports l4d2 as cond wants.
func (h *harness) nodeInstallation(what string, cond func(*v1.NodeInstallation) bool) *v1.NodeInstallation {
	h.t.Helper()
	var last *v1.NodeInstallation
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		obj, err := h.admin.Get(context.Background(), nodeRes, "", "n1")
		if err == nil {
			if ni := obj.(*v1.Node).Status.NodeInstallationFor("l4d2"); ni != nil {
				last = ni
				if cond(ni) {
					return ni
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("node n1 never reported l4d2 %s; last: %+v", what, last)
	return nil
}

func TestInstallationFromBareNodeToRollout(t *testing.T) {
	h, steam := installHarness(t)
	// A bare node asks Steam, reports what it saw; the installation
	// controller makes that the wanted build, and the node fetches it.
	h.create(&v1.Blueprint{ObjectMeta: om("bp")}, &v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}}})
	ni := h.nodeInstallation("ready with build 100", func(n *v1.NodeInstallation) bool { return n.Phase == v1.InstallReady })
	if !slices.Equal(ni.Builds, []string{"100"}) || ni.Downloading != "" {
		t.Errorf("node reports builds %v, downloading %q", ni.Builds, ni.Downloading)
	}
	build := filepath.Join(h.root, "installation/l4d2/builds/100")
	assertSealed(t, build, steam.acct.UID)
	if _, err := os.Stat(filepath.Join(h.root, "installation/l4d2/staging/download")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the staging copy is still there after the move: %v", err)
	}
	in := h.until("coop-1", "running on build 100", func(in *v1.Instance) bool { return in.Status.Build == "100" && in.Status.TemplateHash != "" })
	if in.Status.Installation != "l4d2" {
		t.Errorf("status.installation %q, want l4d2", in.Status.Installation)
	}
	mount := h.mountOf("coop-1")
	if !strings.Contains(mount, ":"+build+",upperdir=") {
		t.Fatalf("the build is not the bottom layer:\n%s", mount)
	}

	// Valve ships build 200: it is fetched beside 100, and the rollout
	// (nobody is on the server) restarts the game onto it. That an
	// occupied server waits is the rollout's rule, shown end to end in
	// node/e2e with a player joined over RCON.
	steam.publish("200")
	h.checkNow()
	h.nodeInstallation("ready with builds 200 and 100", func(n *v1.NodeInstallation) bool {
		return n.Phase == v1.InstallReady && slices.Equal(n.Builds, []string{"200", "100"})
	})
	// The rollout controller approves (nobody is on it): it restarts on 200.
	h.until("coop-1", "running on build 200", func(in *v1.Instance) bool { return in.Status.Build == "200" && in.Status.PendingTemplateHash == "" })
	if !strings.Contains(h.mountOf("coop-1"), "/builds/200,") {
		t.Fatalf("restarted but not onto build 200:\n%s", h.mountOf("coop-1"))
	}

	// Build 300: 100 is neither wanted, nor the previous one, nor in use.
	steam.publish("300")
	h.checkNow()
	h.nodeInstallation("keeping 300 and 200 only", func(n *v1.NodeInstallation) bool { return slices.Equal(n.Builds, []string{"300", "200"}) })
	if _, err := os.Stat(filepath.Join(h.root, "installation/l4d2/builds/100")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("build 100 was not removed: %v", err)
	}
}

// TestOldBuildRemovedWhenItsLastGameLeaves: a build that only a game kept
// (rolled back onto it, then unpinned) goes as soon as that game restarts
// onto the new build, not at the next check.
func TestOldBuildRemovedWhenItsLastGameLeaves(t *testing.T) {
	h, steam := installHarness(t)
	h.create(&v1.Blueprint{ObjectMeta: om("bp")}, &v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}}})
	h.until("coop-1", "running on build 100", func(in *v1.Instance) bool { return in.Status.Build == "100" })
	steam.publish("200")
	h.checkNow()
	h.until("coop-1", "running on build 200", func(in *v1.Instance) bool { return in.Status.Build == "200" })
	pin := func(build string) {
		t.Helper()
		if _, err := h.admin.Patch(context.Background(), installationRes, "", "l4d2", "application/merge-patch+json", []byte(`{"spec":{"build":"`+build+`"}}`), false); err != nil {
			t.Fatal(err)
		}
	}
	pin("100")
	h.until("coop-1", "rolled back onto build 100", func(in *v1.Instance) bool { return in.Status.Build == "100" })
	steam.publish("300")
	h.checkNow()
	h.nodeInstallation("seeing 300 while pinned", func(n *v1.NodeInstallation) bool { return n.LatestSeen == "300" })
	pin("latest")
	h.until("coop-1", "running on build 300", func(in *v1.Instance) bool { return in.Status.Build == "300" })
	// 200 is the previous build; 100, which only the game kept, goes.
	h.nodeInstallation("keeping 300 and 200 only", func(n *v1.NodeInstallation) bool { return slices.Equal(n.Builds, []string{"300", "200"}) })
	if _, err := os.Stat(filepath.Join(h.root, "installation/l4d2/builds/100")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("build 100 was not removed: %v", err)
	}
}

// TestInstallationNamedLikeAHandMadeFolder: an Installation named like a
// folder of the hand-made installation/ (left4dead2) is refused on the
// node: nothing is written into that folder, and deleting the
// Installation removes nothing of it.
func TestInstallationNamedLikeAHandMadeFolder(t *testing.T) {
	steam := &branchSteam{build: "100", acct: gameuser.Account{Name: "l4m-steamcmd", UID: 479999, GID: 479999}}
	h := startWith(t, func(_ *server.Server, o *Options) { o.Steamcmd = steam })
	legacy := filepath.Join(h.root, "installation", "left4dead2")
	os.MkdirAll(filepath.Join(legacy, "cfg"), 0o755)
	os.WriteFile(filepath.Join(legacy, "steam.inf"), []byte("PatchVersion=2.2.4.3\n"), 0o644)
	if _, err := h.admin.Create(context.Background(), installationRes, &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "left4dead2"}}, false); err != nil {
		t.Fatal(err)
	}
	report := func() *v1.NodeInstallation {
		obj, err := h.admin.Get(context.Background(), nodeRes, "", "n1")
		if err != nil {
			return nil // not registered yet
		}
		return obj.(*v1.Node).Status.NodeInstallationFor("left4dead2")
	}
	var ni *v1.NodeInstallation
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ni = report(); ni != nil && ni.Phase == v1.InstallFailed {
			break
		}
	}
	if ni == nil || ni.Reason != "InstallationDirInUse" || !strings.Contains(ni.Message, legacy) {
		t.Fatalf("node reports %+v, want Failed InstallationDirInUse naming %s", ni, legacy)
	}
	untouched := func(when string) {
		t.Helper()
		for _, p := range []string{"builds", "staging", ".left4me-installation"} {
			if _, err := os.Lstat(filepath.Join(legacy, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the installer wrote %s into the hand-made folder: %v", when, p, err)
			}
		}
		if _, err := os.Stat(filepath.Join(legacy, "steam.inf")); err != nil {
			t.Errorf("%s: the hand-made folder lost its files: %v", when, err)
		}
	}
	untouched("while refused")
	if _, _, err := h.admin.Delete(context.Background(), installationRes, "", "left4dead2", false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); report() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node still reports the deleted Installation")
		}
	}
	untouched("after the Installation was deleted")
}

func TestFailedDownloadKeepsTheGameAndSaysWhy(t *testing.T) {
	h, steam := installHarness(t)
	h.nodeInstallation("seeing build 100", func(n *v1.NodeInstallation) bool { return n.LatestSeen == "100" })
	h.nodeInstallation("ready", func(n *v1.NodeInstallation) bool { return n.Phase == v1.InstallReady })
	h.create(&v1.Blueprint{ObjectMeta: om("bp")}, &v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}}})
	h.until("coop-1", "running on build 100", func(in *v1.Instance) bool { return in.Status.Build == "100" })
	pid := h.pid("coop-1")

	steam.failWith(steamFailure{"InsufficientDisk", "steamcmd: Error! App '222860' state is 0x202 after update job (the disk is full)"})
	steam.publish("200")
	h.checkNow()
	ni := h.nodeInstallation("failed with the cause", func(n *v1.NodeInstallation) bool { return n.Phase == v1.InstallFailed })
	if ni.Reason != "InsufficientDisk" || !strings.Contains(ni.Message, "0x202") || !strings.Contains(ni.Message, "retrying in") {
		t.Errorf("node reports %s: %s", ni.Reason, ni.Message)
	}
	if !slices.Equal(ni.Builds, []string{"100"}) {
		t.Errorf("builds %v, want the old one kept", ni.Builds)
	}
	in := h.until("coop-1", "still on 100", func(in *v1.Instance) bool { return in.Status.Build == "100" })
	if h.pid("coop-1") != pid || in.Status.PendingTemplateHash != "" {
		t.Errorf("the game was touched by a failed download: pid %d -> %d, pending %q", pid, h.pid("coop-1"), in.Status.PendingTemplateHash)
	}
	if _, err := os.Stat(filepath.Join(h.root, "installation/l4d2/builds/200")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed download became a build: %v", err)
	}
}

func TestPinnedBuildTheBranchLacksStartsNothing(t *testing.T) {
	steam := &branchSteam{build: "100", acct: gameuser.Account{Name: "l4m-steamcmd", UID: 479999, GID: 479999}}
	h := startWith(t, func(_ *server.Server, o *Options) { o.Steamcmd = steam })
	if _, err := h.admin.Create(context.Background(), installationRes, &v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"},
		Spec: v1.InstallationSpec{Build: "50"}}, false); err != nil {
		t.Fatal(err)
	}
	ni := h.nodeInstallation("unable to get build 50", func(n *v1.NodeInstallation) bool { return n.Reason == "BuildUnavailable" })
	if ni.Phase != v1.InstallFailed || !strings.Contains(ni.Message, "branch public has build 100") {
		t.Errorf("node reports %s: %s", ni.Phase, ni.Message)
	}
	if len(steam.installs) != 0 {
		t.Errorf("steamcmd was run for a build the branch does not have: %v", steam.installs)
	}
}

// checkNow is what an admin does after Valve announces an update.
func (h *harness) checkNow() {
	h.t.Helper()
	patch := []byte(`{"metadata":{"annotations":{"` + v1.AnnotationCheckRequestedAt + `":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`)
	if _, err := h.admin.Patch(context.Background(), installationRes, "", "l4d2", "application/merge-patch+json", patch, false); err != nil {
		h.t.Fatal(err)
	}
}

// assertSealed checks a build is root's through and through: steamcmd's
// account (or a game) can change nothing in it, and only root enters builds/.
func assertSealed(t *testing.T, build string, steamUID int) {
	t.Helper()
	fi, err := os.Stat(filepath.Dir(build))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("builds/ has mode %v, want 0700", fi.Mode().Perm())
	}
	filepath.Walk(build, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root (steamcmd is %d)", p, st.Uid, st.Gid, steamUID)
		}
		return nil
	})
}

// mountOf is the overlay unit the agent wrote for an Instance.
func (h *harness) mountOf(name string) string {
	h.t.Helper()
	text, err := h.sd.ReadUnit(unit.OverlayServiceName(unit.ID("default", name)))
	if err != nil || text == "" {
		h.t.Fatalf("no overlay unit for %s: %v", name, err)
	}
	return text
}

// pid is the game's main PID as systemd has it.
func (h *harness) pid(name string) uint32 {
	h.t.Helper()
	st, err := h.sd.State(context.Background(), unit.ServiceName(unit.ID("default", name)))
	if err != nil {
		h.t.Fatal(err)
	}
	return st.MainPID
}
