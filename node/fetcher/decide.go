package fetcher

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// redirectError is a redirect the fetcher refuses to follow: final, never
// retried (the next try would be redirected the same way).
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

func urlsOf(reqs []*http.Request) []*url.URL {
	out := make([]*url.URL, len(reqs))
	for i, r := range reqs {
		out[i] = r.URL
	}
	return out
}

// checkRedirect decides whether to follow a redirect to next, after the
// requests via (the first is the URL asked for): at most max redirects;
// never to a URL already visited (a loop, named); only to http and https
// (a server must not make the node read a file:// path); and once on
// https, never back to http, whose content anyone on the way can change.
func checkRedirect(next *url.URL, via []*url.URL, max int) error {
	chain := func() string {
		parts := make([]string, 0, len(via)+1)
		for _, u := range via {
			parts = append(parts, u.Redacted())
		}
		return strings.Join(append(parts, next.Redacted()), " → ")
	}
	for _, u := range via {
		if u.String() == next.String() {
			return &redirectError{fmt.Sprintf("a redirect loop: %s", chain())}
		}
	}
	if len(via) > max {
		return &redirectError{fmt.Sprintf("more than %d redirects: %s", max, chain())}
	}
	switch next.Scheme {
	case "http", "https":
	default:
		return &redirectError{fmt.Sprintf("a redirect to %s: only http and https redirects are followed", next.Redacted())}
	}
	if next.Scheme == "http" {
		for _, u := range via {
			if u.Scheme == "https" {
				return &redirectError{fmt.Sprintf("a redirect from https to http (%s): refusing the downgrade", chain())}
			}
		}
	}
	return nil
}

// attempt is how one try ended.
type attempt struct {
	err *Error
	// retry says another try may do better (429, 5xx, a dropped,
	// truncated or stalled connection); refusals are final.
	retry bool
	// retryAfter is the answer's Retry-After header, if any.
	retryAfter string
}

// statusAttempt classifies an HTTP status other than 200: 408, 429 and 5xx
// are worth another try; anything else (404, 410, 403, ...) is final.
func statusAttempt(code int, status, retryAfter string) attempt {
	msg := "HTTP " + status
	switch {
	case code == http.StatusTooManyRequests:
		return attempt{err: &Error{Reason: RateLimited, Message: msg}, retry: true, retryAfter: retryAfter}
	case code == http.StatusRequestTimeout || code >= 500:
		return attempt{err: &Error{Reason: ServerUnavailable, Message: msg}, retry: true, retryAfter: retryAfter}
	}
	return attempt{err: &Error{Reason: DownloadFailed, Message: msg}}
}

// sizeString writes a byte count for a message: "2 GiB", "300 bytes",
// "1.9 KiB (2000 bytes)".
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	name := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, name)
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", float64(n)/float64(div), name, n)
}
