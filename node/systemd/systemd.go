// Package systemd is the node agent's small window onto systemd: unit
// files under /run/systemd/system, and the few D-Bus calls the agent needs
// (go-systemd's *Context methods with buffered job channels). The agent
// depends on the Manager interface, so its logic is tested without a bus.
package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/dbus"
	"github.com/go-logr/logr"
	godbus "github.com/godbus/dbus/v5"
)

// UnitDir is where the agent writes its units: runtime units, gone at
// reboot, when the agent writes them again.
const UnitDir = "/run/systemd/system"

// State is what the agent reads of a unit.
type State struct {
	Name        string
	LoadState   string
	ActiveState string // active, inactive, failed, activating, deactivating
	SubState    string
	MainPID     uint32
	NRestarts   uint32
	// StartedAt is ExecMainStartTimestamp in microseconds since the epoch.
	StartedAt uint64
}

// Manager is what the agent does with systemd.
type Manager interface {
	// WriteUnit writes a unit file and says what changed.
	WriteUnit(name, content string) (Change, error)
	// RemoveUnit deletes a unit file (no error if it is gone).
	RemoveUnit(name string) error
	// HasUnitFile says whether UnitDir holds a file of exactly this name.
	// (Names are never globs: systemd's escapes, "\x2d" for "-" in a
	// mount unit, are glob escapes too.)
	HasUnitFile(name string) (bool, error)
	// ReadUnit returns a unit file's content ("" when there is none).
	ReadUnit(name string) (string, error)
	// UnitFiles lists the names of the unit files in UnitDir.
	UnitFiles() ([]string, error)
	Reload(ctx context.Context) error
	Start(ctx context.Context, name string) error
	// Enqueue asks for a start and returns once systemd has queued the job;
	// how it went arrives through Changes.
	Enqueue(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Restart(ctx context.Context, name string) error
	State(ctx context.Context, name string) (State, error)
	// ActiveUnits are the loaded units matching a glob (systemctl's
	// patterns: "l4m-fetch-*.service") that are active or on their way
	// (activating, deactivating, reloading).
	ActiveUnits(ctx context.Context, pattern string) ([]string, error)
	// Run runs a command to its end in a transient hardened service (a
	// leftover unit of its name is stopped first) and says how it ended;
	// it stops the unit when ctx ends.
	Run(ctx context.Context, j Job) (JobResult, error)
	// Changes delivers the name of every unit whose state changed, from
	// D-Bus signals, until ctx ends.
	Changes(ctx context.Context) (<-chan string, error)
}

// Change is what WriteUnit did.
type Change int

const (
	Unchanged Change = iota
	// Created is a new file: systemd loads it when first asked, no reload needed.
	Created
	// Updated is a new version of a file systemd may have loaded: reload.
	Updated
)

// DBus is the real Manager, over systemd's private socket.
type DBus struct {
	// Log reports what the signal subscription loses (set it after Connect).
	Log  logr.Logger
	conn *dbus.Conn // method calls
	sig  *dbus.Conn // signals (Changes), opened on first use
	dir  string
}

// Connect opens the connection (as root, to /run/systemd/private).
func Connect(ctx context.Context) (*DBus, error) {
	c, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	return &DBus{conn: c, dir: UnitDir}, nil
}

// connect reaches systemd through the system bus when there is one, and
// its private socket otherwise. On the private socket systemd sends every
// connection every unit's every property change, subscribed or not: while
// a hundred games start that is thousands of large messages each
// connection must read and decode before the reply or job signal it waits
// for (measured: 60% of the agent's CPU, and a mount job's completion
// seen a third of a second late). Through the bus, dbus-daemon delivers
// only what a connection asked for.
func connect(ctx context.Context) (*dbus.Conn, error) {
	if c, err := dbus.NewSystemConnectionContext(ctx); err == nil {
		return c, nil
	}
	return dbus.NewSystemdConnectionContext(ctx)
}

// Close closes the connections.
func (d *DBus) Close() {
	d.conn.Close()
	if d.sig != nil {
		d.sig.Close()
	}
}

func (d *DBus) WriteUnit(name, content string) (Change, error) {
	path := filepath.Join(d.dir, name)
	change := Created
	if old, err := os.ReadFile(path); err == nil {
		if bytes.Equal(old, []byte(content)) {
			return Unchanged, nil
		}
		change = Updated
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return Unchanged, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return Unchanged, fmt.Errorf("write unit %s: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Unchanged, fmt.Errorf("write unit %s: %w", name, err)
	}
	return change, nil
}

func (d *DBus) RemoveUnit(name string) error {
	err := os.Remove(filepath.Join(d.dir, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove unit %s: %w", name, err)
	}
	return nil
}

func (d *DBus) HasUnitFile(name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for unit file %s: %w", name, err)
	}
	return true, nil
}

func (d *DBus) ReadUnit(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read unit file %s: %w", name, err)
	}
	return string(b), nil
}

func (d *DBus) UnitFiles() ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list unit files in %s: %w", d.dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (d *DBus) Reload(ctx context.Context) error {
	if err := d.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// Enable enables unit files as `systemctl enable` does: the links their
// [Install] sections ask for (under /etc/systemd/system), then a reload so
// systemd sees them. A unit already enabled is no error. l4m-node join uses
// it for l4m-node.service itself; the agent's own units are runtime units
// started by the agent and never enabled.
func (d *DBus) Enable(ctx context.Context, names ...string) error {
	if _, _, err := d.conn.EnableUnitFilesContext(ctx, names, false, false); err != nil {
		return fmt.Errorf("enable %s: %w", strings.Join(names, " "), err)
	}
	return d.Reload(ctx)
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job runs a unit job and waits for its result; the channel is buffered so
// go-systemd never blocks delivering it.
func (d *DBus) job(ctx context.Context, what, name string, f jobFunc) error {
	ch := make(chan string, 1)
	if _, err := f(ctx, name, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s %s: job %s", what, name, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", what, name, ctx.Err())
	}
}

func (d *DBus) Start(ctx context.Context, name string) error {
	return d.job(ctx, "start", name, d.conn.StartUnitContext)
}

func (d *DBus) Enqueue(ctx context.Context, name string) error {
	if _, err := d.conn.StartUnitContext(ctx, name, "replace", nil); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (d *DBus) Stop(ctx context.Context, name string) error {
	return d.job(ctx, "stop", name, d.conn.StopUnitContext)
}

func (d *DBus) Restart(ctx context.Context, name string) error {
	return d.job(ctx, "restart", name, d.conn.RestartUnitContext)
}

func (d *DBus) State(ctx context.Context, name string) (State, error) {
	// Single properties, not GetAll: a service has hundreds, and the agent
	// reads these for every Instance on every pass. They are asked for all
	// at once (D-Bus pipelines calls on one connection): one round trip to
	// a busy PID 1 instead of six.
	st := State{Name: name}
	type read struct {
		iface, prop string
		set         func(any)
	}
	reads := []read{
		{"Unit", "LoadState", func(v any) { st.LoadState, _ = v.(string) }},
		{"Unit", "ActiveState", func(v any) { st.ActiveState, _ = v.(string) }},
		{"Unit", "SubState", func(v any) { st.SubState, _ = v.(string) }},
	}
	if strings.HasSuffix(name, ".service") {
		reads = append(reads,
			read{"Service", "MainPID", func(v any) { st.MainPID, _ = v.(uint32) }},
			read{"Service", "NRestarts", func(v any) { st.NRestarts, _ = v.(uint32) }},
			read{"Service", "ExecMainStartTimestamp", func(v any) { st.StartedAt, _ = v.(uint64) }})
	}
	values := make([]any, len(reads))
	errs := make([]error, len(reads))
	var wg sync.WaitGroup
	for i, r := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p *dbus.Property
			if r.iface == "Unit" {
				p, errs[i] = d.conn.GetUnitPropertyContext(ctx, name, r.prop)
			} else {
				p, errs[i] = d.conn.GetServicePropertyContext(ctx, name, r.prop)
			}
			if errs[i] == nil {
				values[i] = p.Value.Value()
			}
		}()
	}
	wg.Wait()
	for i, r := range reads {
		if errs[i] != nil {
			if r.iface == "Service" && st.LoadState != "loaded" {
				continue // a unit that is not loaded has no service properties
			}
			return st, fmt.Errorf("read %s of %s: %w", r.prop, name, errs[i])
		}
		r.set(values[i])
	}
	return st, nil
}

func (d *DBus) ActiveUnits(ctx context.Context, pattern string) ([]string, error) {
	units, err := d.conn.ListUnitsByPatternsContext(ctx, []string{"active", "activating", "deactivating", "reloading"}, []string{pattern})
	if err != nil {
		return nil, fmt.Errorf("list units %s: %w", pattern, err)
	}
	names := make([]string, 0, len(units))
	for _, u := range units {
		names = append(names, u.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Changes sends the names of units whose state changed (see stateChange).
// It subscribes on a connection of its own. Starting a hundred games
// makes systemd send thousands of signals (every mount changes every mount
// unit's state); on the calls' connection each reply would queue behind
// them (seconds, measured), here they only cost this goroutine.
func (d *DBus) Changes(ctx context.Context) (<-chan string, error) {
	sig, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd for signals: %w", err)
	}
	d.sig = sig
	if err := sig.Subscribe(); err != nil {
		return nil, fmt.Errorf("subscribe to systemd signals: %w", err)
	}
	// The properties subscriber hands over what the signal carries. (The
	// sub-state subscriber would fetch all of a unit's properties for every
	// signal: half a CPU with 20 games, measured.)
	updates := make(chan *dbus.PropertiesUpdate, 4096)
	errs := make(chan error, 16)
	sig.SetPropertiesSubscriber(updates, errs)
	out := make(chan string, 4096)
	go func() {
		defer close(out)
		lost := 0
		seen := unitStates{}
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-updates:
				if !seen.changed(u.UnitName, u.Changed) {
					continue
				}
				select {
				case out <- u.UnitName:
				default: // the agent resyncs periodically; never block the bus
				}
			case err := <-errs:
				// A signal that could not be decoded: the unit it was
				// about is looked at again at the next resync.
				lost++
				if lost == 1 || lost%100 == 0 {
					d.Log.Error(err, "systemd signal lost; the agent's resync covers it", "lostSoFar", lost)
				}
			}
		}
	}()
	return out, nil
}

// unitStates is each unit's last ActiveState/SubState as its signals
// said, so that only a real change is passed on: systemd signals every
// state twice (its Unit and its Service interface), and a start the
// watcher queued itself begins with "activating (start)", which it knows.
// Measured with busctl monitor, a Type=exec start signals inactive/dead
// (the job queued), activating/start, active/running and active/running
// again; two of those reach the agent.
type unitStates map[string]string

// changed records what a unit's property change says of its state and
// whether the watcher should act on it: its ActiveState or SubState moved,
// other than into a start in progress. A start by systemd itself (a
// crashed game's auto-restart) is one to act on.
func (s unitStates) changed(unit string, props map[string]godbus.Variant) bool {
	active, hasActive := props["ActiveState"]
	sub, hasSub := props["SubState"]
	if !hasActive && !hasSub {
		return false
	}
	// Only left4me's units are remembered (one short string each, for the
	// games this host ran), so the host's other units cannot grow it.
	ours := strings.HasPrefix(unit, "l4m-")
	last, known := s[unit]
	lastActive, lastSub, _ := strings.Cut(last, "/")
	a, b := lastActive, lastSub
	if hasActive {
		a, _ = active.Value().(string)
	}
	if hasSub {
		b, _ = sub.Value().(string)
	}
	now := a + "/" + b
	if ours {
		s[unit] = now
	}
	if known && now == last {
		return false
	}
	return a != "activating" || b == "auto-restart"
}
