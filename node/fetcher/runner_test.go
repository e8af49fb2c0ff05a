package fetcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/systemd"
)

// units is systemd.Fake (which runs the job as a child process of the
// test, as the test's user) recording each job and the staging
// directory's owner while it runs.
type units struct {
	fake *systemd.Fake
	mu   sync.Mutex
	jobs []systemd.Job
	// owners are the staging dirs' uid and mode as the job started.
	owners []string
}

func (u *units) Run(ctx context.Context, j systemd.Job) (systemd.JobResult, error) {
	u.mu.Lock()
	u.jobs = append(u.jobs, j)
	var st syscall.Stat_t
	if len(j.ReadWritePaths) == 1 && syscall.Stat(j.ReadWritePaths[0], &st) == nil {
		u.owners = append(u.owners, fmt.Sprintf("%d %04o", st.Uid, st.Mode&0o7777))
	}
	u.mu.Unlock()
	return u.fake.Run(ctx, j)
}

func (u *units) ActiveUnits(ctx context.Context, pattern string) ([]string, error) {
	return u.fake.ActiveUnits(ctx, pattern)
}

func (u *units) Stop(ctx context.Context, name string) error { return u.fake.Stop(ctx, name) }

const fakeUID = 4242

// newRunner is a Runner that runs this test binary as the fetcher (see
// TestMain) through systemd.Fake, for an account of fakeUID.
func newRunner(t *testing.T, cfg Config) (*Runner, *units) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Runner hands the staging directory to another account: needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Exe == "" {
		cfg.Exe = exe
	}
	u := &units{fake: systemd.NewFake()}
	r, err := New(cfg, u, gameuser.NewFake(fakeUID), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return r, u
}

// stagingDir is a fresh staging directory as the agent makes one: root's,
// 0700.
func stagingDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "staging")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRunnerFetches(t *testing.T) {
	r, u := newRunner(t, Config{})
	archive := tarGz(t, sourcemod("sm-1.12/")...)
	s := serving(t, archive)
	staging := stagingDir(t)
	spec := smSpec(s.URL+"/sm.tar.gz", archive)
	stats, err := r.FetchArchive(context.Background(), spec, staging)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 6 || stats.Symlinks != 1 {
		t.Errorf("stats %+v, want the fetcher's", stats)
	}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, sourcemodTree) {
		t.Errorf("tree:\n%v\nwant:\n%v", got, sourcemodTree)
	}

	if len(u.jobs) != 1 {
		t.Fatalf("%d jobs", len(u.jobs))
	}
	j := u.jobs[0]
	exe, _ := os.Executable()
	wantArgv := []string{exe, "fetch", "--spec", filepath.Join(staging, "spec.json"), "--staging", staging}
	switch {
	case !strings.HasPrefix(j.Unit, "l4m-fetch-") || !strings.HasSuffix(j.Unit, ".service"):
		t.Errorf("unit %q", j.Unit)
	case !slices.Equal(j.Argv, wantArgv):
		t.Errorf("argv %q, want %q", j.Argv, wantArgv)
	case j.User != DefaultAccount || j.Group != DefaultAccount:
		t.Errorf("runs as %s:%s, want %s", j.User, j.Group, DefaultAccount)
	case !slices.Equal(j.ReadWritePaths, []string{staging}):
		t.Errorf("ReadWritePaths %q, want only the staging dir", j.ReadWritePaths)
	case !j.NeedsOpenat2:
		t.Error("the job keeps RestrictSUIDSGID, whose filter blocks the openat2 the extractor needs")
	case j.Timeout != DefaultRunTimeout:
		t.Errorf("timeout %s", j.Timeout)
	case j.MemoryMax != DefaultMemoryMax || j.TasksMax == 0:
		t.Errorf("memory bound %d, tasks %d: a hostile pack must not take the host's memory", j.MemoryMax, j.TasksMax)
	case filepath.Dir(j.OutputFile) != filepath.Join(r.cfg.Root, "log", "fetch"):
		t.Errorf("output file %s", j.OutputFile)
	}
	// The account had the staging dir during the run, root has it after.
	if want := fmt.Sprintf("%d 0700", fakeUID); u.owners[0] != want {
		t.Errorf("during the run the staging dir was %s, want %s", u.owners[0], want)
	}
	var st syscall.Stat_t
	syscall.Stat(staging, &st)
	if st.Uid != 0 || st.Mode&0o7777 != 0o700 {
		t.Errorf("after the run the staging dir is uid %d mode %04o, want root's 0700", st.Uid, st.Mode&0o7777)
	}
	// The spec the fetcher read: root's, its group's to read.
	syscall.Stat(filepath.Join(staging, SpecName), &st)
	if st.Uid != 0 || st.Gid != fakeUID || st.Mode&0o777 != 0o640 {
		t.Errorf("spec.json uid %d gid %d mode %04o, want 0 %d 0640", st.Uid, st.Gid, st.Mode&0o777, fakeUID)
	}
	var got Job
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(staging, SpecName))), &got); err != nil || got.Archive == nil || got.Git != nil || got.Workshop != nil ||
		got.Archive.URL != spec.URL || got.Archive.SHA256 != spec.SHA256 || got.Archive.Into != "left4dead2" {
		t.Errorf("spec.json %+v, %v", got, err)
	}
	// A successful run's log is removed; the log dir is root's alone.
	if _, err := os.Stat(j.OutputFile); err == nil {
		t.Error("the log of a successful fetch was kept")
	}
	syscall.Stat(filepath.Dir(j.OutputFile), &st)
	if st.Uid != 0 || st.Mode&0o777 != 0o700 {
		t.Errorf("log dir uid %d mode %04o, want root's 0700", st.Uid, st.Mode&0o777)
	}
}

func TestRunnerReportsFetcherErrors(t *testing.T) {
	r, _ := newRunner(t, Config{})
	poisoned := tarGz(t, append(sourcemod("sm/"), symlink("sm/addons/x", "/etc/shadow"))...)
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/poisoned.tar.gz" {
			w.Write(poisoned)
			return
		}
		http.NotFound(w, req)
	})

	_, err := r.FetchArchive(context.Background(), smSpec(s.URL+"/poisoned.tar.gz", poisoned), stagingDir(t))
	e := wantReason(t, err, UnsafeEntry, "archive "+s.URL+"/poisoned.tar.gz: ", `entry "sm/addons/x"`, "absolute")
	if e.Entry != "sm/addons/x" || !errors.Is(err, extract.ErrUnsafe) {
		t.Errorf("entry %q, errors.Is(ErrUnsafe) %v: the reason and entry cross the process boundary", e.Entry, errors.Is(err, extract.ErrUnsafe))
	}

	_, err = r.FetchArchive(context.Background(), smSpec(s.URL+"/missing.tar.gz", poisoned), stagingDir(t))
	wantReason(t, err, DownloadFailed, s.URL+"/missing.tar.gz", "HTTP 404 Not Found")
	if strings.Count(err.Error(), s.URL) != 1 {
		t.Errorf("%q names the URL more than once", err)
	}
	// The failed fetches' logs are kept.
	logs, _ := filepath.Glob(filepath.Join(r.cfg.LogDir, "l4m-fetch-*.log"))
	if len(logs) != 2 {
		t.Errorf("logs %v: want the two failures'", logs)
	}
}

func TestRunnerFileRoots(t *testing.T) {
	r, _ := newRunner(t, Config{})
	archive := tarGz(t, sourcemod("sm-1.12/")...)
	mirror := t.TempDir()
	os.WriteFile(filepath.Join(mirror, "sm.tar.gz"), archive, 0o644)
	spec := FetchSpec{URL: "file://" + filepath.Join(mirror, "sm.tar.gz"), StripComponents: 1, Into: "left4dead2"}
	_, err := r.FetchArchive(context.Background(), spec, stagingDir(t))
	wantReason(t, err, FileURLRefused, "no overlay file roots")

	spec.Download.FileRoots = []string{mirror}
	staging := stagingDir(t)
	if _, err := r.FetchArchive(context.Background(), spec, staging); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, sourcemodTree) {
		t.Errorf("tree %v", got)
	}
}

func TestRunnerFetcherWithoutResult(t *testing.T) {
	r, _ := newRunner(t, Config{Exe: "/bin/false"})
	archive := tarGz(t, sourcemod("sm/")...)
	_, err := r.FetchArchive(context.Background(), smSpec("http://127.0.0.1:1/sm.tar.gz", archive), stagingDir(t))
	wantReason(t, err, FetcherFailed, "exit code 1", "without a result", r.cfg.LogDir)
}

func TestRunnerTimeout(t *testing.T) {
	r, _ := newRunner(t, Config{Timeout: 300 * time.Millisecond})
	archive := tarGz(t, sourcemod("sm/")...)
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(archive[:10])
		w.(http.Flusher).Flush()
		<-req.Context().Done()
	})
	_, err := r.FetchArchive(context.Background(), smSpec(s.URL+"/sm.tar.gz", archive), stagingDir(t))
	wantReason(t, err, TimedOut, s.URL+"/sm.tar.gz", "ran longer than 300ms")
}

func TestRunnerCanceled(t *testing.T) {
	r, _ := newRunner(t, Config{})
	archive := tarGz(t, sourcemod("sm/")...)
	reached := make(chan struct{})
	var once sync.Once
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(archive[:10])
		w.(http.Flusher).Flush()
		once.Do(func() { close(reached) })
		<-req.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-reached; cancel() }()
	staging := stagingDir(t)
	_, err := r.FetchArchive(ctx, smSpec(s.URL+"/sm.tar.gz", archive), staging)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FetchArchive canceled = %v", err)
	}
	var st syscall.Stat_t
	syscall.Stat(staging, &st)
	if st.Uid != 0 {
		t.Errorf("a canceled fetch left the staging dir to uid %d", st.Uid)
	}
}

func TestRunnerRefusesStaging(t *testing.T) {
	r, u := newRunner(t, Config{})
	archive := tarGz(t, sourcemod("sm/")...)
	spec := smSpec("http://127.0.0.1:1/sm.tar.gz", archive)
	used := stagingDir(t)
	os.WriteFile(filepath.Join(used, "leftover"), nil, 0o644)
	open := stagingDir(t)
	os.Chmod(open, 0o777)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(stagingDir(t), link)
	for staging, says := range map[string]string{
		used:                   "is not empty (leftover)",
		open:                   "writable by it alone",
		link:                   "symlink",
		"rel/staging":          "want an absolute, clean path",
		"/nonexistent/staging": "no such file",
	} {
		_, err := r.FetchArchive(context.Background(), spec, staging)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("staging %s: %v, want it refused saying %q", staging, err, says)
		}
	}
	bad := spec
	bad.SHA256 = ""
	_, err := r.FetchArchive(context.Background(), bad, stagingDir(t))
	wantReason(t, err, InvalidSpec, "sha256 is required")
	if len(u.jobs) != 0 {
		t.Errorf("%d fetcher units ran for refused stagings", len(u.jobs))
	}
}

func TestOutcome(t *testing.T) {
	job := systemd.Job{Timeout: time.Minute, OutputFile: "/var/lib/left4me/log/fetch/x.log"}
	ok := systemd.JobResult{Result: "success"}
	failed := systemd.JobResult{Result: "exit-code", ExitCode: 1}
	timeout := systemd.JobResult{Result: "timeout", ExitCode: 143}
	statsLine := resultPrefix + `{"result":{"stats":{"Files":3}}}`
	errLine := resultPrefix + `{"error":{"reason":"ChecksumMismatch","message":"sha256 a, the spec says b"}}`
	cases := []struct {
		name   string
		res    systemd.JobResult
		output string
		reason string
		says   string
	}{
		{"stats", ok, "some log\n" + statsLine + "\n", "", ""},
		{"error", failed, errLine + "\n", ChecksumMismatch, "archive U: sha256 a, the spec says b"},
		{"the last result counts", failed, statsLine + "\n" + errLine + "\n", ChecksumMismatch, "sha256 a"},
		{"stats but a failed unit", failed, statsLine, FetcherFailed, "exit-code, exit code 1"},
		{"error then the unit's timeout", timeout, errLine, TimedOut, "ran longer than 1m0s: sha256 a"},
		{"timeout, nothing said", timeout, "downloading\n", TimedOut, "ran longer than 1m0s and was stopped (its output is in /var/lib/left4me/log/fetch/x.log)"},
		{"crash", systemd.JobResult{Result: "signal", ExitCode: 139}, "panic: x\ngoroutine 1\n", FetcherFailed, "signal, exit code 139) without a result: panic: x | goroutine 1"},
		{"an unknown reason", failed, resultPrefix + `{"error":{"reason":"Whatever","message":"m"}}`, FetcherFailed, "m"},
		{"garbage result", failed, resultPrefix + "{nope", FetcherFailed, "without a result"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stats, err := outcome(c.res, c.output, "U", job)
			if c.reason == "" {
				if err != nil || stats.Stats.Files != 3 {
					t.Fatalf("outcome = %+v, %v", stats, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			wantReason(t, err, c.reason, c.says)
		})
	}
	// What the process says is bounded.
	long := resultPrefix + `{"error":{"reason":"DownloadFailed","message":"` + strings.Repeat("é", 5000) + `"}}`
	_, err := outcome(failed, long, "U", job)
	if n := len(err.Message); n > maxMessage+len("…") {
		t.Errorf("a message of %d bytes came through", n)
	}
}

func TestProxyEnv(t *testing.T) {
	got := proxyEnv([]string{"PATH=/bin", "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost", "HOME=/root", "L4M_X=1"})
	if want := []string{"HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost"}; !slices.Equal(got, want) {
		t.Errorf("proxyEnv = %q, want %q", got, want)
	}
}

func TestPruneLogs(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i := range 40 {
		p := filepath.Join(dir, fmt.Sprintf("l4m-fetch-%02d.log", i))
		os.WriteFile(p, nil, 0o644)
		os.Chtimes(p, base.Add(time.Duration(i)*time.Second), base.Add(time.Duration(i)*time.Second))
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	current := filepath.Join(dir, "l4m-fetch-00.log") // the oldest, but just written
	pruneLogs(dir, 32, current)
	got := names(t, dir)
	if len(got) != 33 || !slices.Contains(got, "l4m-fetch-00.log") || !slices.Contains(got, "l4m-fetch-39.log") ||
		slices.Contains(got, "l4m-fetch-08.log") || !slices.Contains(got, "l4m-fetch-09.log") || !slices.Contains(got, "notes.txt") {
		t.Errorf("after pruning: %v", got)
	}
}

// TestStopLeftovers: fetcher units a killed agent left running are
// stopped; other units are not touched.
func TestStopLeftovers(t *testing.T) {
	r, u := newRunner(t, Config{})
	for _, n := range []string{"l4m-fetch-0123456789abcdef.service", "l4m-fetch-fedcba9876543210.service", "l4m-default.coop-1.service"} {
		u.fake.WriteUnit(n, "[Service]\nExecStart=/bin/true\n")
		if err := u.fake.Start(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.StopLeftovers(context.Background()); err != nil {
		t.Fatal(err)
	}
	var stops []string
	for _, j := range u.fake.JobLog() {
		if strings.HasPrefix(j, "stop ") {
			stops = append(stops, j)
		}
	}
	want := []string{"stop l4m-fetch-0123456789abcdef.service", "stop l4m-fetch-fedcba9876543210.service"}
	if !slices.Equal(stops, want) {
		t.Fatalf("stopped %v, want %v", stops, want)
	}
}

// TestConcurrentFetchesNeverShareAnAccount: fetches running at once run
// as different accounts (one fetcher cannot reach another's staging
// directory through /proc), at most Slots at a time; a slot's account is
// used again once its fetch ended.
func TestConcurrentFetchesNeverShareAnAccount(t *testing.T) {
	r, u := newRunner(t, Config{Slots: 2})
	archive := tarGz(t, sourcemod("sm/")...)
	var mu sync.Mutex
	arrived, release := 0, make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		if arrived++; arrived == 2 {
			close(release) // both slots are in use: let them finish
		}
		mu.Unlock()
		<-release
		w.Write(archive)
	}))
	t.Cleanup(s.Close)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := r.FetchArchive(context.Background(), smSpec(s.URL+"/sm.tar.gz", archive), stagingDir(t))
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	users := map[string]int{}
	for _, j := range u.jobs {
		users[j.User]++
	}
	if len(u.jobs) != 3 || len(users) != 2 || users[DefaultAccount] == 0 || users[DefaultAccount+"-1"] == 0 {
		t.Fatalf("3 fetches over 2 slots ran as %v", users)
	}
}
