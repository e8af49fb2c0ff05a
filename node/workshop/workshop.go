// Package workshop fetches Left 4 Dead 2 Workshop items through the Steam
// Web API, which needs no key: Resolve expands collections
// (ISteamRemoteStorage/GetCollectionDetails) and checks every item's
// details (GetPublishedFileDetails) before anything is downloaded;
// Download streams one item's file_url to a path, capped at the size
// Steam declared, retrying what Steam's front end and CDN do to clients
// (429 with Retry-After, 5xx, dropped connections) a bounded number of
// times and giving up on a server that trickles.
//
// It knows nothing of the agent or the API: the caller decides where the
// files go (left4dead2/addons/<id>.vpk) and when to look again (an
// item's TimeUpdated changing means new content).
package workshop

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
)

// DefaultBaseURL is Steam's Web API.
const DefaultBaseURL = "https://api.steampowered.com"

// AppL4D2 is the app id the game and its Workshop are published under
// (the dedicated server is 222860, but items name the game).
const AppL4D2 = 550

// Defaults for the Client's zero fields, and why.
const (
	// DefaultMaxItemBytes: the biggest custom campaigns are VPKs of one
	// to two GiB; VPK version 1 keeps 32-bit offsets, so a file past
	// 4 GiB cannot be a working addon, and 2 GiB leaves room for all
	// real ones.
	DefaultMaxItemBytes = 2 << 30
	// DefaultBatchSize ids per API request. Steam documents no limit;
	// 100 is what tools that batch these calls use, and keeps one answer
	// (descriptions included) around a megabyte.
	DefaultBatchSize = 100
	// DefaultRequestTimeout for one API call attempt, answer included.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultDownloadTimeout for one item, all attempts together: a
	// 2 GiB file at the minimum progress below would not make it, but
	// at 2 MiB/s (a slow single CDN connection) it takes 17 minutes.
	DefaultDownloadTimeout = 30 * time.Minute
	// DefaultStallWindow and DefaultMinBytesPerWindow: a download that
	// receives less than 64 KiB in any 30 s (about 2 KiB/s; the headers
	// included in the first window) is cut off as stalled and tried
	// again. A file's last window needs only what remains of it.
	DefaultStallWindow       = 30 * time.Second
	DefaultMinBytesPerWindow = 64 << 10
	// DefaultMaxAttempts per API call or download, the first included.
	DefaultMaxAttempts = 4
	// DefaultRetryBase and DefaultRetryMax bound the exponential backoff
	// between attempts (1 s, 2 s, 4 s, ... at most 30 s, with jitter).
	DefaultRetryBase = time.Second
	DefaultRetryMax  = 30 * time.Second
	// DefaultMaxRetryAfter: a Retry-After up to this long is waited
	// for; a longer one fails at once as RateLimited, so the caller
	// comes back later instead of holding a fetch open.
	DefaultMaxRetryAfter = 60 * time.Second
	// maxAPIResponse caps an API answer's body.
	maxAPIResponse = 16 << 20
)

// Client talks to the Steam Web API. The zero value uses Steam and the
// defaults above; it is safe for concurrent use.
type Client struct {
	// BaseURL is the Web API's scheme and host (DefaultBaseURL).
	BaseURL string
	// HTTP sends the requests (http.DefaultClient). Its own Timeout, if
	// any, applies on top of the limits below.
	HTTP *http.Client
	// MaxItemBytes refuses items whose file_size is larger.
	MaxItemBytes int64
	// BatchSize is the most ids per API request.
	BatchSize int
	// RequestTimeout bounds one API call attempt.
	RequestTimeout time.Duration
	// DownloadTimeout bounds one item's download, attempts included.
	DownloadTimeout time.Duration
	// StallWindow and MinBytesPerWindow are the minimum-progress rule.
	StallWindow       time.Duration
	MinBytesPerWindow int64
	// MaxAttempts bounds the tries of one API call or download.
	MaxAttempts int
	// RetryBase and RetryMax bound the backoff between tries.
	RetryBase, RetryMax time.Duration
	// MaxRetryAfter is the longest Retry-After waited for.
	MaxRetryAfter time.Duration
	// Log gets a line per retry and per nested collection skipped.
	Log logr.Logger
}

// Item is a Workshop item Resolve found fit to download.
type Item struct {
	// ID is the published file id.
	ID string
	// From is the collection that listed it; empty when listed directly.
	From string
	// Title is its title on the Workshop.
	Title string
	// Filename is the name it was uploaded as (used only to check it is a
	// .vpk; it is saved as <ID>.vpk).
	Filename string
	// FileURL is where its file is downloaded from.
	FileURL string
	// Size is file_size, the bytes the download must bring.
	Size int64
	// TimeUpdated is when its content last changed; a new value means
	// the file must be fetched again.
	TimeUpdated time.Time
}

// ValidID checks a Workshop id: a decimal uint64 in canonical form (no
// sign, no leading zeros, not 0), so "0123" and "123" cannot name the same
// item twice.
func ValidID(id string) error {
	n, err := strconv.ParseUint(id, 10, 64)
	switch {
	case err != nil:
		return errors.New("not a decimal Workshop id (an unsigned 64-bit number)")
	case n == 0:
		return errors.New("0 is not a Workshop id")
	case id[0] == '0':
		return errors.New("has a leading zero")
	}
	return nil
}

func (c *Client) baseURL() string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	return DefaultBaseURL
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func orDefault[T int | int64 | time.Duration](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}
