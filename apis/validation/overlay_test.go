package validation

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// source is an Overlay with src as its source, defaulted.
func source(src v1.OverlaySource) *v1.Overlay {
	o := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: src}}
	Default(o)
	return o
}

func archive(mut func(*v1.ArchiveSource)) *v1.Overlay {
	a := &v1.ArchiveSource{URL: "https://example.org/sm.tar.gz", SHA256: sum, Into: "left4dead2"}
	if mut != nil {
		mut(a)
	}
	return source(v1.OverlaySource{Archive: a})
}

func git(mut func(*v1.GitSource)) *v1.Overlay {
	g := &v1.GitSource{URL: "https://github.com/owner/repo.git", Ref: "v1.2.0", SubPath: "cfg", Into: "left4dead2/cfg"}
	if mut != nil {
		mut(g)
	}
	return source(v1.OverlaySource{Git: g})
}

func workshop(mut func(*v1.WorkshopSource)) *v1.Overlay {
	w := &v1.WorkshopSource{Items: []string{"123456789"}, Collections: []string{"121115793"}}
	if mut != nil {
		mut(w)
	}
	return source(v1.OverlaySource{Workshop: w})
}

func files(f map[string]string) *v1.Overlay { return source(v1.OverlaySource{Files: f}) }

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(1000 + i)
	}
	return out
}

// manyFiles is n files of size bytes each.
func manyFiles(n, size int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("left4dead2/cfg/f%d.cfg", i)] = strings.Repeat("x", size)
	}
	return m
}

// TestValidateOverlaySource lists each source's rules with an Overlay that
// breaks it, and the error a user sees; the rows marked "bad input" are the
// issue's list of what the API can refuse before a node fetches anything.
func TestValidateOverlaySource(t *testing.T) {
	tests := []struct {
		name string
		obj  *v1.Overlay
		want string // "" means valid
	}{
		// The one-of.
		{"bad input: no source", source(v1.OverlaySource{}), "spec.source: Required value: set one of path, archive, git, workshop, files"},
		{"bad input: two sources", source(v1.OverlaySource{Path: "mods", Archive: &v1.ArchiveSource{URL: "https://example.org/a.zip", SHA256: sum}}),
			"spec.source.archive: Forbidden: an Overlay has one source, and path is set"},
		{"bad input: three sources", source(v1.OverlaySource{Git: &v1.GitSource{URL: "https://h/r.git", Ref: "main"}, Files: map[string]string{"a": "b"}, Workshop: &v1.WorkshopSource{Items: []string{"1"}}}),
			"spec.source.files: Forbidden: an Overlay has one source, and git is set"},
		{"path still works", source(v1.OverlaySource{Path: "maps/custom"}), ""},

		// archive.
		{"archive https", archive(nil), ""},
		{"archive file without sha256", archive(func(a *v1.ArchiveSource) { a.URL, a.SHA256 = "file:///srv/mirror/sm.tar.gz", "" }), ""},
		{"archive file, short form", archive(func(a *v1.ArchiveSource) { a.URL = "file:/srv/mirror/sm.tar.gz" }), ""},
		{"archive http with port and query", archive(func(a *v1.ArchiveSource) { a.URL = "http://127.0.0.1:8080/get?name=sm.tar.gz" }), ""},
		{"archive ipv6 host", archive(func(a *v1.ArchiveSource) { a.URL = "http://[::1]:8080/sm.zip" }), ""},
		{"archive strip and subPath", archive(func(a *v1.ArchiveSource) { a.StripComponents, a.SubPath = 1, "addons/sourcemod" }), ""},
		{"archive into the root", archive(func(a *v1.ArchiveSource) { a.Into = "" }), ""},
		{"bad input: sha256 missing for https", archive(func(a *v1.ArchiveSource) { a.SHA256 = "" }), "spec.source.archive.sha256: Required value: required for https URLs"},
		{"bad input: sha256 missing for http", archive(func(a *v1.ArchiveSource) { a.URL, a.SHA256 = "http://example.org/a.zip", "" }), "spec.source.archive.sha256: Required value: required for http URLs"},
		{"sha256 upper case", archive(func(a *v1.ArchiveSource) { a.SHA256 = strings.ToUpper(sum) }), "spec.source.archive.sha256: Invalid value: \"0123456789ABCDEF"},
		{"sha256 short", archive(func(a *v1.ArchiveSource) { a.SHA256 = sum[:63] }), "must be the archive's SHA-256: 64 lowercase hex digits"},
		{"sha256 prefixed", archive(func(a *v1.ArchiveSource) { a.SHA256 = "sha256:" + sum }), "spec.source.archive.sha256: Invalid value"},
		{"stripComponents negative", archive(func(a *v1.ArchiveSource) { a.StripComponents = -1 }), "spec.source.archive.stripComponents: Invalid value: -1: must be between 0 and 32"},
		{"stripComponents too many", archive(func(a *v1.ArchiveSource) { a.StripComponents = 33 }), "spec.source.archive.stripComponents: Invalid value: 33"},
		{"bad input: subPath dotdot", archive(func(a *v1.ArchiveSource) { a.SubPath = "addons/../../etc" }), `spec.source.archive.subPath: Invalid value: "addons/../../etc": must not contain '..'`},
		{"bad input: subPath absolute", archive(func(a *v1.ArchiveSource) { a.SubPath = "/addons" }), `spec.source.archive.subPath: Invalid value: "/addons": must be relative to the archive's root, not absolute`},
		{"bad input: into absolute", archive(func(a *v1.ArchiveSource) { a.Into = "/etc" }), `spec.source.archive.into: Invalid value: "/etc": must be relative to the game root, not absolute`},
		{"bad input: into dotdot", archive(func(a *v1.ArchiveSource) { a.Into = "left4dead2/../.." }), `spec.source.archive.into: Invalid value: "left4dead2/../..": must not contain '..'`},
		{"into trailing slash", archive(func(a *v1.ArchiveSource) { a.Into = "left4dead2/" }), "spec.source.archive.into: Invalid value: \"left4dead2/\": must not contain empty components"},
		{"into invalid UTF-8", archive(func(a *v1.ArchiveSource) { a.Into = "left4dead2/\xff" }), "spec.source.archive.into: Invalid value: \"left4dead2/\\xff\": must be valid UTF-8"},

		// URLs (archive and git share the rules).
		{"bad input: url required", archive(func(a *v1.ArchiveSource) { a.URL = "" }), "spec.source.archive.url: Required value: an https, http or file URL"},
		{"bad input: url credentials", archive(func(a *v1.ArchiveSource) { a.URL = "https://bob:hunter2@example.org/a.zip" }),
			`spec.source.archive.url: Invalid value: "https://bob:hunter2@example.org/a.zip": must not hold credentials (user:password@)`},
		{"bad input: url user only", git(func(g *v1.GitSource) { g.URL = "https://token@github.com/o/r.git" }), "spec.source.git.url: Invalid value: \"https://token@github.com/o/r.git\": must not hold credentials"},
		{"bad input: url fragment", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/a.zip#x" }), "must not have a fragment ('#')"},
		{"bad input: url empty fragment", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/a.zip#" }), "must not have a fragment ('#')"},
		{"bad input: url ftp", archive(func(a *v1.ArchiveSource) { a.URL = "ftp://example.org/a.zip" }), `spec.source.archive.url: Invalid value: "ftp://example.org/a.zip": scheme "ftp" is not supported: use https, http or file`},
		{"bad input: url ssh", git(func(g *v1.GitSource) { g.URL = "ssh://git@github.com/o/r.git" }), `scheme "ssh" is not supported (use https, http or file): nodes hold no ssh keys`},
		{"bad input: url git protocol", git(func(g *v1.GitSource) { g.URL = "git://github.com/o/r.git" }), `scheme "git" is not supported`},
		{"bad input: url scp-like", git(func(g *v1.GitSource) { g.URL = "git@github.com:o/r.git" }),
			`spec.source.git.url: Invalid value: "git@github.com:o/r.git": an ssh address (user@host:path) is not supported: use the repository's https URL`},
		{"url upper-case scheme", archive(func(a *v1.ArchiveSource) { a.URL = "HTTPS://Example.org/a.zip" }), ""},
		{"bad input: url upper-case scheme still needs sha256", archive(func(a *v1.ArchiveSource) { a.URL, a.SHA256 = "HTTP://example.org/a.zip", "" }), "required for http URLs"},
		{"bad input: url relative", archive(func(a *v1.ArchiveSource) { a.URL = "downloads/a.zip" }), "must be an absolute URL: https://, http:// or file:///"},
		{"bad input: url no host", archive(func(a *v1.ArchiveSource) { a.URL = "https:///a.zip" }), "spec.source.archive.url: Invalid value: \"https:///a.zip\": must name a host"},
		{"bad input: url opaque", archive(func(a *v1.ArchiveSource) { a.URL = "https:example.org/a.zip" }), "must be https://host/path"},
		{"bad input: url port", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org:99999/a.zip" }), "spec.source.archive.url: Invalid value"},
		{"bad input: url space", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/a b.zip" }), "must be printable ASCII without spaces (percent-encode the rest)"},
		{"bad input: url newline", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/a.zip\n" }), "must be printable ASCII"},
		{"bad input: url too long", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/" + strings.Repeat("a", MaxSourceURLLength) }), "spec.source.archive.url: Too long: may not be more than 2048 bytes"},
		{"bad input: file url relative", archive(func(a *v1.ArchiveSource) { a.URL, a.SHA256 = "file:mirror/sm.tar.gz", "" }), "must name an absolute path on the node: file:///path"},
		{"bad input: file url with host", archive(func(a *v1.ArchiveSource) { a.URL, a.SHA256 = "file://mirror/sm.tar.gz", "" }),
			"a file URL names a path on each node, without a host: file:///path, not file://mirror/..."},
		{"bad input: file url localhost", archive(func(a *v1.ArchiveSource) { a.URL = "file://localhost/srv/a.zip" }), "without a host"},
		{"bad input: file url dotdot", archive(func(a *v1.ArchiveSource) { a.URL = "file:///srv/mirror/../../etc/shadow" }), "the path must be clean: no '..'"},
		{"bad input: file url encoded dotdot", archive(func(a *v1.ArchiveSource) { a.URL = "file:///srv/%2e%2e/etc/shadow" }), "the path must be clean"},
		{"bad input: file url encoded NUL", archive(func(a *v1.ArchiveSource) { a.URL = "file:///srv/a%00.zip" }), "the path must not contain control characters"},
		{"bad input: file url root", archive(func(a *v1.ArchiveSource) { a.URL = "file:///" }), "must name a file, not /"},
		{"bad input: file url query", archive(func(a *v1.ArchiveSource) { a.URL = "file:///srv/a.zip?x=1" }), "a file URL has no query"},
		{"bad input: url bad escape", archive(func(a *v1.ArchiveSource) { a.URL = "https://example.org/%zz" }), `must be a URL: invalid URL escape "%zz"`},

		// git.
		{"git tag", git(nil), ""},
		{"git branch path", git(func(g *v1.GitSource) { g.Ref = "refs/heads/main" }), ""},
		{"git commit", git(func(g *v1.GitSource) { g.Ref = strings.Repeat("ab", 20) }), ""},
		{"git sha256 commit over http", git(func(g *v1.GitSource) { g.URL, g.Ref = "http://git.lan/r.git", sum }), ""},
		{"git file url", git(func(g *v1.GitSource) { g.URL = "file:///srv/git/cfg.git" }), ""},
		{"git whole repo at the root", git(func(g *v1.GitSource) { g.SubPath, g.Into = "", "" }), ""},
		{"git branch checked every 2m", git(func(g *v1.GitSource) { g.Ref, g.CheckInterval = "main", "2m" }), ""},
		{"bad input: git checked every 10s", git(func(g *v1.GitSource) { g.Ref, g.CheckInterval = "main", "10s" }), `spec.source.git.checkInterval: Invalid value: "10s": must be between 1m and 24h`},
		{"bad input: git interval not a duration", git(func(g *v1.GitSource) { g.CheckInterval = "daily" }), `spec.source.git.checkInterval: Invalid value: "daily": must be a duration such as "10m"`},
		{"bad input: git commit with an interval", git(func(g *v1.GitSource) { g.Ref, g.CheckInterval = strings.Repeat("ab", 20), "10m" }), "must be empty for a commit id"},
		{"git ref required", git(func(g *v1.GitSource) { g.Ref = "" }), "spec.source.git.ref: Required value: a commit id, tag or branch"},
		{"git http needs a commit", git(func(g *v1.GitSource) { g.URL = "http://git.lan/r.git" }),
			`spec.source.git.ref: Invalid value: "v1.2.0": must be a full commit id (40 or 64 lowercase hex digits) for an http URL`},
		{"git ref option", git(func(g *v1.GitSource) { g.Ref = "--upload-pack=evil" }), "not starting with '-'"},
		{"git ref dotdot", git(func(g *v1.GitSource) { g.Ref = "main..dev" }), `spec.source.git.ref: Invalid value: "main..dev": must be a full commit id (40 or 64 lowercase hex digits), or a tag or branch name: no '..'`},
		{"git ref space", git(func(g *v1.GitSource) { g.Ref = "v1 2" }), "printable ASCII without spaces"},
		{"git ref colon", git(func(g *v1.GitSource) { g.Ref = "HEAD:x" }), `none of ~ ^ : ? * [ \`},
		{"git ref reflog", git(func(g *v1.GitSource) { g.Ref = "main@{1}" }), "no '@{'"},
		{"git ref lock", git(func(g *v1.GitSource) { g.Ref = "refs/heads/x.lock" }), "no component ending in '.lock'"},
		{"git ref hidden component", git(func(g *v1.GitSource) { g.Ref = "refs/.x" }), "no component starting with '.'"},
		{"git ref trailing slash", git(func(g *v1.GitSource) { g.Ref = "feature/" }), "no empty components"},
		{"git ref too long", git(func(g *v1.GitSource) { g.Ref = strings.Repeat("a", 256) }), "spec.source.git.ref: Too long"},
		{"bad input: git subPath dotdot", git(func(g *v1.GitSource) { g.SubPath = "../x" }), `spec.source.git.subPath: Invalid value: "../x": must not contain '..'`},
		{"bad input: git into absolute", git(func(g *v1.GitSource) { g.Into = "/root/.ssh" }), "spec.source.git.into: Invalid value: \"/root/.ssh\": must be relative to the game root"},

		// workshop.
		{"workshop", workshop(nil), ""},
		{"workshop items only", workshop(func(w *v1.WorkshopSource) { w.Collections = nil }), ""},
		{"workshop largest id", workshop(func(w *v1.WorkshopSource) { w.Items = []string{"18446744073709551615"} }), ""},
		{"workshop the most ids", workshop(func(w *v1.WorkshopSource) { w.Items, w.Collections = ids(MaxWorkshopIDs), nil }), ""},
		{"bad input: workshop no ids", workshop(func(w *v1.WorkshopSource) { w.Items, w.Collections = nil, nil }), "spec.source.workshop: Required value: at least one of items and collections"},
		{"bad input: workshop id zero", workshop(func(w *v1.WorkshopSource) { w.Items = []string{"0"} }), `spec.source.workshop.items[0]: Invalid value: "0": must be a Steam Workshop id`},
		{"bad input: workshop id leading zero", workshop(func(w *v1.WorkshopSource) { w.Items = []string{"0123"} }), `spec.source.workshop.items[0]: Invalid value: "0123"`},
		{"bad input: workshop id negative", workshop(func(w *v1.WorkshopSource) { w.Collections = []string{"-5"} }), `spec.source.workshop.collections[0]: Invalid value: "-5"`},
		{"bad input: workshop id url", workshop(func(w *v1.WorkshopSource) {
			w.Items = []string{"1", "https://steamcommunity.com/sharedfiles/filedetails/?id=123"}
		}), `spec.source.workshop.items[1]: Invalid value: "https://steamcommunity.com/sharedfiles/filedetails/?id=123": must be a Steam Workshop id: decimal digits, as in the item's URL (?id=123456789)`},
		{"bad input: workshop id over uint64", workshop(func(w *v1.WorkshopSource) { w.Items = []string{"18446744073709551616"} }), `items[0]: Invalid value: "18446744073709551616"`},
		{"bad input: workshop id spaces", workshop(func(w *v1.WorkshopSource) { w.Items = []string{" 123"} }), `items[0]: Invalid value: " 123"`},
		{"bad input: workshop duplicate", workshop(func(w *v1.WorkshopSource) { w.Items = []string{"123", "456", "123"} }), `spec.source.workshop.items[2]: Duplicate value: "123"`},
		{"bad input: workshop in both lists", workshop(func(w *v1.WorkshopSource) { w.Collections = []string{"123456789"} }),
			`spec.source.workshop.collections[0]: Invalid value: "123456789": is listed in items too`},
		{"bad input: workshop too many", workshop(func(w *v1.WorkshopSource) { w.Items, w.Collections = ids(MaxWorkshopIDs), []string{"1"} }),
			"spec.source.workshop: Too many: 501: items and collections together must have at most 500 ids, not 501"},
		{"workshop interval", workshop(func(w *v1.WorkshopSource) { w.CheckInterval = "6h" }), ""},
		{"workshop interval too short", workshop(func(w *v1.WorkshopSource) { w.CheckInterval = "1m" }), `spec.source.workshop.checkInterval: Invalid value: "1m": must be between 5m and 24h`},
		{"workshop interval too long", workshop(func(w *v1.WorkshopSource) { w.CheckInterval = "48h" }), "must be between 5m and 24h"},
		{"workshop interval garbage", workshop(func(w *v1.WorkshopSource) { w.CheckInterval = "hourly" }), `spec.source.workshop.checkInterval: Invalid value: "hourly": must be a duration such as "1h"`},
		{"workshop into", workshop(func(w *v1.WorkshopSource) { w.Into = "left4dead2/custom" }), ""},
		{"bad input: workshop into dotdot", workshop(func(w *v1.WorkshopSource) { w.Into = "../addons" }), `spec.source.workshop.into: Invalid value: "../addons": must not contain '..'`},

		// files.
		{"files", files(map[string]string{"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\n", "left4dead2/addons/sourcemod/configs/admins_simple.ini": "\"STEAM_1:0:1\" \"99:z\"\r\n\t// tabs, CRLF\n"}), ""},
		{"files empty content", files(map[string]string{"left4dead2/cfg/empty.cfg": ""}), ""},
		{"files unicode", files(map[string]string{"left4dead2/cfg/motd.txt": "Willkommen! ようこそ 🧟\n"}), ""},
		{"files at the limit", files(manyFiles(4, MaxFilesBytes/4)), ""},
		{"files the most", files(manyFiles(MaxFiles, 1)), ""},
		{"bad input: files empty", files(map[string]string{}), "spec.source.files: Required value: at least one file"},
		{"bad input: files path dotdot", files(map[string]string{"left4dead2/../x": "a"}), `spec.source.files[left4dead2/../x]: Invalid value: "left4dead2/../x": must not contain '..'`},
		{"bad input: files path only dotdot", files(map[string]string{"..": "a"}), `spec.source.files[..]: Invalid value: "..": must not contain '..'`},
		{"bad input: files path absolute", files(map[string]string{"/etc/cron.d/x": "* * * * * root id"}), `spec.source.files[/etc/cron.d/x]: Invalid value: "/etc/cron.d/x": must be relative to the game root, not absolute`},
		{"bad input: files path empty component", files(map[string]string{"left4dead2//cfg/x.cfg": "a"}), "must not contain empty components"},
		{"bad input: files path trailing slash", files(map[string]string{"left4dead2/cfg/": "a"}), "must not contain empty components"},
		{"bad input: files path dot", files(map[string]string{"./server.cfg": "a"}), "must not contain '.' components"},
		{"bad input: files path empty", files(map[string]string{"": "a"}), "spec.source.files[]: Required value"},
		{"bad input: files path backslash", files(map[string]string{`left4dead2\..\x`: "a"}), `must not contain '\'`},
		{"bad input: files path newline", files(map[string]string{"a\nb": "a"}), "must not contain control characters"},
		{"bad input: files path too long", files(map[string]string{strings.Repeat("a/", 128) + "b": "a"}), "spec.source.files[a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/...]: Too long: may not be more than 256 bytes"},
		{"bad input: files file and directory", files(map[string]string{"left4dead2/cfg": "a", "left4dead2/cfg!": "b", "left4dead2/cfg/x.cfg": "c"}),
			`spec.source.files[left4dead2/cfg]: Invalid value: "left4dead2/cfg": is a file, and "left4dead2/cfg/x.cfg" needs it to be a directory`},
		{"bad input: files NUL", files(map[string]string{"left4dead2/cfg/x.cfg": "sv_cheats 0\x00\x01"}), "spec.source.files[left4dead2/cfg/x.cfg]: Invalid value: the content must be text: byte 11 is NUL"},
		{"bad input: files not UTF-8", files(map[string]string{"left4dead2/cfg/x.cfg": "caf\xe9"}), "spec.source.files[left4dead2/cfg/x.cfg]: Invalid value: the content must be UTF-8 text: byte 3 is not"},
		{"bad input: files too large", files(manyFiles(4, MaxFilesBytes/4+1)),
			"spec.source.files: Too long: the contents total 262148 bytes; an Overlay holds at most 262144 (256 KiB) inline: put larger trees in an archive or git source"},
		{"bad input: files too many", files(manyFiles(MaxFiles+1, 1)), "spec.source.files: Too many: 129: must have at most 128 items"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := Validate(tc.obj)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want error containing %q, got none", tc.want)
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("want error containing %q, got %q", tc.want, got)
			}
		})
	}
}

// TestOverlayIssueShapes: the four manifests of the issue, exactly as
// written there, decode strictly and are valid once defaulted.
func TestOverlayIssueShapes(t *testing.T) {
	for _, spec := range []string{
		`{source: {archive: {url: "https://example.org/sm.tar.gz", sha256: "` + sum + `", into: left4dead2}}}`,
		`{source: {git: {url: "https://github.com/owner/repo.git", ref: v1.2.0, subPath: cfg, into: left4dead2/cfg}}}`,
		`{source: {workshop: {items: ["123456789"], collections: ["121115793"]}}}`,
		`{source: {files: {"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\n"}}}`,
	} {
		doc := "apiVersion: left4me.io/v1alpha1\nkind: Overlay\nmetadata: {name: o, namespace: default}\nspec: " + spec + "\n"
		var o v1.Overlay
		if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		Default(&o)
		if errs := Validate(&o); len(errs) > 0 {
			t.Errorf("%s: %v", spec, errs)
		}
		if o.Spec.Source.Kind() == "" {
			t.Errorf("%s: no single kind: %v", spec, o.Spec.Source.Kinds())
		}
	}
}

func TestOverlayDefaults(t *testing.T) {
	w := workshop(nil).Spec.Source.Workshop
	if w.CheckInterval != "1h" || w.Into != "left4dead2/addons" {
		t.Fatalf("workshop defaults: %+v", w)
	}
	// What a user wrote stays.
	o := workshop(func(w *v1.WorkshopSource) { w.CheckInterval, w.Into = "10m", "left4dead2/maps" })
	if w := o.Spec.Source.Workshop; w.CheckInterval != "10m" || w.Into != "left4dead2/maps" {
		t.Fatalf("workshop defaults overwrote the spec: %+v", w)
	}
	// Archive and git sources land at the game root unless told.
	if a := archive(func(a *v1.ArchiveSource) { a.Into = "" }).Spec.Source.Archive; a.Into != "" || a.StripComponents != 0 {
		t.Fatalf("archive defaults: %+v", a)
	}
	// A git tag or branch is resolved again every 10 minutes; a commit
	// never (and takes no interval).
	if g := git(nil).Spec.Source.Git; g.CheckInterval != "10m" {
		t.Fatalf("a git tag's interval defaults to %q, want 10m", g.CheckInterval)
	}
	if g := git(func(g *v1.GitSource) { g.Ref = strings.Repeat("ab", 20) }).Spec.Source.Git; g.CheckInterval != "" {
		t.Fatalf("a git commit's interval defaults to %q, want none", g.CheckInterval)
	}
	if p := source(v1.OverlaySource{Path: "mods"}); p.Spec.Source.Workshop != nil || p.Spec.Source.Files != nil {
		t.Fatalf("a path source gained fields: %+v", p.Spec.Source)
	}
}

func TestValidateOverlayStatus(t *testing.T) {
	digest := v1.DigestPrefix + sum
	ok := v1.OverlayStatus{Digest: digest, Commit: strings.Repeat("ab", 20), Nodes: 3, Ready: 2, Failed: 1,
		Items: []v1.WorkshopItem{{ID: "123456789", Title: "Dead Before Dawn", Size: 300 << 20, TimeUpdated: &metav1.Time{}}}}
	for _, tc := range []struct {
		name string
		mut  func(*v1.OverlayStatus)
		want string
	}{
		{"ok", func(*v1.OverlayStatus) {}, ""},
		{"digest without algorithm", func(s *v1.OverlayStatus) { s.Digest = sum }, `status.digest: Invalid value: "` + sum + `": must be "sha256:" and 64 lowercase hex digits`},
		{"digest upper case", func(s *v1.OverlayStatus) { s.Digest = strings.ToUpper(digest) }, "status.digest: Invalid value"},
		{"commit short", func(s *v1.OverlayStatus) { s.Commit = "abc1234" }, `status.commit: Invalid value: "abc1234"`},
		{"item id", func(s *v1.OverlayStatus) { s.Items[0].ID = "x" }, `status.items[0].id: Invalid value: "x"`},
		{"item title", func(s *v1.OverlayStatus) { s.Items[0].Title = strings.Repeat("t", MaxWorkshopTitleLength+1) }, "status.items[0].title: Too long"},
		{"item size", func(s *v1.OverlayStatus) { s.Items[0].Size = -1 }, "status.items[0].size: Invalid value: -1"},
		{"too many items", func(s *v1.OverlayStatus) { s.Items = make([]v1.WorkshopItem, MaxWorkshopItemsStatus+1) }, "status.items: Too many"},
		{"negative count", func(s *v1.OverlayStatus) { s.Failed = -1 }, "status.failed: Invalid value: -1: must not be negative"},
		{"condition", func(s *v1.OverlayStatus) { s.Conditions = []metav1.Condition{{Type: "Ready", Status: "Maybe"}} }, "status.conditions[0].status"},
	} {
		o := source(v1.OverlaySource{Archive: &v1.ArchiveSource{URL: "https://h/a.zip", SHA256: sum}})
		o.Status = *ok.DeepCopy()
		tc.mut(&o.Status)
		errs := ValidateStatus(o)
		if tc.want == "" {
			if len(errs) > 0 {
				t.Errorf("%s: want valid, got %v", tc.name, errs)
			}
			continue
		}
		if got := errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, got)
		}
	}
}

func TestValidateNodeOverlays(t *testing.T) {
	digest := v1.DigestPrefix + sum
	ok := v1.NodeOverlay{Namespace: "default", Name: "sm", Digest: digest, Phase: v1.OverlayPhaseFailed, Reason: "ChecksumMismatch",
		Message: "https://example.org/sm.tar.gz: sha256 is 00ff…, the spec says 0123…", Digests: []string{digest}}
	for _, tc := range []struct {
		name string
		mut  func(*v1.NodeStatus)
		want string
	}{
		{"ok", func(*v1.NodeStatus) {}, ""},
		{"pending, nothing known", func(s *v1.NodeStatus) {
			s.Overlays[0] = v1.NodeOverlay{Namespace: "team", Name: "maps", Phase: v1.OverlayPhasePending}
		}, ""},
		{"phase", func(s *v1.NodeStatus) { s.Overlays[0].Phase = "Done" }, `status.overlays[0].phase: Unsupported value: "Done"`},
		{"phase required", func(s *v1.NodeStatus) { s.Overlays[0].Phase = "" }, `status.overlays[0].phase: Unsupported value: ""`},
		{"namespace", func(s *v1.NodeStatus) { s.Overlays[0].Namespace = "../x" }, `status.overlays[0].namespace: Invalid value: "../x"`},
		{"name", func(s *v1.NodeStatus) { s.Overlays[0].Name = "" }, "status.overlays[0].name: Invalid value"},
		{"duplicate", func(s *v1.NodeStatus) { s.Overlays = append(s.Overlays, s.Overlays[0]) }, `status.overlays[1]: Duplicate value: "default/sm"`},
		{"digest", func(s *v1.NodeStatus) { s.Overlays[0].Digest = "sha256:xyz" }, `status.overlays[0].digest: Invalid value: "sha256:xyz"`},
		{"digests", func(s *v1.NodeStatus) { s.Overlays[0].Digests = []string{digest, "md5:1"} }, `status.overlays[0].digests[1]: Invalid value: "md5:1"`},
		{"too many digests", func(s *v1.NodeStatus) {
			s.Overlays[0].Digests = strings.Split(strings.Repeat(digest+",", MaxNodeOverlayDigests+1), ",")[:MaxNodeOverlayDigests+1]
		}, "status.overlays[0].digests: Too many: 9"},
		{"reason", func(s *v1.NodeStatus) { s.Overlays[0].Reason = "checksum mismatch" }, `status.overlays[0].reason: Invalid value: "checksum mismatch": must be a CamelCase word`},
		{"message", func(s *v1.NodeStatus) { s.Overlays[0].Message = strings.Repeat("m", MaxMessageLength+1) }, "status.overlays[0].message: Too long"},
		{"too many", func(s *v1.NodeStatus) { s.Overlays = make([]v1.NodeOverlay, MaxNodeOverlays+1) }, "status.overlays: Too many: 1025"},
	} {
		n := node(nil)
		n.Status.Overlays = []v1.NodeOverlay{*ok.DeepCopy()}
		tc.mut(&n.Status)
		errs := ValidateStatus(n)
		if tc.want == "" {
			if len(errs) > 0 {
				t.Errorf("%s: want valid, got %v", tc.name, errs)
			}
			continue
		}
		if got := errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, got)
		}
	}
}

// TestLastAppliedHasItsOwnBound: a last-applied copy of the manifest
// (kubectl's key, which l4mctl apply writes too, or l4mctl's legacy key on
// objects an older l4mctl applied) may exceed the 256 KiB the other
// annotations share, up to its own bound.
func TestLastAppliedHasItsOwnBound(t *testing.T) {
	ov := func(key string, lastApplied int, other int) *v1.Overlay {
		o := &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default", Annotations: map[string]string{
			key: strings.Repeat("x", lastApplied)}}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "cfg"}}}
		if other > 0 {
			o.Annotations["note"] = strings.Repeat("y", other)
		}
		return o
	}
	for _, key := range []string{v1.AnnotationLastApplied, v1.LegacyAnnotationLastApplied} {
		if errs := Validate(ov(key, 600<<10, 0)); len(errs) != 0 {
			t.Fatalf("600 KiB in %s: %v", key, errs)
		}
		if errs := Validate(ov(key, MaxLastAppliedBytes+1, 0)); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "metadata.annotations["+key+"]: Too long") {
			t.Fatalf("%s over the bound: %v", key, errs)
		}
		if errs := Validate(ov(key, 10, 300<<10)); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "metadata.annotations: Too long") {
			t.Fatalf("other annotations over 256 KiB beside %s: %v", key, errs)
		}
	}
	// An object carrying both (kubectl applied it after an older l4mctl):
	// each has its own bound, neither counts against the shared one.
	both := ov(v1.AnnotationLastApplied, 600<<10, 200<<10)
	both.Annotations[v1.LegacyAnnotationLastApplied] = strings.Repeat("z", 600<<10)
	if errs := Validate(both); len(errs) != 0 {
		t.Fatalf("both last-applied annotations at 600 KiB: %v", errs)
	}
}
