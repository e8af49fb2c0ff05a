package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJobValidate(t *testing.T) {
	ok := Job{Unit: "l4m-x.service", Argv: []string{"/bin/true"}}
	for name, tc := range map[string]struct {
		change func(*Job)
		bad    bool
	}{
		"fine":             {change: func(*Job) {}},
		"not a service":    {change: func(j *Job) { j.Unit = "l4m-x.mount" }, bad: true},
		"slash in name":    {change: func(j *Job) { j.Unit = "a/b.service" }, bad: true},
		"no argv":          {change: func(j *Job) { j.Argv = nil }, bad: true},
		"relative argv":    {change: func(j *Job) { j.Argv = []string{"true"} }, bad: true},
		"relative pre":     {change: func(j *Job) { j.ExecStartPre = [][]string{{"rm", "x"}} }, bad: true},
		"empty pre":        {change: func(j *Job) { j.ExecStartPre = [][]string{{}} }, bad: true},
		"env without =":    {change: func(j *Job) { j.Environment = []string{"HOME"} }, bad: true},
		"env without key":  {change: func(j *Job) { j.Environment = []string{"=x"} }, bad: true},
		"relative output":  {change: func(j *Job) { j.OutputFile = "out.log" }, bad: true},
		"env and pre fine": {change: func(j *Job) { j.Environment = []string{"A=b=c"}; j.ExecStartPre = [][]string{{"/bin/rm", "-f", "x"}} }},
	} {
		j := ok
		tc.change(&j)
		if err := j.validate(); (err != nil) != tc.bad {
			t.Errorf("%s: validate = %v, want error %v", name, err, tc.bad)
		}
	}
}

// TestJobProperties pins the sandbox: each hardening setting is there, and
// the two steamcmd cannot live with are not.
func TestJobProperties(t *testing.T) {
	j := Job{Unit: "l4m-x.service", Argv: []string{"/bin/true"}, User: "u", Group: "g", OutputFile: "/var/log/x.log",
		ReadWritePaths: []string{"/a"}, ExecStartPre: [][]string{{"/bin/rm", "-f", "/a/b"}}, Timeout: 90 * time.Second}
	got := map[string]any{}
	for _, p := range jobProperties(j) {
		got[p.Name] = p.Value.Value()
	}
	want := map[string]any{
		"Type": "oneshot", "User": "u", "Group": "g", "NoNewPrivileges": true, "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": true, "PrivateDevices": true, "ProtectKernelTunables": true,
		"ProtectKernelModules": true, "ProtectKernelLogs": true, "ProtectControlGroups": true,
		"RestrictSUIDSGID": true, "LockPersonality": true, "RestrictNamespaces": uint64(0),
		"ProtectProc": "invisible", "PrivateIPC": true, "RemoveIPC": true, "ProtectClock": true,
		"ProtectHostname": true, "RestrictRealtime": true,
		"CapabilityBoundingSet": uint64(0), "UMask": uint32(0o022), "TimeoutStartUSec": uint64(90_000_000),
		"StandardOutputFileToTruncate": "/var/log/x.log", "StandardError": "inherit",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if af, _ := got["RestrictAddressFamilies"].(addressFamilies); !af.Allow || !slices.Equal(af.Families, []string{"AF_UNIX", "AF_INET", "AF_INET6"}) {
		t.Errorf("RestrictAddressFamilies = %#v", got["RestrictAddressFamilies"])
	}
	if rw, _ := got["ReadWritePaths"].([]string); !slices.Equal(rw, []string{"/a"}) {
		t.Errorf("ReadWritePaths = %#v", got["ReadWritePaths"])
	}
	for _, k := range []string{"SystemCallArchitectures", "MemoryDenyWriteExecute"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is set: steamcmd (32-bit, writable code) cannot run with it", k)
		}
	}
	if pre, _ := got["ExecStartPre"].([]execCommand); len(pre) != 1 || pre[0].Path != "/bin/rm" || !slices.Equal(pre[0].Args, []string{"/bin/rm", "-f", "/a/b"}) || pre[0].IgnoreFailure {
		t.Errorf("ExecStartPre = %#v", got["ExecStartPre"])
	}
	for _, k := range []string{"MemoryMax", "TasksMax"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is set for a job that asks no bound", k)
		}
	}
	j.MemoryMax, j.TasksMax = 2<<30, 128
	got = map[string]any{}
	for _, p := range jobProperties(j) {
		got[p.Name] = p.Value.Value()
	}
	if got["MemoryMax"] != uint64(2<<30) || got["MemorySwapMax"] != uint64(0) || got["TasksMax"] != uint64(128) {
		t.Errorf("MemoryMax %v MemorySwapMax %v TasksMax %v, want 2 GiB, 0, 128", got["MemoryMax"], got["MemorySwapMax"], got["TasksMax"])
	}
	j.NeedsOpenat2 = true
	for _, p := range jobProperties(j) {
		if p.Name == "RestrictSUIDSGID" {
			t.Errorf("RestrictSUIDSGID = %v for a job that needs openat2: systemd's filter for it blocks openat2", p.Value)
		}
	}
	j.Argv = []string{"/bin/sh", "-c", "echo $$ $HOME"}
	for _, p := range jobProperties(j) {
		if p.Name == "ExecStart" {
			if c := p.Value.Value().([]execCommand); !slices.Equal(c[0].Args, []string{"/bin/sh", "-c", "echo $$$$ $$HOME"}) || c[0].IgnoreFailure {
				t.Errorf("ExecStart = %#v: systemd would expand its $", c)
			}
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		code, status int32
		want         int
	}{{cldExited, 0, 0}, {cldExited, 8, 8}, {cldKilled, 15, 143}, {cldDumped, 11, 139}, {0, 0, 0}} {
		if got := exitCode(tc.code, tc.status); got != tc.want {
			t.Errorf("exitCode(%d, %d) = %d, want %d", tc.code, tc.status, got, tc.want)
		}
	}
}

func fakeJob(t *testing.T, script string) Job {
	dir := t.TempDir()
	return Job{Unit: "l4m-test.service", Argv: []string{"/bin/sh", "-c", script}, WorkingDirectory: dir,
		OutputFile: filepath.Join(dir, "out.log")}
}

func output(t *testing.T, j Job) string {
	t.Helper()
	b, err := os.ReadFile(j.OutputFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFakeRun(t *testing.T) {
	ctx := context.Background()
	t.Run("exit code, output, env, dir", func(t *testing.T) {
		f := NewFake()
		j := fakeJob(t, `echo "out $GREETING $PWD"; echo err >&2; exit 7`)
		j.Environment = []string{"GREETING=hello"}
		os.WriteFile(j.OutputFile, []byte("an earlier run's output\n"), 0o644)
		res, err := f.Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 7, Result: "exit-code"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got, want := output(t, j), "out hello "+j.WorkingDirectory+"\nerr\n"; got != want {
			t.Fatalf("output %q, want %q", got, want)
		}
		if !slices.Equal(f.JobLog(), []string{"run l4m-test.service"}) {
			t.Fatalf("jobs %q", f.JobLog())
		}
	})
	t.Run("success after ExecStartPre", func(t *testing.T) {
		j := fakeJob(t, `cat pre`)
		j.ExecStartPre = [][]string{{"/bin/sh", "-c", "echo from-pre > pre"}}
		res, err := NewFake().Run(ctx, j)
		if err != nil || !res.Succeeded() || res.ExitCode != 0 {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got := output(t, j); got != "from-pre\n" {
			t.Fatalf("output %q", got)
		}
	})
	t.Run("failing ExecStartPre stops the run", func(t *testing.T) {
		j := fakeJob(t, `echo main ran`)
		j.ExecStartPre = [][]string{{"/bin/sh", "-c", "exit 3"}}
		res, err := NewFake().Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 3, Result: "exit-code"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if got := output(t, j); got != "" {
			t.Fatalf("main ran: %q", got)
		}
	})
	t.Run("signal", func(t *testing.T) {
		res, err := NewFake().Run(ctx, fakeJob(t, `kill -KILL $$`))
		if err != nil || res != (JobResult{ExitCode: 137, Result: "signal"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
	})
	t.Run("missing command", func(t *testing.T) {
		j := fakeJob(t, "")
		j.Argv = []string{"/nonexistent/steamcmd.sh"}
		res, err := NewFake().Run(ctx, j)
		if err != nil || res.Result != "exit-code" || res.ExitCode != 203 {
			t.Fatalf("Run = %+v, %v", res, err)
		}
	})
	t.Run("timeout kills", func(t *testing.T) {
		j := fakeJob(t, `echo started; exec sleep 600`)
		j.Timeout = 200 * time.Millisecond
		start := time.Now()
		res, err := NewFake().Run(ctx, j)
		if err != nil || res != (JobResult{ExitCode: 143, Result: "timeout"}) {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("ctx ends the run", func(t *testing.T) {
		j := fakeJob(t, `echo $$ > pid; exec sleep 600`)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := NewFake().Run(cctx, j); done <- err }()
		pidFile := filepath.Join(j.WorkingDirectory, "pid")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, _ := os.ReadFile(pidFile); strings.HasSuffix(string(b), "\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the job never started")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("the job's process %d is still there after Run returned: %v", pid, err)
		}
	})
}
