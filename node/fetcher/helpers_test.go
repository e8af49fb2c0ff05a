package fetcher

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/ulikunitz/xz"
	"go.uber.org/goleak"
)

// TestMain is also the fetcher process of the Runner's tests: the Runner
// runs this test binary as `<exe> fetch --spec … --staging …`,
// as it runs l4m-node, and this runs what l4m-node's subcommand runs.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == CommandName {
		os.Exit(childMain(os.Args[2:]))
	}
	if sandboxtest.Inside() {
		// Inside a sandbox host (TestRunnerOnSystemd): only
		// TestRunnerInsideSandbox runs, and its D-Bus connection's
		// goroutines are the sandbox's to end.
		code := m.Run()
		removeGitFixture()
		os.Exit(code)
	}
	code := m.Run()
	removeGitFixture()
	// Every goroutine must have stopped with its test.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}

func childMain(args []string) int {
	fl := flag.NewFlagSet(CommandName, flag.ContinueOnError)
	spec := fl.String("spec", "-", "")
	staging := fl.String("staging", "", "")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	in := os.Stdin
	if *spec != "-" {
		f, err := os.Open(*spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		in = f
	}
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})
	if err := RunCommand(context.Background(), in, *staging, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		return 1
	}
	return 0
}

// ent is one entry of an archive a test builds.
type ent struct {
	name string
	typ  byte // a tar type flag; zip entries take theirs from mode
	mode int64
	body string
	link string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

// sourcemod is a tree shaped like a SourceMod release, wrapped in a top
// directory as a release archive often is.
func sourcemod(top string) []ent {
	p := func(s string) string { return top + s }
	return []ent{
		dir(p("")),
		dir(p("addons/")),
		dir(p("addons/sourcemod/")),
		file(p("addons/sourcemod/plugins/admin-flatfile.smx"), "FFSP\x07compiled plugin"),
		file(p("addons/sourcemod/plugins/basecommands.smx"), "FFSP\x07another plugin"),
		{name: p("addons/sourcemod/bin/sourcemod_mm_i486.so"), typ: tar.TypeReg, mode: 0o755, body: "\x7fELF native code"},
		file(p("addons/sourcemod/configs/admins_simple.ini"), "\"STEAM_1:0:1\" \"99:z\"\n"),
		file(p("addons/metamod/sourcemod.vdf"), "\"Metamod Plugin\" { \"file\" \"addons/sourcemod/bin/sourcemod_mm\" }\n"),
		dir(p("cfg/")),
		file(p("cfg/sourcemod/sourcemod.cfg"), "sm_show_activity 13\n"),
		symlink(p("addons/sourcemod/plugins/current.smx"), "basecommands.smx"),
	}
}

// sourcemodTree is what sourcemod("sm-1.12/") extracts to with strip 1,
// into left4dead2.
var sourcemodTree = []string{
	"left4dead2/ dir",
	"left4dead2/addons/ dir",
	"left4dead2/addons/metamod/ dir",
	"left4dead2/addons/metamod/sourcemod.vdf 0644",
	"left4dead2/addons/sourcemod/ dir",
	"left4dead2/addons/sourcemod/bin/ dir",
	"left4dead2/addons/sourcemod/bin/sourcemod_mm_i486.so 0755",
	"left4dead2/addons/sourcemod/configs/ dir",
	"left4dead2/addons/sourcemod/configs/admins_simple.ini 0644",
	"left4dead2/addons/sourcemod/plugins/ dir",
	"left4dead2/addons/sourcemod/plugins/admin-flatfile.smx 0644",
	"left4dead2/addons/sourcemod/plugins/basecommands.smx 0644",
	"left4dead2/addons/sourcemod/plugins/current.smx -> basecommands.smx",
	"left4dead2/cfg/ dir",
	"left4dead2/cfg/sourcemod/ dir",
	"left4dead2/cfg/sourcemod/sourcemod.cfg 0644",
}

func tarball(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarGz(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(tarball(t, ents...))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarXz(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	xw, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(tarball(t, ents...))
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zipball(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch e.typ {
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | 0o755)
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
		default:
			h.SetMode(fs.FileMode(e.mode))
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if e.typ == tar.TypeSymlink {
			body = e.link
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// listing is the tree below root: "path/ dir", "path 0644" and
// "path -> target", sorted.
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
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out = append(out, rel+"/ dir")
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		default:
			out = append(out, fmt.Sprintf("%s %04o", rel, fi.Mode().Perm()))
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

// names lists a directory's entries.
func names(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// server is an httptest server that counts and times its requests by
// path.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string][]time.Time
}

func newServer(t testing.TB, tls bool, h func(s *server, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{hits: map[string][]time.Time{}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path] = append(s.hits[r.URL.Path], time.Now())
		s.mu.Unlock()
		h(s, w, r)
	})
	s.Server = httptest.NewUnstartedServer(handler)
	// Refused handshakes are what some tests are about, not noise.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// serving is a server answering every path with body.
func serving(t testing.TB, body []byte) *server {
	return newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "a", time.Time{}, bytes.NewReader(body))
	})
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits[path])
}

func (s *server) times(path string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.hits[path]...)
}

// caPEM is a TLS test server's certificate, for Limits.CAPEM.
func (s *server) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// fast are limits for tests: quick retries, the rest default.
func fast() Limits {
	return Limits{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond}
}

// wantReason checks err is an *Error with reason whose text holds each
// of parts.
func wantReason(t testing.TB, err error, reason string, parts ...string) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T): want an *Error with reason %s", err, err, reason)
	}
	if e.Reason != reason {
		t.Fatalf("reason %s (%v): want %s", e.Reason, err, reason)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
	return e
}
