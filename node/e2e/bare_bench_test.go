package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/unit"
)

// bareMode is what of a left4me game a benchmark's bare start has, to
// show what each costs: an overlay mount of its own (systemd-mount), or
// the game unit's sandbox (unit.Hardening, the root hidden but for the
// installation).
type bareMode struct{ mount, hardened bool }

func (m bareMode) unit(i int) string {
	switch {
	case m.mount:
		return fmt.Sprintf("bare-mounted-%d", i)
	case m.hardened:
		return fmt.Sprintf("bare-hardened-%d", i)
	}
	return fmt.Sprintf("bare-%d", i)
}

// start starts bare game i on sb with systemd-run (which returns once its
// unit started), listening on port and clientPort.
func (m bareMode) start(sb *sandboxtest.Sandbox, i, port, clientPort int) error {
	dir := "/var/lib/left4me/installation"
	if m.mount {
		rt := fmt.Sprintf("bare/%d", i)
		for _, d := range []string{"upper", "work", "merged"} {
			os.MkdirAll(filepath.Join(sb.Left4meDir, rt, d), 0o755)
		}
		dir = "/var/lib/left4me/" + rt + "/merged"
		// overlay ignores the source; systemd-mount wants a path.
		if _, err := sb.Exec("systemd-mount", "-t", "overlay", "-o", "lowerdir=/var/lib/left4me/installation,upperdir=/var/lib/left4me/"+rt+
			"/upper,workdir=/var/lib/left4me/"+rt+"/work", "/var/lib/left4me/installation", dir); err != nil {
			return err
		}
	}
	args := []string{"systemd-run", "--unit=" + m.unit(i), "-p", "WorkingDirectory=" + dir}
	if m.hardened {
		args = append(args, "-p", "Type=exec", "-p", "TemporaryFileSystem=/var/lib/left4me:ro", "-p", "BindReadOnlyPaths="+dir)
		for _, h := range unit.Hardening() {
			args = append(args, "-p", h)
		}
	}
	args = append(args, dir+"/srcds_run", "-game", "left4dead2", "+ip", "0.0.0.0", "+hostport", strconv.Itoa(port),
		"+clientport", strconv.Itoa(clientPort), "-nohltv")
	_, err := sb.Exec(args...)
	return err
}

// stop stops bare game i and its mount.
func (m bareMode) stop(sb *sandboxtest.Sandbox, i int) {
	sb.Exec("systemctl", "stop", m.unit(i))
	if m.mount {
		sb.Exec("systemd-mount", "--umount", fmt.Sprintf("/var/lib/left4me/bare/%d/merged", i))
	}
}
