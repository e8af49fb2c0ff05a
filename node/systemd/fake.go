package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/coreos/go-systemd/v22/unit"
)

// Fake is an in-memory Manager for the agent's unit tests: unit files,
// states, and a log of the jobs it was asked to run.
type Fake struct {
	mu     sync.Mutex
	files  map[string]string
	states map[string]string // ActiveState by unit
	pids   map[string]uint32
	Jobs   []string // "start x", "stop x", "restart x", "reload", "run x"
	next   uint32
	// removeErr, when set, is what RemoveUnit fails with (a read-only
	// /run, say): tests of a cleanup that cannot finish.
	removeErr      error
	lookupErr      error
	lookupFailures int
}

// FailLookups makes HasUnitFile, ReadUnit and UnitFiles fail with err (nil:
// succeed again): a unit directory that cannot be read.
func (f *Fake) FailLookups(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookupErr = err
}

// LookupFailures is how many lookups have failed so far.
func (f *Fake) LookupFailures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookupFailures
}

// FailRemovals makes RemoveUnit fail with err (nil: succeed again).
func (f *Fake) FailRemovals(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeErr = err
}

// ActiveUnits are the units matching pattern (path.Match's globs, as
// systemd's) whose state is active or activating.
func (f *Fake) ActiveUnits(_ context.Context, pattern string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, st := range f.states {
		if ok, _ := path.Match(pattern, name); ok && (st == "active" || st == "activating") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// NewFake returns an empty fake.
func NewFake() *Fake {
	return &Fake{files: map[string]string{}, states: map[string]string{}, pids: map[string]uint32{}, next: 100}
}

func (f *Fake) WriteUnit(name, content string) (Change, error) {
	if err := checkMountName(name, content); err != nil {
		return Unchanged, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.files[name]
	if ok && old == content {
		return Unchanged, nil
	}
	f.files[name] = content
	if ok {
		return Updated, nil
	}
	return Created, nil
}

func (f *Fake) RemoveUnit(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removeErr != nil {
		return fmt.Errorf("remove unit %s: %w", name, f.removeErr)
	}
	delete(f.files, name)
	return nil
}

func (f *Fake) HasUnitFile(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookupErr != nil {
		f.lookupFailures++
		return false, f.lookupErr
	}
	_, ok := f.files[name]
	return ok, nil
}

func (f *Fake) ReadUnit(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookupErr != nil {
		f.lookupFailures++
		return "", f.lookupErr
	}
	return f.files[name], nil
}

func (f *Fake) UnitFiles() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookupErr != nil {
		f.lookupFailures++
		return nil, f.lookupErr
	}
	var out []string
	for name := range f.files {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Files returns a copy of the unit files.
func (f *Fake) Files() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.files {
		out[k] = v
	}
	return out
}

// JobLog returns a copy of the jobs run so far.
func (f *Fake) JobLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.Jobs...)
}

func (f *Fake) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Jobs = append(f.Jobs, "reload")
	return nil
}

func (f *Fake) job(what, name, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return fmt.Errorf("%s %s: unit not found", what, name)
	}
	f.Jobs = append(f.Jobs, what+" "+name)
	f.states[name] = state
	if state == "active" {
		f.next++
		f.pids[name] = f.next
	} else {
		delete(f.pids, name)
	}
	return nil
}

func (f *Fake) Start(_ context.Context, name string) error { return f.job("start", name, "active") }
func (f *Fake) Stop(_ context.Context, name string) error  { return f.job("stop", name, "inactive") }

// Enqueue is Start: the fake's jobs finish at once.
func (f *Fake) Enqueue(ctx context.Context, name string) error { return f.Start(ctx, name) }
func (f *Fake) Restart(_ context.Context, name string) error   { return f.job("restart", name, "active") }

func (f *Fake) State(_ context.Context, name string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := State{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
	if _, ok := f.files[name]; ok {
		st.LoadState = "loaded"
	}
	if s, ok := f.states[name]; ok {
		st.ActiveState = s
		if s == "active" {
			st.SubState = "running"
		}
	}
	st.MainPID = f.pids[name]
	return st, nil
}

func (f *Fake) Changes(ctx context.Context) (<-chan string, error) {
	ch := make(chan string)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// checkMountName refuses what systemd refuses: a .mount unit must be named
// after its Where= path, escaped as systemd escapes it ("-" is "\x2d").
func checkMountName(name, content string) error {
	if !strings.HasSuffix(name, ".mount") {
		return nil
	}
	for _, line := range strings.Split(content, "\n") {
		if where, ok := strings.CutPrefix(line, "Where="); ok {
			where = strings.ReplaceAll(where, "%%", "%")
			if want := unit.UnitNamePathEscape(where) + ".mount"; want != name {
				return fmt.Errorf("mount unit %s for Where=%s: systemd names it %s", name, where, want)
			}
			return nil
		}
	}
	return fmt.Errorf("mount unit %s has no Where=", name)
}

// defaultPath is the PATH systemd gives services.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Run runs the job's commands on this machine with os/exec, as the current
// user (User and Group are ignored; so is the sandbox): environment (and
// systemd's PATH unless the job sets one), working directory, output file,
// ExecStartPre and the timeout, after which the process group gets SIGTERM
// (Result "timeout"). It stops when ctx ends. It records "run <unit>".
func (f *Fake) Run(ctx context.Context, j Job) (JobResult, error) {
	if err := j.validate(); err != nil {
		return JobResult{}, err
	}
	f.mu.Lock()
	f.Jobs = append(f.Jobs, "run "+j.Unit)
	f.mu.Unlock()
	out := io.Discard
	if j.OutputFile != "" {
		file, err := os.OpenFile(j.OutputFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return JobResult{Result: "resources", ExitCode: 209}, nil // systemd's EXIT_STDOUT
		}
		defer file.Close()
		out = file
	}
	runCtx := ctx
	if j.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, j.Timeout)
		defer cancel()
	}
	env := j.Environment
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{defaultPath}, env...)
	}
	for _, argv := range append(slices.Clone(j.ExecStartPre), j.Argv) {
		cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, j.WorkingDirectory, out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		cmd.WaitDelay = stopTimeout
		err := cmd.Run()
		if ctx.Err() != nil {
			return JobResult{}, fmt.Errorf("run %s: %w", j.Unit, ctx.Err())
		}
		if runCtx.Err() != nil {
			return JobResult{ExitCode: exitStatus(cmd.ProcessState), Result: "timeout"}, nil
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			// systemd's EXIT_EXEC: the command could not be started.
			return JobResult{ExitCode: 203, Result: "exit-code"}, nil
		}
		if err != nil {
			res := JobResult{ExitCode: exitStatus(cmd.ProcessState), Result: "exit-code"}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				res.Result = "signal"
				if ws.CoreDump() {
					res.Result = "core-dump"
				}
			}
			return res, nil
		}
	}
	return JobResult{ExitCode: 0, Result: "success"}, nil
}

// exitStatus is the exit code, or 128+signal, as JobResult has it.
func exitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
