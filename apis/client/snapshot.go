package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SnapshotPath is the API path of the etcd snapshot (admins only).
const SnapshotPath = "/snapshot"

// Snapshot streams a consistent snapshot of the server's embedded etcd:
// etcd's database file with its SHA-256 appended (what `etcdutl snapshot
// restore` and `l4m-server snapshot restore` read).
func (c *Client) Snapshot(ctx context.Context) (io.ReadCloser, error) {
	return c.stream(ctx, SnapshotPath, nil)
}

// SaveSnapshot writes Snapshot to path (mode 0600: it holds every token
// hash) and returns its size. The file appears only whole and with a
// matching checksum: a download cut short leaves no file behind.
func (c *Client) SaveSnapshot(ctx context.Context, path string) (int64, error) {
	body, err := c.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".part-*")
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	n, err := io.Copy(tmp, body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("snapshot: download: %w", err)
	}
	if err := VerifySnapshot(tmp.Name()); err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("snapshot: %w", err)
	}
	return n, nil
}

// VerifySnapshot checks an etcd snapshot file's trailer: etcd appends the
// SHA-256 of the database to what it sends, and a database is a whole
// number of 512-byte sectors.
func VerifySnapshot(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	size := st.Size() - sha256.Size
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("snapshot %s: %d bytes is not an etcd snapshot with its checksum (cut short?)", path, st.Size())
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("snapshot %s: SHA-256 does not match its trailer: the file is damaged", path)
	}
	return nil
}
