package sandboxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSandboxLifecycle proves the sandbox host the e2e tests stand on: real
// systemd running, an overlay .mount unit visible to a hardened service,
// the host untouched, and nothing left behind after teardown.
func TestSandboxLifecycle(t *testing.T) {
	Skip(t)
	name := "lifecycle"
	s := Boot(t, name)
	if out := s.MustExec(t, "systemctl", "is-system-running"); strings.TrimSpace(out) != "running" && strings.TrimSpace(out) != "degraded" {
		t.Fatalf("system state %q", out)
	}
	// Writes inside do not reach the host's root.
	marker := "/etc/l4m-sandbox-marker-" + name
	s.MustExec(t, "touch", marker)
	if _, err := os.Stat(marker); err == nil {
		os.Remove(marker)
		t.Fatal("a write inside the sandbox reached the host")
	}
	// /var/lib/left4me inside is the host's state dir.
	s.MustExec(t, "mkdir", "-p", "/var/lib/left4me/lo", "/var/lib/left4me/up", "/var/lib/left4me/wk", "/var/lib/left4me/mg")
	if err := os.WriteFile(filepath.Join(s.Left4meDir, "lo", "f"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unit := "[Mount]\nWhat=overlay\nWhere=/var/lib/left4me/mg\nType=overlay\nOptions=lowerdir=/var/lib/left4me/lo,upperdir=/var/lib/left4me/up,workdir=/var/lib/left4me/wk\n"
	s.MustExec(t, "sh", "-c", "printf '"+unit+"' > /run/systemd/system/var-lib-left4me-mg.mount && systemctl daemon-reload && systemctl start var-lib-left4me-mg.mount")
	// A hardened unit in its own mount namespace sees the merged tree.
	s.MustExec(t, "systemd-run", "--wait", "--unit=reader", "-p", "RequiresMountsFor=/var/lib/left4me/mg", "-p", "ProtectSystem=strict",
		"-p", "PrivateTmp=yes", "-p", "StandardOutput=file:/var/lib/left4me/read.out", "cat", "/var/lib/left4me/mg/f")
	got, _ := os.ReadFile(filepath.Join(s.Left4meDir, "read.out"))
	if string(got) != "from the host\n" {
		t.Fatalf("the hardened unit read %q through the overlay", got)
	}
	// The mount exists only in the sandbox.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), "/var/lib/left4me/mg") {
		t.Fatal("the sandbox's mount is visible on the host")
	}

	// Teardown leaves nothing: no process, cgroup, mount or state dir.
	pid := s.PID
	if out, err := exec.Command(Script(), "down", name).CombinedOutput(); err != nil {
		t.Fatalf("down: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Fatalf("systemd (PID %d) still running after down", pid)
	}
	for _, cg := range []string{"/sys/fs/cgroup/unified/l4m-sandbox-" + name, "/sys/fs/cgroup/l4m-sandbox-" + name} {
		if _, err := os.Stat(cg); err == nil {
			t.Fatalf("cgroup %s left behind", cg)
		}
	}
	if _, err := os.Stat(filepath.Dir(s.Left4meDir)); err == nil {
		t.Fatal("state dir left behind")
	}
	mi, _ = os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), "l4m-sandbox") {
		t.Fatal("mounts left behind")
	}
}
