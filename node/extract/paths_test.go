package extract

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestPlace(t *testing.T) {
	cases := []struct {
		name  string
		isDir bool
		o     Options
		want  string // "" with skip
		skip  bool
		err   string
	}{
		{name: "addons/sourcemod/plugins/x.smx", want: "addons/sourcemod/plugins/x.smx"},
		{name: "./addons//x.smx", want: "addons/x.smx"},
		{name: "addons/./x.smx/", want: "addons/x.smx"},
		{name: "./", isDir: true, skip: true},
		{name: ".", err: "empty name"},
		{name: "", err: "empty name"},
		{name: "/etc/passwd", err: "absolute path"},
		{name: "//etc/passwd", err: "absolute path"},
		{name: "a/../b", err: `".."`},
		{name: "..", err: `".."`},
		{name: "a/..", err: `".."`},
		{name: "...", want: "..."}, // a name, not a parent
		{name: "..x/x..", want: "..x/x.."},
		{name: "a\x00b", err: "NUL"},
		{name: `a\b`, err: "backslash"},
		{name: "sm-1.12/addons/x", o: Options{StripComponents: 1}, want: "addons/x"},
		{name: "./sm-1.12/addons/x", o: Options{StripComponents: 1}, want: "addons/x"},
		{name: "sm-1.12/", isDir: true, o: Options{StripComponents: 1}, skip: true},
		{name: "sm-1.12", o: Options{StripComponents: 1}, err: "stripComponents 1 leaves nothing"},
		{name: "sm-1.12/cfg/x.cfg", o: Options{StripComponents: 1, SubPath: "cfg"}, want: "x.cfg"},
		{name: "sm-1.12/cfg/", isDir: true, o: Options{StripComponents: 1, SubPath: "cfg"}, skip: true},
		{name: "sm-1.12/cfg", o: Options{StripComponents: 1, SubPath: "cfg"}, err: "not a directory"},
		{name: "sm-1.12/cfgx/x.cfg", o: Options{StripComponents: 1, SubPath: "cfg"}, skip: true},
		{name: "sm-1.12/addons/x.smx", o: Options{StripComponents: 1, SubPath: "cfg"}, skip: true},
		{name: "addons/sourcemod/x", o: Options{SubPath: "addons/sourcemod", Into: "left4dead2/addons/sourcemod"}, want: "left4dead2/addons/sourcemod/x"},
		{name: "addons/x", o: Options{Into: "left4dead2"}, want: "left4dead2/addons/x"},
		{name: "a/" + strings.Repeat("b", 256), err: "256 bytes"},
		{name: strings.Repeat("a/", 600), isDir: true, err: "more than MaxPathLength (1024)"},
		{name: "x/" + strings.Repeat("y", 20), o: Options{Into: "left4dead2", Limits: Limits{MaxPathLength: 33}}, want: "left4dead2/x/" + strings.Repeat("y", 20)},
		{name: "x/" + strings.Repeat("y", 21), o: Options{Into: "left4dead2", Limits: Limits{MaxPathLength: 33}}, err: "34 bytes"},
	}
	for _, c := range cases {
		o, err := c.o.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		got, skip, err := o.place(c.name, c.isDir)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("place(%q, %+v) = %q, %v; want an error saying %q", c.name, c.o, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || skip != c.skip {
			t.Errorf("place(%q, %+v) = %q, skip %v, %v; want %q, skip %v", c.name, c.o, got, skip, err, c.want, c.skip)
		}
	}
}

func TestLinkTarget(t *testing.T) {
	cases := []struct {
		rel, target, want, err string
	}{
		{"addons/sourcemod/bin/sourcemod_mm.so", "sourcemod_mm_i486.so", "sourcemod_mm_i486.so", ""},
		{"addons/sourcemod/bin/x", "../../metamod/x.vdf", "../../metamod/x.vdf", ""},
		{"addons/sourcemod/bin/x", "../../../cfg", "../../../cfg", ""}, // up to the root, not past it
		{"addons/sourcemod/bin/x", "../../../../etc", "", "leaves the tree"},
		{"x", "..", "", "leaves the tree"},
		{"a/x", "..", "..", ""},
		{"x", ".", ".", ""},
		{"x", "./", ".", ""},
		{"a/x", "./b//c/", "b/c", ""},
		{"a/x", "b/../c", "", `".." after a name`},
		{"a/x", "./../b", "../b", ""},
		{"a/x", "b/..", "", `".." after a name`},
		{"x", "/etc/passwd", "", "absolute"},
		{"x", "", "", "empty"},
		{"x", "a\x00b", "", "NUL"},
		{"x", strings.Repeat("a", 1025), "", "1025 bytes"},
		{"x", "...", "...", ""},
	}
	for _, c := range cases {
		got, err := linkTarget(c.rel, c.target, DefaultMaxPathLength)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || (!errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrLimit)) {
				t.Errorf("linkTarget(%q, %q) = %q, %v; want an error saying %q", c.rel, c.target, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("linkTarget(%q, %q) = %q, %v; want %q", c.rel, c.target, got, err, c.want)
		}
		if again, err := linkTarget(c.rel, got, DefaultMaxPathLength); err != nil || again != got {
			t.Errorf("linkTarget(%q, %q) is not stable: %q, %v", c.rel, got, again, err)
		}
	}
}

func TestFileMode(t *testing.T) {
	cases := []struct {
		in       fs.FileMode
		want     fs.FileMode
		stripped bool
	}{
		{0o644, 0o644, false},
		{0o600, 0o644, false},
		{0o000, 0o644, false},
		{0o666, 0o644, false},
		{0o777, 0o755, false},
		{0o700, 0o755, false},
		{0o001, 0o755, false},
		{0o755 | fs.ModeSetuid, 0o755, true},
		{0o755 | fs.ModeSetgid, 0o755, true},
		{0o644 | fs.ModeSticky, 0o644, true},
	}
	for _, c := range cases {
		if got, stripped := fileMode(c.in); got != c.want || stripped != c.stripped {
			t.Errorf("fileMode(%v) = %v, %v; want %v, %v", c.in, got, stripped, c.want, c.stripped)
		}
	}
}

func TestDetect(t *testing.T) {
	ustar := make([]byte, 512)
	copy(ustar, "addons/")
	copy(ustar[257:], "ustar\x0000")
	v7 := tarball(t, file("x", "y"))[:512]
	copy(v7[257:], make([]byte, 8)) // no magic: a v7 header, checked by its checksum
	sum := 0
	for i, c := range v7 {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int(c)
	}
	copy(v7[148:], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
	cases := []struct {
		head []byte
		want Format
		err  string
	}{
		{tarGz(t, okFile), TarGz, ""},
		{tarXz(t, okFile), TarXz, ""},
		{zipball(t, okFile), Zip, ""},
		{zipball(t), Zip, ""}, // an empty zip is only its end record
		{tarball(t, okFile), Tar, ""},
		{ustar, Tar, ""},
		{v7, Tar, ""},
		{make([]byte, 512), Auto, "not a tar"}, // zeros: not even a v7 header
		{nil, Auto, "empty file"},
		{[]byte("BZh91AY&SY"), Auto, "bzip2"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Auto, "zstd"},
		{[]byte("Rar!\x1a\x07\x00"), Auto, "rar"},
		{[]byte{0x34, 0x12, 0xaa, 0x55, 2, 0, 0, 0}, Auto, "a VPK file"},
		{[]byte("<!DOCTYPE html>"), Auto, "an HTML page"},
		{[]byte("hello"), Auto, `it starts with "hello"`},
	}
	for i, c := range cases {
		head := c.head[:min(len(c.head), headLen)]
		got, err := Detect(head)
		if c.err != "" {
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("case %d: Detect = %v, %v; want an error saying %q", i, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("case %d: Detect = %v, %v; want %v", i, got, err, c.want)
		}
	}
}

func octal(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

func TestXZDictCap(t *testing.T) {
	plain := tarXz(t, okFile)
	if d, ok := xzDictCap(plain); !ok || d != 8<<20 {
		t.Errorf("xz's default: %d, %v; want 8 MiB", d, ok)
	}
	if d, ok := xzDictCap(withXZDict(t, plain, 40)); !ok || d != 1<<32-1 {
		t.Errorf("the largest: %d, %v; want 4 GiB - 1", d, ok)
	}
	for _, bad := range [][]byte{nil, plain[:12], plain[:14], withXZDict(t, plain, 41), []byte("not xz at all, no")} {
		if d, ok := xzDictCap(bad); ok {
			t.Errorf("xzDictCap(% x) = %d, want not ok", bad, d)
		}
	}
}

func TestFormatNamesAndSizes(t *testing.T) {
	for _, s := range []string{"auto", "tar", "tar.gz", "tar.xz", "zip"} {
		f, err := ParseFormat(s)
		if err != nil || f.String() != s {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, err)
		}
	}
	if f, err := ParseFormat("tgz"); err != nil || f != TarGz {
		t.Errorf("tgz: %v %v", f, err)
	}
	if _, err := ParseFormat("rar"); err == nil {
		t.Error("rar: no error")
	}
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1024: "1 KiB", 1536: "1.5 KiB (1536 bytes)", 2000: "2.0 KiB (2000 bytes)", 2 << 30: "2 GiB", 8 << 30: "8 GiB", 5 << 40: "5 TiB"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
