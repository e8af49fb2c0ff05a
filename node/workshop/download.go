package workshop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/left4me/left4me/node/transfer"
)

// vpkSignature is how every VPK starts (0x55aa1234, little-endian). A
// file_url that serves anything else (Steam has been seen to hand out a
// preview image's URL for content it keeps elsewhere) is refused.
var vpkSignature = []byte{0x34, 0x12, 0xaa, 0x55}

// Download fetches item's file to dst, which appears whole or not at all:
// the bytes go to a temporary file beside it, renamed over dst (mode
// 0644) once exactly item.Size bytes starting with a VPK signature have
// arrived. A path rather than an io.Writer, so a retry can start over.
//
// It refuses a server that announces or sends a size other than
// file_size (SizeMismatch), and retries, at most MaxAttempts tries within
// DownloadTimeout, a download that ends short (Truncated), makes less
// than MinBytesPerWindow progress in a StallWindow (Stalled), or is
// answered 429 (honoring Retry-After up to MaxRetryAfter) or 5xx.
//
// The caller's ctx ending returns its error, not an *Error.
func (c *Client) Download(ctx context.Context, item Item, dst string) error {
	if err := ValidID(item.ID); err != nil {
		return &Error{Reason: InvalidID, ID: item.ID, Message: err.Error()}
	}
	if item.Size <= 0 || item.FileURL == "" {
		return itemError(item, BadResponse, "no file_url or file_size to download (use an Item from Resolve)", nil)
	}
	if limit := orDefault(c.MaxItemBytes, DefaultMaxItemBytes); item.Size > limit {
		return itemError(item, TooLarge, fmt.Sprintf("file_size %s is over the limit of %s", bytesText(item.Size), bytesText(limit)), nil)
	}
	timeout := orDefault(c.DownloadTimeout, DefaultDownloadTimeout)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return itemError(item, DownloadFailed, "", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	err = c.withRetries(dctx, func(ctx context.Context) attempt {
		if err := tmp.Truncate(0); err != nil {
			return attempt{err: itemError(item, DownloadFailed, "", err)}
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return attempt{err: itemError(item, DownloadFailed, "", err)}
		}
		return c.downloadOnce(ctx, item, tmp)
	})
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("workshop item %s: download: %w", item.ID, ctx.Err())
	case dctx.Err() != nil:
		return itemError(item, TimedOut, fmt.Sprintf("download not done within %s", timeout), nil)
	case err != nil:
		return err
	}
	if err := transfer.Finish(tmp, dst); err != nil {
		return itemError(item, DownloadFailed, "", err)
	}
	done = true
	return nil
}

// downloadOnce is one try: GET the file_url into f, which is empty.
func (c *Client) downloadOnce(ctx context.Context, item Item, f *os.File) attempt {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	window := orDefault(c.StallWindow, DefaultStallWindow)
	minBytes := orDefault(c.MinBytesPerWindow, DefaultMinBytesPerWindow)
	p := transfer.WatchProgress(window, minBytes, cancel)
	p.Announce(item.Size)
	defer p.Stop()
	stalled := func(n int64) attempt {
		return attempt{err: itemError(item, Stalled, fmt.Sprintf("less than %s arrived in %s, at %d of %d bytes",
			bytesText(minBytes), window, n, item.Size), nil), retry: true}
	}

	req, err := http.NewRequestWithContext(actx, http.MethodGet, item.FileURL, nil)
	if err != nil {
		return attempt{err: itemError(item, BadResponse, fmt.Sprintf("file_url %q", item.FileURL), err)}
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if errors.Is(context.Cause(actx), transfer.ErrStalled) {
			return stalled(0)
		}
		return attempt{err: itemError(item, SteamUnavailable, "download", err), retry: true}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		drain(resp)
		a := statusAttempt(resp, itemError(item, "", "", nil), DownloadFailed)
		a.err.Message = "download: " + a.err.Message
		if resp.StatusCode == http.StatusNotFound {
			a.err.Message += " (the item may have changed since it was resolved)"
		}
		return a
	}
	if resp.ContentLength >= 0 && resp.ContentLength != item.Size {
		return attempt{err: itemError(item, SizeMismatch,
			fmt.Sprintf("the server announces %d bytes, Steam's file_size says %d", resp.ContentLength, item.Size), nil)}
	}
	// One byte more than file_size is read to catch a server sending too
	// much without announcing it.
	n, err := io.Copy(f, p.Reader(io.LimitReader(resp.Body, item.Size+1)))
	switch {
	case errors.Is(context.Cause(actx), transfer.ErrStalled):
		return stalled(n)
	case n > item.Size:
		return attempt{err: itemError(item, SizeMismatch,
			fmt.Sprintf("the server sends more than Steam's file_size of %d bytes", item.Size), nil)}
	case err != nil && ctx.Err() == nil && !isReadError(err, f):
		return attempt{err: itemError(item, DownloadFailed, "writing", err)}
	case n < item.Size:
		return attempt{err: itemError(item, Truncated, fmt.Sprintf("the download ended after %d of %d bytes", n, item.Size), err), retry: true}
	}
	head := make([]byte, len(vpkSignature))
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, vpkSignature) {
		return attempt{err: itemError(item, NotVPK, fmt.Sprintf("the file does not start with a VPK signature (it starts % x)", head), nil)}
	}
	return attempt{}
}

// isReadError tells an error of the response body (the connection) from
// one writing f (the disk), which io.Copy does not.
func isReadError(err error, f *os.File) bool {
	var pe *os.PathError
	return !(errors.As(err, &pe) && pe.Path == f.Name())
}
