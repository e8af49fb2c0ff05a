package fetcher

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/left4me/left4me/node/transfer"
)

// Download fetches url to dst, which appears whole and verified or not at
// all: the bytes go to a temporary file beside it (same directory, so the
// rename is atomic), renamed over dst (mode 0644) only when the body was
// complete and its SHA-256, computed while streaming, is want. It returns
// the file's size.
//
// url is http://, https:// or file:///path. want (64 lowercase hex
// digits) is required for http and https, whose content can change and
// which anyone on the way can change for http; for file:// it is
// optional. file:// URLs are read only below o.FileRoots (none: refused).
//
// For http and https, within o.Timeout in all: at most o.MaxAttempts
// tries; 429, 408, 5xx, network errors, a body shorter than its
// Content-Length, and a try below the minimum progress are tried again
// after a backoff (honoring Retry-After up to o.MaxRetryAfter); any other
// status (404, 410, 403, ...), a checksum mismatch, a file over
// o.MaxBytes, a certificate the node does not trust and a refused
// redirect (see checkRedirect) are final. Every failure is an *Error
// naming the URL, except ctx ending: that returns ctx's error, wrapped.
func Download(ctx context.Context, rawURL, dst, want string, o Limits) (int64, error) {
	fail := func(reason, msg string, err error) (int64, error) {
		return 0, &Error{Reason: reason, URL: rawURL, Message: msg, Err: err}
	}
	o, err := o.withDefaults()
	if err != nil {
		return fail(InvalidSpec, "", err)
	}
	u, err := parseURL(rawURL, want)
	if err != nil {
		return fail(InvalidSpec, "", err)
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return fail(DownloadFailed, "", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var n int64
	if u.Scheme == "file" {
		n, err = copyFile(dctx, u.Path, tmp, want, o)
	} else {
		n, err = download(dctx, u, tmp, want, o)
	}
	switch {
	case ctx.Err() != nil:
		return 0, fmt.Errorf("archive %s: download: %w", rawURL, ctx.Err())
	case dctx.Err() != nil:
		return fail(TimedOut, fmt.Sprintf("the download did not finish within %s", o.Timeout), nil)
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			e.URL = rawURL
			return 0, e
		}
		return fail(DownloadFailed, "", err)
	}
	if err := transfer.Finish(tmp, dst); err != nil {
		return fail(DownloadFailed, "", err)
	}
	done = true
	return n, nil
}

// parseURL checks an archive's URL and checksum as the API does: a
// source URL (parseSourceURL); want is required for http and https and,
// when given, 64 lowercase hex digits.
func parseURL(raw, want string) (*url.URL, error) {
	u, err := parseSourceURL(raw)
	if err != nil {
		return nil, err
	}
	if want != "" && !isSHA256Hex(want) {
		return nil, fmt.Errorf("sha256 %q: want 64 lowercase hex digits", want)
	}
	if u.Scheme != "file" && want == "" {
		return nil, fmt.Errorf("a sha256 is required for %s URLs: what a URL serves can change", u.Scheme)
	}
	return u, nil
}

// parseSourceURL checks an archive's or a git repository's URL as the API
// does: http, https (with a host) or file:///clean/absolute/path, no
// credentials, no fragment.
func parseSourceURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, errors.New("the URL must not hold credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("the URL must not have a fragment ('#')")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, errors.New("the URL names no host")
		}
	case "file":
		if u.Host != "" || u.RawQuery != "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path || u.Path == "/" {
			return nil, errors.New("a file URL names a clean absolute path and no host: file:///path")
		}
	default:
		return nil, fmt.Errorf("scheme %q: want https, http or file", u.Scheme)
	}
	return u, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// download runs the tries of an http(s) download into f.
func download(ctx context.Context, u *url.URL, f *os.File, want string, o Limits) (int64, error) {
	client, err := o.client()
	if err != nil {
		return 0, &Error{Reason: InvalidSpec, Err: err}
	}
	defer client.CloseIdleConnections()
	var n int64
	for try := 1; ; try++ {
		if err := f.Truncate(0); err != nil {
			return 0, &Error{Reason: DownloadFailed, Err: err}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, &Error{Reason: DownloadFailed, Err: err}
		}
		var a attempt
		n, a = downloadOnce(ctx, client, u, f, want, o)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if a.err == nil {
			return n, nil
		}
		if !a.retry || try >= o.MaxAttempts {
			if try > 1 {
				a.err.Message += fmt.Sprintf(" (%d tries)", try)
			}
			return 0, a.err
		}
		d, tooLong := transfer.NextDelay(try, o.RetryBase, o.RetryMax, a.retryAfter, o.MaxRetryAfter, time.Now(), rand.Float64())
		if tooLong {
			a.err.Reason = RateLimited
			a.err.Message += fmt.Sprintf("; the server asks to wait %s (Retry-After), longer than the %s waited", d, o.MaxRetryAfter)
			return 0, a.err
		}
		o.Log.Info("download failed, trying again", "url", u.Redacted(), "try", try, "wait", d, "error", a.err.detail())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// downloadOnce is one try: GET u into f, which is empty, hashing the body
// as it arrives.
func downloadOnce(ctx context.Context, client *http.Client, u *url.URL, f *os.File, want string, o Limits) (int64, attempt) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := transfer.WatchProgress(o.StallWindow, o.MinBytesPerWindow, cancel)
	defer p.Stop()
	stalled := func(n int64) (int64, attempt) {
		return n, attempt{err: &Error{Reason: Stalled, Message: fmt.Sprintf("less than %s arrived in %s (at %s)",
			sizeString(o.MinBytesPerWindow), o.StallWindow, sizeString(n))}, retry: true}
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, attempt{err: &Error{Reason: InvalidSpec, Err: err}}
	}
	req.Header.Set("User-Agent", "left4me-fetcher")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(context.Cause(actx), transfer.ErrStalled) {
			return stalled(0)
		}
		return 0, requestAttempt(err)
	}
	defer resp.Body.Close()
	where := ""
	if resp.Request != nil && resp.Request.URL.String() != u.String() {
		where = " (redirected to " + resp.Request.URL.Redacted() + ")"
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		a := statusAttempt(resp.StatusCode, resp.Status, resp.Header.Get("Retry-After"))
		a.err.Message += where
		return 0, a
	}
	if resp.ContentLength > o.MaxBytes {
		return 0, attempt{err: &Error{Reason: TooLarge, Message: fmt.Sprintf("the server announces %s, more than MaxBytes (%s)%s",
			sizeString(resp.ContentLength), sizeString(o.MaxBytes), where)}}
	}
	p.Announce(resp.ContentLength)
	h := sha256.New()
	// One byte more than MaxBytes is read to catch a body larger than
	// allowed that did not announce its length.
	n, rerr, werr := copyHashed(f, h, p.Reader(io.LimitReader(resp.Body, o.MaxBytes+1)))
	// Stopped first: a check after the body ended must not count as a
	// stall, whatever the last window brought.
	p.Stop()
	switch {
	case rerr != nil && errors.Is(context.Cause(actx), transfer.ErrStalled):
		return stalled(n)
	case ctx.Err() != nil:
		return n, attempt{err: &Error{Reason: TimedOut, Err: ctx.Err()}}
	case werr != nil:
		return n, attempt{err: &Error{Reason: DownloadFailed, Message: "writing the download", Err: werr}}
	case n > o.MaxBytes:
		return n, attempt{err: &Error{Reason: TooLarge, Message: fmt.Sprintf("the server sends more than MaxBytes (%s)%s", sizeString(o.MaxBytes), where)}}
	case rerr != nil || resp.ContentLength >= 0 && n != resp.ContentLength:
		msg := fmt.Sprintf("the body ended after %d bytes", n)
		if resp.ContentLength >= 0 {
			msg = fmt.Sprintf("the body ended after %d of %d bytes (Content-Length)", n, resp.ContentLength)
		}
		return n, attempt{err: &Error{Reason: Truncated, Message: msg + where, Err: rerr}, retry: true}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, attempt{err: &Error{Reason: ChecksumMismatch, Message: fmt.Sprintf("sha256 %s, the spec says %s%s", got, want, where)}}
	}
	return n, attempt{}
}

// requestAttempt classifies a failed request: a refused redirect or a
// certificate the node does not trust is final; anything else (refused,
// reset, DNS) may be better next time.
func requestAttempt(err error) attempt {
	var re *redirectError
	if errors.As(err, &re) {
		return attempt{err: &Error{Reason: RedirectRefused, Message: re.msg}}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return attempt{err: &Error{Reason: DownloadFailed, Message: "TLS", Err: err}}
	}
	return attempt{err: &Error{Reason: ServerUnavailable, Message: "the request failed", Err: err}, retry: true}
}

// copyHashed copies r to w and h, telling a read error (the connection)
// from a write error (the disk), which io.Copy does not.
func copyHashed(w io.Writer, h hash.Hash, r io.Reader) (n int64, rerr, werr error) {
	buf := make([]byte, 256<<10)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, werr = w.Write(buf[:k]); werr != nil {
				return n, nil, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}
