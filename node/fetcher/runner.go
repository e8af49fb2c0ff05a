package fetcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/systemd"
)

// Runner defaults.
const (
	// DefaultAccount is the system account fetches run as.
	DefaultAccount = "l4m-fetch"
	// DefaultRunTimeout bounds a fetcher unit: the download's own timeout
	// (DefaultTimeout) plus extracting up to extract's 8 GiB.
	DefaultRunTimeout = time.Hour
	// DefaultMemoryMax bounds a fetcher unit's memory: extracting streams,
	// but go-git resolves a pack's deltas in memory, and a small hostile
	// pack could claim much more; 2 GiB is several times what the largest
	// real config repositories and archives need.
	DefaultMemoryMax = 2 << 30
	// DefaultSlots fetches run at once: the downloads share the node's
	// bandwidth anyway, and each is its own account (l4m-fetch,
	// l4m-fetch-1, ...).
	DefaultSlots = 4
	// fetcherTasksMax bounds its threads (the Go runtime's, a few dozen).
	fetcherTasksMax = 256
	// DefaultKeepLogs is how many failed fetches' logs are kept; a
	// successful fetch's log is removed.
	DefaultKeepLogs = 32
	// accountService is the account's GECOS purpose (gameuser).
	accountService = "overlay fetcher"
	// maxOutput is how much of a fetcher's output is read back.
	maxOutput = 1 << 20
)

// Config says how fetches run.
type Config struct {
	// Root is the node's root (LEFT4ME_ROOT); LogDir defaults below it.
	Root string
	// Exe is the l4m-node binary whose fetch subcommand does the
	// work (default: this process's own executable). The account must be
	// able to run it.
	Exe string
	// Account is the system account the fetcher runs as (DefaultAccount).
	Account string
	// LogDir receives each fetch's output (default <Root>/log/fetch). It
	// is made root's and 0700: systemd opens the files there as root.
	LogDir string
	// Timeout kills a fetcher unit that runs longer (DefaultRunTimeout).
	Timeout time.Duration
	// KeepLogs bounds the failed fetches' logs kept (DefaultKeepLogs).
	KeepLogs int
	// MemoryMax bounds a fetcher unit's memory in bytes
	// (DefaultMemoryMax).
	MemoryMax uint64
	// Slots is how many fetches run at once (DefaultSlots), each as its
	// own account; more wait for one to end.
	Slots int
}

func (c Config) withDefaults() (Config, error) {
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("fetcher config: the executable to run: %w", err)
		}
		c.Exe = exe
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.LogDir == "" && c.Root != "" {
		c.LogDir = filepath.Join(c.Root, "log", "fetch")
	}
	c.Timeout = orDefault(c.Timeout, DefaultRunTimeout)
	c.KeepLogs = orDefault(c.KeepLogs, DefaultKeepLogs)
	if c.MemoryMax == 0 {
		c.MemoryMax = DefaultMemoryMax
	}
	c.Slots = orDefault(c.Slots, DefaultSlots)
	for field, p := range map[string]string{"Exe": c.Exe, "LogDir": c.LogDir} {
		if !filepath.IsAbs(p) {
			return c, fmt.Errorf("fetcher config: %s %q is not an absolute path", field, p)
		}
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("fetcher config: Timeout %s is negative", c.Timeout)
	}
	return c, nil
}

// Units is what the Runner needs of systemd (systemd.Manager has it;
// systemd.Fake runs the job as a plain child process).
type Units interface {
	Run(ctx context.Context, j systemd.Job) (systemd.JobResult, error)
	ActiveUnits(ctx context.Context, pattern string) ([]string, error)
	Stop(ctx context.Context, name string) error
}

// unitPrefix starts every fetcher unit's name.
const unitPrefix = "l4m-fetch-"

// Accounts makes the account the fetcher runs as (gameuser.System has it).
type Accounts interface {
	EnsureService(name, service string) (gameuser.Account, error)
}

// Runner runs FetchArchive in a transient hardened unit (systemd.Job's
// sandbox: ProtectSystem=strict, no capabilities, no new privileges,
// private /tmp and devices; all but RestrictSUIDSGID, whose seccomp
// filter blocks the openat2 the extractor needs) as the unprivileged
// account, writing nothing but its staging directory. Runs for different staging directories go
// on side by side, each its own unit.
type Runner struct {
	cfg      Config
	units    Units
	accounts Accounts
	log      logr.Logger
	// slots counts the fetches running (at most Slots); inUse says which
	// accounts (by index) they run as.
	slots chan struct{}
	mu    sync.Mutex
	inUse []bool
}

// New checks cfg and returns a Runner.
func New(cfg Config, units Units, accounts Accounts, log logr.Logger) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, units: units, accounts: accounts, log: log,
		slots: make(chan struct{}, cfg.Slots), inUse: make([]bool, cfg.Slots)}, nil
}

// acquire takes the lowest free slot (so a lone fetch is always the first
// account's): which account a fetch runs as.
func (r *Runner) acquire(ctx context.Context) (int, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, used := range r.inUse {
		if !used {
			r.inUse[i] = true
			return i, nil
		}
	}
	<-r.slots // cannot happen: len(inUse) == cap(slots)
	return 0, errors.New("fetcher slots: a slot was taken but none is free")
}

func (r *Runner) release(i int) {
	r.mu.Lock()
	r.inUse[i] = false
	r.mu.Unlock()
	<-r.slots
}

// account is slot i's account: Account, then Account-1, Account-2, ...
// Fetches that run at once never share a uid, so that one fetcher (whose
// parser a hostile archive or pack might have taken over) cannot reach
// another's staging directory through /proc/<pid>/root: ProtectProc=
// invisible hides other users' processes.
func (r *Runner) account(i int) string {
	if i == 0 {
		return r.cfg.Account
	}
	return fmt.Sprintf("%s-%d", r.cfg.Account, i)
}

// FetchArchive is Fetch of an archive.
func (r *Runner) FetchArchive(ctx context.Context, spec FetchSpec, staging string) (extract.Stats, error) {
	res, err := r.Fetch(ctx, Job{Archive: &spec}, staging)
	return res.Stats, err
}

// Fetch is the package's Fetch, run by the fetcher account in its own
// unit. staging must be an empty directory (not a symlink) that only root
// can write, below directories the account can traverse; the Runner
// writes the job into it, hands it to the account (0700) for the run, and
// takes it back (root's, 0700) after, so nothing of the account can reach
// the tree any more once Fetch returns. The tree in it is then for
// extract.Verify: the account wrote it.
//
// Errors are *Error as Fetch's, read back from the fetcher's output
// (their Reason keeps errors.Is for node/extract's sentinels), or
// FetcherFailed / TimedOut when the process said nothing; the output is
// in a log file the message names.
func (r *Runner) Fetch(ctx context.Context, j Job, staging string) (Result, error) {
	what := j.what()
	fail := func(reason, msg string, err error) (Result, error) {
		e := &Error{Reason: reason, URL: what, Message: msg, Err: err}
		if k := j.kind(); k != "archive" {
			e.Source = k
		}
		return Result{}, e
	}
	switch j.kind() {
	case "":
		return fail(InvalidSpec, "want exactly one of archive, git and workshop", nil)
	case "archive":
		if _, err := parseURL(j.Archive.URL, j.Archive.SHA256); err != nil {
			return fail(InvalidSpec, "", err)
		}
	case "git":
		if _, err := checkGitSpec(*j.Git); err != nil {
			return Result{}, err
		}
	}
	if !filepath.IsAbs(staging) || filepath.Clean(staging) != staging {
		return fail(InvalidSpec, fmt.Sprintf("staging %q: want an absolute, clean path", staging), nil)
	}
	slot, err := r.acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("fetch %s: waiting for a fetcher slot: %w", what, err)
	}
	defer r.release(slot)
	acct, err := r.accounts.EnsureService(r.account(slot), accountService)
	if err != nil {
		return fail(FetcherFailed, "the account the fetcher runs as", err)
	}
	specJSON, err := json.Marshal(j)
	if err != nil {
		return fail(InvalidSpec, "", err)
	}
	dir, err := handOver(staging, specJSON, acct)
	if err != nil {
		return fail(FetcherFailed, "preparing the staging directory", err)
	}
	defer dir.Close()
	// Whatever happens, the account loses the staging dir again.
	defer func() {
		if err := dir.Chown(safefs.Owner{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o700}); err != nil {
			r.log.Error(err, "taking the staging directory back from the fetcher account", "staging", staging)
		}
	}()
	if err := ensureRootDir(r.cfg.LogDir); err != nil {
		return fail(FetcherFailed, "the fetcher's log directory", err)
	}
	job := r.job(acct, staging, what)
	r.log.V(1).Info("fetching", "source", what, "staging", staging, "unit", job.Unit, "log", job.OutputFile)
	res, err := r.units.Run(ctx, job)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("fetch %s: %w", what, ctx.Err())
		}
		return fail(FetcherFailed, "running the fetcher's unit "+job.Unit, err)
	}
	output, rerr := readTail(job.OutputFile, maxOutput)
	if rerr != nil {
		r.log.Info("cannot read the fetcher's output", "file", job.OutputFile, "error", rerr.Error())
	}
	out, ferr := outcome(res, output, what, job)
	if ferr != nil && j.kind() != "archive" {
		ferr.Source = j.kind()
	}
	if ferr == nil {
		os.Remove(job.OutputFile)
		return out, nil
	}
	r.log.Info("fetch failed", "source", what, "reason", ferr.Reason, "exit", res.ExitCode, "result", res.Result, "log", job.OutputFile)
	pruneLogs(r.cfg.LogDir, r.cfg.KeepLogs, job.OutputFile)
	return Result{}, ferr
}

// StopLeftovers stops the fetcher units a killed agent left running. The
// store removes their staging directories when it opens; a unit still
// writing into one would make that fail, and would go on downloading for
// nobody until its timeout. Call it before the store opens.
func (r *Runner) StopLeftovers(ctx context.Context) error {
	names, err := r.units.ActiveUnits(ctx, unitPrefix+"*.service")
	if err != nil {
		return fmt.Errorf("find leftover fetcher units: %w", err)
	}
	var errs []error
	for _, n := range names {
		r.log.Info("stopping a fetcher unit left from an earlier run", "unit", n)
		if err := r.units.Stop(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("stop leftover fetcher unit %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// job is the fetcher's unit for one staging directory: named after it, so
// a leftover from a killed agent is stopped first (systemd.Manager.Run
// replaces a unit of the same name: one fetch per staging directory at a
// time), as the account, writing only staging, output to a root-owned log.
func (r *Runner) job(acct gameuser.Account, staging, url string) systemd.Job {
	sum := sha256.Sum256([]byte(staging))
	name := unitPrefix + hex.EncodeToString(sum[:8])
	return systemd.Job{
		Unit:        name + ".service",
		Description: "left4me: fetch " + url,
		Argv: []string{r.cfg.Exe, CommandName,
			"--spec", filepath.Join(staging, SpecName), "--staging", staging},
		User: acct.Name, Group: acct.Name,
		WorkingDirectory: staging,
		Environment:      proxyEnv(os.Environ()),
		ReadWritePaths:   []string{staging},
		OutputFile:       filepath.Join(r.cfg.LogDir, name+".log"),
		Timeout:          r.cfg.Timeout,
		// The extractor resolves every path with openat2; it strips
		// setuid and setgid bits itself, and Verify refuses them after.
		NeedsOpenat2: true,
		MemoryMax:    r.cfg.MemoryMax,
		TasksMax:     fetcherTasksMax,
	}
}

// proxyEnv passes the node's proxy settings on to the fetcher (a unit
// starts with systemd's environment, not the agent's).
func proxyEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY":
			out = append(out, kv)
		}
	}
	return out
}

// outcome decides what a fetcher run came to from how its unit ended and
// the result line in its output.
func outcome(res systemd.JobResult, output, url string, job systemd.Job) (Result, *Error) {
	stats, ferr, ok := parseResult(output, url)
	switch {
	case ok && ferr != nil:
		if res.Result == "timeout" {
			ferr.Reason = TimedOut
			ferr.Message = fmt.Sprintf("the fetcher ran longer than %s: %s", job.Timeout, ferr.Message)
		}
		return Result{}, ferr
	case ok && res.Succeeded():
		return stats, nil
	case res.Result == "timeout":
		return Result{}, &Error{Reason: TimedOut, URL: url, Message: fmt.Sprintf("the fetcher ran longer than %s and was stopped (its output is in %s)", job.Timeout, job.OutputFile)}
	}
	return Result{}, &Error{Reason: FetcherFailed, URL: url, Message: fmt.Sprintf("the fetcher ended (%s, exit code %d) without a result: %s (its output is in %s)",
		res.Result, res.ExitCode, bounded(lastLines(output, 5)), job.OutputFile)}
}

// handOver opens staging (refusing a symlink or a directory that is not
// empty or that others may write), writes the spec in it (root's, readable
// by the account's group), and gives it to the account, mode 0700.
func handOver(staging string, spec []byte, acct gameuser.Account) (*safefs.Dir, error) {
	parent, err := safefs.Open(filepath.Dir(staging))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	dir, err := parent.OpenDir(filepath.Base(staging))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			dir.Close()
		}
	}()
	st, err := dir.Stat()
	if err != nil {
		return nil, err
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("%s is uid %d, mode %#o: it must be uid %d's and writable by it alone", staging, st.Uid, st.Mode&0o777, os.Geteuid())
	}
	names, err := dir.Names()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		return nil, fmt.Errorf("%s is not empty (%s): want a fresh staging directory", staging, strings.Join(names, ", "))
	}
	if err := dir.WriteFile(SpecName, spec, 0o640, os.Geteuid(), acct.GID); err != nil {
		return nil, err
	}
	if err := dir.Chown(safefs.Owner{UID: acct.UID, GID: acct.GID, Mode: 0o700}); err != nil {
		return nil, err
	}
	ok = true
	return dir, nil
}

// ensureRootDir makes dir (0700) and checks that it is a directory, not a
// symlink, that only this process's user (root) can write: systemd opens
// the fetcher's output files there as root.
func ensureRootDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir() || !ok:
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is uid %d, mode %#o: it must be uid %d's and writable by it alone (systemd writes the fetcher's output there as root)",
			dir, st.Uid, fi.Mode().Perm(), os.Geteuid())
	}
	return nil
}

// readTail reads the last max bytes of a file.
func readTail(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	return string(b), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// pruneLogs keeps the newest keep logs in dir (keep always).
func pruneLogs(dir string, keep int, always string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type log struct {
		path string
		mod  time.Time
	}
	var logs []log
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".log") || p == always {
			continue
		}
		if fi, err := e.Info(); err == nil {
			logs = append(logs, log{p, fi.ModTime()})
		}
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].mod.After(logs[j].mod) })
	for i := keep - 1; i < len(logs); i++ {
		if i >= 0 {
			os.Remove(logs[i].path)
		}
	}
}
