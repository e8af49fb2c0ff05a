package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/gameuser"
)

// TestRunOnSystemd runs DBus.Run against a real systemd: it boots a
// sandbox host and runs this test binary in it (TestRunInsideSandbox),
// which talks to that host's systemd.
func TestRunOnSystemd(t *testing.T) {
	sb := sandboxtest.Boot(t, "runner-systemd")
	sb.RunInside(t, "TestRunInsideSandbox")
}

func TestRunInsideSandbox(t *testing.T) {
	if !sandboxtest.Inside() {
		t.Skip("runs inside a sandbox host, started by TestRunOnSystemd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	acct, err := (&gameuser.System{}).EnsureService("l4m-runner", "runner test")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := (&gameuser.System{}).EnsureService("l4m-runner", "runner test"); err != nil || again != acct {
		t.Fatalf("EnsureService again = %+v, %v; want %+v", again, err, acct)
	}
	base := "/var/lib/left4me/run"
	rw, logs := filepath.Join(base, "rw"), filepath.Join(base, "logs")
	for _, dir := range []string{rw, logs} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(rw, acct.UID, acct.GID); err != nil {
		t.Fatal(err)
	}
	n := 0
	job := func(script string) Job {
		n++
		return Job{Unit: "l4m-runner-test.service", Description: "runner test", Argv: []string{"/bin/sh", "-c", script},
			User: acct.Name, Group: acct.Name, WorkingDirectory: rw, ReadWritePaths: []string{rw},
			Environment: []string{"GREETING=hello"}, OutputFile: filepath.Join(logs, fmt.Sprintf("%d.log", n))}
	}
	output := func(j Job) string {
		b, err := os.ReadFile(j.OutputFile)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	gone := func(name string) {
		t.Helper()
		st, err := d.State(ctx, name)
		if err != nil || st.ActiveState != "inactive" {
			t.Fatalf("after the run %s is %+v, %v; want inactive", name, st, err)
		}
	}

	t.Run("success as the account", func(t *testing.T) {
		j := job(`id -u; id -g; echo "$GREETING $PWD"; echo to-stderr >&2; touch made-here`)
		res, err := d.Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 0, Result: "success"}) {
			t.Fatalf("Run = %+v, %v\n%s", res, err, output(j))
		}
		want := fmt.Sprintf("%d\n%d\nhello %s\nto-stderr\n", acct.UID, acct.GID, rw)
		if got := output(j); got != want {
			t.Fatalf("output %q, want %q", got, want)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(rw, "made-here"), &st); err != nil || int(st.Uid) != acct.UID {
			t.Fatalf("made-here: uid %d, %v; want %d", st.Uid, err, acct.UID)
		}
		gone(j.Unit)
	})
	t.Run("the host's processes hidden, only inet and unix sockets", func(t *testing.T) {
		// PID 1 is systemd, root's: ProtectProc=invisible hides it. An
		// AF_NETLINK socket (what ip(8) opens) is refused.
		j := job(`[ -e /proc/1/cmdline ] && echo pid1 visible || echo pid1 hidden; ip -o link 2>&1 | head -1 | grep -q 'Address family not supported' && echo netlink refused || echo netlink allowed`)
		res, err := d.Run(ctx, j)
		if err != nil || !res.Succeeded() {
			t.Fatalf("Run = %+v, %v\n%s", res, err, output(j))
		}
		if got := output(j); got != "pid1 hidden\nnetlink refused\n" {
			t.Fatalf("output %q, want pid 1 hidden and netlink refused", got)
		}
	})
	t.Run("exit code", func(t *testing.T) {
		j := job(`echo failing; exit 8`)
		res, err := d.Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 8, Result: "exit-code"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got := output(j); got != "failing\n" {
			t.Fatalf("output %q", got)
		}
		gone(j.Unit) // reset: the name can be used again
	})
	t.Run("signal", func(t *testing.T) {
		res, err := d.Run(ctx, job(`kill -SEGV $$`))
		if err != nil || res.ExitCode != 139 || (res.Result != "core-dump" && res.Result != "signal") {
			t.Fatalf("Run = %+v, %v", res, err)
		}
	})
	t.Run("failing ExecStartPre", func(t *testing.T) {
		j := job(`echo main ran`)
		j.ExecStartPre = [][]string{{"/bin/sh", "-c", "echo pre; exit 3"}}
		res, err := d.Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 3, Result: "exit-code"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got := output(j); got != "pre\n" {
			t.Fatalf("output %q", got)
		}
	})
	t.Run("writes outside ReadWritePaths refused", func(t *testing.T) {
		// /var/lib/left4me/run is the account's too (mode 0777), so only
		// the sandbox stops the write, not permissions.
		open := filepath.Join(base, "open")
		os.MkdirAll(open, 0o777)
		os.Chmod(open, 0o777)
		// /tmp and /var/tmp are the unit's own (PrivateTmp), /root is hidden.
		j := job(`for f in ` + open + `/x /etc/x /usr/x /root/x; do touch $f 2>&1 || true; done; touch /tmp/x /var/tmp/x && echo private tmp ok`)
		res, err := d.Run(ctx, j)
		if err != nil || !res.Succeeded() {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		out := output(j)
		if !strings.Contains(out, "cannot touch '/root/x': Permission denied") {
			t.Errorf("/root was not hidden:\n%s", out)
		}
		for _, f := range []string{open + "/x", "/etc/x", "/usr/x"} {
			if !strings.Contains(out, "cannot touch '"+f+"': Read-only file system") {
				t.Errorf("writing %s was not refused with EROFS:\n%s", f, out)
			}
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s was written", f)
			}
		}
		if !strings.Contains(out, "private tmp ok") {
			t.Errorf("the private /tmp was not writable:\n%s", out)
		}
	})
	t.Run("timeout kills", func(t *testing.T) {
		j := job(`echo $$ > pid; exec sleep 600`)
		j.Timeout = time.Second
		start := time.Now()
		res, err := d.Run(ctx, j)
		if err != nil || res.Result != "timeout" {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Fatalf("the timeout took %v", took)
		}
		processGone(t, filepath.Join(rw, "pid"))
		gone(j.Unit)
	})
	t.Run("ctx ends the run", func(t *testing.T) {
		j := job(`echo $$ > pid; exec sleep 600`)
		os.Remove(filepath.Join(rw, "pid"))
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := d.Run(cctx, j); done <- err }()
		waitFile(t, filepath.Join(rw, "pid"))
		ccancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
		processGone(t, filepath.Join(rw, "pid"))
		gone(j.Unit)
	})
	t.Run("leftover running unit replaced", func(t *testing.T) {
		// What an agent killed with -9 mid-run leaves: the unit, running.
		// (systemd expands "$$" to "$".)
		os.Remove(filepath.Join(rw, "pid"))
		if out, err := exec.Command("systemd-run", "--unit=l4m-runner-test.service", "--uid="+acct.Name,
			"--working-directory="+rw, "/bin/sh", "-c", "echo $$$$ > pid; exec sleep 600").CombinedOutput(); err != nil {
			t.Fatalf("systemd-run: %v\n%s", err, out)
		}
		waitFile(t, filepath.Join(rw, "pid"))
		old, _ := os.ReadFile(filepath.Join(rw, "pid"))
		// A killed agent's successor finds it by pattern.
		if names, err := d.ActiveUnits(ctx, "l4m-runner-*.service"); err != nil || !slices.Equal(names, []string{"l4m-runner-test.service"}) {
			t.Fatalf("ActiveUnits(l4m-runner-*.service) = %v, %v; want the leftover", names, err)
		}
		if names, err := d.ActiveUnits(ctx, "l4m-nothing-*.service"); err != nil || len(names) != 0 {
			t.Fatalf("ActiveUnits of a pattern nothing matches = %v, %v", names, err)
		}
		j := job(`echo fresh run`)
		res, err := d.Run(ctx, j)
		if err != nil || !res.Succeeded() {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got := output(j); got != "fresh run\n" {
			t.Fatalf("output %q", got)
		}
		os.WriteFile(filepath.Join(rw, "old-pid"), old, 0o644)
		processGone(t, filepath.Join(rw, "old-pid"))
	})
	t.Run("leftover failed unit replaced", func(t *testing.T) {
		if out, err := exec.Command("systemd-run", "--unit=l4m-runner-test.service", "--wait", "/bin/false").CombinedOutput(); err == nil {
			t.Fatalf("systemd-run /bin/false succeeded\n%s", out)
		}
		if st, _ := d.State(ctx, "l4m-runner-test.service"); st.ActiveState != "failed" {
			t.Fatalf("the leftover is %+v, want failed", st)
		}
		j := job(`echo fresh run`)
		if res, err := d.Run(ctx, j); err != nil || !res.Succeeded() {
			t.Fatalf("Run = %+v, %v", res, err)
		}
	})
	t.Run("a unit enabled and restarted, as l4m-node join does", func(t *testing.T) {
		// A package installs the unit file; join reloads, enables and
		// restarts it, twice when a host joins again (--force).
		const name = "l4m-join-test.service"
		unit := filepath.Join("/etc/systemd/system", name)
		if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wants := filepath.Join("/etc/systemd/system/multi-user.target.wants", name)
		t.Cleanup(func() {
			d.Stop(ctx, name)
			os.Remove(wants)
			os.Remove(unit)
			d.Reload(ctx)
		})
		var pids []uint32
		for range 2 {
			if err := d.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Enable(ctx, name); err != nil {
				t.Fatal(err)
			}
			if err := d.Restart(ctx, name); err != nil {
				t.Fatal(err)
			}
			st, err := d.State(ctx, name)
			if err != nil || st.ActiveState != "active" || st.MainPID == 0 {
				t.Fatalf("after Enable and Restart %s is %+v, %v; want active", name, st, err)
			}
			pids = append(pids, st.MainPID)
		}
		if pids[0] == pids[1] {
			t.Errorf("the second Restart kept process %d; want it restarted", pids[0])
		}
		if target, err := os.Readlink(wants); err != nil || target != unit {
			t.Fatalf("enabled: %s -> %q, %v; want a link to %s", wants, target, err, unit)
		}
	})
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, _ := os.ReadFile(path); strings.HasSuffix(string(b), "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processGone checks that the process whose PID the file holds has exited.
func processGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d is still there: %v", pid, err)
	}
}
