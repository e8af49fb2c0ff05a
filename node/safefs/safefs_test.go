package safefs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// world is a game-writable tree with a sentinel file and directory outside
// it that every attack below aims at.
type world struct {
	game, sentinelFile, sentinelDir string
}

func newWorld(t *testing.T) world {
	t.Helper()
	root := t.TempDir()
	w := world{game: filepath.Join(root, "game"), sentinelFile: filepath.Join(root, "secret"), sentinelDir: filepath.Join(root, "etc")}
	for _, d := range []string{w.game, w.sentinelDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(w.sentinelFile, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.sentinelDir, "passwd"), []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// untouched fails the test if the sentinels changed in content or mode.
func (w world) untouched(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(w.sentinelFile); err != nil || string(b) != "root's secret\n" {
		t.Errorf("sentinel file changed: %q %v", b, err)
	}
	if st, err := os.Stat(w.sentinelFile); err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		t.Errorf("sentinel file's mode or owner changed: %v %v", st.Mode(), err)
	}
	entries, err := os.ReadDir(w.sentinelDir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "passwd" {
		t.Errorf("sentinel dir changed: %v %v", entries, err)
	}
	if st, err := os.Stat(w.sentinelDir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("sentinel dir's mode changed: %v %v", st.Mode(), err)
	}
}

func mustOpen(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestWriteFileReplacesPlantedSymlinkInsteadOfFollowing(t *testing.T) {
	w := newWorld(t)
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "server.cfg"))
	// The old attack: the agent wrote name+".tmp" and followed it.
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "server.cfg.tmp"))
	d := mustOpen(t, w.game)
	if err := d.WriteFile("server.cfg", []byte("rcon_password x\n"), 0o640, 0, 0); err != nil {
		t.Fatal(err)
	}
	w.untouched(t)
	st, err := os.Lstat(filepath.Join(w.game, "server.cfg"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o640 {
		t.Fatalf("server.cfg is not a fresh 0640 file: %v %v", st.Mode(), err)
	}
	if err := d.WriteFile("../escape", nil, 0o644, 0, 0); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("a name with a slash: %v", err)
	}
}

func TestMkdirAllRefusesSymlinkedComponents(t *testing.T) {
	w := newWorld(t)
	os.Symlink(w.sentinelDir, filepath.Join(w.game, "left4dead2"))
	d := mustOpen(t, w.game)
	_, err := d.MkdirAll("left4dead2/cfg", Owner{UID: 1234, GID: 1234, Mode: 0o700})
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("mkdir through a symlink: %v", err)
	}
	w.untouched(t)

	os.Remove(filepath.Join(w.game, "left4dead2"))
	sub, err := d.MkdirAll("left4dead2/cfg", Owner{UID: 1234, GID: 1235, Mode: 0o750})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, p := range []string{"left4dead2", "left4dead2/cfg"} {
		st, err := os.Lstat(filepath.Join(w.game, p))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != 1234 || st.Sys().(*syscall.Stat_t).Gid != 1235 || st.Mode().Perm() != 0o750 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
}

func TestReadFileRefusesSymlinksFIFOsAndHugeFiles(t *testing.T) {
	w := newWorld(t)
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "link.cfg"))
	os.Mkdir(filepath.Join(w.game, "cfg"), 0o755)
	os.Symlink(w.sentinelDir, filepath.Join(w.game, "cfgdir"))
	syscall.Mkfifo(filepath.Join(w.game, "fifo.cfg"), 0o644)
	os.WriteFile(filepath.Join(w.game, "big.cfg"), make([]byte, 2048), 0o644)
	os.WriteFile(filepath.Join(w.game, "cfg", "ok.cfg"), []byte("sv_lan 0\n"), 0o644)
	d := mustOpen(t, w.game)
	for _, rel := range []string{"link.cfg", "cfgdir/passwd", "../secret", "fifo.cfg", "big.cfg"} {
		if data, err := d.ReadFile(rel, 1024); err == nil {
			t.Errorf("read %s: got %q, want a refusal", rel, data)
		}
	}
	if data, err := d.ReadFile("cfg/ok.cfg", 1024); err != nil || string(data) != "sv_lan 0\n" {
		t.Fatalf("a plain file: %q %v", data, err)
	}
}

func TestLstatDescribesALinkAndRefusesOneOnTheWay(t *testing.T) {
	w := newWorld(t)
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "srcds_run"))
	os.Symlink(w.sentinelDir, filepath.Join(w.game, "bin"))
	os.Mkdir(filepath.Join(w.game, "real"), 0o755)
	os.WriteFile(filepath.Join(w.game, "real", "srcds_run"), []byte("#!/bin/sh\n"), 0o755)
	d := mustOpen(t, w.game)
	st, err := d.Lstat("srcds_run")
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Fatalf("a planted link: mode %o, %v; want the link itself", st.Mode, err)
	}
	for _, rel := range []string{"bin/passwd", "../secret"} {
		if _, err := d.Lstat(rel); !errors.Is(err, ErrUnsafe) {
			t.Errorf("lstat %s: %v, want ErrUnsafe", rel, err)
		}
	}
	st, err = d.Lstat("real/srcds_run")
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Mode&0o777 != 0o755 {
		t.Fatalf("a plain file: mode %o, %v", st.Mode, err)
	}
	if _, err := d.Lstat("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
}

func TestRemoveAllRemovesLinksNotTheirTargets(t *testing.T) {
	w := newWorld(t)
	tree := filepath.Join(w.game, "runtime")
	os.MkdirAll(filepath.Join(tree, "upper", "work", "work"), 0o755)
	os.Chmod(filepath.Join(tree, "upper", "work", "work"), 0)
	os.Symlink(w.sentinelDir, filepath.Join(tree, "upper", "etc"))
	os.Symlink(w.sentinelFile, filepath.Join(tree, "upper", "secret"))
	d := mustOpen(t, w.game)
	if err := d.RemoveAll("runtime"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Fatalf("tree still there: %v", err)
	}
	w.untouched(t)
	if err := d.RemoveAll("runtime"); err != nil {
		t.Fatalf("removing a missing tree: %v", err)
	}
}

func TestChownTreeMovesOnlyTheOldOwnersEntries(t *testing.T) {
	w := newWorld(t)
	os.MkdirAll(filepath.Join(w.game, "addons", "logs"), 0o755)
	os.WriteFile(filepath.Join(w.game, "addons", "logs", "L0.log"), nil, 0o644)
	os.WriteFile(filepath.Join(w.game, "addons", "root.txt"), nil, 0o644)
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "addons", "secret"))
	for _, p := range []string{"", "addons", "addons/logs", "addons/logs/L0.log", "addons/secret"} {
		if err := os.Lchown(filepath.Join(w.game, p), 500, 500); err != nil {
			t.Fatal(err)
		}
	}
	d := mustOpen(t, w.game)
	if err := d.ChownTree(500, 600, 601); err != nil {
		t.Fatal(err)
	}
	w.untouched(t)
	for p, want := range map[string]uint32{"": 600, "addons/logs/L0.log": 600, "addons/secret": 600, "addons/root.txt": 0} {
		st, err := os.Lstat(filepath.Join(w.game, p))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != want {
			t.Errorf("%s: uid %d, want %d (%v)", p, st.Sys().(*syscall.Stat_t).Uid, want, err)
		}
	}
}

func TestEnsureDirLeavesAMountPointAloneAndMkdirAllRefusesToEnterIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	w := newWorld(t)
	merged := filepath.Join(w.game, "runtime", "merged")
	os.MkdirAll(merged, 0o755)
	if err := syscall.Mount("tmpfs", merged, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(merged, syscall.MNT_DETACH) })
	d := mustOpen(t, w.game)
	if err := d.EnsureDir("runtime/merged", Owner{Mode: 0o755}); err != nil {
		t.Fatalf("EnsureDir on a mount point: %v", err)
	}
	if _, err := d.MkdirAll("runtime/merged/left4dead2", Owner{Mode: 0o755}); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("MkdirAll into a mount: %v", err)
	}
	if err := d.RemoveAll("runtime"); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("RemoveAll across a mount: %v", err)
	}
	if _, err := os.Stat(merged); err != nil {
		t.Fatalf("the mount point went: %v", err)
	}
}

func TestCreateWritesNothingThroughALinkAndReplacesNothing(t *testing.T) {
	w := newWorld(t)
	os.Symlink(w.sentinelDir, filepath.Join(w.game, "addons"))
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "server.cfg"))
	os.WriteFile(filepath.Join(w.game, "motd.txt"), []byte("hello\n"), 0o644)
	d := mustOpen(t, w.game)
	for _, rel := range []string{"addons/passwd", "addons/new", "server.cfg", "../secret", "../new"} {
		if f, err := d.Create(rel, 0o644); err == nil {
			f.Close()
			t.Errorf("create %s: no error", rel)
		}
	}
	if _, err := d.Create("addons/new", 0o644); !errors.Is(err, ErrUnsafe) {
		t.Errorf("create through a linked directory: %v, want ErrUnsafe", err)
	}
	if _, err := d.Create("motd.txt", 0o644); !errors.Is(err, os.ErrExist) {
		t.Errorf("create over a file: %v, want ErrExist", err)
	}
	w.untouched(t)
	if b, _ := os.ReadFile(filepath.Join(w.game, "motd.txt")); string(b) != "hello\n" {
		t.Errorf("the existing file changed: %q", b)
	}

	old := syscall.Umask(0o077)
	f, err := d.Create("srcds_run", 0o755)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("#!/bin/sh\n")
	f.Close()
	if st, err := os.Lstat(filepath.Join(w.game, "srcds_run")); err != nil || st.Mode() != 0o755 {
		t.Fatalf("a new file under umask 077: %v %v, want 0755", st.Mode(), err)
	}
}

func TestReadlinkOpenFileAndNamesDoNotFollowLinks(t *testing.T) {
	w := newWorld(t)
	long := strings.Repeat("d/", 300) + "x" // longer than the first buffer
	os.Symlink(long, filepath.Join(w.game, "long"))
	os.Symlink(w.sentinelDir, filepath.Join(w.game, "etc"))
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "secret"))
	syscall.Mkfifo(filepath.Join(w.game, "fifo"), 0o644)
	os.WriteFile(filepath.Join(w.game, "motd.txt"), []byte("hello\n"), 0o644)
	d := mustOpen(t, w.game)
	if got, err := d.Readlink("long"); err != nil || got != long {
		t.Fatalf("readlink: %q %v", got, err)
	}
	if _, err := d.Readlink("etc/passwd"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("readlink through a link: %v, want ErrUnsafe", err)
	}
	for _, rel := range []string{"secret", "etc/passwd", "fifo", "../secret"} {
		if f, err := d.OpenFile(rel); err == nil {
			f.Close()
			t.Errorf("open %s: no error", rel)
		}
	}
	f, err := d.OpenFile("motd.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello\n" {
		t.Fatalf("read %q", b)
	}
	names, err := d.Names()
	sort.Strings(names)
	if err != nil || strings.Join(names, " ") != "etc fifo long motd.txt secret" {
		t.Fatalf("names: %v %v", names, err)
	}
}

func TestSealTreeMakesEverythingRootsWithoutFollowingLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chowning to root needs root")
	}
	w := newWorld(t)
	for _, d := range []string{"addons/sourcemod/plugins", "cfg"} {
		os.MkdirAll(filepath.Join(w.game, d), 0o700)
	}
	os.WriteFile(filepath.Join(w.game, "addons/sourcemod/plugins/admin.smx"), []byte("smx"), 0o600)
	os.WriteFile(filepath.Join(w.game, "srcds_run"), []byte("#!/bin/sh\n"), 0o700)
	os.WriteFile(filepath.Join(w.game, "cfg/suid"), nil, 0o644)
	os.Symlink(w.sentinelFile, filepath.Join(w.game, "cfg/secret"))
	filepath.Walk(w.game, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 500, 500) })
	stat := func(p string) *syscall.Stat_t {
		st, err := os.Lstat(filepath.Join(w.game, p))
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t)
	}
	// After the chown, which clears setuid.
	if err := syscall.Chmod(filepath.Join(w.game, "cfg/suid"), 0o4755); err != nil || stat("cfg/suid").Mode&syscall.S_ISUID == 0 {
		t.Fatalf("the test needs a setuid file: %v", err)
	}
	d := mustOpen(t, w.game)
	if err := d.SealTree(); err != nil {
		t.Fatal(err)
	}
	w.untouched(t)
	for p, want := range map[string]uint32{
		"": 0o755, "addons/sourcemod/plugins": 0o755, "addons/sourcemod/plugins/admin.smx": 0o644,
		"srcds_run": 0o755, "cfg/suid": 0o755,
	} {
		if st := stat(p); st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != want {
			t.Errorf("%q: %d:%d mode %04o, want root's %04o", p, st.Uid, st.Gid, st.Mode&0o7777, want)
		}
	}
	if st := stat("cfg/secret"); st.Uid != 0 || st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("the symlink is %d mode %o, want root's link", st.Uid, st.Mode)
	}

	// A second name of a file, or a fifo, is refused.
	os.Link(filepath.Join(w.game, "srcds_run"), filepath.Join(w.game, "cfg/hardlink"))
	if err := d.SealTree(); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "2 links") {
		t.Fatalf("a hardlinked file: %v", err)
	}
	os.Remove(filepath.Join(w.game, "cfg/hardlink"))
	syscall.Mkfifo(filepath.Join(w.game, "cfg/fifo"), 0o644)
	if err := d.SealTree(); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "cfg/fifo") {
		t.Fatalf("a fifo: %v", err)
	}
}
