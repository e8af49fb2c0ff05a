package extract

import (
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

func TestDigest(t *testing.T) {
	base := func(t *testing.T) string {
		root := t.TempDir()
		goodTree(t, root)
		return root
	}
	want, err := Digest(base(t))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(want) {
		t.Fatalf("digest %q", want)
	}
	cfg := "left4dead2/cfg/sourcemod/sourcemod.cfg"
	smx := "left4dead2/addons/sourcemod/plugins/x.smx"
	link := "left4dead2/addons/sourcemod/bin/sourcemod_mm.so"
	cases := []struct {
		name   string
		change func(t *testing.T, root string)
		same   bool
	}{
		{"a second build of the same tree", func(t *testing.T, root string) {}, true},
		{"other times", func(t *testing.T, root string) {
			old := time.Date(2009, 11, 17, 0, 0, 0, 0, time.UTC)
			for _, p := range []string{cfg, smx, "left4dead2/cfg", "left4dead2"} {
				must(t, os.Chtimes(filepath.Join(root, p), old, old))
			}
		}, true},
		{"other owners", func(t *testing.T, root string) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			must(t, os.Lchown(filepath.Join(root, cfg), 1234, 1234))
			must(t, os.Lchown(filepath.Join(root, link), 1234, 1234))
		}, true},
		{"other read bits", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, cfg), 0o600))
			must(t, os.Chmod(filepath.Join(root, "left4dead2/cfg"), 0o700))
		}, true},
		{"another directory order", func(t *testing.T, root string) {
			// Re-create the plugins directory with its entries made in the
			// other order (directory order follows creation on most
			// filesystems, and is never sorted).
			dir := filepath.Join(root, "left4dead2/addons/sourcemod/plugins")
			data, _ := os.ReadFile(filepath.Join(dir, "x.smx"))
			note, _ := os.ReadFile(filepath.Join(dir, "disabled.smx.note"))
			must(t, os.RemoveAll(dir))
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "x.smx"), data, 0o644))
			must(t, os.WriteFile(filepath.Join(dir, "disabled.smx.note"), note, 0o600))
		}, true},
		{"content", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, cfg), []byte("sm_show_activity 0\n"), 0o644))
		}, false},
		{"one byte appended", func(t *testing.T, root string) {
			f, err := os.OpenFile(filepath.Join(root, cfg), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			f.Write([]byte{0})
			f.Close()
		}, false},
		{"the x bit", func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, smx), 0o744))
		}, false},
		{"a rename", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, smx), filepath.Join(root, "left4dead2/addons/sourcemod/plugins/y.smx")))
		}, false},
		{"a move to another directory", func(t *testing.T, root string) {
			must(t, os.Rename(filepath.Join(root, cfg), filepath.Join(root, "left4dead2/cfg/sourcemod.cfg")))
		}, false},
		{"a symlink's target", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, link)))
			must(t, os.Symlink("sourcemod_mm_i686.so", filepath.Join(root, link)))
		}, false},
		{"a symlink made a file holding its target", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, link)))
			must(t, os.WriteFile(filepath.Join(root, link), []byte("sourcemod_mm_i486.so"), 0o644))
		}, false},
		{"an empty directory added", func(t *testing.T, root string) {
			must(t, os.Mkdir(filepath.Join(root, "left4dead2/maps"), 0o755))
		}, false},
		{"an empty file added", func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "left4dead2/maps"), nil, 0o644))
		}, false},
		{"a file removed", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, smx)))
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := base(t)
			c.change(t, root)
			got, err := Digest(root)
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != c.same {
				t.Fatalf("digest %s, the original's %s: want same=%v", got, want, c.same)
			}
		})
	}
}

// TestDigestFieldsDoNotRunTogether: names and contents that concatenate
// alike still digest differently.
func TestDigestFieldsDoNotRunTogether(t *testing.T) {
	trees := []map[string]string{
		{"ab": "c"},
		{"a": "bc"},
		{"a/b": "c"},
		{"a": "", "b": "c"},
	}
	seen := map[string]int{}
	for i, files := range trees {
		root := t.TempDir()
		for p, body := range files {
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
			must(t, os.WriteFile(filepath.Join(root, p), []byte(body), 0o644))
		}
		d, err := Digest(root)
		if err != nil {
			t.Fatal(err)
		}
		if j, ok := seen[d]; ok {
			t.Fatalf("trees %v and %v have the same digest", trees[j], files)
		}
		seen[d] = i
	}
}

func TestDigestRefusesAFifo(t *testing.T) {
	root := t.TempDir()
	must(t, syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644))
	if _, err := Digest(root); err == nil {
		t.Fatal("no error")
	}
}
