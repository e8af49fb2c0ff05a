package validation

import (
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// FuzzOverlayPath: whatever the string, an accepted reference stays below
// the root when joined to it, and is relative, clean and printable.
func FuzzOverlayPath(f *testing.F) {
	for _, s := range []string{"mods", "maps/custom", "../x", "/etc", "a//b", "a/./b", "a/..", "..", ".", "a\x00b", "a\\..\\b", "é/ü", ".store", ".store/x", ".storex", strings.Repeat("a/", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		errs := ValidateOverlayPath(ref, field.NewPath("p"))
		if len(errs) > 0 {
			if !strings.HasPrefix(errs[0].Field, "p") {
				t.Fatalf("error does not name the field: %v", errs)
			}
			return
		}
		root := "/var/lib/left4me/overlays"
		joined := filepath.Join(root, ref)
		if joined == root || !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("accepted %q escapes the root: %s", ref, joined)
		}
		if filepath.Clean(ref) != ref || filepath.IsAbs(ref) || hasControl(ref) {
			t.Fatalf("accepted %q is not a clean relative printable path", ref)
		}
		if joined == root+"/"+OverlayStoreDir || strings.HasPrefix(joined, root+"/"+OverlayStoreDir+"/") {
			t.Fatalf("accepted %q names the node's store", ref)
		}
	})
}

// FuzzServerCfgLine: an accepted cvar renders as exactly one server.cfg
// line with one command: `name "value"`.
func FuzzServerCfgLine(f *testing.F) {
	f.Add("sv_alltalk", "1")
	f.Add("hostname", "x")
	f.Add("sv_tags", "a\nrcon_password x")
	f.Add("a", `b" ; quit "`)
	f.Add("sm_cvar.x", "a b c")
	f.Fuzz(func(t *testing.T, name, value string) {
		b := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}, Spec: v1.BlueprintSpec{Cvars: []v1.Cvar{{Name: name, Value: value}}}}
		Default(b)
		if errs := Validate(b); len(errs) > 0 {
			return
		}
		line := name + ` "` + value + `"`
		if strings.ContainsAny(line, "\n\r;\x00") || strings.Count(line, `"`) != 2 || strings.Contains(name, " ") || hasControl(line) {
			t.Fatalf("accepted cvar renders an unsafe line: %q", line)
		}
		if forbiddenCommand(name) != "" {
			t.Fatalf("accepted reserved cvar %q", name)
		}
	})
}

// FuzzArgs: an accepted srcds argument holds no shell metacharacter, and
// none of the words srcds_run splits it into names an absolute path, climbs
// out with "..", or is a command or flag the node owns or forbids.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{"-nohltv", "+exec", "/etc/passwd", "../x", "+hostport", "a/../../b", "~/x", "+sv_lan",
		"+exec evil.cfg", " +rcon_password", "+logaddress_add 203.0.113.9:27500", "-ip 1.2.3.4", "$(id)", "+sv_lan 0 +Exec x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		if errs := ValidateArgs([]string{arg}, field.NewPath("args")); len(errs) > 0 {
			if !strings.HasPrefix(errs[0].Field, "args[0]") {
				t.Fatalf("error does not name the element: %v", errs)
			}
			return
		}
		if strings.ContainsAny(arg, shellMeta) || hasControl(arg) {
			t.Fatalf("accepted %q with a shell metacharacter or control character", arg)
		}
		for _, w := range strings.Fields(arg) {
			if strings.HasPrefix(w, "/") || hasDotDot(w) || forbiddenFlags[strings.ToLower(w)] != "" ||
				strings.HasPrefix(w, "+") && forbiddenCommand(w[1:]) != "" {
				t.Fatalf("accepted unsafe argument %q (word %q)", arg, w)
			}
		}
	})
}

// FuzzSourceURL: an accepted archive or git URL is printable ASCII with an
// https, http or file scheme, holds no credentials or fragment, names a
// host for http(s), and for file an absolute clean path and no host; an
// http(s) archive has its sha256, an http repository a commit id.
func FuzzSourceURL(f *testing.F) {
	for _, s := range []string{"https://example.org/sm.tar.gz", "http://127.0.0.1:8080/a.zip", "file:///srv/a.zip", "file:/srv/a.zip",
		"https://bob:pw@example.org/a", "https://example.org/a#x", "ftp://h/a", "ssh://git@h/r.git", "git@github.com:o/r.git",
		"file://host/a", "file:rel/a", "file:///srv/../etc/shadow", "file:///srv/%2e%2e/x", "https:///a", "https:h/a", "http://[::1]:1/a",
		"HTTPS://H/A", "https://h:0/a", "https://h/a b", "https://h/%zz", "file:///a?b", "//h/a"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, withSum bool) {
		a := &v1.ArchiveSource{URL: raw}
		if withSum {
			a.SHA256 = strings.Repeat("0", 64)
		}
		archiveErrs := Validate(&v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Archive: a}}})
		gitErrs := Validate(&v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{URL: raw, Ref: "v1"}}}})
		for _, errs := range []field.ErrorList{archiveErrs, gitErrs} {
			for _, e := range errs {
				if !strings.HasPrefix(e.Field, "spec.source.") {
					t.Fatalf("error does not name the field: %v", e)
				}
			}
		}
		if len(archiveErrs) > 0 && len(gitErrs) > 0 {
			return
		}
		for i := 0; i < len(raw); i++ {
			if raw[i] <= ' ' || raw[i] >= 0x7f {
				t.Fatalf("accepted %q with a byte outside printable ASCII", raw)
			}
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q that does not parse: %v", raw, err)
		}
		if u.User != nil || strings.Contains(raw, "#") || u.Opaque != "" {
			t.Fatalf("accepted %q with credentials, a fragment or no //", raw)
		}
		switch u.Scheme {
		case "https", "http":
			if u.Hostname() == "" {
				t.Fatalf("accepted %q without a host", raw)
			}
			if len(archiveErrs) == 0 && !withSum {
				t.Fatalf("accepted an %s archive %q without sha256", u.Scheme, raw)
			}
			if len(gitErrs) == 0 && u.Scheme == "http" {
				t.Fatalf("accepted an http repository %q with a tag", raw)
			}
		case "file":
			if u.Host != "" || u.RawQuery != "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path || u.Path == "/" || hasControl(u.Path) {
				t.Fatalf("accepted file URL %q: host %q, path %q", raw, u.Host, u.Path)
			}
		default:
			t.Fatalf("accepted %q with scheme %q", raw, u.Scheme)
		}
	})
}

// FuzzGitRef: an accepted ref is a commit id or a name git accepts that no
// git command line can take for an option.
func FuzzGitRef(f *testing.F) {
	for _, s := range []string{"main", "v1.2.0", "refs/heads/main", strings.Repeat("ab", 20), "-x", "--upload-pack=x", "a..b", "a@{1}", "@", "a.lock", ".a", "a/", "a b", "a:b", "a\\b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		o := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{URL: "https://h/r.git", Ref: ref}}}}
		if len(Validate(o)) > 0 {
			return
		}
		if v1.IsCommitID(ref) {
			return
		}
		if ref == "" || strings.HasPrefix(ref, "-") || strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.ContainsAny(ref, "~^:?*[\\ ") ||
			strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.Contains(ref, "//") || hasControl(ref) {
			t.Fatalf("accepted ref %q", ref)
		}
		for _, c := range strings.Split(ref, "/") {
			if strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".lock") {
				t.Fatalf("accepted ref %q (component %q)", ref, c)
			}
		}
	})
}

// FuzzWorkshopIDs: accepted ids are canonical non-zero uint64s, none twice.
func FuzzWorkshopIDs(f *testing.F) {
	for _, s := range []string{"123456789", "0", "0123", "-1", "+1", "18446744073709551615", "18446744073709551616", " 1", "1e3", "１２３"} {
		f.Add(s, "121115793")
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, item, collection string) {
		o := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"},
			Spec: v1.OverlaySpec{Source: v1.OverlaySource{Workshop: &v1.WorkshopSource{Items: []string{item}, Collections: []string{collection}}}}}
		Default(o)
		if len(Validate(o)) > 0 {
			return
		}
		for _, id := range []string{item, collection} {
			n, err := strconv.ParseUint(id, 10, 64)
			if err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
				t.Fatalf("accepted workshop id %q", id)
			}
		}
		if item == collection {
			t.Fatalf("accepted %q as both an item and a collection", item)
		}
	})
}

// FuzzFiles: accepted inline files stay below the game root when written
// out, none is a directory of another, their content is UTF-8 text
// without NUL, and their digest does not depend on the map's order.
func FuzzFiles(f *testing.F) {
	f.Add("left4dead2/cfg/server_extra.cfg", "sv_alltalk 0\n", "left4dead2/cfg/x.cfg")
	f.Add("left4dead2/../x", "a", "b")
	f.Add("/etc/passwd", "a", "b")
	f.Add("a", "b", "a/b")
	f.Add("a/b", "\x00", "a/b!")
	f.Add("a//b", "caf\xe9", "./c")
	f.Add("a\\..\\b", "é", "a\nb")
	f.Fuzz(func(t *testing.T, p1, content, p2 string) {
		files := map[string]string{p1: content, p2: "x"}
		o := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Files: files}}}
		errs := Validate(o)
		for _, e := range errs {
			if !strings.HasPrefix(e.Field, "spec.source.files") {
				t.Fatalf("error does not name the field: %v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		root := "/var/lib/left4me/overlays/.store/x"
		for p, c := range files {
			joined := filepath.Join(root, p)
			if !strings.HasPrefix(joined, root+"/") || filepath.Clean(p) != p || filepath.IsAbs(p) || hasControl(p) || strings.Contains(p, "\\") || !utf8.ValidString(p) {
				t.Fatalf("accepted path %q (joined %s)", p, joined)
			}
			if strings.IndexByte(c, 0) >= 0 || !utf8.ValidString(c) {
				t.Fatalf("accepted content %q of %q", c, p)
			}
			for q := range files {
				if strings.HasPrefix(q, p+"/") {
					t.Fatalf("accepted %q as a file and a directory of %q", p, q)
				}
			}
		}
		again := map[string]string{}
		for p, c := range files {
			again[p] = c
		}
		if d := v1.FilesDigest(files); d != v1.FilesDigest(again) || !v1.IsDigest(d) {
			t.Fatalf("digest %q is not stable", d)
		}
	})
}
