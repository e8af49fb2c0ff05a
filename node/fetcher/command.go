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

	"github.com/left4me/left4me/node/extract"
)

// CommandName is the l4m-node subcommand that runs a fetch (hidden: only
// the Runner starts it).
const CommandName = "fetch-archive"

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
	Stats *extract.Stats `json:"stats,omitempty"`
	Error *wireError     `json:"error,omitempty"`
}

type wireError struct {
	Reason  string `json:"reason"`
	Entry   string `json:"entry,omitempty"`
	Message string `json:"message"`
}

// RunCommand is the fetch-archive subcommand: it reads a FetchSpec as JSON
// from spec, runs FetchArchive into staging, and writes the result line to
// out (stats, or the error's reason, entry and message). It returns the
// fetch's error too, for the exit status; logs (retries) go to log.
func RunCommand(ctx context.Context, spec io.Reader, staging string, out io.Writer, log logr.Logger) error {
	s, err := readSpec(spec)
	if err != nil {
		writeResult(out, result{Error: &wireError{Reason: InvalidSpec, Message: err.Error()}})
		return err
	}
	s.Download.Log = log
	stats, err := FetchArchive(ctx, s, staging)
	if err != nil {
		var e *Error
		w := &wireError{Reason: FetcherFailed, Message: err.Error()}
		if errors.As(err, &e) {
			w = &wireError{Reason: e.Reason, Entry: e.Entry, Message: e.detail()}
		} else if ctx.Err() != nil {
			w.Reason = TimedOut // the unit is being stopped: its timeout, or the agent's
		}
		writeResult(out, result{Error: w})
		return err
	}
	writeResult(out, result{Stats: &stats})
	return nil
}

func readSpec(r io.Reader) (FetchSpec, error) {
	var s FetchSpec
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
// is rebuilt as an *Error for url, its text bounded.
func parseResult(output, url string) (stats extract.Stats, ferr *Error, ok bool) {
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
			return extract.Stats{}, &Error{Reason: knownReason(r.Error.Reason), URL: url, Entry: bounded(r.Error.Entry), Message: bounded(r.Error.Message)}, true
		case r.Stats != nil:
			return *r.Stats, nil, true
		}
	}
	return extract.Stats{}, nil, false
}

// knownReason keeps a reason from the fetcher process only if it is one of
// ours: it is a condition's reason, and the process is not trusted.
func knownReason(r string) string {
	switch r {
	case InvalidSpec, FileURLRefused, DownloadFailed, RedirectRefused, ChecksumMismatch, TooLarge, Truncated, Stalled,
		TimedOut, RateLimited, ServerUnavailable, UnsafeEntry, DuplicateEntry, ArchiveTooLarge, CorruptArchive,
		UnsupportedArchive, ExtractFailed, FetcherFailed:
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
