package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/auth"
	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/storage"
)

// snapshotRoute is where admins download the etcd snapshot.
const snapshotRoute = "GET " + client.SnapshotPath

// SnapshotFunc writes a consistent snapshot of etcd to w (the format of
// etcd's Maintenance Snapshot stream: the database, then its SHA-256).
type SnapshotFunc func(w io.Writer) (int64, error)

// snapshotSource is what GET /snapshot streams: the embedded etcd only. An
// external cluster may hold more than left4me's keys, and its operator
// backs it up with etcd's own tools.
func (s *Server) snapshotSource() SnapshotFunc {
	if s.embedded == nil {
		return nil
	}
	return s.embedded.Snapshot
}

// serveSnapshot streams the etcd snapshot to an admin. Every attempt is in
// the audit log: the snapshot holds every object and token hash.
func (h *Handler) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	u := auth.UserFrom(r.Context())
	rec := auditRecord{Time: time.Now().UTC(), User: "(unknown)", Verb: "get", Resource: "snapshot", Remote: r.RemoteAddr}
	if u != nil {
		rec.User, rec.TokenID = u.Name, u.TokenID
	}
	// A stream that breaks half-way aborts the handler: it is recorded
	// as the 500 it is.
	rec.Code = http.StatusInternalServerError
	defer func() { h.audit.record(rec) }()
	rec.Code = h.snapshotTo(w, r, u, rec.User)
}

// snapshotTo answers the request and returns the status it sent.
func (h *Handler) snapshotTo(w http.ResponseWriter, r *http.Request, u *auth.User, name string) int {
	fail := func(err error) int {
		h.writeError(w, r, err)
		return int(statusFor(err).Code)
	}
	if u == nil || !u.IsAdmin() {
		return fail(apierrors.NewForbidden(schemaGR(""), "snapshot", fmt.Errorf("%s may not take an etcd snapshot: only admins may", name)))
	}
	if h.snapshot == nil {
		return fail(&apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
			Message: "this server runs on an external etcd: back it up with etcd's own tools (etcdutl snapshot save)"}})
	}
	// A big database takes longer than any write timeout meant for API
	// calls; the stream ends when the client goes away.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.log.V(1).Info("snapshot: clear write deadline", "error", err.Error())
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="left4me-etcd.snapshot"`)
	w.WriteHeader(http.StatusOK)
	n, err := h.snapshot(w)
	if err != nil {
		h.log.Error(err, "snapshot stream broke", "user", name, "bytes", n)
		// Cut the connection so the client sees a broken download, not
		// a short file that ends cleanly.
		panic(http.ErrAbortHandler)
	}
	h.log.Info("etcd snapshot sent", "user", name, "bytes", n)
	return http.StatusOK
}

// RestoreSnapshot makes dataDir a data dir for l4m-server with embedded
// etcd, holding what the snapshot at path held (every object and token). It
// refuses a dataDir that exists and is not empty, and a snapshot whose
// checksum does not match; on failure it leaves nothing behind. The PKI and
// admin.yaml are not in a snapshot (the endpoint would hand out the CA key):
// copy <old-data-dir>/pki and admin.yaml into dataDir afterwards to keep
// the CA clients and nodes trust; without them the restored server makes a
// new CA and a new admin token (the old tokens authenticate either way).
func RestoreSnapshot(path, dataDir string) (err error) {
	if err := client.VerifySnapshot(path); err != nil {
		return err
	}
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	case len(entries) > 0:
		return fmt.Errorf("restore into %s: the directory is not empty (restore only into a new data dir)", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	defer func() {
		if err != nil {
			removeContents(dataDir)
		}
	}()
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	etcdDir := filepath.Join(dataDir, "etcd")
	if err := os.Mkdir(etcdDir, 0o700); err != nil {
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	return storage.RestoreEmbedded(path, etcdDir)
}

// removeContents empties dir, which RestoreSnapshot found empty.
func removeContents(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
