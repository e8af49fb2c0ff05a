package hostmount

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/left4me/left4me/hack/sandboxtest"
)

// TestHostMountOnAHost mounts in a real host's namespace: it boots a
// sandbox host and runs this test binary in it (TestHostMountInsideSandbox).
func TestHostMountOnAHost(t *testing.T) {
	sb := sandboxtest.Boot(t, "hostmount")
	sb.RunInside(t, "TestHostMountInsideSandbox")
}

// TestHostMountInsideSandbox: an overlay in PID 1's mount table, in use
// (a directory of it held open, as a game's namespace or a shell's cwd
// would), leaves the table at Detach, and what holds it still reads
// through it; detaching again is no error.
func TestHostMountInsideSandbox(t *testing.T) {
	if !sandboxtest.Inside() {
		t.Skip("runs inside a sandbox host, started by TestHostMountOnAHost")
	}
	dir := "/var/lib/left4me/hostmount-test"
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "lower", "gameinfo.txt"), []byte("from the installation\n"), 0o644)
	merged := filepath.Join(dir, "merged")
	opts := "lowerdir=" + dir + "/lower,upperdir=" + dir + "/upper,workdir=" + dir + "/work"
	out, err := exec.Command("nsenter", "--mount=/proc/1/ns/mnt", "mount", "-t", "overlay", "-o", opts, "overlay", merged).CombinedOutput()
	if err != nil {
		t.Fatalf("mount in PID 1's namespace: %v %s", err, out)
	}
	var h Host
	defer h.Detach(merged)
	if mi, _ := os.ReadFile("/proc/1/mountinfo"); !strings.Contains(string(mi), " "+merged+" ") {
		t.Fatalf("%s is not in PID 1's mount table:\n%s", merged, mi)
	}
	held, err := os.Open("/proc/1/root" + merged)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := h.Detach(merged); err != nil {
		t.Fatalf("detach an overlay in use: %v", err)
	}
	if mi, _ := os.ReadFile("/proc/1/mountinfo"); strings.Contains(string(mi), " "+merged+" ") {
		t.Fatalf("%s is still in PID 1's mount table", merged)
	}
	f, err := os.OpenFile(filepath.Join("/proc/self/fd", strconv.Itoa(int(held.Fd())), "gameinfo.txt"), os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("what held the overlay lost it: %v", err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != "from the installation\n" {
		t.Fatalf("through the detached overlay: %q", got)
	}
	if err := h.Detach(merged); err != nil {
		t.Fatalf("detaching what is not mounted: %v", err)
	}
}
