package steamcmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/systemd"
)

// probeScript stands in for Valve's steamcmd.sh, which runs linux32/steamcmd
// beside it: before running the double beside it, it tries to write a
// directory anyone may write but the unit's sandbox must not let it.
const probeScript = `#!/bin/sh
if touch /var/lib/left4me/open/probe 2>/dev/null; then
	echo "probe: wrote /var/lib/left4me/open/probe"
else
	echo "probe: cannot write /var/lib/left4me/open/probe"
fi
exec "${0%/*}/steamcmd" "$@"
`

// TestInstallOnSystemd runs Check and Install through a real systemd as the
// real l4m-steamcmd account: it boots a sandbox host with steamcmd (the
// double behind a steamcmd.sh) in the node root and runs this test binary
// inside it (TestInstallInsideSandbox).
func TestInstallOnSystemd(t *testing.T) {
	sb := sandboxtest.Boot(t, "steamcmd-runner")
	home := filepath.Join(sb.Left4meDir, "steamcmd")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, steamcmdBin, filepath.Join(home, "steamcmd"), 0o755)
	copyFile(t, srcdsBin, filepath.Join(home, "srcds-double"), 0o755)
	if err := os.WriteFile(filepath.Join(home, "steamcmd.sh"), []byte(probeScript), 0o755); err != nil {
		t.Fatal(err)
	}
	sb.RunInside(t, "TestInstallInsideSandbox")
}

func TestInstallInsideSandbox(t *testing.T) {
	if !sandboxtest.Inside() {
		t.Skip("runs inside a sandbox host, started by TestInstallOnSystemd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, err := systemd.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const root = "/var/lib/left4me"
	home := filepath.Join(root, "steamcmd")
	setRemote := func(build string) {
		data, _ := json.Marshal(public(build, 64<<20))
		if err := os.WriteFile(filepath.Join(home, "remote.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setRemote("16385467")
	open := filepath.Join(root, "open")
	os.MkdirAll(open, 0o777)
	os.Chmod(open, 0o777)

	r, err := New(DefaultConfig(root), d, &gameuser.System{}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	acct, err := r.Account()
	if err != nil {
		t.Fatal(err)
	}
	// The agent's layout (node/agent's fetchBuild).
	dir := filepath.Join(root, "installation", "l4d2", "staging", "download")
	for _, p := range []string{"installation", "installation/l4d2", "installation/l4d2/staging"} {
		os.Mkdir(filepath.Join(root, p), 0o711)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, acct.UID, acct.GID); err != nil {
		t.Fatal(err)
	}

	// The cached app info is removed as the account, in the unit's sandbox.
	if build, _, err := r.Check(ctx, 222860, "public"); err != nil || build != "16385467" {
		t.Fatalf("Check = %q, %v", build, err)
	}
	setRemote("16400000")
	build, size, err := r.Check(ctx, 222860, "public")
	if err != nil || build != "16400000" || size != 64<<20 {
		t.Fatalf("Check after a new build = %q, %d, %v; want 16400000 (not the cached one), %d", build, size, err, 64<<20)
	}
	got, err := r.Install(ctx, 222860, "public", dir, size)
	if err != nil || got != build {
		t.Fatalf("Install = %q, %v; want %s", got, err, build)
	}
	for _, p := range []string{filepath.Join(dir, "srcds_run"), filepath.Join(dir, "steamapps", "appmanifest_222860.acf"), filepath.Join(home, "appcache", "appinfo.vdf")} {
		if uid := uidOf(t, p); uid != acct.UID {
			t.Errorf("%s: uid %d, want %s's %d (steamcmd runs as its account)", p, uid, acct.Name, acct.UID)
		}
	}
	log, err := os.ReadFile(filepath.Join(root, "log", "steamcmd", "install.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "probe: cannot write /var/lib/left4me/open/probe") {
		t.Errorf("the unit could write outside steamcmd's home and the download:\n%s", log)
	}
	if _, err := os.Lstat(filepath.Join(open, "probe")); err == nil {
		t.Error("steamcmd wrote outside steamcmd's home and the download")
	}
}
