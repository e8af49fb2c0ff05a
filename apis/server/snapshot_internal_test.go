package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/auth"
	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestSnapshotBrokenStream: when etcd fails half-way through a snapshot,
// the download breaks instead of ending cleanly, no file is left, and the
// audit log says 500.
func TestSnapshotBrokenStream(t *testing.T) {
	var audit bytes.Buffer
	h := &Handler{log: logr.Discard(), audit: &auditor{w: &audit}, snapshot: func(w io.Writer) (int64, error) {
		n, _ := w.Write(bytes.Repeat([]byte{1}, 64<<10))
		return int64(n), errors.New("disk read error")
	}}
	admin := &auth.User{Name: "admin", Type: v1.TokenUser, Roles: []v1.RoleBinding{{Role: v1.RoleAdmin}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serveSnapshot(w, r.WithContext(auth.WithUser(r.Context(), admin)))
	}))
	defer srv.Close()
	c, err := client.New(client.Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The download itself breaks (not only the checksum after it).
	if _, err := c.SaveSnapshot(context.Background(), filepath.Join(dir, "backup.db")); err == nil || !strings.Contains(err.Error(), "download") {
		t.Fatalf("a broken snapshot stream: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a broken download left %v", entries)
	}
	// The handler recorded before the connection broke; the lock orders it.
	h.audit.mu.Lock()
	line := audit.String()
	h.audit.mu.Unlock()
	if !strings.Contains(line, `"resource":"snapshot","code":500`) {
		t.Fatalf("audit: %s", line)
	}
}
