package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// The fixtures the Overlay tests share: an archive server, archives, a
// git remote, and polls of the node's Overlays and store.

// archiveServer is a plain HTTP server on loopback (the sandbox shares
// it) serving archives by path and counting the requests for each.
type archiveServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
}

func newArchiveServer(t *testing.T) *archiveServer {
	s := &archiveServer{files: map[string][]byte{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		data, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(data)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve publishes data at path and returns its URL and SHA-256.
func (s *archiveServer) serve(path string, data []byte) (url, sum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
	h := sha256.Sum256(data)
	return s.URL + path, hex.EncodeToString(h[:])
}

func (s *archiveServer) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// tarEntry is one entry of a test archive: a file (Body), a directory
// (Dir) or a symlink (Link).
type tarEntry struct {
	Name, Body, Link string
	Dir              bool
}

// tarGz builds a .tar.gz of entries, in order.
func tarGz(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Size: int64(len(e.Body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		switch {
		case e.Dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// until polls cond until it holds, failing with what it last said and
// the agent's journal.
func (e *env) until(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	last := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	e.t.Fatalf("%s: not within %s; last: %s\n%s", what, timeout, last, e.journal())
}

// journal is the tail of the agent's and its fetchers' journal.
func (e *env) journal() string {
	logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "-u", "l4m-fetch-*", "--no-pager", "-n", "80")
	return logs
}

func (e *env) nodeObj() *v1.Node {
	e.t.Helper()
	obj, err := e.admin.Get(context.Background(), resources.Nodes, "", e.node)
	if err != nil {
		e.t.Fatalf("get Node %s: %v", e.node, err)
	}
	return obj.(*v1.Node)
}

func (e *env) overlayObj(name string) *v1.Overlay {
	e.t.Helper()
	obj, err := e.admin.Get(context.Background(), resources.Overlays, "default", name)
	if err != nil {
		e.t.Fatalf("get Overlay %s: %v", name, err)
	}
	return obj.(*v1.Overlay)
}

// storeEntries are the entries in the node's overlay store (every name
// in overlays/.store but .staging and index.json).
func (e *env) storeEntries() []string {
	e.t.Helper()
	dir := filepath.Join(e.sb.Left4meDir, "overlays", ".store")
	des, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatalf("the overlay store: %v", err)
	}
	var out []string
	for _, d := range des {
		if d.Name() != ".staging" && d.Name() != "index.json" {
			out = append(out, d.Name())
		}
	}
	return out
}

func (e *env) stagingLeft() []string {
	des, _ := os.ReadDir(filepath.Join(e.sb.Left4meDir, "overlays", ".store", ".staging"))
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// gitRemote is a bare repository made with the git CLI, and a clone
// whose commits are pushed to its main branch.
type gitRemote struct {
	t          *testing.T
	bare, work string
}

func newGitRemote(t *testing.T, bare string) *gitRemote {
	t.Helper()
	if err := os.MkdirAll(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	g := &gitRemote{t: t, bare: bare, work: t.TempDir()}
	g.git(bare, "init", "-q", "--bare")
	g.git(g.work, "init", "-q")
	return g
}

func (g *gitRemote) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.org"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files in the clone, commits them, pushes the commit to
// main and returns its id.
func (g *gitRemote) commit(msg string, files map[string]string) string {
	g.t.Helper()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Join(g.work, filepath.Dir(p)), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(g.work, p), []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.git(g.work, "add", ".")
	g.git(g.work, "commit", "-q", "-m", msg)
	g.git(g.work, "push", "-q", g.bare, "HEAD:refs/heads/main")
	return g.git(g.work, "rev-parse", "HEAD")
}

func treeKey(digest string) string { return "tree-" + strings.TrimPrefix(digest, "sha256:") }
