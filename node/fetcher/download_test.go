package fetcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var payload = []byte(strings.Repeat("left4me overlay archive bytes\n", 4000))

// get downloads u into a fresh directory and returns the destination and
// that directory.
func get(t *testing.T, u, want string, o Limits) (string, string, int64, error) {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "download")
	n, err := Download(context.Background(), u, dst, want, o)
	return dst, dir, n, err
}

// nothingLeft checks a failed download left no file behind.
func nothingLeft(t *testing.T, dir string) {
	t.Helper()
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("a failed download left %v in %s", n, dir)
	}
}

func TestDownloadVerifiesAndRenames(t *testing.T) {
	s := serving(t, payload)
	dst, dir, n, err := get(t, s.URL+"/sm.tar.gz", sha(payload), fast())
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(payload)) || readFile(t, dst) != string(payload) {
		t.Errorf("downloaded %d bytes, want the %d served", n, len(payload))
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode())
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("the directory holds %v: want only the download (no temporary file left)", got)
	}
}

func TestDownloadHTTPS(t *testing.T) {
	s := newServer(t, true, func(_ *server, w http.ResponseWriter, r *http.Request) { w.Write(payload) })
	o := fast()
	o.CAPEM = s.caPEM()
	if _, _, _, err := get(t, s.URL+"/a.zip", sha(payload), o); err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
	// Without it the certificate is not trusted: final, not tried again.
	_, dir, _, err := get(t, s.URL+"/b.zip", sha(payload), fast())
	wantReason(t, err, DownloadFailed, s.URL+"/b.zip", "certificate")
	if n := s.count("/b.zip"); n != 0 {
		t.Errorf("%d requests reached the handler through an untrusted TLS connection", n)
	}
	nothingLeft(t, dir)
}

func TestChecksumMismatch(t *testing.T) {
	s := serving(t, payload)
	other := sha([]byte("what the spec was written for"))
	_, dir, _, err := get(t, s.URL+"/sm.tar.gz", other, fast())
	wantReason(t, err, ChecksumMismatch, s.URL+"/sm.tar.gz", "sha256 "+sha(payload), "the spec says "+other)
	nothingLeft(t, dir)
	if n := s.count("/sm.tar.gz"); n != 1 {
		t.Errorf("%d requests: a mismatch is final", n)
	}
}

func TestFinalStatuses(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusUnauthorized} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) })
			_, dir, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), fast())
			wantReason(t, err, DownloadFailed, s.URL+"/sm.tar.gz", fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
			if n := s.count("/sm.tar.gz"); n != 1 {
				t.Errorf("%d requests: HTTP %d is final", n, code)
			}
			nothingLeft(t, dir)
		})
	}
}

func TestRedirects(t *testing.T) {
	plain := newServer(t, false, func(s *server, w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/a":
			http.Redirect(w, r, "/b", http.StatusFound)
		case p == "/b":
			http.Redirect(w, r, "/a", http.StatusFound)
		case strings.HasPrefix(p, "/hop/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/hop/"))
			if n == 0 {
				w.Write(payload)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusMovedPermanently)
		case p == "/file":
			w.Header().Set("Location", "file:///etc/passwd")
			w.WriteHeader(http.StatusFound)
		default:
			w.Write(payload)
		}
	})
	secure := newServer(t, true, func(s *server, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			http.Redirect(w, r, plain.URL+"/payload", http.StatusFound)
		default:
			w.Write(payload)
		}
	})
	o := fast()
	o.CAPEM = secure.caPEM()
	cases := []struct {
		name, url string
		ok        bool
		says      []string
	}{
		{"followed", plain.URL + "/hop/5", true, nil},
		{"upgrade to https", plain.URL + "/up", true, nil},
		{"loop", plain.URL + "/a", false, []string{"a redirect loop", plain.URL + "/a → " + plain.URL + "/b → " + plain.URL + "/a"}},
		{"too many", plain.URL + "/hop/6", false, []string{"more than 5 redirects", plain.URL + "/hop/6"}},
		{"to file", plain.URL + "/file", false, []string{"a redirect to file:///etc/passwd: only http and https"}},
		{"https to http", secure.URL + "/down", false, []string{"from https to http", secure.URL + "/down → " + plain.URL + "/payload", "downgrade"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := c.url
			if c.name == "upgrade to https" {
				// http → https is fine: only the way back is refused.
				up := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, secure.URL+"/payload", http.StatusFound)
				})
				u = up.URL + "/up"
			}
			dst, dir, _, err := get(t, u, sha(payload), o)
			if c.ok {
				if err != nil || readFile(t, dst) != string(payload) {
					t.Fatalf("Download = %v", err)
				}
				return
			}
			wantReason(t, err, RedirectRefused, append([]string{u}, c.says...)...)
			nothingLeft(t, dir)
		})
	}
	if n := plain.count("/a"); n != 1 {
		t.Errorf("/a was asked %d times: a refused redirect is final", n)
	}
	if n := plain.count("/payload"); n != 0 {
		t.Errorf("the http target of a downgrade was asked %d times", n)
	}
}

func TestStalledServerTimesOut(t *testing.T) {
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload[:100])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never sends the rest
	})
	o := fast()
	o.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, dir, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), o)
	wantReason(t, err, TimedOut, s.URL+"/sm.tar.gz", "did not finish within 300ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the download gave up after %s", d)
	}
	nothingLeft(t, dir)
}

func TestTricklingServerStalls(t *testing.T) {
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := range payload {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			w.Write(payload[i : i+1])
			w.(http.Flusher).Flush()
		}
	})
	o := fast()
	o.StallWindow, o.MinBytesPerWindow, o.MaxAttempts = 100*time.Millisecond, 64<<10, 2
	_, dir, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), o)
	wantReason(t, err, Stalled, s.URL+"/sm.tar.gz", "less than 64 KiB arrived in 100ms", "(2 tries)")
	if n := s.count("/sm.tar.gz"); n != 2 {
		t.Errorf("%d requests: a stall is tried again, up to MaxAttempts (2)", n)
	}
	nothingLeft(t, dir)
}

func TestTruncatedBody(t *testing.T) {
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(payload))
		buf.Write(payload[:len(payload)/2])
		buf.Flush()
	})
	o := fast()
	o.MaxAttempts = 3
	_, dir, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), o)
	wantReason(t, err, Truncated, s.URL+"/sm.tar.gz", fmt.Sprintf("after %d of %d bytes (Content-Length)", len(payload)/2, len(payload)), "(3 tries)")
	if n := s.count("/sm.tar.gz"); n != 3 {
		t.Errorf("%d requests: a truncated body is tried again, up to MaxAttempts (3)", n)
	}
	nothingLeft(t, dir)
}

func TestServerErrorThenSuccess(t *testing.T) {
	s := newServer(t, false, func(s *server, w http.ResponseWriter, r *http.Request) {
		if s.count(r.URL.Path) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(payload)
	})
	dst, _, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), fast())
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, dst) != string(payload) || s.count("/sm.tar.gz") != 2 {
		t.Errorf("%d requests: want a 503, then the file", s.count("/sm.tar.gz"))
	}

	// Always 5xx: given up after MaxAttempts.
	down := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	o := fast()
	o.MaxAttempts = 3
	_, _, _, err = get(t, down.URL+"/sm.tar.gz", sha(payload), o)
	wantReason(t, err, ServerUnavailable, "HTTP 502 Bad Gateway", "(3 tries)")
	if n := down.count("/sm.tar.gz"); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestRetryAfterHonored(t *testing.T) {
	s := newServer(t, false, func(s *server, w http.ResponseWriter, r *http.Request) {
		if s.count(r.URL.Path) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Write(payload)
	})
	if _, _, _, err := get(t, s.URL+"/sm.tar.gz", sha(payload), fast()); err != nil {
		t.Fatal(err)
	}
	times := s.times("/sm.tar.gz")
	if len(times) != 2 {
		t.Fatalf("%d requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("the second try came %s after the 429, before its Retry-After of 1s", gap)
	}

	// A wait longer than MaxRetryAfter fails at once.
	long := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "come back tomorrow", http.StatusTooManyRequests)
	})
	_, _, _, err := get(t, long.URL+"/sm.tar.gz", sha(payload), fast())
	wantReason(t, err, RateLimited, "HTTP 429 Too Many Requests", "asks to wait 1h0m0s (Retry-After), longer than the 1m0s waited")
	if n := long.count("/sm.tar.gz"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestTooLarge(t *testing.T) {
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write(payload[:1000]) // no length announced: chunked
			w.(http.Flusher).Flush()
			w.Write(payload[1000:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	})
	o := fast()
	o.MaxBytes = 1000
	_, dir, _, err := get(t, s.URL+"/announced", sha(payload), o)
	wantReason(t, err, TooLarge, fmt.Sprintf("announces %s, more than MaxBytes (1000 bytes)", sizeString(int64(len(payload)))))
	nothingLeft(t, dir)
	_, dir, _, err = get(t, s.URL+"/chunked", sha(payload), o)
	wantReason(t, err, TooLarge, "sends more than MaxBytes (1000 bytes)")
	nothingLeft(t, dir)
}

func TestContentEncodingNotUndone(t *testing.T) {
	// A server labelling a .tar.gz "Content-Encoding: gzip" must not make
	// the client unpack it: the checksum is of the file as published.
	gz := tarGz(t, sourcemod("")...)
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	})
	dst, _, _, err := get(t, s.URL+"/sm.tar.gz", sha(gz), fast())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(readFile(t, dst)), gz) {
		t.Error("the download is not the bytes served")
	}
}

func TestDownloadCanceled(t *testing.T) {
	started := make(chan struct{})
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload[:100])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		_, err := Download(ctx, s.URL+"/sm.tar.gz", filepath.Join(dir, "download"), sha(payload), fast())
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Download after cancel = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), s.URL+"/sm.tar.gz") {
		t.Errorf("%q does not name the URL", err)
	}
	nothingLeft(t, dir)
}

func TestBadSpecs(t *testing.T) {
	s := serving(t, payload)
	cases := []struct{ url, want, says string }{
		{s.URL + "/a", "", "a sha256 is required for http URLs"},
		{s.URL + "/a", "ABC", `sha256 "ABC": want 64 lowercase hex digits`},
		{"ftp://example.org/a", sha(payload), `scheme "ftp"`},
		{"http://user:pw@example.org/a", sha(payload), "credentials"},
		{"file://host/a", "", "file:///path"},
		{"file:///srv/../etc/passwd", "", "file:///path"},
	}
	for _, c := range cases {
		_, dir, _, err := get(t, c.url, c.want, fast())
		wantReason(t, err, InvalidSpec, c.says)
		nothingLeft(t, dir)
	}
	if n := s.count("/a"); n != 0 {
		t.Errorf("%d requests for refused specs", n)
	}
	if _, _, _, err := get(t, s.URL+"/a", sha(payload), Limits{MaxBytes: -1}); err == nil {
		t.Error("negative limits accepted")
	}
}

func TestFileURLs(t *testing.T) {
	root := t.TempDir()
	mirror := filepath.Join(root, "mirror")
	os.Mkdir(mirror, 0o755)
	os.WriteFile(filepath.Join(mirror, "sm-1.12.tar.gz"), payload, 0o644)
	os.Symlink("sm-1.12.tar.gz", filepath.Join(mirror, "sm-latest.tar.gz"))
	secret := filepath.Join(root, "secret")
	os.WriteFile(secret, []byte("outside the root"), 0o644)
	os.Symlink(secret, filepath.Join(mirror, "escape"))
	os.Symlink("../secret", filepath.Join(mirror, "escape-rel"))
	if err := syscall.Mkfifo(filepath.Join(mirror, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	allowed := fast()
	allowed.FileRoots = []string{mirror}
	cases := []struct {
		name, path, want string
		o                Limits
		reason, says     string
	}{
		{"no roots: refused", filepath.Join(mirror, "sm-1.12.tar.gz"), "", fast(), FileURLRefused, "no overlay file roots"},
		{"below a root", filepath.Join(mirror, "sm-1.12.tar.gz"), "", allowed, "", ""},
		{"below a root, checked", filepath.Join(mirror, "sm-1.12.tar.gz"), sha(payload), allowed, "", ""},
		{"a link inside the root", filepath.Join(mirror, "sm-latest.tar.gz"), sha(payload), allowed, "", ""},
		{"checksum", filepath.Join(mirror, "sm-1.12.tar.gz"), sha(nil), allowed, ChecksumMismatch, "sha256 " + sha(payload)},
		{"outside every root", secret, "", allowed, FileURLRefused, "not below this node's overlay file roots (" + mirror + ")"},
		{"the root's sibling", mirror + "2/a", "", allowed, FileURLRefused, "not below"},
		{"an absolute link out", filepath.Join(mirror, "escape"), "", allowed, FileURLRefused, "leads out of the file root"},
		{"a relative link out", filepath.Join(mirror, "escape-rel"), "", allowed, FileURLRefused, "leads out of the file root"},
		{"a fifo", filepath.Join(mirror, "fifo"), "", allowed, DownloadFailed, "not a regular file"},
		{"missing", filepath.Join(mirror, "nope.zip"), "", allowed, DownloadFailed, "no such file"},
		{"too large", filepath.Join(mirror, "sm-1.12.tar.gz"), "", Limits{MaxBytes: 10, FileRoots: []string{mirror}}, TooLarge, "more than MaxBytes (10 bytes)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := "file://" + c.path
			dst, dir, _, err := get(t, u, c.want, c.o)
			if c.reason == "" {
				if err != nil || readFile(t, dst) != string(payload) {
					t.Fatalf("Download = %v", err)
				}
				return
			}
			wantReason(t, err, c.reason, u, c.says)
			nothingLeft(t, dir)
		})
	}
}
