package extract

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// goodTree lays out a small SourceMod-like tree as a fetcher would leave it.
func goodTree(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"left4dead2/addons/sourcemod/plugins", "left4dead2/addons/sourcemod/bin", "left4dead2/cfg/sourcemod"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]os.FileMode{
		"left4dead2/addons/sourcemod/plugins/x.smx":             0o644,
		"left4dead2/addons/sourcemod/bin/sourcemod_mm_i486.so":  0o755,
		"left4dead2/cfg/sourcemod/sourcemod.cfg":                0o644,
		"left4dead2/addons/sourcemod/plugins/disabled.smx.note": 0o600, // only group/other writes are refused
	}
	for p, mode := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(p), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(root, p), mode)
	}
	os.Symlink("sourcemod_mm_i486.so", filepath.Join(root, "left4dead2/addons/sourcemod/bin/sourcemod_mm.so"))
	os.Symlink("../../cfg", filepath.Join(root, "left4dead2/addons/sourcemod/cfg"))
}

func TestVerifyAcceptsAFetchedTree(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	goodTree(t, root)
	if err := Verify(root, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("root's\n"), 0o600)
	cases := []struct {
		name  string
		plant func(t *testing.T, root string) // makes the tree bad
		o     VerifyOptions
		kind  error
		msg   string
	}{
		{"fifo", func(t *testing.T, root string) {
			must(t, syscall.Mkfifo(filepath.Join(root, "left4dead2/cfg/pipe"), 0o644))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/cfg/pipe": unsafe: a fifo`},
		{"socket", func(t *testing.T, root string) {
			l, err := net.Listen("unix", filepath.Join(root, "left4dead2/sock"))
			must(t, err)
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/sock": unsafe: a socket`},
		{"device", func(t *testing.T, root string) {
			if err := syscall.Mknod(filepath.Join(root, "left4dead2/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("cannot make a device node here: %v", err)
			}
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/null": unsafe: a character device`},
		{"setuid", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "left4dead2/addons/sourcemod/bin/sourcemod_mm_i486.so"), 0o755|os.ModeSetuid))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/addons/sourcemod/bin/sourcemod_mm_i486.so": unsafe: setuid or setgid (mode 4755)`},
		{"setgid directory", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "left4dead2/cfg"), 0o755|os.ModeSetgid))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/cfg": unsafe: setuid or setgid (mode 2755)`},
		{"sticky", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "left4dead2/cfg"), 0o755|os.ModeSticky))
		}, VerifyOptions{}, ErrUnsafe, `the sticky bit`},
		{"world-writable file", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "left4dead2/cfg/sourcemod/sourcemod.cfg"), 0o666))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/cfg/sourcemod/sourcemod.cfg": unsafe: writable by group or others (mode 0666)`},
		{"group-writable root", func(t *testing.T, root string) {
			must(t, os.Chmod(root, 0o775))
		}, VerifyOptions{}, ErrUnsafe, `the directory itself: unsafe: writable by group or others`},
		{"absolute symlink", func(t *testing.T, root string) {
			must(t, os.Symlink(outside, filepath.Join(root, "left4dead2/cfg/etc")))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/cfg/etc": unsafe: a symlink to the absolute path`},
		{"relative symlink escape", func(t *testing.T, root string) {
			must(t, os.Symlink("../../../secret", filepath.Join(root, "left4dead2/cfg/secret")))
		}, VerifyOptions{}, ErrUnsafe, `which leaves the tree`},
		{"symlink through a symlink", func(t *testing.T, root string) {
			must(t, os.Symlink(".", filepath.Join(root, "left4dead2/here")))
			must(t, os.Symlink("here/../..", filepath.Join(root, "left4dead2/out")))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/out": unsafe: a symlink to "here/../.."`},
		{"hardlink to a file outside", func(t *testing.T, root string) {
			must(t, os.Link(filepath.Join(outside, "secret"), filepath.Join(root, "left4dead2/cfg/secret")))
		}, VerifyOptions{}, ErrUnsafe, `"left4dead2/cfg/secret": unsafe: a file with 2 hard links`},
		{"hardlink inside", func(t *testing.T, root string) {
			must(t, os.Link(filepath.Join(root, "left4dead2/cfg/sourcemod/sourcemod.cfg"), filepath.Join(root, "left4dead2/cfg/again.cfg")))
		}, VerifyOptions{}, ErrUnsafe, `a file with 2 hard links`},
		{"too many entries", nil, VerifyOptions{Limits{MaxEntries: 12}}, ErrLimit, `more than MaxEntries (12) entries`},
		{"a file over MaxEntryBytes", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "left4dead2/big.vpk"), make([]byte, 2000), 0o644))
		}, VerifyOptions{Limits{MaxEntryBytes: 1000}}, ErrLimit, `"left4dead2/big.vpk": over the limit: 2.0 KiB (2000 bytes), more than MaxEntryBytes (1000 bytes)`},
		{"more than MaxTotalBytes", func(t *testing.T, root string) {
			for _, n := range []string{"a", "b", "c"} {
				must(t, os.WriteFile(filepath.Join(root, "left4dead2/"+n+".vpk"), make([]byte, 400), 0o644))
			}
		}, VerifyOptions{Limits{MaxTotalBytes: 1000}}, ErrLimit, `more than MaxTotalBytes (1000 bytes)`},
		{"a path over MaxPathLength", func(t *testing.T, root string) {
			must(t, os.MkdirAll(filepath.Join(root, "left4dead2", strings.Repeat("d", 60)), 0o755))
		}, VerifyOptions{Limits{MaxPathLength: 60}}, ErrLimit, `a path of 71 bytes, more than MaxPathLength (60)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "staging")
			must(t, os.Mkdir(root, 0o755))
			goodTree(t, root)
			if c.plant != nil {
				c.plant(t, root)
			}
			err := Verify(root, c.o)
			if err == nil || !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Verify: %v\nwant an error wrapping %v saying %q", err, c.kind, c.msg)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "root's\n" {
				t.Fatalf("the file outside changed: %q", b)
			}
		})
	}
}

func TestVerifyRefusesAMountInTheTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	root := filepath.Join(t.TempDir(), "staging")
	must(t, os.MkdirAll(filepath.Join(root, "maps"), 0o755))
	if err := syscall.Mount("tmpfs", filepath.Join(root, "maps"), "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(root, "maps"), syscall.MNT_DETACH) })
	if err := Verify(root, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), `"maps"`) {
		t.Fatalf("a mount in the tree: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
