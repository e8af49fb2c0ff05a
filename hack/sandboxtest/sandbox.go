// Package sandboxtest boots sandbox hosts (hack/sandbox.sh: a real systemd
// as PID 1 over a throw-away root) for tests, and tears them down when the
// test ends, whether it passed or not.
package sandboxtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Sandbox is one booted sandbox host.
type Sandbox struct {
	Name string
	// PID is the sandbox's systemd, as the host sees it.
	PID int
	// Left4meDir is the host directory that is /var/lib/left4me inside.
	Left4meDir string
	script     string
	stateRoot  string
}

// Script is the path of hack/sandbox.sh.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "sandbox.sh")
}

// Skip skips a test that needs sandboxes when this process cannot boot
// them, saying why; CI runs as root and never skips.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox hosts need root (they mount, unshare and boot systemd)")
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skip("sandbox hosts need systemd installed at /lib/systemd/systemd")
	}
}

// Boot starts a sandbox named name (unique per test) and registers its
// teardown.
func Boot(t testing.TB, name string) *Sandbox {
	t.Helper()
	return BootWith(t, name, Options{})
}

// Options shape a sandbox host.
type Options struct {
	// Addr (ADDR/PREFIX) gives the host its own network namespace, wired to
	// Bridge in the caller's network namespace.
	Addr, Bridge string
}

// BootWith is Boot with options.
func BootWith(t testing.TB, name string, o Options) *Sandbox {
	t.Helper()
	Skip(t)
	s := &Sandbox{Name: name, script: Script(), stateRoot: "/var/tmp/l4m-sandbox"}
	if v := os.Getenv("L4M_SANDBOX_STATE"); v != "" {
		s.stateRoot = v
	}
	// A sandbox left by a killed earlier run goes first.
	exec.Command(s.script, "down", name).Run()
	args := []string{"up", name}
	if o.Addr != "" {
		args = append(args, "--net", o.Addr, "--bridge", o.Bridge)
	}
	out, err := exec.Command(s.script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("boot sandbox %s: %v\n%s", name, err, out)
	}
	s.PID, err = strconv.Atoi(strings.TrimSpace(lastLine(string(out))))
	if err != nil {
		t.Fatalf("boot sandbox %s: no PID in %q", name, out)
	}
	s.Left4meDir = filepath.Join(s.stateRoot, name, "left4me")
	t.Cleanup(func() {
		if out, err := exec.Command(s.script, "down", name).CombinedOutput(); err != nil {
			t.Errorf("tear down sandbox %s: %v\n%s", name, err, out)
		}
	})
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Exec runs a command inside the sandbox and returns its combined output.
func (s *Sandbox) Exec(args ...string) (string, error) {
	cmd := exec.Command(s.script, append([]string{"exec", s.Name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s in sandbox %s: %w: %s", strings.Join(args, " "), s.Name, err, out.String())
	}
	return out.String(), nil
}

// MustExec is Exec that fails the test on error.
func (s *Sandbox) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Link plugs (up) or cuts (down) a networked sandbox's cable.
func (s *Sandbox) Link(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command(s.script, "link", s.Name, state).CombinedOutput(); err != nil {
		return fmt.Errorf("link %s %s: %w: %s", s.Name, state, err, out)
	}
	return nil
}

// Kill kills the sandbox's systemd and everything in it at once, the way a
// host dies, and removes what is left of it.
func (s *Sandbox) Kill() error {
	if out, err := exec.Command(s.script, "down", s.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("kill sandbox %s: %w: %s", s.Name, err, out)
	}
	return nil
}

// insideEnv marks a test binary that RunInside started inside a sandbox
// host.
const insideEnv = "L4M_TEST_INSIDE_SANDBOX"

// Inside reports whether this test binary runs inside a sandbox host,
// started there by RunInside: tests that need the host's own systemd (its
// D-Bus, its accounts) run only then.
func Inside() bool { return os.Getenv(insideEnv) != "" }

// RunInside runs test (a test function of this binary that runs only when
// Inside) in the sandbox host: it copies the test binary to
// /var/lib/left4me/<name>.test there, runs it, logs what it printed, and
// fails unless the test ran and passed.
func (s *Sandbox) RunInside(t testing.TB, test string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Base(self)
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Left4meDir, bin), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.script, "exec", s.Name, "/var/lib/left4me/"+bin, "-test.run", "^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), insideEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside the sandbox:\n%s", out)
	if err != nil {
		t.Fatalf("%s inside the sandbox failed: %v", test, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s did not run inside the sandbox", test)
	}
}
