package steamcmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/safefs"
)

// location is where steamcmd is, its symlinks resolved: steamcmd.sh finds
// linux32/steamcmd beside the path it was called by, so it fails when
// called through a symlink placed elsewhere.
type location struct {
	// path is the configured one; exe is it resolved, in home.
	path, exe, home string
	// linked: the configured path's last component is a symlink into
	// another directory. Inside the node root that is refused (see own).
	linked bool
}

// locate resolves the configured path. It is done once, at the first
// success: the directory becomes the account's, and a symlink the account
// planted there later must not move steamcmd's home (and with it what the
// node hands over to the account) anywhere else.
func locate(path string) (location, error) {
	exe, err := filepath.EvalSymlinks(path)
	if err != nil {
		return location{}, err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return location{}, err
	}
	home := filepath.Dir(exe)
	return location{path: path, exe: exe, home: home, linked: dir != home}, nil
}

// runnable checks that exe is an executable regular file.
func runnable(exe string) error {
	fi, err := os.Stat(exe)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", exe)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (mode %v)", exe, fi.Mode().Perm())
	}
	return nil
}

// ownedHome is the one directory of the node root the node hands to the
// steamcmd account: <root>/steamcmd. Any other directory there may hold
// what root runs or keeps (bin/l4m-node, a server's data, the games'
// trees), so it is treated like a directory outside the root: it must
// already be the account's.
const ownedHome = "steamcmd"

// managedTrees are the node root's directories the agent manages for
// games and builds: steamcmd's home is never one of them, even when the
// account owns it.
var managedTrees = map[string]bool{"installation": true, "instances": true, "runtime": true, "overlays": true, "tmp": true, "log": true, "steamclient": true}

// own makes steamcmd's home writable by its account, which steamcmd needs:
// it updates itself and keeps its caches beside its executable. A home in
// the node root is the node's to give: its root-owned entries (an admin
// unpacked steamcmd as root) move to the account, every time, so a
// takeover cut short is finished by the next. A home elsewhere is the
// admin's: it must already be the account's.
//
// The home's parent should be root's, so the account cannot swap the home
// itself; the walk follows no symlink and enters no mount. A hard link the
// account made to someone else's file would be re-owned with it: the
// kernel's fs.protected_hardlinks (on by default) stops the account making
// one to a file it cannot write.
//
// walk false skips the chown walk (a steamcmd run is under way, which
// was handed the home before it started, and is changing files there).
func own(root string, loc location, acct gameuser.Account, walk bool) error {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	rel, inside := within(root, loc.home)
	chown := fmt.Sprintf("chown -R %s:%s %s", acct.Name, acct.Name, loc.home)
	if rel != ownedHome {
		if inside {
			if first, _, _ := strings.Cut(rel, "/"); managedTrees[first] {
				return fmt.Errorf("steamcmd's directory %s is inside the node's %s/ tree, which the node manages for games and builds; give steamcmd a directory of its own (default %s)",
					loc.home, first, filepath.Join(root, ownedHome))
			}
		}
		fi, err := os.Stat(loc.home)
		if err != nil {
			return err
		}
		if uid := ownerOf(fi); uid != acct.UID {
			return fmt.Errorf("steamcmd's directory %s belongs to uid %d, not to %s (uid %d): steamcmd updates itself there, and the node hands over no directory but %s; run: %s",
				loc.home, uid, acct.Name, acct.UID, filepath.Join(root, ownedHome), chown)
		}
		return nil
	}
	if loc.linked {
		return fmt.Errorf("steamcmd at %s is a symlink to %s: inside the node root %s the node hands steamcmd's directory to %s, so it must be the file itself, not a link to another directory",
			loc.path, loc.exe, root, acct.Name)
	}
	r, err := safefs.Open(root)
	if err != nil {
		return err
	}
	defer r.Close()
	d, err := r.OpenDir(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) != 0 && int(st.Uid) != acct.UID {
		return fmt.Errorf("steamcmd's directory %s belongs to uid %d, neither root nor %s (uid %d): the node hands over only root's files; run: %s",
			loc.home, st.Uid, acct.Name, acct.UID, chown)
	}
	if !walk {
		return nil
	}
	return d.ChownTree(0, acct.UID, acct.GID)
}

// within says whether path lies strictly inside root (both clean and
// resolved), and where.
func within(root, path string) (rel string, inside bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

func ownerOf(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
