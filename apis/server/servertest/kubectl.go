package servertest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/left4me/left4me/apis/server"
)

// KubectlCmd is the machine's kubectl (Debian's kubernetes-client in CI
// when the machine has none; .ci/run installs it) against s as the admin,
// the way the README says to (--server, --token, --certificate-authority),
// with a HOME of its own so no kubeconfig or cache of the developer's
// takes part. Without kubectl the test is skipped, or fails under CI.
func KubectlCmd(t testing.TB, s *server.Server, args ...string) *exec.Cmd {
	t.Helper()
	bin := kubectlBin(t)
	home := t.TempDir()
	ca := filepath.Join(home, "ca.crt")
	if err := os.WriteFile(ca, s.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--server", s.URL(), "--token", AdminToken(t, s), "--certificate-authority", ca}
	cmd := exec.Command(bin, append(conn, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	return cmd
}

func kubectlBin(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kubectl missing: .ci/run installs kubernetes-client")
		}
		t.Skip("kubectl is not installed (apt-get install kubernetes-client)")
	}
	return bin
}

var kubectlVersion struct {
	once  sync.Once
	minor int
}

// RequireKubectl skips the rest of a test on a kubectl older than
// 1.<minor>: what it checks (explain's layout, --validate=warn) came then.
// Debian's kubernetes-client is 1.20; machine images carry a newer one.
func RequireKubectl(t testing.TB, minor int) {
	t.Helper()
	bin := kubectlBin(t)
	kubectlVersion.once.Do(func() {
		out, err := exec.Command(bin, "version", "--client", "-o", "json").Output()
		if err != nil {
			return
		}
		var v struct {
			ClientVersion struct{ Minor string } `json:"clientVersion"`
		}
		if json.Unmarshal(out, &v) == nil {
			kubectlVersion.minor, _ = strconv.Atoi(strings.TrimRight(v.ClientVersion.Minor, "+"))
		}
	})
	if kubectlVersion.minor < minor {
		t.Skipf("kubectl 1.%d is older than 1.%d, which this check needs", kubectlVersion.minor, minor)
	}
}
