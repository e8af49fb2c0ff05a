package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/overlay"
	"github.com/left4me/left4me/node/safefs"
)

// The agent runs as root. Below LEFT4ME_ROOT, the game can write two trees
// of its own: runtime/<id>/upper (through the overlay) and instances/<id>/home.
// Everything the agent does in or below those goes through safefs (no
// symlink followed, no mount crossed, owners set on descriptors). The rest
// (instances/<id> itself, runtime/<id>, work, merged, generated/) is root's
// and no game can write it.

// maxOverlayConfig bounds an overlay's cfg/server.cfg: it is read into
// memory and copied into every Instance that stacks the overlay.
const maxOverlayConfig = 1 << 20

// cfgDir is where srcds reads configs, relative to a layer.
const cfgDir = "left4dead2/cfg"

// overlayConfig reads a layer's own left4dead2/cfg/server.cfg, if it has
// one. The layer is a tenant's content: a symlink, FIFO or device there is
// refused, never followed or read.
func overlayConfig(l *overlay.Layer) ([]byte, bool, error) {
	d, err := safefs.Open(l.Path)
	if err != nil {
		return nil, false, err
	}
	defer d.Close()
	data, err := d.ReadFile(cfgDir+"/server.cfg", maxOverlayConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("its %s/server.cfg: %w", cfgDir, err)
	}
	return data, true, nil
}

// prepareDirs creates what an Instance needs on the host, each directory
// owned by root or by the Instance's account, and returns its RCON
// password. Existing directories are left as they are (adoptFiles moves a
// game's files to a new account once the game may restart).
func (a *Agent) prepareDirs(id string, acct gameuser.Account) (string, error) {
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return "", err
	}
	defer root.Close()
	game := func(mode os.FileMode) safefs.Owner { return safefs.Owner{UID: acct.UID, GID: acct.GID, Mode: mode} }
	rootOwned := func(mode os.FileMode) safefs.Owner { return safefs.Owner{Mode: mode} }
	for _, d := range []struct {
		rel   string
		owner safefs.Owner
	}{
		// instances/<id>: the game passes through it to its home, nothing more.
		{"instances/" + id, rootOwned(0o711)},
		{"instances/" + id + "/home", game(0o750)},
		{"instances/" + id + "/generated", rootOwned(0o755)},
		{"runtime/" + id, rootOwned(0o755)},
		{"runtime/" + id + "/work", rootOwned(0o700)},
		{"runtime/" + id + "/merged", rootOwned(0o755)},
		// The upper tree is the game's: what it writes lands here. cfg/ must
		// be its own, or srcds and SourceMod could not write their configs.
		{"runtime/" + id + "/upper/" + cfgDir, game(0o755)},
	} {
		if err := root.EnsureDir(d.rel, d.owner); err != nil {
			return "", fmt.Errorf("prepare %s: %w", id, err)
		}
	}
	if err := a.linkSteamClient(root, id, acct); err != nil {
		// The home is the game's to break: what it planted there costs it
		// its Steam link (LAN mode), and nothing else.
		a.o.Log.Info("not linking steamclient.so into the game's home", "instance", id, "error", err.Error())
	}
	return a.rconPassword(id)
}

// linkSteamClient links the game's ~/.steam/sdk32/steamclient.so to
// steamcmd's, without which srcds drops to LAN mode. The home is the
// game's: whatever it put there already is kept.
func (a *Agent) linkSteamClient(root *safefs.Dir, id string, acct gameuser.Account) error {
	if err := a.copySteamClient(false); err != nil {
		// Said once, not for every start: a node on a hand-made
		// installation never has one.
		a.mu.Lock()
		first := a.steamClientErr != err.Error()
		a.steamClientErr = err.Error()
		a.mu.Unlock()
		if first {
			a.o.Log.Info("no Steam client library for the games yet", "error", err.Error())
		}
	}
	lib := filepath.Join(a.paths.SteamLibDir(), steamClientFile)
	if !fileExists(lib) {
		return nil
	}
	sdk, err := root.MkdirAll("instances/"+id+"/home/.steam/sdk32", safefs.Owner{UID: acct.UID, GID: acct.GID, Mode: 0o755})
	if err != nil {
		return fmt.Errorf("link steamclient.so for %s: %w", id, err)
	}
	defer sdk.Close()
	if err := sdk.Symlink(lib, "steamclient.so"); err != nil {
		return fmt.Errorf("link steamclient.so for %s: %w", id, err)
	}
	return nil
}

// adoptFiles gives the game's upper tree and home to its account when they
// belong to another (an Instance from before games had accounts of their
// own ran as the shared "left4me" user). Only the old owner's entries move.
func (a *Agent) adoptFiles(id string, acct gameuser.Account) error {
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, rel := range []string{"runtime/" + id + "/upper", "instances/" + id + "/home"} {
		d, err := root.OpenDir(rel)
		if err != nil {
			return fmt.Errorf("adopt %s: %w", id, err)
		}
		st, err := d.Stat()
		if err == nil && int(st.Uid) != acct.UID && st.Uid != 0 {
			a.o.Log.Info("moving a game's files to its own account", "instance", id, "from", st.Uid, "to", acct.UID, "dir", d.Path)
			err = d.ChownTree(int(st.Uid), acct.UID, acct.GID)
		}
		d.Close()
		if err != nil {
			return fmt.Errorf("adopt %s: %w", id, err)
		}
	}
	return nil
}

// filesHash names a generated layer by its content.
func filesHash(files []stagedFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %d\n", f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// stage writes the generated layer instances/<id>/generated/<hash>: its
// left4dead2/cfg holds server.cfg and the overlays' configs, readable by
// the game's group only (server.cfg holds the RCON password). A layer is
// never changed once written: new content is a new directory, and the
// mount unit names it, so the game only ever sees a complete one.
func (a *Agent) stage(id, hash string, files []stagedFile, acct gameuser.Account) error {
	gen, err := safefs.Open(a.paths.Generated(id))
	if err != nil {
		return fmt.Errorf("stage configs for %s: %w", id, err)
	}
	defer gen.Close()
	if _, err := gen.Stat(); err != nil {
		return err
	}
	if d, err := gen.OpenDir(hash + "/" + cfgDir); err == nil {
		d.Close()
		return nil // written before: layers are immutable
	}
	tmp := ".tmp-" + hash
	if err := gen.RemoveAll(tmp); err != nil {
		return err
	}
	cfg, err := gen.MkdirAll(tmp+"/"+cfgDir, safefs.Owner{Mode: 0o755})
	if err != nil {
		return fmt.Errorf("stage configs for %s: %w", id, err)
	}
	defer cfg.Close()
	for _, f := range files {
		if err := cfg.WriteFile(f.name, f.data, 0o640, 0, acct.GID); err != nil {
			return fmt.Errorf("stage %s for %s: %w", f.name, id, err)
		}
	}
	if err := os.Rename(filepath.Join(a.paths.Generated(id), tmp), filepath.Join(a.paths.Generated(id), hash)); err != nil {
		return fmt.Errorf("stage configs for %s: %w", id, err)
	}
	return nil
}

// pruneGenerated removes generated layers other than the one mounted now.
func (a *Agent) pruneGenerated(id, keep string) error {
	gen, err := safefs.Open(a.paths.Generated(id))
	if err != nil {
		return err
	}
	defer gen.Close()
	entries, err := os.ReadDir(a.paths.Generated(id))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != keep && !strings.HasPrefix(e.Name(), ".tmp-") {
			if err := gen.RemoveAll(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareMount readies the Instance's stack for its game's start. Files
// the game left in its upper cfg/ under the generated files' names (or
// whiteouts of them) go first: they would hide what the node renders.
// A kernel overlay is then mounted by the game unit as it starts; a
// fuse-overlayfs one by its .mount unit, now.
func (a *Agent) prepareMount(ctx context.Context, id, mountName string, keepHostMount bool, files []stagedFile) error {
	if !keepHostMount {
		return a.clearShadows(id, files)
	}
	st, err := a.o.Systemd.State(ctx, mountName)
	if err != nil {
		return err
	}
	if st.ActiveState == "active" {
		return nil
	}
	if err := a.clearShadows(id, files); err != nil {
		return err
	}
	return a.ensureStarted(ctx, mountName, true)
}

// releaseHostMount detaches the host's copy of a game's overlay: once the
// game runs, its own namespace holds the overlay (see unit.Service), and
// after it stopped nothing needs it; a copy on the host only slows every
// later start. A detach that fails is logged, not failed.
func (a *Agent) releaseHostMount(id string) {
	if a.o.HostMounts == nil {
		return
	}
	merged := a.paths.Merged(id)
	if up, err := mounted(merged); err != nil || !up {
		return
	}
	if err := a.o.HostMounts.Detach(merged); err != nil {
		a.o.Log.Info("could not detach the host's copy of a running game's overlay; later starts are slower while it stays", "instance", id, "error", err.Error())
	}
}

func (a *Agent) clearShadows(id string, files []stagedFile) error {
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	cfg, err := root.OpenDir("runtime/" + id + "/upper/" + cfgDir)
	if err != nil {
		return fmt.Errorf("clear the game's copies of generated configs for %s: %w", id, err)
	}
	defer cfg.Close()
	for _, f := range files {
		if err := cfg.RemoveAll(f.name); err != nil {
			return fmt.Errorf("clear the game's copy of %s for %s: %w", f.name, id, err)
		}
	}
	return nil
}

// removeFiles deletes runtime/<id> and instances/<id> without following
// anything the game planted in them.
func (a *Agent) removeFiles(id string) error {
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, parent := range []string{"runtime", "instances"} {
		d, err := root.OpenDir(parent)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = d.RemoveAll(id)
		d.Close()
		if err != nil {
			return fmt.Errorf("remove %s's files: %w", id, err)
		}
	}
	return nil
}

// steamClientFile is the Steam client library srcds loads from
// ~/.steam/sdk32/ (without it the server runs in LAN mode).
const steamClientFile = "steamclient.so"

// maxSteamClientBytes bounds the copy (the real library is about 20 MB).
const maxSteamClientBytes = 128 << 20

// copySteamClient copies steamcmd's linux32/steamclient.so to the
// root-owned SteamLibDir the games bind. steamcmd's directory is its
// account's, so the games never see it: that account could replace
// linux32/ with a link to any directory, or the library at any time. The
// copy is read without following a link (a regular file, bounded size)
// and made when no copy exists yet (force false) or after each steamcmd
// run (force true), when steamcmd may have updated it.
func (a *Agent) copySteamClient(force bool) error {
	a.steamClientMu.Lock()
	defer a.steamClientMu.Unlock()
	dst := a.paths.SteamLibDir()
	if !force && fileExists(filepath.Join(dst, steamClientFile)) {
		return nil
	}
	src, err := safefs.Open(filepath.Dir(a.paths.SteamcmdLibDir()))
	if err != nil {
		return fmt.Errorf("steamcmd's directory: %w", err)
	}
	defer src.Close()
	data, err := src.ReadFile(filepath.Join(filepath.Base(a.paths.SteamcmdLibDir()), steamClientFile), maxSteamClientBytes)
	if err != nil {
		return fmt.Errorf("steamcmd's client library: %w", err)
	}
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	rel, _ := filepath.Rel(a.o.Root, dst)
	d, err := root.MkdirAll(rel, safefs.Owner{UID: 0, GID: 0, Mode: 0o755})
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteFile(steamClientFile, data, 0o644, 0, 0)
}
