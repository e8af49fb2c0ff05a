package systemd

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/unit"
)

// Fake is an in-memory Manager for the agent's unit tests: unit files,
// states, and a log of the jobs it was asked to run.
type Fake struct {
	mu     sync.Mutex
	files  map[string]string
	states map[string]string // ActiveState by unit
	pids   map[string]uint32
	Jobs   []string // "start x", "stop x", "restart x", "reload"
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
