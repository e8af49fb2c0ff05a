// Package steamcmd runs Valve's steamcmd for the node agent: it asks Steam
// for a branch's build (Check) and downloads it into a directory the agent
// prepared (Install), each time in a transient hardened unit of its own
// (node/systemd's Job), as an unprivileged account, writing nowhere but
// steamcmd's own directory and that download directory.
//
// steamcmd is Valve's code fed by the network, so nothing it leaves is
// trusted: the result is checked through node/safefs (no symlink followed)
// before Install reports a build, and failures come back as *Error with a
// one-word Reason for the Node's status.
//
// One run at a time: steamcmd keeps its state beside its executable, and
// two of them in one directory fight over it.
package steamcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/steam"
	"github.com/left4me/left4me/node/systemd"
)

// Config says where steamcmd is and how to run it. Start from
// DefaultConfig: its zero value turns the two-pass workaround off.
type Config struct {
	// Root is the node's root directory (LEFT4ME_ROOT). Path and LogDir
	// default below it, and a steamcmd directory inside it is handed to
	// Account.
	Root string
	// Path is steamcmd.sh (default <Root>/steamcmd/steamcmd.sh). Its
	// symlinks are resolved once (steamcmd breaks when called through
	// one); the directory holding it is steamcmd's home, which must be
	// Account's (see Runner.Account).
	Path string
	// Account is the system account steamcmd runs as (default
	// "l4m-steamcmd").
	Account string
	// Timeout bounds a whole install, both passes (default 1h).
	Timeout time.Duration
	// CheckTimeout bounds asking Steam for a build (default 5m).
	CheckTimeout time.Duration
	// TwoPass installs with a windows pass, then a linux one, into the
	// same directory: since November 2024 Steam refuses a one-pass
	// anonymous linux install ("Invalid platform").
	TwoPass bool
	// MinFreeBytes is the headroom an install needs free beyond the
	// build's size (default 1 GiB).
	MinFreeBytes int64
	// LogDir receives steamcmd's output, one file per run kind
	// (check.log, install.log), replaced by each run (default
	// <Root>/log/steamcmd). It is made root's and 0700: systemd opens the
	// files there as root.
	LogDir string
}

// Defaults.
const (
	DefaultAccount      = "l4m-steamcmd"
	DefaultTimeout      = time.Hour
	DefaultCheckTimeout = 5 * time.Minute
	DefaultMinFreeBytes = 1 << 30
)

// Unit names: one of each kind runs at a time.
const (
	checkUnit   = "l4m-steamcmd-check.service"
	installUnit = "l4m-steamcmd-install.service"
)

// DefaultConfig is the node's steamcmd setup under root.
func DefaultConfig(root string) Config {
	return Config{Root: root, TwoPass: true}
}

func (c Config) withDefaults() Config {
	if c.Path == "" && c.Root != "" {
		c.Path = filepath.Join(c.Root, "steamcmd", "steamcmd.sh")
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.LogDir == "" && c.Root != "" {
		c.LogDir = filepath.Join(c.Root, "log", "steamcmd")
	}
	return c
}

func (c Config) validate() error {
	for field, p := range map[string]string{"Root": c.Root, "Path": c.Path, "LogDir": c.LogDir} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("steamcmd config: %s %q is not an absolute path", field, p)
		}
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("steamcmd config: Timeout %v is negative", c.Timeout)
	case c.CheckTimeout < 0:
		return fmt.Errorf("steamcmd config: CheckTimeout %v is negative", c.CheckTimeout)
	case c.MinFreeBytes < 0:
		return fmt.Errorf("steamcmd config: MinFreeBytes %d is negative", c.MinFreeBytes)
	}
	return nil
}

// Units is what the runner needs of systemd (systemd.Manager has it).
type Units interface {
	Run(ctx context.Context, j systemd.Job) (systemd.JobResult, error)
	State(ctx context.Context, name string) (systemd.State, error)
	Stop(ctx context.Context, name string) error
}

// Accounts makes the account steamcmd runs as (gameuser.System has it).
type Accounts interface {
	EnsureService(name, service string) (gameuser.Account, error)
}

// Runner runs steamcmd; it implements the node agent's Steamcmd.
type Runner struct {
	cfg      Config
	units    Units
	accounts Accounts
	log      logr.Logger
	// turn is held by the one steamcmd run under way.
	turn chan struct{}
	// mu guards loc, steamcmd's resolved location (fixed at the first
	// success), and the handing over of its home.
	mu  sync.Mutex
	loc location
	// statfs returns the bytes free to an unprivileged user below a path
	// (tests replace it).
	statfs func(path string) (int64, error)
}

// New checks cfg and returns a Runner. steamcmd need not be there yet: its
// path is resolved now if it can be, else at the first use that finds it,
// and until then every call fails with SteamcmdMissing.
func New(cfg Config, units Units, accounts Accounts, log logr.Logger) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, units: units, accounts: accounts, log: log, turn: make(chan struct{}, 1), statfs: freeBytes}
	if loc, err := locate(cfg.Path); err == nil {
		r.loc = loc
	} else {
		log.Info("steamcmd not found yet; installs fail until it is there", "path", cfg.Path, "error", err.Error())
	}
	return r, nil
}

// take waits for the turn to run steamcmd; release gives it back.
func (r *Runner) take(ctx context.Context) (release func(), err error) {
	select {
	case r.turn <- struct{}{}:
		return func() { <-r.turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Account is who steamcmd runs as: the system account cfg.Account, made
// the first time. steamcmd updates itself and writes beside its
// executable, so its home must be the account's: a home inside the node
// root is handed over (its root-owned files chowned, no symlink followed);
// one elsewhere must already be the account's, or the error names the
// chown to run.
//
// Account does not wait for a steamcmd run under way: it then leaves the
// home as that run found it.
func (r *Runner) Account() (gameuser.Account, error) {
	walk := false
	select {
	case r.turn <- struct{}{}:
		defer func() { <-r.turn }()
		walk = true
	default:
	}
	acct, _, err := r.account("account", walk)
	return acct, err
}

// account is Account, also returning where steamcmd is; walk hands over
// the home's root-owned files (no steamcmd may be running).
func (r *Runner) account(op string, walk bool) (gameuser.Account, location, error) {
	acct, err := r.accounts.EnsureService(r.cfg.Account, "steamcmd")
	if err != nil {
		return gameuser.Account{}, location{}, &Error{Reason: SteamcmdAccountFailed, Op: op, Message: "the account steamcmd runs as", Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	loc, err := r.location(op)
	if err != nil {
		return gameuser.Account{}, location{}, err
	}
	if err := own(r.cfg.Root, loc, acct, walk); err != nil {
		return gameuser.Account{}, location{}, &Error{Reason: SteamcmdNotWritable, Op: op, Err: err}
	}
	return acct, loc, nil
}

// location resolves steamcmd's path the first time it is found and checks
// it can still be run (r.mu held).
func (r *Runner) location(op string) (location, error) {
	missing := func(err error) error {
		return &Error{Reason: SteamcmdMissing, Op: op, Err: err,
			Message: fmt.Sprintf("no runnable steamcmd at %s (unpack Valve's steamcmd_linux.tar.gz there, or point the node at steamcmd.sh)", r.cfg.Path)}
	}
	if r.loc.exe == "" {
		loc, err := locate(r.cfg.Path)
		if err != nil {
			return location{}, missing(err)
		}
		r.log.Info("found steamcmd", "path", r.cfg.Path, "resolved", loc.exe)
		r.loc = loc
	}
	if err := runnable(r.loc.exe); err != nil {
		return location{}, missing(err)
	}
	return r.loc, nil
}

// Check asks Steam for the branch's current build and its size in bytes
// (0 when the app info gives none). The cached app info is removed first,
// as LinuxGSM does, or steamcmd can answer with a stale build.
func (r *Runner) Check(ctx context.Context, appID int32, branch string) (string, int64, error) {
	const op = "check"
	if err := validApp(appID, branch); err != nil {
		return "", 0, &Error{Reason: CheckFailed, Op: op, Err: err}
	}
	release, err := r.take(ctx)
	if err != nil {
		return "", 0, err
	}
	defer release()
	acct, loc, err := r.account(op, true)
	if err != nil {
		return "", 0, err
	}
	home := loc.home
	logFile, err := r.prepare(ctx, op, checkUnit, installUnit)
	if err != nil {
		return "", 0, err
	}
	job := r.job(acct, loc, checkUnit, fmt.Sprintf("left4me: steamcmd asks Steam for app %d", appID), logFile)
	job.Argv = checkArgv(loc.exe, appID)
	job.ExecStartPre = [][]string{{"/bin/rm", "-f", filepath.Join(home, "appcache", "appinfo.vdf")}}
	job.ReadWritePaths = []string{home}
	job.Timeout = r.cfg.CheckTimeout
	output, err := r.run(ctx, op, job)
	if err != nil {
		return "", 0, err
	}
	build, err := steam.RemoteBuild(output, branchOrPublic(branch))
	if err != nil {
		return "", 0, &Error{Reason: CheckFailed, Op: op, Err: err,
			Message: fmt.Sprintf("app_info_print shows no build for branch %s (steamcmd's output is in %s)", branchOrPublic(branch), logFile)}
	}
	// The size only sizes the free-space check: without it the download
	// needs just the headroom free.
	size, found, err := steam.RemoteSize(output, branchOrPublic(branch))
	switch {
	case err != nil:
		r.log.Info("app info gives a bad size for the branch; the free-space check uses only the headroom", "branch", branchOrPublic(branch), "error", err.Error())
		size = 0
	case !found:
		r.log.Info("app info gives no size for the branch; the free-space check uses only the headroom", "branch", branchOrPublic(branch))
	}
	r.log.V(1).Info("checked Steam", "app", appID, "branch", branchOrPublic(branch), "build", build, "bytes", size)
	return build, size, nil
}

// Install downloads the branch's current build into dir (which the agent
// made: the account's, mode 0700, below root-owned parents the account can
// only traverse), then checks what steamcmd left and returns its build id.
// size is the build's size from Check (0: unknown); the download does not
// start unless that much, less what dir already holds, plus MinFreeBytes
// is free.
func (r *Runner) Install(ctx context.Context, appID int32, branch, dir string, size int64) (string, error) {
	const op = "install"
	if err := validApp(appID, branch); err != nil {
		return "", &Error{Reason: DownloadFailed, Op: op, Err: err}
	}
	if err := validDir(dir); err != nil {
		return "", &Error{Reason: DownloadFailed, Op: op, Err: err}
	}
	release, err := r.take(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	acct, loc, err := r.account(op, true)
	if err != nil {
		return "", err
	}
	if err := r.roomFor(dir, size); err != nil {
		return "", err
	}
	logFile, err := r.prepare(ctx, op, installUnit, checkUnit)
	if err != nil {
		return "", err
	}
	job := r.job(acct, loc, installUnit, fmt.Sprintf("left4me: steamcmd downloads app %d (branch %s)", appID, branchOrPublic(branch)), logFile)
	job.ExecStartPre, job.Argv = installCommands(loc.exe, appID, branch, dir, r.cfg.TwoPass)
	job.ReadWritePaths = []string{loc.home, dir}
	job.Timeout = r.cfg.Timeout
	r.log.Info("running steamcmd", "app", appID, "branch", branchOrPublic(branch), "dir", dir, "twoPass", r.cfg.TwoPass, "log", logFile)
	if _, err := r.run(ctx, op, job); err != nil {
		return "", err
	}
	build, err := verify(dir, appID)
	if err != nil {
		return "", &Error{Reason: IncompleteDownload, Op: op, Err: err, Message: "what steamcmd left does not check out"}
	}
	return build, nil
}

// job is what every steamcmd run shares: its account, its home as HOME and
// working directory, and its output file.
func (r *Runner) job(acct gameuser.Account, loc location, unit, description, logFile string) systemd.Job {
	return systemd.Job{Unit: unit, Description: description, User: acct.Name, Group: acct.Name,
		WorkingDirectory: loc.home, Environment: []string{"HOME=" + loc.home}, OutputFile: logFile}
}

// prepare makes the log directory and stops a steamcmd of the other kind
// left running (the agent was killed during it: two steamcmds must not
// share the home). A leftover of the same unit Run stops itself.
func (r *Runner) prepare(ctx context.Context, op, unit, other string) (logFile string, err error) {
	if err := ensureRootDir(r.cfg.Root, r.cfg.LogDir); err != nil {
		return "", &Error{Reason: failedReason(op), Op: op, Message: "steamcmd's log directory", Err: err}
	}
	st, err := r.units.State(ctx, other)
	if err != nil {
		return "", &Error{Reason: failedReason(op), Op: op, Message: "reading " + other, Err: err}
	}
	if st.ActiveState != "inactive" && st.ActiveState != "failed" {
		r.log.Info("stopping a steamcmd run left from before", "unit", other, "state", st.ActiveState)
		if err := r.units.Stop(ctx, other); err != nil {
			return "", &Error{Reason: failedReason(op), Op: op, Message: "stopping a steamcmd run left from before", Err: err}
		}
	}
	name := strings.TrimSuffix(strings.TrimPrefix(unit, "l4m-steamcmd-"), ".service")
	return filepath.Join(r.cfg.LogDir, name+".log"), nil
}

// run runs a job and returns its output, or an *Error saying why it
// failed. A cancelled ctx comes back as the context's error.
func (r *Runner) run(ctx context.Context, op string, job systemd.Job) (string, error) {
	res, err := r.units.Run(ctx, job)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", &Error{Reason: failedReason(op), Op: op, Message: "running steamcmd's unit " + job.Unit, Err: err}
	}
	output, rerr := readTail(job.OutputFile, maxOutput)
	if rerr != nil {
		r.log.Info("cannot read steamcmd's output", "file", job.OutputFile, "error", rerr.Error())
	}
	reason, why := classify(op, res, output, r.cfg.TwoPass, job.Timeout)
	if reason != "" {
		r.log.Info("steamcmd failed", "op", op, "reason", reason, "exit", res.ExitCode, "result", res.Result, "log", job.OutputFile)
		return "", &Error{Reason: reason, Op: op, Message: why + "; " + describeOutput(output, job.OutputFile)}
	}
	return output, nil
}

// maxOutput is how much of steamcmd's output is read back: all of an app
// info print, the end of an hour of download progress.
const maxOutput = 4 << 20

func failedReason(op string) string {
	if op == "check" {
		return CheckFailed
	}
	return DownloadFailed
}

func branchOrPublic(b string) string {
	if b == "" {
		return publicBranch
	}
	return b
}

func validApp(appID int32, branch string) error {
	if appID <= 0 {
		return fmt.Errorf("app id %d is not a Steam app", appID)
	}
	return validBranch(branch)
}

// roomFor refuses to start a download the disk cannot hold.
func (r *Runner) roomFor(dir string, size int64) error {
	free, err := r.statfs(dir)
	if err != nil {
		return &Error{Reason: DownloadFailed, Op: "install", Message: "the download directory", Err: err}
	}
	have := usedBytes(dir)
	need := spaceNeeded(size, have, r.cfg.MinFreeBytes)
	if free >= need {
		return nil
	}
	return &Error{Reason: InsufficientDisk, Op: "install", Message: fmt.Sprintf(
		"%s has %s free, the download needs %s (the build %s, less %s already there, plus %s headroom); steamcmd was not started",
		dir, bytesText(free), bytesText(need), bytesText(size), bytesText(have), bytesText(r.cfg.MinFreeBytes))}
}

// freeBytes is statfs's space available to unprivileged users.
func freeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// usedBytes is the disk space the regular files below dir take, each
// inode once: what a resumed download need not fetch again. It follows no
// symlink; what it cannot read counts as nothing.
func usedBytes(dir string) int64 {
	seen := map[uint64]bool{}
	var total int64
	filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total
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

// ensureRootDir makes dir and its missing parents (mode 0700; inside root
// through safefs) and checks that only this process's user (root) can
// write it: systemd opens steamcmd's output files there as root, so nobody
// else may plant a link in it.
func ensureRootDir(root, dir string) error {
	owner := safefs.Owner{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o700}
	var d *safefs.Dir
	rroot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	if rel, inside := within(rroot, dir); inside {
		top, err := safefs.Open(rroot)
		if err != nil {
			return err
		}
		defer top.Close()
		if d, err = top.MkdirAll(rel, owner); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if d, err = safefs.Open(dir); err != nil {
			return err
		}
	}
	defer d.Close()
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) != owner.UID || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is uid %d, mode %#o: it must be uid %d's and writable by it alone (systemd writes steamcmd's output there as root)",
			dir, st.Uid, st.Mode&0o777, owner.UID)
	}
	return nil
}

// verify checks what steamcmd left in dir without following a symlink the
// account may have planted: the app manifest is a regular file naming a
// build, its download complete (every byte downloaded and staged), and
// srcds_run is an executable regular file. It returns the build id.
func verify(dir string, appID int32) (string, error) {
	d, err := safefs.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	rel := filepath.Join("steamapps", "appmanifest_"+strconv.Itoa(int(appID))+".acf")
	data, err := d.ReadFile(rel, 1<<20)
	if err != nil {
		return "", fmt.Errorf("the app manifest: %w", err)
	}
	path := filepath.Join(dir, rel)
	build, complete, err := steam.ParseAppManifest(data, path)
	if err != nil {
		return "", err
	}
	if !complete {
		return "", fmt.Errorf("app manifest %s: the download is not finished (%s)", path, progress(data))
	}
	if !isBuildID(build) {
		return "", fmt.Errorf("app manifest %s: buildid %q is no build", path, build)
	}
	if id, ok := manifestField(data, "appid"); ok && id != strconv.Itoa(int(appID)) {
		return "", fmt.Errorf("app manifest %s: appid %s, want %d", path, id, appID)
	}
	st, err := d.Lstat("srcds_run")
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s is missing: steamcmd installed no linux server", filepath.Join(dir, "srcds_run"))
	case err != nil:
		return "", err
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return "", fmt.Errorf("%s is not a regular file (mode %#o): refusing it", filepath.Join(dir, "srcds_run"), st.Mode)
	case st.Mode&0o111 == 0:
		return "", fmt.Errorf("%s is not executable", filepath.Join(dir, "srcds_run"))
	}
	return build, nil
}

// progress says how far a manifest's download got.
func progress(manifest []byte) string {
	var parts []string
	for _, k := range []string{"StateFlags", "BytesDownloaded", "BytesToDownload", "BytesStaged", "BytesToStage"} {
		if v, ok := manifestField(manifest, k); ok {
			parts = append(parts, k+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

func manifestField(manifest []byte, key string) (string, bool) {
	root, err := steam.ParseKeyValues(string(manifest))
	if err != nil {
		return "", false
	}
	return root.String(key)
}
