package workshop

import (
	"strconv"
	"strings"
)

// Reasons are the CamelCase causes an *Error names, for a condition's
// reason; Message says the rest.
const (
	// InvalidID: an id is not a Workshop id (a decimal uint64, no sign,
	// no leading zero, not 0).
	InvalidID = "InvalidID"
	// ItemUnavailable: Steam answered result != 1 for it: private,
	// friends-only, removed, or no such id.
	ItemUnavailable = "ItemUnavailable"
	// WrongGame: the item belongs to another game's Workshop
	// (consumer_app_id is not 550).
	WrongGame = "WrongGame"
	// NoFileURL: Steam gave no file_url, so the Web API cannot download
	// it (private or removed, a collection listed as an item, or content
	// kept on SteamPipe).
	NoFileURL = "NoFileURL"
	// Banned: Steam marks the item banned.
	Banned = "Banned"
	// TooLarge: file_size is over Client.MaxItemBytes.
	TooLarge = "TooLarge"
	// NotVPK: the filename does not end in .vpk, or the file does not
	// start with a VPK signature.
	NotVPK = "NotVPK"
	// EmptyCollection: a collection holds no items (nested collections
	// are not followed).
	EmptyCollection = "EmptyCollection"
	// SizeMismatch: the server sent more bytes than file_size, or
	// announced a Content-Length other than file_size.
	SizeMismatch = "SizeMismatch"
	// Truncated: the download ended before file_size bytes, every try.
	Truncated = "Truncated"
	// Stalled: the download made less than the minimum progress.
	Stalled = "Stalled"
	// TimedOut: the download did not finish within
	// Client.DownloadTimeout, tries included.
	TimedOut = "TimedOut"
	// RateLimited: Steam answered 429 every try, or asked to wait longer
	// than Client.MaxRetryAfter.
	RateLimited = "RateLimited"
	// SteamUnavailable: 5xx answers or network errors, every try.
	SteamUnavailable = "SteamUnavailable"
	// BadResponse: Steam's answer could not be used (another status, not
	// the JSON expected, an id missing from it).
	BadResponse = "BadResponse"
	// DownloadFailed: the file could not be fetched or written for
	// another reason (a 404 for a stale file_url, a full disk).
	DownloadFailed = "DownloadFailed"
)

// Error is a refused or failed Workshop id. Every error Resolve and
// Download return is one, or several joined (errors.Join), so a status
// can name each bad id.
type Error struct {
	// Reason is one of the constants above.
	Reason string
	// ID is the item or collection the error is about ("" for a whole
	// API call).
	ID string
	// Collection says ID names a collection.
	Collection bool
	// From is the collection an item was listed in, if not directly.
	From string
	// Title is the item's title, when Steam gave one.
	Title string
	// Message says what went wrong, for people.
	Message string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("workshop")
	id := e.ID
	if ValidID(id) != nil {
		// Quoted, so an empty or odd id shows as what it was.
		id = strconv.Quote(id)
	}
	switch {
	case e.ID == "" && e.Reason != InvalidID:
	case e.Collection:
		b.WriteString(" collection ")
		b.WriteString(id)
	default:
		b.WriteString(" item ")
		b.WriteString(id)
	}
	if e.Title != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(e.Title))
	}
	if e.From != "" {
		b.WriteString(" (in collection ")
		b.WriteString(e.From)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// FailureReason is Reason (the agent's Failure interface).
func (e *Error) FailureReason() string { return e.Reason }

// itemError is an *Error about an item already resolved.
func itemError(it Item, reason, msg string, err error) *Error {
	return &Error{Reason: reason, ID: it.ID, From: it.From, Title: it.Title, Message: msg, Err: err}
}
