package extract

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var smListing = []string{
	"addons/",
	"addons/metamod/",
	"addons/metamod/sourcemod.vdf -rw-r--r--",
	"addons/sourcemod/",
	"addons/sourcemod/bin/",
	"addons/sourcemod/bin/sourcemod_mm.so -> sourcemod_mm_i486.so",
	"addons/sourcemod/bin/sourcemod_mm_i486.so -rwxr-xr-x",
	"addons/sourcemod/configs/",
	"addons/sourcemod/configs/admins_simple.ini -rw-r--r--",
	"addons/sourcemod/gamedata/",
	"addons/sourcemod/gamedata/core.games/",
	"addons/sourcemod/gamedata/core.games/common.games.txt -rw-r--r--",
	"addons/sourcemod/plugins/",
	"addons/sourcemod/plugins/admin-flatfile.smx -rw-r--r--",
	"addons/sourcemod/plugins/basecommands.smx -rw-r--r--",
	"cfg/",
	"cfg/sourcemod/",
	"cfg/sourcemod/sourcemod.cfg -rw-r--r--",
}

// TestExtractEveryFormat extracts the same SourceMod-like tree from each
// format, by detection and by name, from a stream and from a file: the
// same tree lands, with the same digest, and passes Verify.
func TestExtractEveryFormat(t *testing.T) {
	ents := sourcemod("")
	archives := map[Format][]byte{
		Tar:   tarball(t, ents...),
		TarGz: tarGz(t, ents...),
		TarXz: tarXz(t, ents...),
		Zip:   zipball(t, ents...),
	}
	var digest string
	for format, data := range archives {
		for _, given := range []Format{Auto, format} {
			for _, how := range []string{"stream", "file"} {
				if how == "stream" && format == Zip {
					continue
				}
				t.Run(format.String()+"/"+given.String()+"/"+how, func(t *testing.T) {
					w := newWorld(t)
					var st Stats
					var err error
					if how == "file" {
						p := filepath.Join(t.TempDir(), "archive")
						os.WriteFile(p, data, 0o600)
						st, err = ExtractFile(context.Background(), p, given, w.dst, Options{})
					} else {
						st, err = Extract(context.Background(), struct{ io.Reader }{bytes.NewReader(data)}, given, w.dst, Options{})
					}
					if err != nil {
						t.Fatal(err)
					}
					if got := listing(t, w.dst); !slices.Equal(got, smListing) {
						t.Fatalf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(smListing, "\n"))
					}
					if got := readFile(t, filepath.Join(w.dst, "cfg/sourcemod/sourcemod.cfg")); got != "sm_show_activity 13\n" {
						t.Fatalf("content: %q", got)
					}
					want := Stats{Entries: 12, Files: 7, Dirs: 10, Symlinks: 1, Bytes: st.Bytes, Uncompressed: st.Uncompressed}
					if st != want || st.Bytes == 0 {
						t.Fatalf("stats %+v, want %+v", st, want)
					}
					if err := Verify(w.dst, VerifyOptions{}); err != nil {
						t.Fatal(err)
					}
					d, err := Digest(w.dst)
					if err != nil {
						t.Fatal(err)
					}
					if digest == "" {
						digest = d
					} else if d != digest {
						t.Fatalf("digest %s, another format gave %s", d, digest)
					}
					w.untouched(t)
				})
			}
		}
	}
}

func TestExtractStripSubPathInto(t *testing.T) {
	wrapped := append([]ent{dir("sourcemod-1.12.0-git7210/")}, sourcemod("sourcemod-1.12.0-git7210/")...)
	dotted := append([]ent{dir("./")}, sourcemod("./")...)
	cases := []struct {
		name string
		ents []ent
		o    Options
		want []string
		skip int
	}{
		{"strip a release's top directory", wrapped, Options{StripComponents: 1}, smListing, 1},
		{"./ is not a component", dotted, Options{}, smListing, 1},
		{"into left4dead2", sourcemod(""), Options{Into: "left4dead2"}, prefixed("left4dead2/", smListing), 0},
		{"subPath cfg into left4dead2/cfg", wrapped, Options{StripComponents: 1, SubPath: "cfg", Into: "left4dead2/cfg"},
			[]string{"left4dead2/", "left4dead2/cfg/", "left4dead2/cfg/sourcemod/", "left4dead2/cfg/sourcemod/sourcemod.cfg -rw-r--r--"}, 12},
		{"a deep subPath", sourcemod(""), Options{SubPath: "addons/sourcemod/plugins"},
			[]string{"admin-flatfile.smx -rw-r--r--", "basecommands.smx -rw-r--r--"}, 10},
		{"strip 2 skips what it empties", []ent{dir("a/"), dir("a/b/"), file("a/b/c.txt", "c")}, Options{StripComponents: 2},
			[]string{"c.txt -rw-r--r--"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			st, err := Extract(context.Background(), bytes.NewReader(tarGz(t, c.ents...)), Auto, w.dst, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(t, w.dst); !slices.Equal(got, c.want) {
				t.Fatalf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if st.Skipped != c.skip {
				t.Errorf("skipped %d, want %d", st.Skipped, c.skip)
			}
			if err := Verify(w.dst, VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
			w.untouched(t)
		})
	}
}

func prefixed(p string, list []string) []string {
	out := []string{strings.TrimSuffix(p, "/") + "/"}
	for _, s := range list {
		out = append(out, p+s)
	}
	return out
}

// TestExtractKeepsWhatIsSafe: the entries a careful extractor could refuse
// but need not.
func TestExtractKeepsWhatIsSafe(t *testing.T) {
	w := newWorld(t)
	data := tarball(t,
		file("addons/sourcemod/plugins/x.smx", "plugin"),
		dir("addons/"), // a directory entry after its contents, and twice
		dir("addons/"),
		hardlink("addons/sourcemod/plugins/disabled/x.smx", "addons/sourcemod/plugins/x.smx"),
		symlink("addons/sourcemod/plugins/up", ".."),
		symlink("addons/sourcemod/plugins/dot", "./x.smx"),
		symlink("addons/sourcemod/plugins/across", "../../../cfg/server.cfg"), // dangling, but inside
		ent{name: "addons/suid", typ: tar.TypeReg, mode: 0o4755, body: "#!/bin/sh\n"},
		ent{name: "addons/sticky/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "addons/private", typ: tar.TypeReg, mode: 0o600, body: "x"},
		ent{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
	)
	st, err := Extract(context.Background(), bytes.NewReader(data), Tar, w.dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"addons/",
		"addons/private -rw-r--r--",
		"addons/sourcemod/",
		"addons/sourcemod/plugins/",
		"addons/sourcemod/plugins/across -> ../../../cfg/server.cfg",
		"addons/sourcemod/plugins/disabled/",
		"addons/sourcemod/plugins/disabled/x.smx -rw-r--r--",
		"addons/sourcemod/plugins/dot -> x.smx",
		"addons/sourcemod/plugins/up -> ..",
		"addons/sourcemod/plugins/x.smx -rw-r--r--",
		"addons/sticky/",
		"addons/suid -rwxr-xr-x",
	}
	if got := listing(t, w.dst); !slices.Equal(got, want) {
		t.Fatalf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := readFile(t, filepath.Join(w.dst, "addons/sourcemod/plugins/disabled/x.smx")); got != "plugin" {
		t.Fatalf("the hardlink's copy holds %q", got)
	}
	if st.Hardlinks != 1 || st.ModesStripped != 2 || st.Skipped != 1 {
		t.Fatalf("stats %+v: want 1 hardlink copied, 2 modes stripped, the global header skipped", st)
	}
	if err := Verify(w.dst, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// badCase is an archive Extract must refuse: the error wraps kind and its
// message holds msg; left is what remains in dst afterwards.
type badCase struct {
	name string
	data func(t *testing.T) []byte
	o    Options
	kind error
	msg  string
	left []string
	// leftAny: where a damaged archive breaks depends on its compression;
	// what is left is not compared.
	leftAny bool
}

func withOptions(c badCase, o Options) badCase {
	c.o = o
	return c
}

func tarCase(name string, kind error, msg string, left []string, ents ...ent) badCase {
	return badCase{name: "tar/" + name, data: func(t *testing.T) []byte { return tarball(t, ents...) }, kind: kind, msg: msg, left: left}
}

func zipCase(name string, kind error, msg string, left []string, ents ...ent) badCase {
	return badCase{name: "zip/" + name, data: func(t *testing.T) []byte { return zipball(t, ents...) }, kind: kind, msg: msg, left: left}
}

var okFile = file("addons/ok.txt", "ok")
var okLeft = []string{"addons/", "addons/ok.txt -rw-r--r--"}

func badCases(sentinel string) []badCase {
	const mib = 1 << 20
	small := Limits{MaxEntryBytes: 4 * mib, MaxTotalBytes: 10 * mib}
	cases := []badCase{
		tarCase("absolute path", ErrUnsafe, `entry "/etc/cron.d/x": unsafe: absolute path`, okLeft, okFile, file("/etc/cron.d/x", "* * * * * root sh")),
		tarCase("dotdot", ErrUnsafe, `entry "addons/../../x": unsafe: ".." in the path`, okLeft, okFile, file("addons/../../x", "x")),
		tarCase("dotdot dir", ErrUnsafe, `entry "../": unsafe: ".."`, nil, dir("../")),
		tarCase("empty name", ErrUnsafe, `entry "": unsafe: empty name`, nil, file("", "x")),
		tarCase("only dots", ErrUnsafe, `entry "./.": unsafe: empty name`, nil, file("./.", "x")),
		tarCase("absolute symlink", ErrUnsafe, `entry "addons/etc": unsafe: a symlink to the absolute path "`+sentinel+`"`, okLeft, okFile, symlink("addons/etc", sentinel)),
		tarCase("relative symlink escape", ErrUnsafe, `entry "addons/up": unsafe: a symlink to "../../sibling", which leaves the tree`, okLeft, okFile, symlink("addons/up", "../../sibling")),
		tarCase("dotdot after a name in a target", ErrUnsafe, `(".." after a name`, okLeft, okFile, symlink("addons/l", "ok.txt/../ok.txt")),
		tarCase("symlink then write through it", ErrUnsafe, `entry "cfg/passwd": unsafe: the path crosses "cfg", a symlink an earlier entry made`,
			[]string{"addons/", "cfg -> addons"}, dir("addons/"), symlink("cfg", "addons"), file("cfg/passwd", "root::0:0")),
		tarCase("absolute symlink then write through it", ErrUnsafe, `entry "etc": unsafe: a symlink to the absolute path`, nil, symlink("etc", sentinel), file("etc/passwd", "root::0:0")),
		tarCase("symlink then a directory through it", ErrUnsafe, `the path crosses "a"`, []string{"a -> b", "b/"}, dir("b/"), symlink("a", "b"), dir("a/c/")),
		tarCase("hardlink escape", ErrUnsafe, `entry "addons/passwd": a hardlink to "../../etc/passwd": unsafe: ".."`, okLeft, okFile, hardlink("addons/passwd", "../../etc/passwd")),
		tarCase("absolute hardlink", ErrUnsafe, `a hardlink to "/etc/passwd": unsafe: absolute path`, okLeft, okFile, hardlink("addons/passwd", "/etc/passwd")),
		tarCase("hardlink to a missing file", ErrUnsafe, `not a regular file extracted before it`, okLeft, okFile, hardlink("addons/x", "addons/missing")),
		tarCase("hardlink to a directory", ErrUnsafe, `not a regular file extracted before it`, okLeft, okFile, hardlink("addons/x", "addons")),
		tarCase("hardlink to a symlink", ErrUnsafe, `not a regular file extracted before it`, append(okLeft, "addons/l -> ok.txt"), okFile, symlink("addons/l", "ok.txt"), hardlink("addons/x", "addons/l")),
		tarCase("hardlink to itself", ErrUnsafe, `not a regular file extracted before it`, nil, hardlink("x", "x")),
		tarCase("character device", ErrUnsafe, `entry "dev/null": unsafe: a character device`, okLeft, okFile, ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666}),
		tarCase("block device", ErrUnsafe, `entry "sda": unsafe: a block device`, nil, ent{name: "sda", typ: tar.TypeBlock, mode: 0o660}),
		tarCase("fifo", ErrUnsafe, `entry "addons/fifo": unsafe: a fifo`, okLeft, okFile, ent{name: "addons/fifo", typ: tar.TypeFifo, mode: 0o644}),
		tarCase("unknown type", ErrFormat, `entry "x": unsupported archive: tar entry type 'Z'`, nil, ent{name: "x", typ: 'Z'}),
		tarCase("duplicate file", ErrDuplicate, `entry "addons/ok.txt": duplicate entry: "addons/ok.txt" is already a file`, okLeft, okFile, file("addons/ok.txt", "again")),
		tarCase("file over a directory", ErrDuplicate, `entry "addons": duplicate entry: "addons" is already a directory`, okLeft, okFile, file("addons", "x")),
		tarCase("directory over a file", ErrDuplicate, `entry "addons/ok.txt/": duplicate entry`, okLeft, okFile, dir("addons/ok.txt/")),
		tarCase("a path through a file", ErrDuplicate, `goes through "addons/ok.txt", a file`, okLeft, okFile, file("addons/ok.txt/x", "x")),
		withOptions(tarCase("a name that strips to nothing", ErrUnsafe, `entry "README": unsafe: 1 path components, stripComponents 1 leaves nothing`, nil, file("README", "x")), Options{StripComponents: 1}),
		tarCase("a component longer than NAME_MAX", ErrLimit, `a path component of 256 bytes`, nil, file(strings.Repeat("a", 256), "x")),
		tarCase("backslash", ErrUnsafe, `backslash`, nil, file(`..\..\evil.dll`, "x")),

		zipCase("dotdot", ErrUnsafe, `entry "../../sibling/x": unsafe: ".."`, okLeft, okFile, file("../../sibling/x", "x")),
		zipCase("absolute", ErrUnsafe, `entry "/tmp/x": unsafe: absolute path`, okLeft, okFile, file("/tmp/x", "x")),
		zipCase("absolute symlink", ErrUnsafe, `a symlink to the absolute path "`+sentinel+`"`, okLeft, okFile, symlink("addons/etc", sentinel)),
		zipCase("relative symlink escape", ErrUnsafe, `a symlink to "../../sibling", which leaves the tree`, okLeft, okFile, symlink("addons/up", "../../sibling")),
		zipCase("symlink then write through it", ErrUnsafe, `entry "cfg/x.cfg": unsafe: the path crosses "cfg"`, append(okLeft, "cfg -> addons"), okFile, symlink("cfg", "addons"), file("cfg/x.cfg", "x")),
		zipCase("fifo", ErrUnsafe, `entry "fifo": unsafe: a fifo`, nil, ent{name: "fifo", typ: tar.TypeFifo, mode: 0o644}),
		zipCase("device", ErrUnsafe, `entry "null": unsafe: a character device`, nil, ent{name: "null", typ: tar.TypeChar, mode: 0o666}),
		zipCase("socket", ErrUnsafe, `entry "sock": unsafe: a socket`, nil, ent{name: "sock", typ: 's', mode: 0o666}),
		zipCase("symlink target too long", ErrLimit, `a symlink target of 1025 bytes`, nil, symlink("l", strings.Repeat("a/", 512)+"b")),
	}
	limits := []badCase{
		{name: "tar/entry over MaxEntryBytes", data: func(t *testing.T) []byte {
			return tarGz(t, okFile, ent{name: "addons/big.vpk", typ: tar.TypeReg, mode: 0o644, zeros: 5 * mib})
		}, o: Options{Limits: small}, kind: ErrLimit, msg: `entry "addons/big.vpk": over the limit: 5 MiB, more than MaxEntryBytes (4 MiB)`, left: okLeft},
		{name: "zip/entry over MaxEntryBytes", data: func(t *testing.T) []byte {
			return zipball(t, okFile, ent{name: "addons/big.vpk", typ: tar.TypeReg, mode: 0o644, zeros: 5 * mib})
		}, o: Options{Limits: small}, kind: ErrLimit, msg: `entry "addons/big.vpk": over the limit: 5 MiB, more than MaxEntryBytes (4 MiB)`, left: okLeft},
		{name: "tar.gz/total bytes bomb", data: func(t *testing.T) []byte {
			return tarGz(t, bomb(4, 3*mib)...)
		}, o: Options{Limits: small}, kind: ErrLimit, msg: `entry "maps/zeros3.bsp": over the limit: the archive holds more than MaxTotalBytes (10 MiB) uncompressed`,
			left: []string{"maps/", "maps/zeros0.bsp -rw-r--r--", "maps/zeros1.bsp -rw-r--r--", "maps/zeros2.bsp -rw-r--r--", "maps/zeros3.bsp -rw-r--r--"}},
		{name: "zip/total bytes bomb", data: func(t *testing.T) []byte {
			return zipball(t, bomb(4, 3*mib)...)
		}, o: Options{Limits: small}, kind: ErrLimit, msg: `entry "maps/zeros3.bsp": over the limit: the archive holds more than MaxTotalBytes (10 MiB)`,
			left: []string{"maps/", "maps/zeros0.bsp -rw-r--r--", "maps/zeros1.bsp -rw-r--r--", "maps/zeros2.bsp -rw-r--r--", "maps/zeros3.bsp -rw-r--r--"}},
		{name: "tar/hardlink copies bomb", data: func(t *testing.T) []byte {
			ents := []ent{{name: "a", typ: tar.TypeReg, mode: 0o644, zeros: 3 * mib}}
			for i := range 5 {
				ents = append(ents, hardlink("b"+string(rune('0'+i)), "a"))
			}
			return tarball(t, ents...)
		}, o: Options{Limits: small}, kind: ErrLimit, msg: `entry "b2": over the limit: the archive holds more than MaxTotalBytes`,
			left: []string{"a -rw-r--r--", "b0 -rw-r--r--", "b1 -rw-r--r--", "b2 -rw-r--r--"}},
		{name: "tar/too many entries", data: func(t *testing.T) []byte {
			return tarball(t, file("a", ""), file("b", ""), file("c", ""), file("d", ""))
		}, o: Options{Limits: Limits{MaxEntries: 3}}, kind: ErrLimit, msg: `entry "d": over the limit: more than MaxEntries (3) entries`,
			left: []string{"a -rw-r--r--", "b -rw-r--r--", "c -rw-r--r--"}},
		{name: "zip/too many entries", data: func(t *testing.T) []byte {
			return zipball(t, file("a", ""), file("b", ""), file("c", ""), file("d", ""))
		}, o: Options{Limits: Limits{MaxEntries: 3}}, kind: ErrLimit, msg: `entry "d": over the limit: more than MaxEntries (3) entries: the archive lists 4`},
		{name: "tar/path over MaxPathLength", data: func(t *testing.T) []byte {
			return tarball(t, file("addons/"+strings.Repeat("x", 40), ""))
		}, o: Options{Into: "left4dead2", Limits: Limits{MaxPathLength: 50}}, kind: ErrLimit, msg: `a path of 58 bytes below the destination, more than MaxPathLength (50)`,
			left: []string{"left4dead2/"}},
		{name: "tar/the subPath is a file", data: func(t *testing.T) []byte {
			return tarball(t, file("cfg", "x"))
		}, o: Options{SubPath: "cfg"}, kind: ErrUnsafe, msg: `subPath "cfg" is not a directory in this archive`},
		{name: "tar/a hardlink out of subPath", data: func(t *testing.T) []byte {
			return tarball(t, file("bin/x.so", "x"), hardlink("addons/x.so", "bin/x.so"))
		}, o: Options{SubPath: "addons"}, kind: ErrUnsafe, msg: `a hardlink to "bin/x.so", which is outside subPath`},
	}
	return append(cases, append(limits, corruptCases()...)...)
}

func bomb(n int, each int64) []ent {
	var ents []ent
	for i := range n {
		ents = append(ents, ent{name: "maps/zeros" + string(rune('0'+i)) + ".bsp", typ: tar.TypeReg, mode: 0o644, zeros: each})
	}
	return ents
}

func corruptCases() []badCase {
	big := file("addons/sourcemod/plugins/big.smx", noise(24<<10))
	wrapped := []ent{okFile, big, file("cfg/z.cfg", "z")}
	return []badCase{
		{name: "tar/truncated in an entry", data: func(t *testing.T) []byte {
			b := tarball(t, wrapped...)
			return b[:1024+512+4000]
		}, kind: ErrCorrupt, msg: `entry "addons/sourcemod/plugins/big.smx": truncated or corrupt archive: unexpected EOF`, leftAny: true},
		{name: "tar/truncated between entries", data: func(t *testing.T) []byte {
			b := tarball(t, okFile)
			return b[:1024]
		}, kind: ErrCorrupt, msg: `after entry "addons/ok.txt": truncated or corrupt archive: the archive ends without its end-of-archive marker`, left: okLeft},
		{name: "tar/empty file", data: func(t *testing.T) []byte { return nil }, o: Options{}, kind: ErrFormat, msg: `archive: unsupported archive: an empty file`},
		{name: "tar.gz/truncated", data: func(t *testing.T) []byte {
			b := tarGz(t, wrapped...)
			return b[:len(b)*2/3]
		}, kind: ErrCorrupt, msg: `entry "addons/sourcemod/plugins/big.smx": truncated or corrupt archive: unexpected EOF`, leftAny: true},
		{name: "tar.gz/bad checksum", data: func(t *testing.T) []byte {
			b := tarGz(t, wrapped...)
			b[len(b)-6] ^= 0xff // the CRC-32 in the trailer
			return b
		}, kind: ErrCorrupt, msg: `after entry "cfg/z.cfg": truncated or corrupt archive: gzip: invalid checksum`,
			left: []string{"addons/", "addons/ok.txt -rw-r--r--", "addons/sourcemod/", "addons/sourcemod/plugins/", "addons/sourcemod/plugins/big.smx -rw-r--r--", "cfg/", "cfg/z.cfg -rw-r--r--"}},
		{name: "tar.gz/corrupt deflate", data: func(t *testing.T) []byte {
			b := tarGz(t, wrapped...)
			for i := 40; i < 60; i++ {
				b[i] ^= 0x55
			}
			return b
		}, kind: ErrCorrupt, msg: `truncated or corrupt archive`, leftAny: true},
		{name: "tar.xz/corrupt", data: func(t *testing.T) []byte {
			b := tarXz(t, wrapped...)
			for i := len(b) / 2; i < len(b)/2+8; i++ {
				b[i] ^= 0x55
			}
			return b
		}, kind: ErrCorrupt, msg: `truncated or corrupt archive: `, leftAny: true},
		{name: "tar.xz/truncated", data: func(t *testing.T) []byte {
			b := tarXz(t, wrapped...)
			return b[:len(b)-40]
		}, kind: ErrCorrupt, msg: `truncated or corrupt archive`, leftAny: true},
		{name: "tar.xz/a huge dictionary", data: func(t *testing.T) []byte {
			return withXZDict(t, tarXz(t, okFile), 36) // 1 GiB
		}, kind: ErrLimit, msg: `archive: over the limit: the xz stream asks for a 1 GiB dictionary, more than MaxXZDictBytes (128 MiB)`},
		{name: "zip/truncated", data: func(t *testing.T) []byte {
			b := zipball(t, wrapped...)
			return b[:len(b)-30]
		}, kind: ErrCorrupt, msg: `archive: truncated or corrupt archive: zip: not a valid zip file`},
		{name: "zip/corrupt entry", data: func(t *testing.T) []byte {
			b := zipball(t, wrapped...)
			i := bytes.Index(b, []byte("big.smx")) + len("big.smx") + 30
			for j := i; j < i+16; j++ {
				b[j] ^= 0x55
			}
			return b
		}, kind: ErrCorrupt, msg: `entry "addons/sourcemod/plugins/big.smx": truncated or corrupt archive`, leftAny: true},
		{name: "zip/declares less than it inflates to", data: func(t *testing.T) []byte {
			return lyingZip(t, "maps/liar.bsp", 1<<20, 100)
		}, kind: ErrCorrupt, msg: `entry "maps/liar.bsp": truncated or corrupt archive: zip: not a valid zip file`, leftAny: true},
		{name: "bzip2", data: func(t *testing.T) []byte { return []byte("BZh91AY&SY...") }, kind: ErrFormat, msg: `archive: unsupported archive: bzip2, not a tar, tar.gz, tar.xz or zip archive`},
		{name: "an HTML error page", data: func(t *testing.T) []byte { return []byte("<!DOCTYPE html><title>404</title>") }, kind: ErrFormat, msg: `an HTML page`},
	}
}

// TestExtractRefuses runs every bad archive: the error names the entry and
// the rule, nothing appears outside dst, and what is left in dst (the
// entries before the bad one, sometimes a partly written file, which the
// caller discards with its staging directory) still passes Verify.
func TestExtractRefuses(t *testing.T) {
	for i, c := range badCases("/sentinel") {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			// Every absolute link aims at the sibling, so one followed
			// would show there.
			c := badCases(w.sibling)[i]
			_, err := Extract(context.Background(), bytes.NewReader(c.data(t)), Auto, w.dst, c.o)
			if err == nil {
				t.Fatalf("no error; dst holds %v", listing(t, w.dst))
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q\nwant one wrapping %v and saying %q", err, c.kind, c.msg)
			}
			var ee *EntryError
			if errors.As(err, &ee) != !strings.HasPrefix(err.Error(), "archive: ") {
				t.Fatalf("error %q: an *EntryError unless about the whole archive", err)
			}
			w.untouched(t)
			if err := Verify(w.dst, VerifyOptions{}); err != nil {
				t.Fatalf("what is left does not pass Verify: %v", err)
			}
			got := listing(t, w.dst)
			if want := slices.Sorted(slices.Values(c.left)); !c.leftAny && !slices.Equal(got, want) {
				t.Fatalf("left in dst:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			t.Logf("%v; left in dst: %v", err, got)
		})
	}
}

func TestExtractStopsWhenCancelled(t *testing.T) {
	w := newWorld(t)
	data := tarGz(t, bomb(3, 8<<20)...)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(data), n: int64(len(data) / 2), cancel: cancel}
	_, err := Extract(ctx, r, TarGz, w.dst, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), `"maps/zeros`) {
		t.Fatalf("error %q does not name the entry", err)
	}
	cancel()
	if _, err := Extract(ctx, bytes.NewReader(data), TarGz, t.TempDir(), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context at the start: %v", err)
	}
}

// cancelAfter cancels once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 4096)])
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestExtractRefusesBadCalls(t *testing.T) {
	w := newWorld(t)
	os.WriteFile(filepath.Join(w.dst, "left-over"), nil, 0o644)
	if _, err := Extract(context.Background(), bytes.NewReader(tarball(t, okFile)), Tar, w.dst, Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a dst that is not empty: %v", err)
	}
	zipData := zipball(t, okFile)
	if _, err := Extract(context.Background(), struct{ io.Reader }{bytes.NewReader(zipData)}, Auto, t.TempDir(), Options{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "random access") {
		t.Errorf("a zip from a plain stream: %v", err)
	}
	for _, o := range []Options{
		{StripComponents: -1}, {SubPath: "/cfg"}, {SubPath: "../cfg"}, {Into: "left4dead2/"}, {Into: "a//b"}, {Into: "."},
		{Limits: Limits{MaxEntries: -1}}, {MaxXZDictBytes: -1},
	} {
		if _, err := Extract(context.Background(), bytes.NewReader(tarball(t, okFile)), Tar, t.TempDir(), o); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	if _, err := ExtractFile(context.Background(), filepath.Join(t.TempDir(), "missing.tar.gz"), Auto, t.TempDir(), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
