package v1alpha1

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesDigestIsCoreutils: the digest FilesDigest documents is the one
// coreutils compute from the files written out, so an admin can check a
// node's store entry by hand.
func TestFilesDigestIsCoreutils(t *testing.T) {
	for _, tool := range []string{"sh", "find", "sort", "xargs", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	files := map[string]string{
		"left4dead2/cfg/server_extra.cfg":                       "sv_alltalk 0\n",
		"left4dead2/cfg/empty.cfg":                              "",
		"left4dead2/addons/sourcemod/configs/admins_simple.ini": "\"STEAM_1:0:1\" \"99:z\"\r\n",
		"left4dead2/cfg/Z.cfg":                                  "upper case sorts first",
		"left4dead2/cfg!.txt":                                   "'!' sorts before '/'",
		"left4dead2/motd.txt":                                   "Willkommen! ようこそ 🧟\n",
		"space in name.txt":                                     "x",
	}
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", `find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum`)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("coreutils: %v", err)
	}
	want := DigestPrefix + strings.Fields(string(out))[0]
	if got := FilesDigest(files); got != want {
		t.Fatalf("FilesDigest = %s, coreutils say %s", got, want)
	}
}

func TestFilesDigestChanges(t *testing.T) {
	base := map[string]string{"a/b.cfg": "x\n", "c.cfg": "y\n"}
	d := FilesDigest(base)
	if !IsDigest(d) {
		t.Fatalf("not a digest: %q", d)
	}
	for name, other := range map[string]map[string]string{
		"content":   {"a/b.cfg": "x\n", "c.cfg": "y"},
		"path":      {"a/b.cfg": "x\n", "d.cfg": "y\n"},
		"moved":     {"a/c.cfg": "x\n", "c.cfg": "y\n"},
		"added":     {"a/b.cfg": "x\n", "c.cfg": "y\n", "e": ""},
		"removed":   {"a/b.cfg": "x\n"},
		"swapped":   {"a/b.cfg": "y\n", "c.cfg": "x\n"},
		"no files":  {},
		"empty one": {"a/b.cfg": "", "c.cfg": "y\n"},
	} {
		if FilesDigest(other) == d {
			t.Errorf("%s: same digest as the original", name)
		}
	}
	same := map[string]string{"c.cfg": "y\n", "a/b.cfg": "x\n"}
	if FilesDigest(same) != d {
		t.Fatal("the digest depends on the order the map was built in")
	}
}

func TestIDForms(t *testing.T) {
	digest := DigestPrefix + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		f    func(string) bool
		ok   []string
		bad  []string
	}{
		{"IsWorkshopID", IsWorkshopID, []string{"1", "123456789", "18446744073709551615"},
			[]string{"", "0", "012", "-1", "+1", "1.0", "1e3", " 1", "18446744073709551616", "99999999999999999999", "１"}},
		{"IsDigest", IsDigest, []string{digest}, []string{"", strings.Repeat("ab", 32), "sha256:" + strings.Repeat("AB", 32), digest[:70], digest + "0", "sha512:" + strings.Repeat("ab", 32)}},
		{"IsCommitID", IsCommitID, []string{strings.Repeat("a1", 20), strings.Repeat("a1", 32)}, []string{"", "abc1234", strings.Repeat("A1", 20), strings.Repeat("a", 41), strings.Repeat("g", 40)}},
	} {
		for _, s := range tc.ok {
			if !tc.f(s) {
				t.Errorf("%s(%q) = false", tc.name, s)
			}
		}
		for _, s := range tc.bad {
			if tc.f(s) {
				t.Errorf("%s(%q) = true", tc.name, s)
			}
		}
	}
	if got := ShortDigest(digest); got != "abababababab" {
		t.Errorf("ShortDigest = %q", got)
	}
	if got := ShortDigest("pending"); got != "pending" {
		t.Errorf("ShortDigest of a non-digest = %q", got)
	}
}

func TestSourceKinds(t *testing.T) {
	for _, tc := range []struct {
		src  OverlaySource
		want string
	}{
		{OverlaySource{Path: "mods"}, SourcePath},
		{OverlaySource{Archive: &ArchiveSource{}}, SourceArchive},
		{OverlaySource{Git: &GitSource{}}, SourceGit},
		{OverlaySource{Workshop: &WorkshopSource{}}, SourceWorkshop},
		{OverlaySource{Files: map[string]string{}}, SourceFiles},
		{OverlaySource{}, ""},
		{OverlaySource{Path: "mods", Git: &GitSource{}}, ""},
	} {
		if got := tc.src.Kind(); got != tc.want {
			t.Errorf("Kind of %+v = %q, want %q", tc.src, got, tc.want)
		}
	}
	files := &Overlay{Spec: OverlaySpec{Source: OverlaySource{Files: map[string]string{"a": "b"}}}, Status: OverlayStatus{Digest: "sha256:stale"}}
	if got := files.WantedDigest(); got != FilesDigest(files.Spec.Source.Files) {
		t.Errorf("a files Overlay's WantedDigest = %q, not its content's", got)
	}
	git := &Overlay{Spec: OverlaySpec{Source: OverlaySource{Git: &GitSource{}}}, Status: OverlayStatus{Digest: "sha256:x"}}
	if got := git.WantedDigest(); got != "sha256:x" {
		t.Errorf("a git Overlay's WantedDigest = %q, not status.digest", got)
	}
}
