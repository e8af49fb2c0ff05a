package fetcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// copyFile is a file:// download: path, below one of o.FileRoots, copied
// into f and hashed on the way (the archive extracted is the copy, so the
// bytes checked are the bytes used, however the original changes).
//
// The fetcher reads it as its own unprivileged account, so only files
// that account may read (world-readable ones, or the account's group's)
// are reachable at all; FileRoots narrows that to what the admin set
// aside for overlays.
func copyFile(ctx context.Context, path string, f *os.File, want string, o Limits) (int64, error) {
	src, err := openBelowRoots(path, o.FileRoots)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return 0, &Error{Reason: DownloadFailed, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, &Error{Reason: DownloadFailed, Message: path + " is not a regular file"}
	}
	if st.Size > o.MaxBytes {
		return 0, &Error{Reason: TooLarge, Message: fmt.Sprintf("%s is %s, more than MaxBytes (%s)", path, sizeString(st.Size), sizeString(o.MaxBytes))}
	}
	h := sha256.New()
	n, rerr, werr := copyHashed(f, h, &ctxReader{ctx: ctx, r: io.LimitReader(src, o.MaxBytes+1)})
	switch {
	case ctx.Err() != nil:
		return n, ctx.Err()
	case werr != nil:
		return n, &Error{Reason: DownloadFailed, Message: "writing the download", Err: werr}
	case rerr != nil:
		return n, &Error{Reason: DownloadFailed, Message: "reading " + path, Err: rerr}
	case n > o.MaxBytes:
		return n, &Error{Reason: TooLarge, Message: fmt.Sprintf("%s grew past MaxBytes (%s) while it was read", path, sizeString(o.MaxBytes))}
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		return n, &Error{Reason: ChecksumMismatch, Message: fmt.Sprintf("sha256 %s, the spec says %s", got, want)}
	}
	return n, nil
}

// fileRoot finds the root path lies below, and the path relative to it.
// It is pure: which file that names is openBelowRoots' to settle.
func fileRoot(path string, roots []string) (root, rel string, err error) {
	if len(roots) == 0 {
		return "", "", &Error{Reason: FileURLRefused, Message: "file:// URLs are refused on this node: it has no overlay file roots " +
			"(an admin allows a directory with l4m-node --overlay-file-roots)"}
	}
	for _, r := range roots {
		prefix := strings.TrimSuffix(r, "/") + "/"
		if rel, ok := strings.CutPrefix(path, prefix); ok && rel != "" {
			return r, rel, nil
		}
	}
	return "", "", &Error{Reason: FileURLRefused, Message: fmt.Sprintf("%s is not below this node's overlay file roots (%s)", path, strings.Join(roots, ", "))}
}

// openBelowRoots opens path for reading, resolving it below its root
// (openBeneath). O_NONBLOCK keeps a FIFO from blocking the open; it is
// refused after.
func openBelowRoots(path string, roots []string) (*os.File, error) {
	root, rel, err := fileRoot(path, roots)
	if err != nil {
		return nil, err
	}
	return openBeneath(root, rel, unix.O_RDONLY|unix.O_NONBLOCK, DownloadFailed)
}

// openBeneath opens rel below root with openat2 RESOLVE_BENEATH: a
// symlink that stays inside the root is followed (a mirror's "latest"
// link), one leading out of it is refused (FileURLRefused). Other
// failures are reason.
func openBeneath(root, rel string, flags int, reason string) (*os.File, error) {
	path := root + "/" + rel
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Reason: reason, Message: "the file root " + root, Err: err}
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{
		Flags:   uint64(flags) | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.EXDEV):
		return nil, &Error{Reason: FileURLRefused, Message: fmt.Sprintf("%s leads out of the file root %s (a symlink)", path, root)}
	case errors.Is(err, unix.EACCES):
		return nil, &Error{Reason: reason, Message: fmt.Sprintf("%s is not readable by the fetcher, which runs as an unprivileged account: "+
			"make it (and its directories) world-readable", path)}
	case errors.Is(err, unix.ENOENT):
		return nil, &Error{Reason: reason, Message: path + ": no such file or directory"}
	case errors.Is(err, unix.ENOTDIR):
		return nil, &Error{Reason: reason, Message: path + ": not a directory"}
	case err != nil:
		return nil, &Error{Reason: reason, Err: &os.PathError{Op: "open", Path: path, Err: err}}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
