package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/left4me/left4me/node/steam"
)

// Built once: the double and the srcds double it installs as srcds_run.
var steamcmdBin, srcdsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "steamcmd-double-test")
	if err != nil {
		panic(err)
	}
	steamcmdBin = filepath.Join(dir, "steamcmd")
	srcdsBin = filepath.Join(dir, "srcds-double")
	for pkg, out := range map[string]string{".": steamcmdBin, "../srcds-double": srcdsBin} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is one host: steamcmd in its own directory, a remote description
// and a place for game installs.
type fixture struct {
	t              *testing.T
	home, exe, dir string
	remotePath     string
}

func newFixture(t *testing.T, r Remote) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{t: t, home: filepath.Join(root, "steamcmd"), dir: root, remotePath: filepath.Join(root, "remote.json")}
	f.exe = filepath.Join(f.home, "steamcmd")
	os.MkdirAll(f.home, 0o755)
	data, err := os.ReadFile(steamcmdBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	f.setRemote(r)
	return f
}

func (f *fixture) setRemote(r Remote) {
	f.t.Helper()
	data, _ := json.Marshal(r)
	if err := os.WriteFile(f.remotePath, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) command(exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), remoteEnv+"="+f.remotePath, "STEAMCMD_DOUBLE_SRCDS="+srcdsBin)
	return cmd
}

// run runs steamcmd to the end and returns stdout, stderr and the exit code.
func (f *fixture) run(args ...string) (string, string, int) {
	f.t.Helper()
	cmd := f.command(f.exe, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		f.t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func installArgs(dir, platform string) []string {
	args := []string{"+force_install_dir", dir, "+login", "anonymous"}
	if platform != "" {
		args = append(args, "+@sSteamCmdForcePlatformType", platform)
	}
	return append(args, "+app_update", "222860", "validate", "+quit")
}

// twoPass is the recipe that works since November 2024.
func (f *fixture) twoPass(dir string) {
	f.t.Helper()
	for _, p := range []string{"windows", "linux"} {
		if out, errOut, code := f.run(installArgs(dir, p)...); code != 0 {
			f.t.Fatalf("%s pass: exit %d\n%s%s", p, code, out, errOut)
		}
	}
}

func public(build string, size int64) Remote {
	return Remote{Branches: map[string]Branch{"public": {BuildID: build, Size: size, TimeUpdated: 1732633200}}}
}

func manifestOf(dir string) string { return filepath.Join(dir, "steamapps", "appmanifest_222860.acf") }

func wantBuild(t *testing.T, dir, build string, complete bool) {
	t.Helper()
	got, ok, err := steam.InstalledBuild(manifestOf(dir))
	if err != nil || got != build || ok != complete {
		t.Fatalf("installed build = %q, complete %v, %v; want %q, complete %v", got, ok, err, build, complete)
	}
}

func TestTwoPassInstall(t *testing.T) {
	f := newFixture(t, public("16385467", 9663676416))
	dir := filepath.Join(f.dir, "installation")
	out, _, code := f.run(installArgs(dir, "windows")...)
	if code != 0 {
		t.Fatalf("windows pass exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "srcds_run")); err == nil {
		t.Fatal("the windows pass installed srcds_run")
	}
	out, _, code = f.run(installArgs(dir, "linux")...)
	if code != 0 {
		t.Fatalf("linux pass exit %d:\n%s", code, out)
	}
	for _, line := range []string{
		"Redirecting stderr to '" + filepath.Join(f.home, "logs", "stderr.txt") + "'",
		"Loading Steam API...OK",
		"Connecting anonymously to Steam Public...OK",
		"Waiting for client config...OK",
		"Waiting for user info...OK",
		" Update state (0x5) verifying install, progress: 0.00 (0 / 9663676416)",
		" Update state (0x61) downloading, progress: 50.00 (4831838208 / 9663676416)",
		"Success! App '222860' fully installed.",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	wantBuild(t, dir, "16385467", true)
	manifest, _ := os.ReadFile(manifestOf(dir))
	for _, field := range []string{"\t\"appid\"\t\t\"222860\"\n", "\t\"StateFlags\"\t\t\"4\"\n", "\t\"BytesDownloaded\"\t\t\"9663676416\"\n"} {
		if !bytes.Contains(manifest, []byte(field)) {
			t.Errorf("manifest lacks %q:\n%s", field, manifest)
		}
	}
	inf, _ := os.ReadFile(filepath.Join(dir, "left4dead2", "steam.inf"))
	if !strings.Contains(string(inf), "PatchVersion=5.4.6.7\n") || !strings.Contains(string(inf), "ClientVersion=5467\n") {
		t.Errorf("steam.inf:\n%s", inf)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "srcds_run"))
	want, _ := os.ReadFile(srcdsBin)
	if fi, err := os.Stat(filepath.Join(dir, "srcds_run")); err != nil || fi.Mode()&0o111 == 0 || !bytes.Equal(got, want) {
		t.Errorf("srcds_run is not an executable copy of the srcds double (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(f.home, "linux32", "steamclient.so")); err != nil {
		t.Errorf("steamcmd's own linux32/steamclient.so: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "steamapps", "downloading")); err == nil {
		t.Error("steamapps/downloading left after a finished install")
	}
}

func TestOnePassLinuxInstallIsInvalidPlatform(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	dir := filepath.Join(f.dir, "installation")
	out, _, code := f.run(installArgs(dir, "")...)
	if code != exitUpdate || !strings.Contains(out, "ERROR! Failed to install app '222860' (Invalid platform)\n") {
		t.Fatalf("exit %d, want %d with Invalid platform:\n%s", code, exitUpdate, out)
	}
	if _, err := os.Stat(manifestOf(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed install left a manifest: %v", err)
	}
	// As Steam did before November 2024:
	r := public("16385467", 1<<30)
	r.InvalidPlatform = new(bool)
	f.setRemote(r)
	if out, _, code := f.run(installArgs(dir, "")...); code != 0 {
		t.Fatalf("with invalidPlatform false: exit %d\n%s", code, out)
	}
	wantBuild(t, dir, "16385467", true)
}

func TestAppInfoPrintShowsRemoteBuildFromCache(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	args := []string{"+login", "anonymous", "+app_info_update", "1", "+app_info_print", "222860", "+quit"}
	remoteBuild := func() string {
		t.Helper()
		out, _, code := f.run(args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		b, err := steam.RemoteBuild(out, "public")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return b
	}
	if b := remoteBuild(); b != "16385467" {
		t.Fatalf("remote build %q, want 16385467", b)
	}
	f.setRemote(public("16400000", 1<<30))
	if b := remoteBuild(); b != "16385467" {
		t.Fatalf("with appinfo.vdf cached the answer is %q, want the stale 16385467", b)
	}
	os.Remove(filepath.Join(f.home, "appcache", "appinfo.vdf"))
	if b := remoteBuild(); b != "16400000" {
		t.Fatalf("after deleting appinfo.vdf: %q, want 16400000", b)
	}
}

func TestNewRemoteBuildInstallsIntoNewDir(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	old, next := filepath.Join(f.dir, "build-a"), filepath.Join(f.dir, "build-b")
	f.twoPass(old)
	f.setRemote(public("16400000", 1<<30))
	f.twoPass(next)
	wantBuild(t, next, "16400000", true)
	wantBuild(t, old, "16385467", true)
	inf, _ := os.ReadFile(filepath.Join(next, "left4dead2", "steam.inf"))
	if !strings.Contains(string(inf), "PatchVersion=0.0.0.0\n") {
		t.Errorf("new build's steam.inf:\n%s", inf)
	}
	// Updating an existing install needs no windows pass.
	if out, _, code := f.run(installArgs(old, "")...); code != 0 {
		t.Fatalf("in-place update: exit %d\n%s", code, out)
	}
	wantBuild(t, old, "16400000", true)
	out, _, code := f.run("+force_install_dir", old, "+login", "anonymous", "+app_update", "222860", "+quit")
	if code != 0 || !strings.Contains(out, "Success! App '222860' already up to date.\n") {
		t.Fatalf("exit %d, want already up to date:\n%s", code, out)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		failure, line string
		code          int
		stderr        string
	}{
		{"half", "Error! App '222860' state is 0x402 after update job.", exitUpdate, ""},
		{"disk-full", "Error! App '222860' state is 0x202 after update job.", exitUpdate, ""},
		{"crash", " Update state (0x61) downloading, progress: 25.00 (268435456 / 1073741824)", exitSegfault, "Segmentation fault      (core dumped)"},
	} {
		t.Run(tc.failure, func(t *testing.T) {
			f := newFixture(t, public("16385467", 1<<30))
			fresh, updated := filepath.Join(f.dir, "fresh"), filepath.Join(f.dir, "updated")
			f.twoPass(updated)
			r := public("16400000", 1<<30)
			r.Failure = tc.failure
			f.setRemote(r)
			os.MkdirAll(fresh, 0o755)
			for _, dir := range []string{fresh, updated} {
				platforms := []string{"linux"}
				if dir == fresh {
					platforms = []string{"windows"}
				}
				out, errOut, code := f.run(installArgs(dir, platforms[0])...)
				if code != tc.code || !strings.Contains(out, tc.line+"\n") || !strings.Contains(errOut, tc.stderr) {
					t.Fatalf("%s: exit %d, want %d and %q:\n%s%s", dir, code, tc.code, tc.line, out, errOut)
				}
				if strings.Contains(out, "Success!") {
					t.Fatalf("a failed update printed Success:\n%s", out)
				}
				assertCutOff(t, dir)
			}
			wantBuild(t, updated, "16385467", false)
			if _, err := os.Stat(filepath.Join(fresh, "srcds.exe")); err == nil {
				t.Error("a failed windows pass installed its files")
			}
		})
	}
}

// assertCutOff checks the manifest a cut-off download leaves.
func assertCutOff(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(manifestOf(dir))
	if err != nil {
		t.Fatal(err)
	}
	root, err := steam.ParseKeyValues(string(data))
	if err != nil {
		t.Fatal(err)
	}
	state, _ := root.String("StateFlags")
	down, _ := root.String("BytesDownloaded")
	toDown, _ := root.String("BytesToDownload")
	target, _ := root.String("TargetBuildID")
	if state == "4" || down == toDown || len(down) > len(toDown) || target != "16400000" {
		t.Fatalf("manifest after a cut-off download:\n%s", data)
	}
	if _, _, err := steam.InstalledBuild(manifestOf(dir)); err != nil {
		t.Fatal(err)
	}
}

// lockedBuf collects a subprocess's output while the test reads it.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestTimeoutHangsUntilKilled(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	dir := filepath.Join(f.dir, "installation")
	f.twoPass(dir)
	r := public("16400000", 1<<30)
	r.Failure = "timeout"
	f.setRemote(r)
	cmd := f.command(f.exe, installArgs(dir, "linux")...)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stalled := " Update state (0x61) downloading, progress: 50.00 (536870912 / 1073741824)\n"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), stalled) {
		select {
		case err := <-exited:
			t.Fatalf("steamcmd exited (%v) instead of hanging:\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no stalled progress line after 30s:\n%s", out)
		}
	}
	assertCutOff(t, dir)
	select {
	case err := <-exited:
		t.Fatalf("steamcmd exited (%v) after stalling; it should hang", err)
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("wait after SIGTERM: %v", err)
	}
	wantBuild(t, dir, "16385467", false)
}

func TestCalledThroughSymlinkFails(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	link := filepath.Join(f.dir, "bin", "steamcmd")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(f.exe, link); err != nil {
		t.Fatal(err)
	}
	cmd := f.command(link, installArgs(filepath.Join(f.dir, "i"), "windows")...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Run()
	want := link + ": line 38: " + filepath.Join(f.dir, "bin", "linux32", "steamcmd") + ": No such file or directory\n"
	if code := cmd.ProcessState.ExitCode(); code != exitNotFound || errOut.String() != want || out.Len() != 0 {
		t.Fatalf("through a symlink: exit %d, stderr %q, stdout %q; want %d and %q", code, errOut.String(), out.String(), exitNotFound, want)
	}
	if _, err := os.Stat(manifestOf(filepath.Join(f.dir, "i"))); err == nil {
		t.Fatal("installed anyway")
	}
}

func TestForceInstallDirAfterLoginWarns(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	out, _, code := f.run("+login", "anonymous", "+force_install_dir", filepath.Join(f.dir, "i"), "+@sSteamCmdForcePlatformType", "windows", "+app_update", "222860", "+quit")
	if code != 0 || !strings.Contains(out, "Please use force_install_dir before logon!\n") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestBadRemoteDescriptionNamesField(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	for _, tc := range []struct{ json, want string }{
		{`{"branches":{"public":{"buildid":"16385467","size":1}},"failure":"disk_full"}`, `field "failure": unknown mode "disk_full"`},
		{`{"branches":{"public":{"buildid":"x","size":1}}}`, `branches.public.buildid is "x"`},
		{`{"branches":{"public":{"buildid":"1","size":0}}}`, `branches.public.size is 0`},
		{`{"branch":{}}`, `unknown field "branch"`},
	} {
		os.WriteFile(f.remotePath, []byte(tc.json), 0o644)
		_, errOut, code := f.run(installArgs(filepath.Join(f.dir, "i"), "windows")...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", tc.json, code, errOut, tc.want)
		}
	}
}

func TestPatchVersionFollowsBuild(t *testing.T) {
	for build, want := range map[string]string{"16385467": "5.4.6.7", "42": "0.0.4.2", "7": "0.0.0.7"} {
		if got := (Branch{BuildID: build}).patchVersion(); got != want {
			t.Errorf("build %s: PatchVersion %q, want %q", build, got, want)
		}
	}
	if got := (Branch{BuildID: "1", PatchVersion: "2.2.4.3"}).patchVersion(); got != "2.2.4.3" {
		t.Errorf("set PatchVersion: %q", got)
	}
}

// TestFilesBesideExecutable: with neither variable set (a hardened unit
// passes none), the double reads remote.json and installs srcds-double
// from its own directory; with neither there, it says what is missing.
func TestFilesBesideExecutable(t *testing.T) {
	f := newFixture(t, public("16385467", 1<<30))
	bare := func(args ...string) (string, string, int) {
		cmd := exec.Command(f.exe, args...)
		var env []string
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, remoteEnv+"=") && !strings.HasPrefix(e, srcdsEnv+"=") {
				env = append(env, e)
			}
		}
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		cmd.Run()
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	dir := filepath.Join(f.dir, "installation")
	if _, errOut, code := bare(installArgs(dir, "windows")...); code != exitUsage || !strings.Contains(errOut, "$STEAMCMD_DOUBLE_REMOTE is not set and there is no remote.json") {
		t.Fatalf("without remote.json: exit %d, stderr %q", code, errOut)
	}
	data, _ := os.ReadFile(f.remotePath)
	os.WriteFile(filepath.Join(f.home, remoteFile), data, 0o644)
	for _, p := range []string{"windows", "linux"} {
		if out, errOut, code := bare(installArgs(dir, p)...); p == "windows" && code != 0 {
			t.Fatalf("windows pass: exit %d\n%s%s", code, out, errOut)
		} else if p == "linux" && (code != exitUpdate || !strings.Contains(errOut, srcdsFile)) {
			t.Fatalf("linux pass without srcds-double: exit %d, want %d naming %s\n%s%s", code, exitUpdate, srcdsFile, out, errOut)
		}
	}
	srcds, _ := os.ReadFile(srcdsBin)
	os.WriteFile(filepath.Join(f.home, srcdsFile), srcds, 0o755)
	if out, errOut, code := bare(installArgs(dir, "linux")...); code != 0 {
		t.Fatalf("linux pass: exit %d\n%s%s", code, out, errOut)
	}
	wantBuild(t, dir, "16385467", true)
	if got, _ := os.ReadFile(filepath.Join(dir, "srcds_run")); !bytes.Equal(got, srcds) {
		t.Fatal("srcds_run is not the srcds double beside the executable")
	}
}

// TestAppInfoHasDepotSizes: app_info_print gives each branch's depot
// manifest, its size the branch's.
func TestAppInfoHasDepotSizes(t *testing.T) {
	r := public("16385467", 9663676416)
	r.Branches["beta"] = Branch{BuildID: "16400000", Size: 1 << 30}
	f := newFixture(t, r)
	out, _, code := f.run("+login", "anonymous", "+app_info_update", "1", "+app_info_print", "222860", "+quit")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for branch, want := range map[string]int64{"public": 9663676416, "beta": 1 << 30} {
		size, found, err := steam.RemoteSize(out, branch)
		if err != nil || !found || size != want {
			t.Errorf("%s: RemoteSize = %d, %v, %v; want %d\n%s", branch, size, found, err, want, out)
		}
	}
	if !strings.Contains(out, "\t\t\t\t\t\"gid\"\t\t\"16385467000\"\n") {
		t.Errorf("no manifest gid in:\n%s", out)
	}
}
