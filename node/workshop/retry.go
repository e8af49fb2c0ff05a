package workshop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// attempt is how one try of an API call or download ended.
type attempt struct {
	err *Error
	// retry says another try may do better (429, 5xx, a dropped or
	// stalled connection); refusals are final.
	retry bool
	// retryAfter is the answer's Retry-After header, if any.
	retryAfter string
}

// nextDelay decides the wait before try n+1 after try n failed: the
// server's Retry-After (seconds or an HTTP date) when given, else
// exponential backoff from base, capped at most, with "equal jitter"
// (half fixed, half drawn from j in [0,1)) so nodes that failed together
// do not come back together. tooLong says Retry-After asks for more than
// maxRetryAfter.
func nextDelay(n int, base, most time.Duration, retryAfter string, maxRetryAfter time.Duration, now time.Time, j float64) (d time.Duration, tooLong bool) {
	if ra, ok := parseRetryAfter(retryAfter, now); ok {
		return ra, ra > maxRetryAfter
	}
	d = base
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(j*float64(d/2)), false
}

// parseRetryAfter reads Retry-After (RFC 9110 10.2.3): a number of
// seconds or an HTTP date. A date in the past means now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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

// withRetries runs try until it succeeds, fails for good, or has run
// MaxAttempts times, waiting between tries as nextDelay says. It returns
// ctx's error, unwrapped, when ctx ends first.
func (c *Client) withRetries(ctx context.Context, try func(ctx context.Context) attempt) error {
	most := orDefault(c.MaxAttempts, DefaultMaxAttempts)
	maxRA := orDefault(c.MaxRetryAfter, DefaultMaxRetryAfter)
	for n := 1; ; n++ {
		a := try(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if a.err == nil {
			return nil
		}
		if !a.retry || n >= most {
			if n > 1 {
				a.err.Message += fmt.Sprintf(" (%d tries)", n)
			}
			return a.err
		}
		d, tooLong := nextDelay(n, orDefault(c.RetryBase, DefaultRetryBase), orDefault(c.RetryMax, DefaultRetryMax),
			a.retryAfter, maxRA, time.Now(), rand.Float64())
		if tooLong {
			e := *a.err
			e.Reason = RateLimited
			e.Message += fmt.Sprintf("; Steam asks to wait %s (Retry-After), longer than the %s waited", d, maxRA)
			return &e
		}
		c.Log.Info("Steam request failed, trying again", "id", a.err.ID, "try", n, "wait", d, "error", a.err.Error())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// statusAttempt classifies an HTTP status other than 200: 429 and 5xx
// are worth another try, anything else is final (reason other).
func statusAttempt(resp *http.Response, base *Error, other string) attempt {
	e := *base
	e.Message = "HTTP " + resp.Status
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Reason = RateLimited
		return attempt{err: &e, retry: true, retryAfter: resp.Header.Get("Retry-After")}
	case resp.StatusCode >= 500:
		e.Reason = SteamUnavailable
		return attempt{err: &e, retry: true, retryAfter: resp.Header.Get("Retry-After")}
	}
	e.Reason = other
	return attempt{err: &e}
}
