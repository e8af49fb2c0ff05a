package systemd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Job is one command run to its end in a transient, hardened oneshot
// service: steamcmd, which must not run as root nor inside the agent's own
// cgroup (a download must survive neither an agent restart's kill nor
// share the agent's limits).
type Job struct {
	// Unit is the service's name, e.g. "l4m-steamcmd.service". One name
	// is one run at a time: a leftover of the name is stopped first.
	Unit        string
	Description string
	// Argv is the command; Argv[0] is an absolute path.
	Argv []string
	// User and Group it runs as (empty: root, which callers should not want).
	User, Group      string
	WorkingDirectory string
	// Environment holds KEY=VALUE pairs.
	Environment []string
	// ReadWritePaths are the only places the command may write besides its
	// private /tmp (ProtectSystem=strict makes everything else read-only).
	// They must exist.
	ReadWritePaths []string
	// ExecStartPre are commands run before Argv, as the same user with the
	// same sandbox; one failing fails the run.
	ExecStartPre [][]string
	// OutputFile receives stdout and stderr (truncated first). systemd
	// opens it as root, so it belongs in a directory only root writes.
	OutputFile string
	// Timeout kills the run (SIGTERM, then SIGKILL) when it lasts longer:
	// Result "timeout". Zero means no limit.
	Timeout time.Duration
	// NeedsOpenat2 leaves RestrictSUIDSGID off. systemd implements it with
	// a seccomp filter that cannot read openat2's flags (they are in a
	// struct), so it blocks openat2 altogether with ENOSYS, and a command
	// that resolves paths with it (node/safefs: the overlay fetcher's
	// extractor) cannot work. Such a command must keep setuid and setgid
	// bits out of what it writes itself, and what it wrote is checked
	// after (extract.Verify refuses them).
	NeedsOpenat2 bool
	// MemoryMax bounds the unit's memory in bytes (the kernel kills it
	// past that: Result "oom-kill"); zero means no limit. For commands
	// that parse what others sent (a git pack's deltas are resolved in
	// memory).
	MemoryMax uint64
	// TasksMax bounds the unit's processes and threads; zero: systemd's
	// default.
	TasksMax uint64
}

// JobResult is how a Job ended.
type JobResult struct {
	// ExitCode is the main command's exit status, or 128+signal when a
	// signal ended it (as a shell reports it: 139 is SIGSEGV). When an
	// ExecStartPre command failed, it is that command's.
	ExitCode int
	// Result is systemd's Result of the service: "success", "exit-code",
	// "timeout", "signal", "core-dump", "resources", ...
	Result string
}

// Succeeded says whether the job ran to a zero exit.
func (r JobResult) Succeeded() bool { return r.Result == "success" }

// stopTimeout bounds a run's stop: SIGTERM, then SIGKILL after it.
const stopTimeout = 30 * time.Second

func (j Job) validate() error {
	if !strings.HasSuffix(j.Unit, ".service") || strings.ContainsAny(j.Unit, "/ ") {
		return fmt.Errorf("job unit %q: want a service name", j.Unit)
	}
	cmds := append([][]string{j.Argv}, j.ExecStartPre...)
	for _, c := range cmds {
		if len(c) == 0 || !filepath.IsAbs(c[0]) {
			return fmt.Errorf("job %s: command %q: want an absolute path first", j.Unit, c)
		}
	}
	for _, e := range j.Environment {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("job %s: environment entry %q is not KEY=VALUE", j.Unit, e)
		}
	}
	if j.OutputFile != "" && !filepath.IsAbs(j.OutputFile) {
		return fmt.Errorf("job %s: output file %q is not absolute", j.Unit, j.OutputFile)
	}
	return nil
}

// execCommand is systemd's ExecStart= entry on D-Bus: (sasb), the path,
// argv and whether a failure is ignored (go-systemd calls that last one
// UncleanIsFailure, but systemd reads it as "ignore failure").
type execCommand struct {
	Path          string
	Args          []string
	IgnoreFailure bool
}

func execProp(name string, cmds ...[]string) dbus.Property {
	v := make([]execCommand, 0, len(cmds))
	for _, c := range cmds {
		// systemd expands $VAR in the arguments; "$$" is a literal "$".
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = strings.ReplaceAll(a, "$", "$$")
		}
		v = append(v, execCommand{Path: c[0], Args: args})
	}
	return dbus.Property{Name: name, Value: godbus.MakeVariant(v)}
}

func prop(name string, v any) dbus.Property {
	return dbus.Property{Name: name, Value: godbus.MakeVariant(v)}
}

// addressFamilies is systemd's RestrictAddressFamilies property, (bas):
// whether the list allows or denies, and the families.
type addressFamilies struct {
	Allow    bool
	Families []string
}

// jobProperties is the transient unit. The sandbox is the game unit's,
// less what steamcmd cannot live with: it is a 32-bit program
// (SystemCallArchitectures=native would kill it) and its runtime maps
// writable code (MemoryDenyWriteExecute would).
func jobProperties(j Job) []dbus.Property {
	props := []dbus.Property{
		dbus.PropType("oneshot"),
		dbus.PropDescription(j.Description),
		execProp("ExecStart", j.Argv),
		prop("NoNewPrivileges", true),
		prop("ProtectSystem", "strict"),
		prop("ProtectHome", "yes"),
		prop("PrivateTmp", true),
		prop("PrivateDevices", true),
		prop("ProtectKernelTunables", true),
		prop("ProtectKernelModules", true),
		prop("ProtectKernelLogs", true),
		prop("ProtectControlGroups", true),
		prop("LockPersonality", true),
		// The account is steamcmd's, not root's, but it must not watch
		// the host either: no other processes, no shared IPC, no clock or
		// hostname, sockets only for the network and local IPC.
		prop("ProtectProc", "invisible"),
		prop("PrivateIPC", true),
		prop("RemoveIPC", true),
		prop("ProtectClock", true),
		prop("ProtectHostname", true),
		prop("RestrictRealtime", true),
		prop("RestrictAddressFamilies", addressFamilies{Allow: true, Families: []string{"AF_UNIX", "AF_INET", "AF_INET6"}}),
		// The namespaces the command may create: none.
		prop("RestrictNamespaces", uint64(0)),
		prop("CapabilityBoundingSet", uint64(0)),
		prop("UMask", uint32(0o022)),
		prop("TimeoutStopUSec", uint64(stopTimeout/time.Microsecond)),
	}
	if !j.NeedsOpenat2 {
		props = append(props, prop("RestrictSUIDSGID", true))
	}
	if len(j.ExecStartPre) > 0 {
		props = append(props, execProp("ExecStartPre", j.ExecStartPre...))
	}
	if j.User != "" {
		props = append(props, prop("User", j.User))
	}
	if j.Group != "" {
		props = append(props, prop("Group", j.Group))
	}
	if j.WorkingDirectory != "" {
		props = append(props, prop("WorkingDirectory", j.WorkingDirectory))
	}
	if len(j.Environment) > 0 {
		props = append(props, prop("Environment", j.Environment))
	}
	if len(j.ReadWritePaths) > 0 {
		props = append(props, prop("ReadWritePaths", j.ReadWritePaths))
	}
	if j.OutputFile != "" {
		props = append(props, prop("StandardOutputFileToTruncate", j.OutputFile), prop("StandardError", "inherit"))
	}
	if j.Timeout > 0 {
		props = append(props, prop("TimeoutStartUSec", uint64(j.Timeout/time.Microsecond)))
	}
	if j.MemoryMax > 0 {
		props = append(props, prop("MemoryMax", j.MemoryMax), prop("MemorySwapMax", uint64(0)))
	}
	if j.TasksMax > 0 {
		props = append(props, prop("TasksMax", j.TasksMax))
	}
	return props
}

// Run runs j to its end in a transient service and says how it ended. A
// unit of the same name that is still there (an agent killed mid-run left
// it running, or a failed one was never reset) is stopped and reset first.
// When ctx ends the unit is stopped. The unit is reset afterwards, so the
// name can be used again.
func (d *DBus) Run(ctx context.Context, j Job) (JobResult, error) {
	if err := j.validate(); err != nil {
		return JobResult{}, err
	}
	props := jobProperties(j)
	ch := make(chan string, 1)
	for attempt := 0; ; attempt++ {
		if err := d.clear(ctx, j.Unit); err != nil {
			return JobResult{}, err
		}
		_, err := d.conn.StartTransientUnitContext(ctx, j.Unit, "fail", props, ch)
		if err == nil {
			break
		}
		// A stopped or reset unit is collected by systemd's next loop
		// iteration, which may come after our start: wait until it is
		// gone, then clear and start again.
		if busErrorIs(err, "org.freedesktop.systemd1.UnitExists") && attempt < 5 {
			if werr := d.waitUnloaded(ctx, j.Unit, 5*time.Second); werr != nil {
				return JobResult{}, fmt.Errorf("start %s: %w (and waiting for the old one to go: %v)", j.Unit, err, werr)
			}
			continue
		}
		return JobResult{}, fmt.Errorf("start %s: %w", j.Unit, err)
	}
	select {
	case res := <-ch:
		if res == "done" {
			// A successful oneshot is inactive and gone: nothing to reset.
			return JobResult{ExitCode: 0, Result: "success"}, nil
		}
		out, err := d.outcome(ctx, j.Unit)
		if rerr := d.resetFailed(ctx, j.Unit); err == nil {
			err = rerr
		}
		if err == nil && out.Result == "success" {
			err = fmt.Errorf("run %s: start job %s", j.Unit, res) // stopped by someone else
		}
		return out, err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout+10*time.Second)
		defer cancel()
		if err := d.Stop(sctx, j.Unit); err != nil {
			return JobResult{}, fmt.Errorf("run %s: %w (and stopping it: %v)", j.Unit, ctx.Err(), err)
		}
		d.resetFailed(sctx, j.Unit)
		return JobResult{}, fmt.Errorf("run %s: %w", j.Unit, ctx.Err())
	}
}

// clear stops and resets a unit of this name left from an earlier run.
func (d *DBus) clear(ctx context.Context, name string) error {
	st, err := d.State(ctx, name)
	if err != nil {
		return err
	}
	if st.LoadState == "not-found" && st.ActiveState == "inactive" {
		return nil
	}
	if st.ActiveState != "inactive" && st.ActiveState != "failed" {
		if err := d.Stop(ctx, name); err != nil {
			return fmt.Errorf("stop leftover run: %w", err)
		}
	}
	return d.resetFailed(ctx, name)
}

// waitUnloaded polls until systemd has unloaded name (or it is failed or
// running again: clear deals with those), at most max.
func (d *DBus) waitUnloaded(ctx context.Context, name string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		st, err := d.State(ctx, name)
		if err != nil {
			return err
		}
		if st.LoadState == "not-found" || (st.ActiveState != "inactive" && st.ActiveState != "") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still loaded (%s/%s) after %s", name, st.LoadState, st.ActiveState, max)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func (d *DBus) resetFailed(ctx context.Context, name string) error {
	err := d.conn.ResetFailedUnitContext(ctx, name)
	if err != nil && !busErrorIs(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return fmt.Errorf("reset-failed %s: %w", name, err)
	}
	return nil
}

// Exit codes of waitid(2)'s si_code, as ExecMainCode reports them.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

func exitCode(code, status int32) int {
	if code == cldKilled || code == cldDumped {
		return 128 + int(status)
	}
	return int(status)
}

// outcome reads how a failed run ended.
func (d *DBus) outcome(ctx context.Context, name string) (JobResult, error) {
	props, err := d.conn.GetUnitTypePropertiesContext(ctx, name, "Service")
	if err != nil {
		return JobResult{}, fmt.Errorf("read how %s ended: %w", name, err)
	}
	out := JobResult{}
	out.Result, _ = props["Result"].(string)
	code, _ := props["ExecMainCode"].(int32)
	status, _ := props["ExecMainStatus"].(int32)
	out.ExitCode = exitCode(code, status)
	if code == 0 {
		// The main command never ran: an ExecStartPre one failed.
		// ExecStartPre is a(sasbttttuii): ..., pid, code, status.
		if pre, ok := props["ExecStartPre"].([][]any); ok {
			for _, c := range pre {
				if len(c) != 10 {
					continue
				}
				pc, _ := c[8].(int32)
				ps, _ := c[9].(int32)
				if pc != 0 && (pc != cldExited || ps != 0) {
					out.ExitCode = exitCode(pc, ps)
				}
			}
		}
	}
	if out.Result == "" {
		return out, fmt.Errorf("read how %s ended: no Result", name)
	}
	return out, nil
}

// busErrorIs says whether err is the D-Bus error of that name.
func busErrorIs(err error, name string) bool {
	var v godbus.Error
	if errors.As(err, &v) {
		return v.Name == name
	}
	var p *godbus.Error
	return errors.As(err, &p) && p.Name == name
}

// sleepCtx waits d, or less when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
