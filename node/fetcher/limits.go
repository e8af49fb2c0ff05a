package fetcher

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
)

// The default limits of a download, and why.
const (
	// DefaultMaxBytes: a SourceMod or MetaMod release is 20 MB, a large
	// plugin or map pack a few hundred; 2 GiB leaves room for all real
	// ones and keeps a hostile URL from filling the disk (node/extract
	// bounds what the archive unpacks to separately).
	DefaultMaxBytes = 2 << 30
	// DefaultTimeout bounds a whole download, all tries and waits
	// included: 2 GiB at 2 MiB/s (a slow single connection) is 17
	// minutes.
	DefaultTimeout = 30 * time.Minute
	// DefaultStallWindow and DefaultMinBytesPerWindow: a download that
	// receives less than 64 KiB in any 30 s (about 2 KiB/s; connecting
	// and the headers count in the first window) is cut off as stalled
	// and tried again. The last window needs only what remains of a body
	// whose length was announced.
	DefaultStallWindow       = 30 * time.Second
	DefaultMinBytesPerWindow = 64 << 10
	// DefaultMaxRedirects followed per try; more is an error (as is a
	// loop, which would never end).
	DefaultMaxRedirects = 5
	// DefaultMaxAttempts per download, the first included.
	DefaultMaxAttempts = 4
	// DefaultRetryBase and DefaultRetryMax bound the exponential backoff
	// between tries (1 s, 2 s, 4 s, ... at most 30 s, with jitter).
	DefaultRetryBase = time.Second
	DefaultRetryMax  = 30 * time.Second
	// DefaultMaxRetryAfter: a Retry-After up to this long is waited for;
	// a longer one fails at once as RateLimited, so the node retries later
	// instead of holding a fetch open.
	DefaultMaxRetryAfter = 60 * time.Second
	// dialTimeout and tlsTimeout bound connecting; the stall window
	// bounds it too.
	dialTimeout = 30 * time.Second
	tlsTimeout  = 30 * time.Second
)

// Limits bound one download and say what it may reach. A zero field means
// its default; there is no "unlimited". Limits travel as JSON to the
// unprivileged fetcher process (FetchSpec), so everything but Log is data.
type Limits struct {
	// MaxBytes is the largest file accepted, announced or sent
	// (DefaultMaxBytes).
	MaxBytes int64 `json:"maxBytes,omitempty"`
	// Timeout bounds the whole download, tries and waits between them
	// included (DefaultTimeout).
	Timeout time.Duration `json:"timeout,omitempty"`
	// StallWindow and MinBytesPerWindow are the minimum-progress rule: a
	// try that receives less than MinBytesPerWindow in any StallWindow is
	// cut off (DefaultStallWindow, DefaultMinBytesPerWindow).
	StallWindow       time.Duration `json:"stallWindow,omitempty"`
	MinBytesPerWindow int64         `json:"minBytesPerWindow,omitempty"`
	// MaxRedirects is the most redirects one try follows
	// (DefaultMaxRedirects).
	MaxRedirects int `json:"maxRedirects,omitempty"`
	// MaxAttempts bounds the tries (DefaultMaxAttempts).
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// RetryBase and RetryMax bound the backoff between tries
	// (DefaultRetryBase, DefaultRetryMax).
	RetryBase time.Duration `json:"retryBase,omitempty"`
	RetryMax  time.Duration `json:"retryMax,omitempty"`
	// MaxRetryAfter is the longest Retry-After waited for
	// (DefaultMaxRetryAfter).
	MaxRetryAfter time.Duration `json:"maxRetryAfter,omitempty"`
	// CAPEM holds PEM certificates trusted for https besides the system's
	// roots (a private mirror's CA; a test server's).
	CAPEM []byte `json:"caPEM,omitempty"`
	// FileRoots are the directories file:// URLs may name files below (the
	// node's --overlay-file-roots). None, the default, refuses every
	// file:// URL: a tenant's file URL would otherwise copy any file the
	// fetcher's account can read (every world-readable file on the node)
	// into its overlay. Each is an absolute, clean path; a file below one
	// is opened without leaving it (a symlink inside that points out of it
	// is refused).
	FileRoots []string `json:"fileRoots,omitempty"`
	// Log gets a line per retry (nothing when unset).
	Log logr.Logger `json:"-"`
}

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxBytes < 0 || l.Timeout < 0 || l.StallWindow < 0 || l.MinBytesPerWindow < 0 || l.MaxRedirects < 0 ||
		l.MaxAttempts < 0 || l.RetryBase < 0 || l.RetryMax < 0 || l.MaxRetryAfter < 0 {
		return l, errors.New("download limits must not be negative (zero means the default)")
	}
	l.MaxBytes = orDefault(l.MaxBytes, DefaultMaxBytes)
	l.Timeout = orDefault(l.Timeout, DefaultTimeout)
	l.StallWindow = orDefault(l.StallWindow, DefaultStallWindow)
	l.MinBytesPerWindow = orDefault(l.MinBytesPerWindow, DefaultMinBytesPerWindow)
	l.MaxRedirects = orDefault(l.MaxRedirects, DefaultMaxRedirects)
	l.MaxAttempts = orDefault(l.MaxAttempts, DefaultMaxAttempts)
	l.RetryBase = orDefault(l.RetryBase, DefaultRetryBase)
	l.RetryMax = orDefault(l.RetryMax, DefaultRetryMax)
	l.MaxRetryAfter = orDefault(l.MaxRetryAfter, DefaultMaxRetryAfter)
	for _, r := range l.FileRoots {
		if !filepath.IsAbs(r) || filepath.Clean(r) != r {
			return l, fmt.Errorf("file root %q: want an absolute, clean path", r)
		}
	}
	return l, nil
}

func orDefault[T int | int64 | time.Duration](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// client is the HTTP client of one download: the system's roots plus
// CAPEM, no transparent decompression (the checksum is of the bytes as
// served: a .tar.gz a server labels Content-Encoding: gzip must not be
// unpacked on the way), and checkRedirect's rules.
func (l Limits) client() (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(l.CAPEM) > 0 && !roots.AppendCertsFromPEM(l.CAPEM) {
		return nil, errors.New("caPEM holds no PEM certificate")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   tlsTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	max := l.MaxRedirects
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return checkRedirect(req.URL, urlsOf(via), max)
		},
	}, nil
}
