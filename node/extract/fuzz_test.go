package extract

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzExtract")

// fuzzSeeds are the archives the fuzzer starts from: good ones in every
// format and the attacks, small so mutations stay fast.
func fuzzSeeds(t testing.TB) map[string][]byte {
	small := []ent{dir("addons/"), file("addons/sourcemod/plugins/x.smx", "FFSP"), symlink("addons/l", "sourcemod/plugins/x.smx"), hardlink("addons/h", "addons/sourcemod/plugins/x.smx")}
	return map[string][]byte{
		"sourcemod-tar-gz":   tarGz(t, sourcemod("sm/")...),
		"small-tar":          tarball(t, small...),
		"small-tar-gz":       tarGz(t, small...),
		"small-tar-xz":       tarXz(t, small...),
		"small-zip":          zipball(t, small...),
		"sourcemod-zip":      zipball(t, sourcemod("")...),
		"write-through-tar":  tarball(t, symlink("cfg", "addons"), dir("addons/"), file("cfg/passwd", "x")),
		"escape-tar":         tarball(t, symlink("a", "../sibling"), symlink("b", "/tmp"), file("../x", "x"), hardlink("c", "../../etc/passwd")),
		"escape-zip":         zipball(t, symlink("a", "../sibling"), file("../x", "x"), symlink("b", "/tmp")),
		"device-tar":         tarball(t, ent{name: "null", typ: tar.TypeChar}, ent{name: "fifo", typ: tar.TypeFifo}),
		"setuid-tar":         tarball(t, ent{name: "su", typ: tar.TypeReg, mode: 0o4755, body: "x"}, ent{name: "d/", typ: tar.TypeDir, mode: 0o3777}),
		"duplicate-tar":      tarball(t, file("a", "1"), file("a", "2"), dir("a/")),
		"symlink-chain-tar":  tarball(t, dir("d/"), symlink("d/s", ".."), symlink("l", "d/s/../..")),
		"truncated-tar-gz":   tarGz(t, small...)[:60],
		"zip-symlink-dotdot": zipball(t, symlink("x/l", "../.."), file("x/l/y", "y")),
	}
}

// FuzzExtract feeds any bytes to Extract as an archive (tar, zip, or
// either compressed): it must never panic, never write outside dst (a
// sibling directory stays empty, nothing appears beside dst), fail only
// with an error naming the entry or the archive, and leave a tree that
// passes Verify and can be digested, whether it succeeded or not.
func FuzzExtract(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data, uint8(0))
	}
	f.Add(fuzzSeeds(f)["sourcemod-tar-gz"], uint8(1))
	o := Options{MaxXZDictBytes: 16 << 20, Limits: Limits{MaxEntries: 500, MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxPathLength: 512}}
	f.Fuzz(func(t *testing.T, data []byte, strip uint8) {
		w := newWorldIn(t, scratch(t))
		o := o
		o.StripComponents = int(strip % 3)
		_, err := Extract(context.Background(), bytes.NewReader(data), Auto, w.dst, o)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "entry ") && !strings.HasPrefix(msg, "after entry ") && !strings.HasPrefix(msg, "archive: ") {
				t.Fatalf("an error that names no entry: %v", err)
			}
		}
		w.untouched(t)
		if verr := Verify(w.dst, VerifyOptions{Limits: o.Limits}); verr != nil {
			t.Fatalf("extracting gave %v and left a tree Verify refuses: %v", err, verr)
		}
		if _, err := Digest(w.dst); err != nil {
			t.Fatal(err)
		}
	})
}

// scratch is a directory for one run, on /dev/shm when there is one: on a
// disk, creating and removing the directories costs ten times the rest of
// a run, and the fuzzer runs every new input thousands of times to
// minimize it.
func scratch(t *testing.T) string {
	if d, err := os.MkdirTemp("/dev/shm", "extract-fuzz-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// TestWriteFuzzCorpus rewrites the committed seed corpus with
// -update-corpus (go test -run TestWriteFuzzCorpus -update-corpus).
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz/FuzzExtract")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzExtract")
	must(t, os.MkdirAll(dir, 0o755))
	for name, data := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint8(%d)\n", data, 0)
		sum := sha256.Sum256([]byte(body))
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%x", name, sum[:4])), []byte(body), 0o644))
	}
}
