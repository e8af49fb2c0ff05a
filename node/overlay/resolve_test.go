package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree builds an overlays root with a sibling secret directory outside it.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "overlays")
	outside = filepath.Join(base, "secret")
	for _, d := range []string{root + "/maps/custom", root + "/sourcemod", root + "/mods%h", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(root+"/file", []byte("x"), 0o644)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/etc", root+"/abs-link"))
	must(os.Symlink("../secret", root+"/rel-escape"))
	must(os.Symlink("maps/custom", root+"/inside-link"))
	must(os.Symlink("../../secret", root+"/maps/deep-escape"))
	must(os.Symlink(root+"/maps", root+"/abs-inside-link")) // absolute: escapes under RESOLVE_BENEATH
	// The node's store of fetched overlays, and a link an admin left to it.
	for _, d := range []string{root + "/.store/files-00/tree", root + "/.sourcemod"} {
		must(os.MkdirAll(d, 0o755))
	}
	must(os.Symlink(".store/files-00/tree", root+"/store-link"))
	must(os.Symlink(".store", root+"/store-root-link"))
	return root, outside
}

func TestResolve(t *testing.T) {
	root, _ := tree(t)
	real, _ := filepath.EvalSymlinks(root)
	cases := []struct {
		ref, wantPath, wantErr string
	}{
		{"sourcemod", real + "/sourcemod", ""},
		{"maps/custom", real + "/maps/custom", ""},
		{"mods%h", real + "/mods%h", ""},           // '%' is a name; node/unit escapes it for systemd
		{"inside-link", real + "/maps/custom", ""}, // a relative symlink that stays inside is fine
		{"/etc", "", "must be relative"},
		{"../secret", "", "must not contain '..'"},
		{"maps//custom", "", "empty components"},
		{"abs-link", "", "leads outside the overlays root"},
		{"rel-escape", "", "leads outside the overlays root"},
		{"maps/deep-escape", "", "leads outside the overlays root"},
		{"abs-inside-link", "", "leads outside the overlays root"},
		{"missing", "", "no such directory"},
		{".sourcemod", real + "/.sourcemod", ""}, // a leading dot is an admin's to use
		{".store", "", "must not be below .store/"},
		{".store/files-00/tree", "", "must not be below .store/"},
		{"store-link", "", "the node's store of fetched overlays, which a path source may not name"},
		{"store-root-link", "", "the node's store of fetched overlays"},
		{"file", "", "not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			l, err := Resolve(root, tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.ref) {
					t.Fatalf("want error naming %q with %q, got %v", tc.ref, tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Path != tc.wantPath {
				t.Fatalf("path %s, want %s", l.Path, tc.wantPath)
			}
			if err := l.Verify(); err != nil {
				t.Fatalf("verify right after resolve: %v", err)
			}
		})
	}
}

// TestSwapAfterCheck: a directory swapped for a symlink between the check
// and the mount is caught by Verify.
func TestSwapAfterCheck(t *testing.T) {
	root, outside := tree(t)
	l, err := Resolve(root, "maps/custom")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+"/maps/custom", root+"/maps/custom.old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, root+"/maps/custom"); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(); err == nil || !strings.Contains(err.Error(), "changed after it was checked") {
		t.Fatalf("swap not caught: %v", err)
	}
	// Swapping in another real directory is caught too.
	os.Remove(root + "/maps/custom")
	os.Mkdir(root+"/maps/custom", 0o755)
	if err := l.Verify(); err == nil {
		t.Fatal("a different directory at the same path passed")
	}
	if _, err := Resolve(root, "maps/custom"); err != nil {
		t.Fatalf("the new directory itself is fine: %v", err)
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"sourcemod", "inside-link", "rel-escape", "maps/deep-escape", "abs-link/passwd", "maps/../..", "a\x00b"} {
		f.Add(s)
	}
	base := f.TempDir()
	root := filepath.Join(base, "overlays")
	os.MkdirAll(root+"/maps/custom", 0o755)
	os.MkdirAll(base+"/secret", 0o755)
	os.Symlink("../secret", root+"/rel-escape")
	os.Symlink("/etc", root+"/abs-link")
	os.Symlink("maps", root+"/inside-link")
	real, _ := filepath.EvalSymlinks(root)
	f.Fuzz(func(t *testing.T, ref string) {
		l, err := Resolve(root, ref)
		if err != nil {
			return
		}
		if l.Path != real && !strings.HasPrefix(l.Path, real+"/") {
			t.Fatalf("%q resolved outside the root: %s", ref, l.Path)
		}
	})
}
