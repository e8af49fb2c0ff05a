package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/node/extract"
)

// open makes a store below a fresh overlays root.
func open(t *testing.T, limits extract.Limits) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the store is root's: run as root")
	}
	overlays := filepath.Join(t.TempDir(), "overlays")
	if err := os.Mkdir(overlays, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(overlays, DirName), limits)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stage is a new staging directory whose tree the test writes as uid.
func stage(t *testing.T, s *Store, uid int) *Staging {
	t.Helper()
	st, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(st.Tree, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(st.Tree, 0o755)
	os.Lchown(st.Tree, uid, uid)
	return st
}

// write fills a staging tree: path → content; a path ending in "/" is a
// directory; modes as given, owner uid.
func write(t *testing.T, dir string, uid int, files map[string]os.FileMode) {
	t.Helper()
	for p, mode := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chmod(full, mode)
		} else {
			os.MkdirAll(filepath.Dir(full), 0o755)
			if err := os.WriteFile(full, []byte("content of "+p), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(full, mode)
		}
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, uid) })
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// stagingEmpty fails unless nothing is left in .staging.
func stagingEmpty(t *testing.T, s *Store) {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(s.Root(), stagingName))
	if err != nil || len(names) != 0 {
		t.Fatalf("staging holds %v (%v)", names, err)
	}
}

func TestAddSealsAndNamesATreeAnotherAccountWrote(t *testing.T) {
	s := open(t, extract.Limits{})
	st := stage(t, s, 4242)
	if o := stat(t, st.Dir); o.Uid != 0 || o.Mode&0o777 != 0o700 {
		t.Fatalf("staging dir %d mode %o, want root's 0700", o.Uid, o.Mode&0o777)
	}
	// The writer had the directory for its run, and left a file beside
	// its tree (a fetcher's spec): Add keeps only the tree.
	os.WriteFile(filepath.Join(st.Dir, "spec.json"), []byte("{}"), 0o600)
	write(t, st.Tree, 4242, map[string]os.FileMode{
		"left4dead2/addons/":                            0o700,
		"left4dead2/addons/sourcemod/plugins/admin.smx": 0o600,
		"left4dead2/addons/metamod.vdf":                 0o640,
		"left4dead2/bin/tool":                           0o700,
	})
	os.Symlink("../addons/metamod.vdf", filepath.Join(st.Tree, "left4dead2/bin/link"))
	os.Lchown(filepath.Join(st.Tree, "left4dead2/bin/link"), 4242, 4242)
	want, err := extract.Digest(st.Tree) // modes aside from x do not count
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Add(st, SchemeTree)
	if err != nil {
		t.Fatal(err)
	}
	if k.Digest() != want || k.Scheme != SchemeTree || !strings.HasPrefix(k.Name(), "tree-") {
		t.Fatalf("key %v (digest %s), want tree- of %s", k, k.Digest(), want)
	}
	if has, err := s.Has(k); !has || err != nil {
		t.Fatalf("Has after Add: %v %v", has, err)
	}
	tree := s.Tree(k)
	if tree != filepath.Join(s.Root(), k.Name(), "tree") {
		t.Fatalf("tree at %s", tree)
	}
	if e := stat(t, filepath.Dir(tree)); e.Uid != 0 || e.Mode&0o777 != 0o700 {
		t.Errorf("entry dir %d mode %o, want root's 0700", e.Uid, e.Mode&0o777)
	}
	for p, mode := range map[string]uint32{
		"": 0o755, "left4dead2/addons": 0o755, "left4dead2/addons/sourcemod/plugins/admin.smx": 0o644,
		"left4dead2/addons/metamod.vdf": 0o644, "left4dead2/bin/tool": 0o755,
	} {
		if o := stat(t, filepath.Join(tree, p)); o.Uid != 0 || o.Gid != 0 || o.Mode&0o7777 != mode {
			t.Errorf("%q: %d:%d mode %04o, want root's %04o", p, o.Uid, o.Gid, o.Mode&0o7777, mode)
		}
	}
	if o := stat(t, filepath.Join(tree, "left4dead2/bin/link")); o.Uid != 0 {
		t.Errorf("the symlink is still %d's", o.Uid)
	}
	if data, _ := os.ReadFile(filepath.Join(tree, "left4dead2/addons/metamod.vdf")); string(data) != "content of left4dead2/addons/metamod.vdf" {
		t.Errorf("content %q", data)
	}
	stagingEmpty(t, s)
	if list, err := s.List(); err != nil || len(list) != 1 || list[0] != k {
		t.Fatalf("List: %v %v", list, err)
	}

	// The same content again is the same entry, untouched; the copy goes.
	before := stat(t, tree)
	again := stage(t, s, 0)
	write(t, again.Tree, 0, map[string]os.FileMode{
		"left4dead2/addons/sourcemod/plugins/admin.smx": 0o644,
		"left4dead2/addons/metamod.vdf":                 0o644,
		"left4dead2/bin/tool":                           0o755,
	})
	os.Symlink("../addons/metamod.vdf", filepath.Join(again.Tree, "left4dead2/bin/link"))
	if k2, err := s.Add(again, SchemeTree); err != nil || k2 != k {
		t.Fatalf("the same content: %v %v, want %v", k2, err, k)
	}
	if after := stat(t, tree); after.Ino != before.Ino || after.Ctim != before.Ctim {
		t.Error("the existing entry was replaced or changed")
	}
	stagingEmpty(t, s)

	if err := s.Remove(k); err != nil {
		t.Fatal(err)
	}
	if has, err := s.Has(k); has || err != nil {
		t.Fatalf("Has after Remove: %v %v", has, err)
	}
	stagingEmpty(t, s)
	if err := s.Remove(k); err != nil {
		t.Fatalf("removing a missing entry: %v", err)
	}
}

// TestAddRefusesUnsafeTrees: what a fetcher must not hand the agent is
// refused by name, nothing reaches the store, and staging is clean.
func TestAddRefusesUnsafeTrees(t *testing.T) {
	cases := []struct {
		name   string
		plant  func(t *testing.T, dir string)
		limits extract.Limits
		is     error
		msg    string
	}{
		{"symlink out of the tree", func(t *testing.T, dir string) {
			os.Symlink("../../../../etc/shadow", filepath.Join(dir, "left4dead2/cfg/shadow"))
		}, extract.Limits{}, extract.ErrUnsafe, `entry "left4dead2/cfg/shadow"`},
		{"absolute symlink", func(t *testing.T, dir string) {
			os.Symlink("/etc", filepath.Join(dir, "left4dead2/etc"))
		}, extract.Limits{}, extract.ErrUnsafe, `entry "left4dead2/etc"`},
		{"hardlink", func(t *testing.T, dir string) {
			os.Link(filepath.Join(dir, "left4dead2/cfg/a.cfg"), filepath.Join(dir, "left4dead2/cfg/b.cfg"))
		}, extract.Limits{}, extract.ErrUnsafe, "hard links"},
		{"setuid", func(t *testing.T, dir string) {
			syscall.Chmod(filepath.Join(dir, "left4dead2/cfg/a.cfg"), 0o4755)
		}, extract.Limits{}, extract.ErrUnsafe, "setuid"},
		{"world-writable", func(t *testing.T, dir string) {
			syscall.Chmod(filepath.Join(dir, "left4dead2/cfg"), 0o777)
		}, extract.Limits{}, extract.ErrUnsafe, "writable by group or others"},
		{"fifo", func(t *testing.T, dir string) {
			syscall.Mkfifo(filepath.Join(dir, "left4dead2/cfg/fifo"), 0o644)
		}, extract.Limits{}, extract.ErrUnsafe, "fifo"},
		{"too many entries", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "left4dead2/cfg/b.cfg"), nil, 0o644)
		}, extract.Limits{MaxEntries: 3}, extract.ErrLimit, "MaxEntries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, tc.limits)
			st := stage(t, s, 0)
			write(t, st.Tree, 0, map[string]os.FileMode{"left4dead2/cfg/a.cfg": 0o644})
			tc.plant(t, st.Tree)
			k, err := s.Add(st, SchemeTree)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Add: %v (key %v), want %v naming %q", err, k, tc.is, tc.msg)
			}
			if list, _ := s.List(); len(list) != 0 {
				t.Fatalf("a refused tree is in the store: %v", list)
			}
			stagingEmpty(t, s)
		})
	}
}

// TestFilesDigestIsTheAPIsAndCoreutils': the files scheme names a tree as
// the control plane names the spec, and as the README's shell line does.
func TestFilesDigestIsTheAPIsAndCoreutils(t *testing.T) {
	s := open(t, extract.Limits{})
	files := map[string]string{
		"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\r\n",
		"left4dead2/cfg/a-b.cfg":          "x",
		"left4dead2/cfg-x/z.cfg":          "sorted by bytes, not by walk order\n",
		"motd.txt":                        "héllo\n",
	}
	st := stage(t, s, 0)
	for p, content := range files {
		os.MkdirAll(filepath.Join(st.Tree, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(st.Tree, p), []byte(content), 0o644)
	}
	got, err := FilesDigest(st.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if want := v1.FilesDigest(files); got != want {
		t.Fatalf("FilesDigest of the tree %s, of the spec %s", got, want)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command("sh", "-c", `cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum`, "sh", st.Tree).Output()
		if err != nil {
			t.Fatal(err)
		}
		if shell := "sha256:" + strings.Fields(string(out))[0]; shell != got {
			t.Fatalf("coreutils say %s, FilesDigest %s", shell, got)
		}
	}
	k, err := s.Add(st, SchemeFiles)
	if err != nil || k.Digest() != got || k.Name() != "files-"+strings.TrimPrefix(got, "sha256:") {
		t.Fatalf("Add: %v %v", k, err)
	}
}

func TestFilesSchemeHoldsOnlyPlainFiles(t *testing.T) {
	for name, plant := range map[string]func(dir string){
		"symlink":         func(dir string) { os.Symlink("a.cfg", filepath.Join(dir, "cfg/link")) },
		"executable":      func(dir string) { os.Chmod(filepath.Join(dir, "cfg/a.cfg"), 0o755) },
		"empty directory": func(dir string) { os.Mkdir(filepath.Join(dir, "cfg/empty"), 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t, extract.Limits{})
			st := stage(t, s, 0)
			write(t, st.Tree, 0, map[string]os.FileMode{"cfg/a.cfg": 0o644})
			plant(st.Tree)
			if k, err := s.Add(st, SchemeFiles); err == nil || !strings.Contains(err.Error(), "cfg/") {
				t.Fatalf("Add: %v %v, want a refusal naming the entry", k, err)
			}
			if list, _ := s.List(); len(list) != 0 {
				t.Fatalf("stored: %v", list)
			}
			stagingEmpty(t, s)
		})
	}
}

// TestOpenCleansStagingAndChecksOwnership: a crash's leftovers go; a store
// that another account could write, or a symlink in its place, is refused.
func TestOpenCleansStagingAndChecksOwnership(t *testing.T) {
	s := open(t, extract.Limits{})
	st := stage(t, s, 4242)
	write(t, st.Tree, 4242, map[string]os.FileMode{"half/written": 0o644})
	if _, err := Open(s.Root(), extract.Limits{}); err != nil {
		t.Fatal(err)
	}
	stagingEmpty(t, s)
	for p, mode := range map[string]uint32{s.Root(): 0o711, filepath.Join(s.Root(), stagingName): 0o711} {
		if o := stat(t, p); o.Uid != 0 || o.Mode&0o777 != mode {
			t.Errorf("%s: %d mode %o, want root's %o", p, o.Uid, o.Mode&0o777, mode)
		}
	}

	os.Chmod(s.Root(), 0o777)
	if _, err := Open(s.Root(), extract.Limits{}); err == nil || !strings.Contains(err.Error(), "only root writes") {
		t.Fatalf("a store others may write: %v", err)
	}
	os.Chmod(s.Root(), 0o711)

	elsewhere := filepath.Join(t.TempDir(), "overlays")
	os.MkdirAll(filepath.Join(elsewhere, "..", "target"), 0o755)
	os.MkdirAll(elsewhere, 0o755)
	os.Symlink("../target", filepath.Join(elsewhere, DirName))
	if _, err := Open(filepath.Join(elsewhere, DirName), extract.Limits{}); err == nil {
		t.Fatal("a symlink in the store's place was followed")
	}
}

// TestAddWantsATree: a writer that made no tree, or planted a symlink in
// its place, stores nothing and leaves nothing in staging.
func TestAddWantsATree(t *testing.T) {
	s := open(t, extract.Limits{})
	target := t.TempDir()
	write(t, target, 0, map[string]os.FileMode{"left4dead2/cfg/a.cfg": 0o644})
	for name, plant := range map[string]func(st *Staging){
		"no tree":   func(st *Staging) {},
		"a symlink": func(st *Staging) { os.Symlink(target, st.Tree) },
		"a file":    func(st *Staging) { os.WriteFile(st.Tree, nil, 0o644) },
	} {
		st, err := s.Stage()
		if err != nil {
			t.Fatal(err)
		}
		plant(st)
		if k, err := s.Add(st, SchemeTree); err == nil || !strings.Contains(err.Error(), "tree") {
			t.Errorf("%s: Add = %v, %v; want an error about the tree", name, k, err)
		}
		stagingEmpty(t, s)
		if entries, _ := s.List(); len(entries) != 0 {
			t.Errorf("%s: the store holds %v", name, entries)
		}
	}
}

func TestKeys(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	k, err := NewKey(SchemeFiles, "sha256:"+hex)
	if err != nil || k.Name() != "files-"+hex || k.Digest() != "sha256:"+hex {
		t.Fatalf("%v %v", k, err)
	}
	if p, err := ParseKey(k.Name()); err != nil || p != k {
		t.Fatalf("ParseKey: %v %v", p, err)
	}
	for _, bad := range []string{"", "files-", "files-" + hex[:63], "tree-" + strings.ToUpper(hex), "other-" + hex, ".staging", "index.json", "files-" + hex + "/x"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if _, err := NewKey(SchemeTree, hex); err == nil {
		t.Error("a digest without sha256: accepted")
	}
}

// The API refuses a path source naming the store by the same name.
func TestDirNameIsTheOneTheAPIRefuses(t *testing.T) {
	if DirName != validation.OverlayStoreDir {
		t.Fatalf("store %q, validation %q", DirName, validation.OverlayStoreDir)
	}
}
