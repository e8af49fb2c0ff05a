package fetcher

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/systemd"
)

// probeScript stands in for l4m-node: before running the fetcher (this
// test binary, beside it) it tries to write where the unit's sandbox must
// not let it, though plain permissions would: a directory anyone may
// write, and another staging directory the same account owns (a fetch
// running beside this one). It notes what happened in its own staging
// directory, the last argument.
const probeScript = `#!/bin/sh
for a; do staging=$a; done
for target in /var/lib/left4me/open /var/lib/left4me/overlays/.staging/sibling; do
	if touch "$target/probe" 2>/dev/null; then
		echo "$target: WROTE" >>"$staging/probe.txt"
	else
		echo "$target: denied" >>"$staging/probe.txt"
	fi
done
exec "${0%/*}/fetcher.test" "$@"
`

// TestRunnerOnSystemd runs the Runner through a real systemd as the real
// l4m-fetch account: it boots a sandbox host, puts this test binary (the
// fetcher, see TestMain) behind a probing l4m-node stand-in in its node
// root, and runs TestRunnerInsideSandbox there.
func TestRunnerOnSystemd(t *testing.T) {
	sb := sandboxtest.Boot(t, "fetcher-runner")
	if err := os.WriteFile(filepath.Join(sb.Left4meDir, "probe.sh"), []byte(probeScript), 0o755); err != nil {
		t.Fatal(err)
	}
	sb.RunInside(t, "TestRunnerInsideSandbox")
}

func TestRunnerInsideSandbox(t *testing.T) {
	if !sandboxtest.Inside() {
		t.Skip("runs inside a sandbox host, started by TestRunnerOnSystemd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, err := systemd.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const root = "/var/lib/left4me"
	accounts := &gameuser.System{}
	acct, err := accounts.EnsureService(DefaultAccount, accountService)
	if err != nil {
		t.Fatal(err)
	}
	// The agent's layout: root-owned parents the account can traverse.
	mkdir := func(p string, mode os.FileMode, uid int) string {
		p = filepath.Join(root, p)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Chown(p, uid, uid)
		return p
	}
	mkdir("open", 0o777, 0)
	mkdir("overlays", 0o755, 0)
	mkdir("overlays/.staging", 0o711, 0)
	sibling := mkdir("overlays/.staging/sibling", 0o700, acct.UID)
	mirror := mkdir("mirror", 0o755, 0)

	log := funcr.New(func(prefix, args string) { t.Log(prefix, args) }, funcr.Options{})
	r, err := New(Config{Root: root, Exe: filepath.Join(root, "probe.sh")}, d, accounts, log)
	if err != nil {
		t.Fatal(err)
	}
	archive := tarGz(t, sourcemod("sm-1.12/")...)
	s := serving(t, archive)

	staging := mkdir("overlays/.staging/1", 0o700, 0)
	stats, err := r.FetchArchive(ctx, smSpec(s.URL+"/sourcemod.tar.gz", archive), staging)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 6 {
		t.Errorf("stats %+v", stats)
	}
	tree := filepath.Join(staging, TreeName)
	if got := listing(t, tree); !slices.Equal(got, sourcemodTree) {
		t.Errorf("tree:\n%v\nwant:\n%v", got, sourcemodTree)
	}
	// The account wrote the tree; root has the staging dir back.
	if uid := uidOf(t, filepath.Join(tree, "left4dead2/cfg/sourcemod/sourcemod.cfg")); uid != acct.UID {
		t.Errorf("the tree's files are uid %d's, want %s's (%d)", uid, acct.Name, acct.UID)
	}
	if uid := uidOf(t, staging); uid != 0 {
		t.Errorf("after the run the staging dir is uid %d's, want root's", uid)
	}
	probe := readFile(t, filepath.Join(staging, "probe.txt"))
	for _, want := range []string{"/var/lib/left4me/open: denied", sibling + ": denied"} {
		if !strings.Contains(probe, want) {
			t.Errorf("the fetcher's unit could write outside its staging dir:\n%s", probe)
		}
	}
	for _, p := range []string{filepath.Join(root, "open", "probe"), filepath.Join(sibling, "probe")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the fetcher's unit wrote %s", p)
		}
	}

	// file:// as the account: a world-readable file below a file root is
	// fetched; one only root may read is not.
	os.WriteFile(filepath.Join(mirror, "sm.tar.gz"), archive, 0o644)
	os.WriteFile(filepath.Join(mirror, "private.tar.gz"), archive, 0o600)
	spec := FetchSpec{URL: "file://" + filepath.Join(mirror, "sm.tar.gz"), StripComponents: 1, Into: "left4dead2",
		Download: Limits{FileRoots: []string{mirror}}}
	staging = mkdir("overlays/.staging/2", 0o700, 0)
	if _, err := r.FetchArchive(ctx, spec, staging); err != nil {
		t.Fatalf("a world-readable file below the file root: %v", err)
	}
	spec.URL = "file://" + filepath.Join(mirror, "private.tar.gz")
	_, err = r.FetchArchive(ctx, spec, mkdir("overlays/.staging/3", 0o700, 0))
	wantReason(t, err, DownloadFailed, "not readable by the fetcher")

	// A workshop source as the account, from Steam's double on loopback.
	_, api := steam(t, addonsCatalog())
	staging = mkdir("overlays/.staging/4", 0o700, 0)
	res, err := r.Fetch(ctx, Job{Workshop: ptr(addonsSpec(api))}, staging)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(res.Items, addonsItems) {
		t.Errorf("workshop items %+v\nwant %+v", res.Items, addonsItems)
	}
	tree = filepath.Join(staging, TreeName)
	if err := extract.Verify(tree, extract.VerifyOptions{}); err != nil {
		t.Errorf("Verify refuses the workshop tree: %v", err)
	}
	if uid := uidOf(t, filepath.Join(tree, "left4dead2/addons/103.vpk")); uid != acct.UID {
		t.Errorf("103.vpk is uid %d's, want %s's (%d)", uid, acct.Name, acct.UID)
	}

	// git, as the account in its unit: over https (the objects kept in
	// staging while the tree is written), and from a file root.
	fx := repoFixture(t)
	git := gitServer(t, fx, true)
	gspec := GitSpec{URL: git.URL + "/repo.git", Ref: "main", Into: "left4dead2", Download: Limits{CAPEM: git.caPEM()}}
	staging = mkdir("overlays/.staging/6", 0o700, 0)
	res, err = r.Fetch(ctx, Job{Git: &gspec}, staging)
	if err != nil {
		t.Fatalf("git over https: %v", err)
	}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, mainTree) || res.Commit != fx.ids["third"] {
		t.Errorf("git over https: commit %s, tree:\n%v", res.Commit, got)
	}
	if uid := uidOf(t, filepath.Join(staging, TreeName, "left4dead2/cfg/server.cfg")); uid != acct.UID {
		t.Errorf("the git tree's files are uid %d's, want %s's (%d)", uid, acct.Name, acct.UID)
	}
	clone := exec.Command("git", "clone", "-q", "--bare", fx.bare, filepath.Join(mirror, "repo.git"))
	clone.Env = gitEnv(fx.root)
	if out, err := clone.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	gspec = GitSpec{URL: "file://" + filepath.Join(mirror, "repo.git"), Ref: "v1.0.0", Download: Limits{FileRoots: []string{mirror}}}
	staging = mkdir("overlays/.staging/7", 0o700, 0)
	if res, err = r.Fetch(ctx, Job{Git: &gspec}, staging); err != nil || res.Commit != fx.ids["first"] {
		t.Fatalf("git from a file root: %s, %v", res.Commit, err)
	}
}

func uidOf(t *testing.T, p string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}
