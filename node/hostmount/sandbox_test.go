package hostmount

import (
	"os"
	"path/filepath"
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

// TestHostMountInsideSandbox: an overlay mounted through Host is in PID
// 1's mount table and shows its lower layer; Unmount takes it away, and
// again is no error; a mount onto a missing directory fails naming it.
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
	var h Host
	if err := h.Mount("overlay", merged, "overlay", opts); err != nil {
		t.Fatal(err)
	}
	defer h.Unmount(merged)
	if mi, _ := os.ReadFile("/proc/1/mountinfo"); !strings.Contains(string(mi), " "+merged+" ") {
		t.Fatalf("%s is not in PID 1's mount table:\n%s", merged, mi)
	}
	if got, err := os.ReadFile(filepath.Join(merged, "gameinfo.txt")); err != nil || string(got) != "from the installation\n" {
		t.Fatalf("through the overlay: %q %v", got, err)
	}
	if err := h.Unmount(merged); err != nil {
		t.Fatal(err)
	}
	if mi, _ := os.ReadFile("/proc/1/mountinfo"); strings.Contains(string(mi), " "+merged+" ") {
		t.Fatalf("%s is still mounted", merged)
	}
	if err := h.Unmount(merged); err != nil {
		t.Fatalf("unmounting what is not mounted: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if err := h.Mount("overlay", missing, "overlay", opts); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a mount on a missing directory: %v", err)
	}
}
