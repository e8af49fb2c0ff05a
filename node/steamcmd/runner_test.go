package steamcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/goleak"

	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/steam"
	"github.com/left4me/left4me/node/systemd"
)

// The doubles, built once: hack/steamcmd-double (installed as steamcmd.sh)
// and hack/srcds-double (which it installs as srcds_run).
var steamcmdBin, srcdsBin string

func TestMain(m *testing.M) {
	if sandboxtest.Inside() {
		// Started inside a sandbox host by TestInstallOnSystemd: the
		// doubles were built outside and copied in.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "steamcmd-runner-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	steamcmdBin, srcdsBin = filepath.Join(dir, "steamcmd-double"), filepath.Join(dir, "srcds-double")
	for pkg, out := range map[string]string{"../../hack/steamcmd-double": steamcmdBin, "../../hack/srcds-double": srcdsBin} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	// Every goroutine must have stopped with its test.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// remote is what the steamcmd double's remote.json says Steam holds.
type remote struct {
	Branches        map[string]branch `json:"branches"`
	Failure         string            `json:"failure,omitempty"`
	InvalidPlatform *bool             `json:"invalidPlatform,omitempty"`
}

type branch struct {
	BuildID string `json:"buildid"`
	Size    int64  `json:"size"`
}

func public(build string, size int64) remote {
	return remote{Branches: map[string]branch{"public": {BuildID: build, Size: size}}}
}

// units records the jobs the runner asked for and can act between a run's
// end and the runner's checks (as the account could during the run).
type units struct {
	*systemd.Fake
	mu     sync.Mutex
	jobs   []systemd.Job
	after  func(systemd.Job)
	states map[string]string
	stops  []string
	// block, when set, holds every run until it is closed.
	block chan struct{}
}

func (u *units) Run(ctx context.Context, j systemd.Job) (systemd.JobResult, error) {
	u.mu.Lock()
	u.jobs = append(u.jobs, j)
	after, block := u.after, u.block
	u.mu.Unlock()
	if block != nil {
		<-block
	}
	res, err := u.Fake.Run(ctx, j)
	if after != nil {
		after(j)
	}
	return res, err
}

func (u *units) State(ctx context.Context, name string) (systemd.State, error) {
	u.mu.Lock()
	s, ok := u.states[name]
	u.mu.Unlock()
	if ok {
		return systemd.State{Name: name, LoadState: "loaded", ActiveState: s}, nil
	}
	return u.Fake.State(ctx, name)
}

func (u *units) Stop(_ context.Context, name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stops = append(u.stops, name)
	delete(u.states, name)
	return nil
}

func (u *units) ran() []systemd.Job {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.jobs)
}

// fixture is one node: its root, steamcmd in <root>/steamcmd, and the
// download directory the agent prepares.
type fixture struct {
	t                *testing.T
	root, home, dir  string
	units            *units
	accounts         *gameuser.Fake
	acct             gameuser.Account
	r                *Runner
	cfg              Config
	free             int64
	freeMu           sync.Mutex
	remoteJSON, path string
}

const steamUID = 479000

func newFixture(t *testing.T, rem remote, change ...func(*Config)) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{t: t, root: root, home: filepath.Join(root, "steamcmd"), units: &units{Fake: systemd.NewFake()},
		accounts: gameuser.NewFake(steamUID), free: 1 << 50}
	f.dir = filepath.Join(root, "installation", "l4d2", "staging", "download")
	installDoubles(t, f.home)
	f.remoteJSON = filepath.Join(f.home, "remote.json")
	f.setRemote(rem)
	f.cfg = DefaultConfig(root)
	f.cfg.MinFreeBytes = 1 << 20
	for _, c := range change {
		c(&f.cfg)
	}
	f.start()
	return f
}

// start makes the Runner (again).
func (f *fixture) start() {
	f.t.Helper()
	r, err := New(f.cfg, f.units, f.accounts, logr.Discard())
	if err != nil {
		f.t.Fatal(err)
	}
	r.statfs = func(string) (int64, error) { f.freeMu.Lock(); defer f.freeMu.Unlock(); return f.free, nil }
	f.r = r
}

func (f *fixture) setFree(n int64) { f.freeMu.Lock(); f.free = n; f.freeMu.Unlock() }

// installDoubles lays out a steamcmd directory as Valve's tarball does,
// with the double as steamcmd.sh and what it reads beside it.
func installDoubles(t *testing.T, home string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, steamcmdBin, filepath.Join(home, "steamcmd.sh"), 0o755)
	copyFile(t, srcdsBin, filepath.Join(home, "srcds-double"), 0o755)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) setRemote(r remote) {
	f.t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.remoteJSON, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// prepareDir makes the download directory as the agent's fetchBuild does:
// root-owned 0711 parents, the directory the account's, 0700.
func (f *fixture) prepareDir() {
	f.t.Helper()
	acct, err := f.r.Account()
	if err != nil {
		f.t.Fatal(err)
	}
	f.acct = acct
	for _, d := range []string{"installation", "installation/l4d2", "installation/l4d2/staging"} {
		p := filepath.Join(f.root, d)
		os.Mkdir(p, 0o711)
		os.Chmod(p, 0o711)
	}
	if err := os.Mkdir(f.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		f.t.Fatal(err)
	}
	if err := os.Chown(f.dir, acct.UID, acct.GID); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) install() (string, error) {
	f.t.Helper()
	f.prepareDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return f.r.Install(ctx, 222860, "public", f.dir, 64<<20)
}

func (f *fixture) check(branch string) (string, int64, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return f.r.Check(ctx, 222860, branch)
}

// wantFailure checks err is an *Error of reason whose message says each of
// says.
func wantFailure(t *testing.T, err error, reason string, says ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *steamcmd.Error with reason %s", err, err, reason)
	}
	if e.FailureReason() != reason {
		t.Fatalf("reason %s, want %s: %v", e.FailureReason(), reason, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the message does not say %q: %v", s, err)
		}
	}
	return e
}

func uidOf(t *testing.T, path string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}

func TestCheckReportsRemoteBuildAndSize(t *testing.T) {
	f := newFixture(t, public("16385467", 9663676416))
	build, size, err := f.check("public")
	if err != nil || build != "16385467" || size != 9663676416 {
		t.Fatalf("Check = %q, %d, %v; want 16385467, 9663676416", build, size, err)
	}
	jobs := f.units.ran()
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v, want one check", jobs)
	}
	j := jobs[0]
	want := systemd.Job{Unit: "l4m-steamcmd-check.service", User: DefaultAccount, Group: DefaultAccount,
		WorkingDirectory: f.home, OutputFile: filepath.Join(f.root, "log", "steamcmd", "check.log"), Timeout: DefaultCheckTimeout}
	if j.Unit != want.Unit || j.User != want.User || j.Group != want.Group || j.WorkingDirectory != want.WorkingDirectory ||
		j.OutputFile != want.OutputFile || j.Timeout != want.Timeout {
		t.Errorf("job %+v, want %+v", j, want)
	}
	if !slices.Equal(j.ReadWritePaths, []string{f.home}) || !slices.Equal(j.Environment, []string{"HOME=" + f.home}) {
		t.Errorf("job writes %q with env %q, want only steamcmd's home %s", j.ReadWritePaths, j.Environment, f.home)
	}
	wantPre := [][]string{{"/bin/rm", "-f", filepath.Join(f.home, "appcache", "appinfo.vdf")}}
	if !slices.EqualFunc(j.ExecStartPre, wantPre, slices.Equal) {
		t.Errorf("ExecStartPre %q, want %q", j.ExecStartPre, wantPre)
	}
	fi, err := os.Stat(filepath.Join(f.root, "log", "steamcmd"))
	if err != nil || fi.Mode().Perm() != 0o700 || uidOf(t, filepath.Join(f.root, "log", "steamcmd")) != 0 {
		t.Errorf("log directory: %v, %v; want root's, 0700", fi.Mode(), err)
	}
}

// TestCheckClearsStaleAppInfo: the double answers from appcache/appinfo.vdf
// when it is there, as steamcmd can, so only clearing it shows a new build.
func TestCheckClearsStaleAppInfo(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	if build, _, err := f.check("public"); err != nil || build != "16385467" {
		t.Fatalf("first Check = %q, %v", build, err)
	}
	if _, err := os.Stat(filepath.Join(f.home, "appcache", "appinfo.vdf")); err != nil {
		t.Fatalf("the double kept no app info cache: %v", err)
	}
	f.setRemote(public("16400000", 1<<30))
	if build, _, err := f.check("public"); err != nil || build != "16400000" {
		t.Fatalf("Check after a new build = %q, %v; want 16400000 (not the cached 16385467)", build, err)
	}
}

func TestCheckBranchWithoutBuild(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	_, _, err := f.check("last_stable")
	wantFailure(t, err, CheckFailed, "branch last_stable", filepath.Join(f.root, "log", "steamcmd", "check.log"))
	_, _, err = f.check("+quit")
	wantFailure(t, err, CheckFailed, "not a Steam branch name")
	if n := len(f.units.ran()); n != 1 {
		t.Fatalf("%d runs, want 1 (a bad branch name runs nothing)", n)
	}
}

func TestTwoPassInstall(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	build, err := f.install()
	if err != nil || build != "16385467" {
		t.Fatalf("Install = %q, %v", build, err)
	}
	got, complete, err := steam.InstalledBuild(filepath.Join(f.dir, "steamapps", "appmanifest_222860.acf"))
	if err != nil || got != build || !complete {
		t.Fatalf("installed %q complete %v, %v", got, complete, err)
	}
	for _, p := range []string{"srcds_run", "srcds.exe", "left4dead2/steam.inf"} {
		if _, err := os.Stat(filepath.Join(f.dir, p)); err != nil {
			t.Errorf("both passes' files: %v", err)
		}
	}
	jobs := f.units.ran()
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v, want one install", jobs)
	}
	j := jobs[0]
	if j.Unit != "l4m-steamcmd-install.service" || j.Timeout != DefaultTimeout || !slices.Equal(j.ReadWritePaths, []string{f.home, f.dir}) ||
		j.OutputFile != filepath.Join(f.root, "log", "steamcmd", "install.log") || j.User != DefaultAccount {
		t.Errorf("job %+v", j)
	}
	if len(j.ExecStartPre) != 1 || !slices.Contains(j.ExecStartPre[0], "windows") || !slices.Contains(j.Argv, "linux") {
		t.Errorf("want a windows pass before the linux one: pre %q, main %q", j.ExecStartPre, j.Argv)
	}
	if out, _ := os.ReadFile(j.OutputFile); bytes.Count(out, []byte("Success! App '222860' fully installed.")) != 2 {
		t.Errorf("install.log does not hold both passes:\n%s", out)
	}
}

func TestOnePassInstallIsInvalidPlatform(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.TwoPass = false })
	_, err := f.install()
	wantFailure(t, err, DownloadFailed, "Invalid platform", "two-pass workaround", "install.log")
}

func TestInstallFailures(t *testing.T) {
	for _, tc := range []struct {
		failure string
		timeout time.Duration
		reason  string
		says    string
	}{
		{"half", 0, IncompleteDownload, "state is 0x402"},
		{"disk-full", 0, InsufficientDisk, "0x202"},
		{"crash", 0, SteamcmdCrashed, "Segmentation fault"},
		{"timeout", 3 * time.Second, SteamcmdTimedOut, "progress: 50.00"},
	} {
		t.Run(tc.failure, func(t *testing.T) {
			r := public("16385467", 1<<30)
			r.Failure = tc.failure
			f := newFixture(t, r, func(c *Config) { c.Timeout = tc.timeout })
			_, err := f.install()
			wantFailure(t, err, tc.reason, tc.says, filepath.Join(f.root, "log", "steamcmd", "install.log"))
		})
	}
}

// TestIncompleteManifestRefused: steamcmd exited 0 but its manifest says
// the download is not done (what an update cut off by a kill leaves, when
// the node then sees no error line).
func TestIncompleteManifestRefused(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	f.units.after = func(j systemd.Job) {
		p := filepath.Join(f.dir, "steamapps", "appmanifest_222860.acf")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte(`"StateFlags"		"4"`), []byte(`"StateFlags"		"1026"`), 1), 0o644)
	}
	_, err := f.install()
	wantFailure(t, err, IncompleteDownload, "not finished", "StateFlags 1026")

	f.units.after = func(systemd.Job) { os.Remove(filepath.Join(f.dir, "srcds_run")) }
	_, err = f.install()
	wantFailure(t, err, IncompleteDownload, "srcds_run is missing")
}

// TestPlantedSymlinksRefused: the account owns the download directory and
// could leave links in it; the check follows none of them.
func TestPlantedSymlinksRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(f *fixture, elsewhere string)
		says  string
	}{
		{"srcds_run", func(f *fixture, elsewhere string) {
			copyFile(f.t, filepath.Join(f.dir, "srcds_run"), filepath.Join(elsewhere, "srcds_run"), 0o755)
			replaceWithLink(f.t, filepath.Join(f.dir, "srcds_run"), filepath.Join(elsewhere, "srcds_run"))
		}, "not a regular file"},
		{"manifest", func(f *fixture, elsewhere string) {
			p := filepath.Join(f.dir, "steamapps", "appmanifest_222860.acf")
			copyFile(f.t, p, filepath.Join(elsewhere, "appmanifest_222860.acf"), 0o644)
			replaceWithLink(f.t, p, filepath.Join(elsewhere, "appmanifest_222860.acf"))
		}, "refusing to follow a symlink"},
		{"steamapps", func(f *fixture, elsewhere string) {
			p := filepath.Join(f.dir, "steamapps")
			if err := os.Rename(p, filepath.Join(elsewhere, "steamapps")); err != nil {
				f.t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(elsewhere, "steamapps"), p); err != nil {
				f.t.Fatal(err)
			}
		}, "refusing to follow a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, public("16385467", 1<<30))
			elsewhere := t.TempDir()
			f.units.after = func(systemd.Job) { tc.plant(f, elsewhere) }
			_, err := f.install()
			e := wantFailure(t, err, IncompleteDownload, tc.says)
			if tc.says != "not a regular file" && !errors.Is(e, safefs.ErrUnsafe) {
				t.Errorf("%v does not wrap safefs.ErrUnsafe", err)
			}
		})
	}
}

func replaceWithLink(t *testing.T, path, target string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func TestInsufficientDiskRefusesBeforeRunning(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	f.setFree(64<<20 + 1<<20 - 1) // the build (64 MiB) and the headroom (1 MiB), less a byte
	_, err := f.install()
	wantFailure(t, err, InsufficientDisk, "has 65.0 MiB free", "needs 65.0 MiB", "steamcmd was not started")
	if jobs := f.units.ran(); len(jobs) != 0 {
		t.Fatalf("steamcmd ran: %+v", jobs)
	}
	// A download cut off before left 2 MiB: that much less is needed.
	data := bytes.Repeat([]byte("chunk"), 2<<20/5+1)
	if err := os.MkdirAll(filepath.Join(f.dir, "steamapps", "downloading"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "steamapps", "downloading", "chunk"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if build, err := f.install(); err != nil || build != "16385467" {
		t.Fatalf("Install with part of the build there = %q, %v", build, err)
	}
}

func TestMissingSteamcmd(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.Path = filepath.Join(c.Root, "nowhere", "steamcmd.sh") })
	_, _, err := f.check("public")
	wantFailure(t, err, SteamcmdMissing, filepath.Join(f.root, "nowhere", "steamcmd.sh"))
	_, err = f.r.Install(context.Background(), 222860, "public", filepath.Join(f.root, "x"), 0)
	wantFailure(t, err, SteamcmdMissing)
	_, err = f.r.Account()
	wantFailure(t, err, SteamcmdMissing)
	if jobs := f.units.ran(); len(jobs) != 0 {
		t.Fatalf("ran %+v without a steamcmd", jobs)
	}
	// Installed after the node started: found at the next use.
	installDoubles(t, filepath.Join(f.root, "nowhere"))
	copyFile(t, f.remoteJSON, filepath.Join(f.root, "nowhere", "remote.json"), 0o644)
	// Not <root>/steamcmd: the admin gives it to the account.
	if err := os.Chown(filepath.Join(f.root, "nowhere"), steamUID, steamUID); err != nil {
		t.Fatal(err)
	}
	if build, _, err := f.check("public"); err != nil || build != "16385467" {
		t.Fatalf("Check once steamcmd is there = %q, %v", build, err)
	}
	os.Chmod(filepath.Join(f.root, "nowhere", "steamcmd.sh"), 0o644)
	_, _, err = f.check("public")
	wantFailure(t, err, SteamcmdMissing, "not executable")
}

// TestHomeInsideRootTakenOver: steamcmd unpacked by root in the node root
// becomes its account's, links re-owned themselves, not their targets.
func TestHomeInsideRootTakenOver(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("root's\n"), 0o600)
	os.MkdirAll(filepath.Join(f.home, "linux32"), 0o755)
	os.Symlink(secret, filepath.Join(f.home, "linux32", "planted"))
	os.WriteFile(filepath.Join(f.home, "other"), nil, 0o644)
	os.Chown(filepath.Join(f.home, "other"), 1234, 1234)
	acct, err := f.r.Account()
	if err != nil {
		t.Fatal(err)
	}
	if acct.Name != DefaultAccount || acct.UID != steamUID {
		t.Fatalf("Account = %+v", acct)
	}
	for p, want := range map[string]int{"": acct.UID, "steamcmd.sh": acct.UID, "linux32": acct.UID, "linux32/planted": acct.UID, "other": 1234} {
		if got := uidOf(t, filepath.Join(f.home, p)); got != want {
			t.Errorf("%s: uid %d, want %d", p, got, want)
		}
	}
	if uidOf(t, secret) != 0 {
		t.Error("the link's target was re-owned")
	}
	// A takeover cut short (the agent killed) is finished next time.
	os.Chown(filepath.Join(f.home, "steamcmd.sh"), 0, 0)
	if _, err := f.r.Account(); err != nil || uidOf(t, filepath.Join(f.home, "steamcmd.sh")) != acct.UID {
		t.Fatalf("Account again: %v; steamcmd.sh uid %d", err, uidOf(t, filepath.Join(f.home, "steamcmd.sh")))
	}
	// Someone else's directory is not taken.
	os.Chown(f.home, 1234, 1234)
	_, err = f.r.Account()
	wantFailure(t, err, SteamcmdNotWritable, "chown -R l4m-steamcmd:l4m-steamcmd "+f.home)
}

// TestOtherDirectoryOfTheRootNotTakenOver: steamcmd unpacked into another
// directory of the node root, beside l4m-node itself, gets nothing: the
// account could replace what root runs.
func TestOtherDirectoryOfTheRootNotTakenOver(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.Path = filepath.Join(c.Root, "bin", "steamcmd.sh") })
	bin := filepath.Join(f.root, "bin")
	installDoubles(t, bin)
	os.WriteFile(filepath.Join(bin, "l4m-node"), []byte("#!/bin/sh\n"), 0o755)
	_, err := f.r.Account()
	wantFailure(t, err, SteamcmdNotWritable, "run: chown -R l4m-steamcmd:l4m-steamcmd "+bin)
	for _, name := range []string{"", "l4m-node", "steamcmd.sh"} {
		if uid := uidOf(t, filepath.Join(bin, name)); uid != 0 {
			t.Errorf("%s/%s given to uid %d", bin, name, uid)
		}
	}
}

// TestHomeOutsideRoot: a steamcmd the admin keeps elsewhere (called through
// a symlink, as /usr/games/steamcmd often is) must already be the
// account's; the node says how, and changes nothing there.
func TestHomeOutsideRoot(t *testing.T) {
	opt := t.TempDir()
	home := filepath.Join(opt, "steamcmd")
	installDoubles(t, home)
	link := filepath.Join(opt, "bin", "steamcmd")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(filepath.Join(home, "steamcmd.sh"), link); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.Path = link })
	copyFile(t, f.remoteJSON, filepath.Join(home, "remote.json"), 0o644)
	_, err := f.r.Account()
	wantFailure(t, err, SteamcmdNotWritable, "run: chown -R l4m-steamcmd:l4m-steamcmd "+home)
	if uidOf(t, filepath.Join(home, "steamcmd.sh")) != 0 {
		t.Fatal("the node changed a steamcmd outside its root")
	}
	if err := filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, steamUID, steamUID)
	}); err != nil {
		t.Fatal(err)
	}
	// The double, like steamcmd, fails when called through a symlink:
	// success shows the link was resolved.
	if build, err := f.install(); err != nil || build != "16385467" {
		t.Fatalf("Install = %q, %v", build, err)
	}
	if j := f.units.ran()[0]; j.Argv[0] != filepath.Join(home, "steamcmd.sh") || j.WorkingDirectory != home {
		t.Fatalf("job runs %s in %s, want %s in %s", j.Argv[0], j.WorkingDirectory, filepath.Join(home, "steamcmd.sh"), home)
	}
}

// TestLinkedSteamcmdInsideRootRefused: inside the node root the account
// owns steamcmd's directory, so a symlink there could point the next
// agent's takeover at another directory: the path must be the file.
func TestLinkedSteamcmdInsideRootRefused(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.Path = filepath.Join(c.Root, "bin", "steamcmd.sh") })
	os.MkdirAll(filepath.Join(f.root, "bin"), 0o755)
	os.Symlink(filepath.Join(f.home, "steamcmd.sh"), filepath.Join(f.root, "bin", "steamcmd.sh"))
	_, err := f.r.Account()
	wantFailure(t, err, SteamcmdNotWritable, "is a symlink to "+f.home)
	if uidOf(t, filepath.Join(f.home, "steamcmd.sh")) != 0 {
		t.Fatal("taken over through a link")
	}
	f.cfg.Path = filepath.Join(f.root, "instances", "x", "steamcmd.sh")
	installDoubles(t, filepath.Dir(f.cfg.Path))
	f.start()
	_, err = f.r.Account()
	wantFailure(t, err, SteamcmdNotWritable, "instances/ tree")
}

// TestLeftoverRunStopped: an install the killed agent left running is
// stopped before a check shares steamcmd's directory with it.
func TestLeftoverRunStopped(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	f.units.states = map[string]string{"l4m-steamcmd-install.service": "activating"}
	if _, _, err := f.check("public"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.units.stops, []string{"l4m-steamcmd-install.service"}) {
		t.Fatalf("stopped %q, want the leftover install", f.units.stops)
	}
}

// TestOneRunAtATime: a second call waits for the first's steamcmd to end
// (two in one directory fight over it); given up, it runs nothing. Account
// does not wait.
func TestOneRunAtATime(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	f.units.block = make(chan struct{})
	first := make(chan error, 1)
	go func() { _, _, err := f.check("public"); first <- err }()
	for len(f.units.ran()) == 0 {
		select {
		case err := <-first:
			t.Fatalf("the first check ended before running: %v", err)
		default:
			time.Sleep(time.Millisecond) // polling for the first run to begin
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.r.Check(ctx, 222860, "public"); !errors.Is(err, context.Canceled) {
		t.Fatalf("second check while one runs: %v, want context.Canceled", err)
	}
	if n := len(f.units.ran()); n != 1 {
		t.Fatalf("%d runs at once", n)
	}
	// The account is known meanwhile (the agent asks before it prepares
	// a download directory).
	if acct, err := f.r.Account(); err != nil || acct.UID != steamUID {
		t.Fatalf("Account while steamcmd runs = %+v, %v", acct, err)
	}
	close(f.units.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, c := range map[string]Config{
		"no root":          {},
		"relative path":    {Root: "/r", Path: "steamcmd.sh"},
		"negative timeout": {Root: "/r", Timeout: -time.Second},
		"negative free":    {Root: "/r", MinFreeBytes: -1},
	} {
		if _, err := New(c, systemd.NewFake(), gameuser.NewFake(1), logr.Discard()); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}

func TestFreeBytes(t *testing.T) {
	n, err := freeBytes(t.TempDir())
	if err != nil || n <= 0 {
		t.Fatalf("freeBytes = %d, %v", n, err)
	}
	if _, err := freeBytes(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("freeBytes of a missing dir: %v", err)
	}
}

// The node agent's interfaces (node/agent/install.go), which this package
// must not import.
var (
	_ interface {
		Check(ctx context.Context, appID int32, branch string) (string, int64, error)
		Install(ctx context.Context, appID int32, branch, dir string, size int64) (string, error)
		Account() (gameuser.Account, error)
	} = (*Runner)(nil)
	_ interface {
		error
		FailureReason() string
	} = (*Error)(nil)
)

// TestLogDirOthersCanWriteRefused: systemd opens the output file there as
// root, so a directory others can write (and plant links in) is refused.
func TestLogDirOthersCanWriteRefused(t *testing.T) {
	logs := filepath.Join(t.TempDir(), "logs")
	os.Mkdir(logs, 0o777)
	os.Chmod(logs, 0o777)
	f := newFixture(t, public("16385467", 1<<30), func(c *Config) { c.LogDir = logs })
	_, _, err := f.check("public")
	wantFailure(t, err, CheckFailed, "writable by it alone")
	if jobs := f.units.ran(); len(jobs) != 0 {
		t.Fatalf("ran %+v", jobs)
	}
	os.Chmod(logs, 0o700)
	if _, _, err := f.check("public"); err != nil {
		t.Fatal(err)
	}
}
