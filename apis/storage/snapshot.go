package storage

import (
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// RestoreEmbedded writes a new embedded etcd data dir (what
// EmbeddedOptions.Dir names) from a snapshot taken with etcd's Maintenance
// API, as `etcdutl snapshot restore` does: the keys and revisions of the
// snapshot, in a fresh single-member cluster with the embedded member's own
// name and peer URL, so StartEmbedded starts on it. It checks the
// snapshot's SHA-256 trailer and refuses a dir that is not empty.
func RestoreEmbedded(snapshotPath, dir string) error {
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                embeddedName,
		OutputDataDir:       filepath.Join(dir, embeddedMemberDir),
		PeerURLs:            []string{embeddedPeerURL},
		InitialCluster:      embeddedName + "=" + embeddedPeerURL,
		InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		return fmt.Errorf("restore etcd snapshot %s into %s: %w", snapshotPath, dir, err)
	}
	return nil
}

// Snapshot writes a consistent copy of the database to w, then its SHA-256:
// the format of etcd's Maintenance Snapshot stream, which RestoreEmbedded
// and `etcdutl snapshot restore` read. It returns the bytes written.
func (e *Embedded) Snapshot(w io.Writer) (int64, error) {
	snap := e.etcd.Server.Backend().Snapshot()
	defer snap.Close()
	h := sha256.New()
	n, err := snap.WriteTo(io.MultiWriter(w, h))
	if err != nil {
		return n, fmt.Errorf("write etcd snapshot: %w", err)
	}
	m, err := w.Write(h.Sum(nil))
	if err != nil {
		return n + int64(m), fmt.Errorf("write etcd snapshot checksum: %w", err)
	}
	return n + int64(m), nil
}
