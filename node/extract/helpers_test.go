package extract

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ent is one entry of an archive a test builds.
type ent struct {
	name string
	typ  byte // a tar type flag; zip entries take theirs from mode
	mode int64
	body string
	link string // a symlink's target or a hardlink's target
	// zeros, when set, is the body instead: that many zero bytes,
	// streamed, so a bomb costs no memory to build.
	zeros int64
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}

// sourcemod is a tree shaped like a SourceMod release, wrapped in a top
// directory like a GitHub release archive.
func sourcemod(top string) []ent {
	p := func(s string) string { return top + s }
	return []ent{
		dir(p("addons/")),
		dir(p("addons/sourcemod/")),
		dir(p("addons/sourcemod/plugins/")),
		file(p("addons/sourcemod/plugins/admin-flatfile.smx"), "FFSP\x07compiled plugin"),
		file(p("addons/sourcemod/plugins/basecommands.smx"), "FFSP\x07another plugin"),
		{name: p("addons/sourcemod/bin/sourcemod_mm_i486.so"), typ: tar.TypeReg, mode: 0o755, body: "\x7fELF native code"},
		file(p("addons/sourcemod/configs/admins_simple.ini"), "\"STEAM_1:0:1\" \"99:z\"\n"),
		file(p("addons/sourcemod/gamedata/core.games/common.games.txt"), "\"Games\" {}\n"),
		file(p("addons/metamod/sourcemod.vdf"), "\"Metamod Plugin\" { \"file\" \"addons/sourcemod/bin/sourcemod_mm\" }\n"),
		dir(p("cfg/")),
		file(p("cfg/sourcemod/sourcemod.cfg"), "sm_show_activity 13\n"),
		symlink(p("addons/sourcemod/bin/sourcemod_mm.so"), "sourcemod_mm_i486.so"),
	}
}

func (e ent) reader() io.Reader {
	if e.zeros > 0 {
		return io.LimitReader(zeroReader{}, e.zeros)
	}
	return strings.NewReader(e.body)
}

func (e ent) size() int64 {
	if e.zeros > 0 {
		return e.zeros
	}
	return int64(len(e.body))
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func writeTar(t testing.TB, w io.Writer, ents []ent) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeXGlobalHeader { // as GitHub's archives have
			h.PAXRecords = map[string]string{"comment": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"}
		}
		if e.typ == tar.TypeReg {
			h.Size = e.size()
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.Copy(tw, e.reader()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func tarball(t testing.TB, ents ...ent) []byte {
	var b bytes.Buffer
	writeTar(t, &b, ents)
	return b.Bytes()
}

func tarGz(t testing.TB, ents ...ent) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	writeTar(t, zw, ents)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarXz(t testing.TB, ents ...ent) []byte {
	var b bytes.Buffer
	xw, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, xw, ents)
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zipball builds a zip; an entry's mode (with its type from typ) goes into
// the external attributes as Unix mode bits, which is where zip keeps
// symlinks and executables.
func zipball(t testing.TB, ents ...ent) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := fs.FileMode(e.mode).Perm()
		if e.mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		switch e.typ {
		case tar.TypeDir:
			mode |= fs.ModeDir
		case tar.TypeSymlink:
			mode |= fs.ModeSymlink
		case tar.TypeFifo:
			mode |= fs.ModeNamedPipe
		case tar.TypeChar:
			mode |= fs.ModeDevice | fs.ModeCharDevice
		case 's':
			mode |= fs.ModeSocket
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		body := e.reader()
		if e.typ == tar.TypeSymlink {
			body = strings.NewReader(e.link)
		}
		if e.typ != tar.TypeDir {
			if _, err := io.Copy(w, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// world is a directory holding dst and a sibling every escape would aim
// at; nothing else may ever appear in it.
type world struct {
	base, dst, sibling string
}

func newWorld(t testing.TB) world { return newWorldIn(t, t.TempDir()) }

func newWorldIn(t testing.TB, base string) world {
	t.Helper()
	w := world{base: base, dst: filepath.Join(base, "dst"), sibling: filepath.Join(base, "sibling")}
	for _, d := range []string{w.dst, w.sibling} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// untouched fails the test if anything appeared outside dst.
func (w world) untouched(t testing.TB) {
	t.Helper()
	if entries, err := os.ReadDir(w.sibling); err != nil || len(entries) != 0 {
		t.Fatalf("the sibling directory changed: %v %v", entries, err)
	}
	entries, err := os.ReadDir(w.base)
	if err != nil || len(entries) != 2 {
		t.Fatalf("something appeared beside dst: %v %v", entries, err)
	}
}

// listing describes a tree: "d/" for a directory, "f 0644" for a file's
// mode, "l -> target" for a symlink, sorted by path.
func listing(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if info.Mode().Perm() != 0o755 || info.Mode()&(fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky) != 0 {
				out = append(out, rel+"/ "+info.Mode().String())
			} else {
				out = append(out, rel+"/")
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		default:
			out = append(out, rel+" "+info.Mode().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noise is n bytes that do not compress, the same on every run.
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}

// lyingZip holds one entry whose header declares fewer bytes than its
// data inflates to.
func lyingZip(t testing.TB, name string, real int, declared uint64) []byte {
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	data := make([]byte, real)
	fw.Write(data)
	fw.Close()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(data),
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: declared,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withXZDict rewrites the dictionary size the first block header of an
// xz stream declares (the encoded byte: 36 is 1 GiB), fixing the header's
// CRC, so the stream asks for a huge dictionary without one being made.
func withXZDict(t testing.TB, b []byte, code byte) []byte {
	t.Helper()
	b = bytes.Clone(b)
	hlen := (int(b[12]) + 1) * 4
	h := b[12 : 12+hlen]
	i := bytes.Index(h[2:], []byte{0x21, 0x01})
	if i < 0 || h[1]&0x03 != 0 {
		t.Fatalf("no single LZMA2 filter in the block header % x", h)
	}
	h[2+i+2] = code
	binary.LittleEndian.PutUint32(h[hlen-4:], crc32.ChecksumIEEE(h[:hlen-4]))
	return b
}
