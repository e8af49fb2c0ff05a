package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/node/workshop"
)

// CommandName is the l4m-node subcommand that runs a fetch (hidden: only
// the Runner starts it).
const CommandName = "fetch"

// resultPrefix starts the one line the fetcher process writes to report
// how the fetch ended; the Runner reads the last such line of its output.
const resultPrefix = "l4m-fetch-result: "

// maxSpecBytes bounds the spec read (a spec is a few hundred bytes; a CA
// bundle in it a few hundred KiB).
const maxSpecBytes = 4 << 20

// maxMessage bounds a message read back from the fetcher process: it
// lands in the Node's status.
const maxMessage = 2048

type result struct {
	Result *Result    `json:"result,omitempty"`
	Error  *wireError `json:"error,omitempty"`
}

type wireError struct {
	Reason  string `json:"reason"`
	Entry   string `json:"entry,omitempty"`
	Message string `json:"message"`
}

// RunCommand is the fetch subcommand: it reads a Job as JSON from spec,
// runs Fetch into staging, and writes the result line to out (the Result,
// or the error's reason, entry and message). It returns the fetch's error
// too, for the exit status; logs (retries) go to log.
func RunCommand(ctx context.Context, spec io.Reader, staging string, out io.Writer, log logr.Logger) error {
	j, err := readJob(spec)
	if err != nil {
		writeResult(out, result{Error: &wireError{Reason: InvalidSpec, Message: err.Error()}})
		return err
	}
	if j.Archive != nil {
		j.Archive.Download.Log = log
	}
	if j.Git != nil {
		j.Git.Download.Log = log
	}
	if j.Workshop != nil {
		j.Workshop.Download.Log = log
	}
	res, err := Fetch(ctx, j, staging)
	if err != nil {
		var e *Error
		w := &wireError{Reason: FetcherFailed, Message: err.Error()}
		var f Failure
		switch {
		case errors.As(err, &e):
			w = &wireError{Reason: e.Reason, Entry: e.Entry, Message: e.detail()}
		case errors.As(err, &f) && f.FailureReason() != "":
			w.Reason = f.FailureReason()
		case ctx.Err() != nil:
			w.Reason = TimedOut // the unit is being stopped: its timeout, or the agent's
		}
		writeResult(out, result{Error: w})
		return err
	}
	writeResult(out, result{Result: &res})
	return nil
}

// Failure is an error that names its reason word (a workshop.Error, say);
// the fetcher passes the word on when it is one the Runner knows.
type Failure interface {
	error
	FailureReason() string
}

func readJob(r io.Reader) (Job, error) {
	var s Job
	data, err := io.ReadAll(io.LimitReader(r, maxSpecBytes+1))
	if err != nil {
		return s, fmt.Errorf("read the spec: %w", err)
	}
	if len(data) > maxSpecBytes {
		return s, fmt.Errorf("the spec is larger than %s", sizeString(maxSpecBytes))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("the spec: %w", err)
	}
	return s, nil
}

func writeResult(w io.Writer, r result) {
	data, _ := json.Marshal(r) // plain data: cannot fail
	fmt.Fprintf(w, "%s%s\n", resultPrefix, data)
}

// parseResult finds the fetcher's last result line in its output. ok is
// false when there is none (it did not get that far). An error read back
// is rebuilt as an *Error for what, its text bounded; so is what the
// Result says (the process is not trusted).
func parseResult(output, what string) (res Result, ferr *Error, ok bool) {
	lines := strings.Split(output, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line, found := strings.CutPrefix(lines[i], resultPrefix)
		if !found {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			continue
		}
		switch {
		case r.Error != nil:
			return Result{}, &Error{Reason: knownReason(r.Error.Reason), URL: what, Entry: bounded(r.Error.Entry), Message: bounded(r.Error.Message)}, true
		case r.Result != nil:
			res := *r.Result
			res.Commit = bounded(res.Commit)
			for i := range res.Items {
				res.Items[i].ID, res.Items[i].Title = bounded(res.Items[i].ID), bounded(res.Items[i].Title)
			}
			return res, nil, true
		}
	}
	return Result{}, nil, false
}

// knownReason keeps a reason from the fetcher process only if it is one of
// ours: it is a condition's reason, and the process is not trusted.
func knownReason(r string) string {
	switch r {
	case InvalidSpec, FileURLRefused, DownloadFailed, RedirectRefused, ChecksumMismatch, TooLarge, Truncated, Stalled,
		TimedOut, RateLimited, ServerUnavailable, UnsafeEntry, DuplicateEntry, ArchiveTooLarge, CorruptArchive,
		UnsupportedArchive, ExtractFailed, FetcherFailed,
		RefNotFound, GitFailed,
		workshop.InvalidID, workshop.ItemUnavailable, workshop.WrongGame, workshop.NoFileURL, workshop.Banned,
		workshop.NotVPK, workshop.EmptyCollection, workshop.SizeMismatch, workshop.SteamUnavailable, workshop.BadResponse:
		return r
	}
	return FetcherFailed
}

// bounded cuts s to maxMessage bytes of valid UTF-8.
func bounded(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
