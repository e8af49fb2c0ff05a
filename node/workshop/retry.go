package workshop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/left4me/left4me/node/transfer"
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
		d, tooLong := transfer.NextDelay(n, orDefault(c.RetryBase, DefaultRetryBase), orDefault(c.RetryMax, DefaultRetryMax),
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
