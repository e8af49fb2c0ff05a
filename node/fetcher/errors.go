package fetcher

import (
	"errors"
	"strings"

	"github.com/left4me/left4me/node/extract"
)

// Reasons are the CamelCase causes an *Error names, for the Node status's
// overlay reason; Message says the rest.
const (
	// InvalidSpec: the URL, checksum or options cannot be used (the API
	// refuses these; the node checks again).
	InvalidSpec = "InvalidSpec"
	// FileURLRefused: a file:// URL on a node with no file roots, or one
	// naming a file outside them.
	FileURLRefused = "FileURLRefused"
	// DownloadFailed: a final HTTP status (404, 410, 403, any 4xx), a
	// certificate the node does not trust, a file that cannot be read, a
	// full disk.
	DownloadFailed = "DownloadFailed"
	// RedirectRefused: a redirect loop, too many redirects, a redirect to
	// anything but http(s), or from https to http.
	RedirectRefused = "RedirectRefused"
	// ChecksumMismatch: the file's SHA-256 is not the one the spec names.
	ChecksumMismatch = "ChecksumMismatch"
	// TooLarge: the file is announced or sent larger than MaxBytes.
	TooLarge = "TooLarge"
	// Truncated: the body ended before its Content-Length, every try.
	Truncated = "Truncated"
	// Stalled: less than the minimum progress, every try.
	Stalled = "Stalled"
	// TimedOut: not done within the download's Timeout (or the fetcher's
	// unit's).
	TimedOut = "TimedOut"
	// RateLimited: 429 every try, or a Retry-After longer than
	// MaxRetryAfter.
	RateLimited = "RateLimited"
	// ServerUnavailable: 5xx answers or network errors, every try.
	ServerUnavailable = "ServerUnavailable"
	// UnsafeEntry: the archive holds an entry that would leave the tree or
	// that an overlay must not hold (extract.ErrUnsafe).
	UnsafeEntry = "UnsafeEntry"
	// DuplicateEntry: two entries for one path (extract.ErrDuplicate).
	DuplicateEntry = "DuplicateEntry"
	// ArchiveTooLarge: more entries, bytes or path length than the
	// extraction limits (extract.ErrLimit): a zip or tar bomb.
	ArchiveTooLarge = "ArchiveTooLarge"
	// CorruptArchive: truncated or damaged (extract.ErrCorrupt).
	CorruptArchive = "CorruptArchive"
	// UnsupportedArchive: not a tar, tar.gz, tar.xz or zip
	// (extract.ErrFormat).
	UnsupportedArchive = "UnsupportedArchive"
	// ExtractFailed: extracting failed otherwise (writing the tree).
	ExtractFailed = "ExtractFailed"
	// FetcherFailed: the unprivileged fetcher process ended without
	// saying how (it could not start, crashed, or was killed).
	FetcherFailed = "FetcherFailed"
	// RefNotFound: a git ref names no branch, tag or commit of the
	// repository.
	RefNotFound = "RefNotFound"
	// GitFailed: the repository could not be fetched or read otherwise
	// (not a git repository, a protocol error, a damaged pack).
	GitFailed = "GitFailed"
)

// Error is a failed download or fetch. Every error this package returns
// is one, except the caller's context ending, which comes back as the
// context's error (wrapped, for errors.Is).
type Error struct {
	// Reason is one of the constants above.
	Reason string
	// Source is what was fetched: "archive" (when empty), "git" or
	// "workshop"; the message starts with it.
	Source string
	// URL is the URL the spec named (not where redirects led; Message
	// names that when it matters).
	URL string
	// Entry is the archive entry an extraction failed at, if any.
	Entry string
	// Message says what went wrong, for people.
	Message string
	// Err is the underlying error, if any. An Error read back from the
	// fetcher process has none: its text is in Message, and Is still
	// matches the sentinel errors of node/extract by Reason.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source == "" {
		b.WriteString("archive ")
	} else {
		b.WriteString(e.Source + " ")
	}
	b.WriteString(e.URL)
	b.WriteString(": ")
	b.WriteString(e.detail())
	return b.String()
}

// detail is the message after the URL.
func (e *Error) detail() string {
	switch {
	case e.Err == nil:
		return e.Message
	case e.Message == "":
		return e.Err.Error()
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches node/extract's sentinels by Reason, so an Error that crossed
// the process boundary (no Err) still answers errors.Is(err,
// extract.ErrUnsafe).
func (e *Error) Is(target error) bool {
	s, ok := reasonSentinels[e.Reason]
	return ok && s == target
}

// FailureReason is Reason (the agent's Failure interface).
func (e *Error) FailureReason() string { return e.Reason }

var reasonSentinels = map[string]error{
	UnsafeEntry:        extract.ErrUnsafe,
	DuplicateEntry:     extract.ErrDuplicate,
	ArchiveTooLarge:    extract.ErrLimit,
	CorruptArchive:     extract.ErrCorrupt,
	UnsupportedArchive: extract.ErrFormat,
}

// extractReason classifies an error of node/extract.
func extractReason(err error) string {
	for _, r := range []string{UnsafeEntry, DuplicateEntry, ArchiveTooLarge, CorruptArchive, UnsupportedArchive} {
		if errors.Is(err, reasonSentinels[r]) {
			return r
		}
	}
	return ExtractFailed
}
