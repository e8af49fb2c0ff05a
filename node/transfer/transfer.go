// Package transfer holds what every download the node makes over HTTP
// shares (the overlay fetcher's archives, the Workshop's files): when to
// try again, the minimum-progress rule that ends a trickling transfer, and
// putting a finished file in place. It imports nothing of the node's, so
// both the unprivileged fetcher and the agent's clients can use it.
package transfer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NextDelay decides the wait before try n+1 after try n failed: the
// server's Retry-After (seconds or an HTTP date) when given, else
// exponential backoff from base, capped at most, with "equal jitter"
// (half fixed, half drawn from j in [0,1)) so nodes that failed together
// do not come back together. tooLong says Retry-After asks for more than
// maxRetryAfter.
func NextDelay(n int, base, most time.Duration, retryAfter string, maxRetryAfter time.Duration, now time.Time, j float64) (d time.Duration, tooLong bool) {
	if ra, ok := ParseRetryAfter(retryAfter, now); ok {
		return ra, ra > maxRetryAfter
	}
	d = base
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(j*float64(d/2)), false
}

// ParseRetryAfter reads Retry-After (RFC 9110 10.2.3): a number of
// seconds or an HTTP date. A date in the past means now.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// ErrStalled is the cause a stalled try's context is canceled with.
var ErrStalled = errors.New("stalled")

// StalledBy says whether a window's progress breaks the minimum-progress
// rule: got bytes arrived in it; remaining is what the announced length
// leaves (-1: not announced), which is all a last window needs.
func StalledBy(got, minBytes, remaining int64) bool {
	need := minBytes
	if remaining >= 0 {
		need = min(need, remaining)
	}
	return got < need
}

// Progress is the minimum-progress rule of one try: every window, the
// bytes read through Reader since the last check must be at least
// minBytes (or what remains of an announced length, if less); if not, the
// try's context is canceled with ErrStalled. The first window starts at
// WatchProgress, before the request, so it covers connecting and waiting
// for the headers too.
type Progress struct {
	n      atomic.Int64
	mu     sync.Mutex
	last   int64
	size   int64 // -1 until announced
	min    int64
	window time.Duration
	timer  *time.Timer
	done   bool
	cancel context.CancelCauseFunc
}

// WatchProgress starts the rule's timer; Stop ends it.
func WatchProgress(window time.Duration, minBytes int64, cancel context.CancelCauseFunc) *Progress {
	p := &Progress{size: -1, min: minBytes, window: window, cancel: cancel}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = time.AfterFunc(window, p.check)
	return p
}

// Announce records the length the transfer will have (-1: unknown).
func (p *Progress) Announce(size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size = size
}

func (p *Progress) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	n := p.n.Load()
	remaining := int64(-1)
	if p.size >= 0 {
		remaining = p.size - p.last
	}
	if StalledBy(n-p.last, p.min, remaining) {
		p.cancel(ErrStalled)
		return
	}
	p.last = n
	p.timer.Reset(p.window)
}

// Stop ends the rule (the try is over); safe to call twice.
func (p *Progress) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.timer.Stop()
}

// Reader counts what r yields toward the rule.
func (p *Progress) Reader(r io.Reader) io.Reader { return &countingReader{r: r, n: &p.n} }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// Finish makes a whole, verified download dst: readable by all (games run
// as accounts of their own), synced, renamed into place (tmp is beside
// dst, so the rename is atomic); tmp is removed when that fails.
func Finish(tmp *os.File, dst string) error {
	err := tmp.Chmod(0o644)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
