package fetcher

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/workshop"
)

// DefaultWorkshopInto is where a workshop source's files land when its
// Into is empty: the directory the game loads addon .vpk files from. It is
// the API's v1alpha1.DefaultWorkshopInto, written out so that the fetcher
// process does not link the API's types.
const DefaultWorkshopInto = "left4dead2/addons"

// FetchWorkshop resolves a workshop source's items and collections
// through the Steam Web API (Result.Items, in Resolve's order) and, unless
// spec.ResolveOnly, downloads each item to staging/tree/<Into>/<id>.vpk.
// It makes staging/tree (mode 0755; it must not exist yet) and Into's
// directories (0755); the files are 0644, and nothing else is written
// there, so extract.Verify accepts the tree.
//
// Before downloading anything it checks that the items fit spec.Extract
// (entries, each file's bytes, the total, path length), as an archive's
// entries must: a collection of many large items is refused as
// ArchiveTooLarge, an *Error wrapping extract.ErrLimit.
//
// What Steam refuses or fails at comes back as node/workshop's errors,
// unwrapped: a *workshop.Error naming the id (and the collection that
// listed it), or several joined when Resolve refuses several ids. They
// carry their reason word (Failure), which RunCommand passes on. A spec
// that cannot be used is an *Error (InvalidSpec); when ctx ends, its
// error.
//
// On an error staging/tree holds the items downloaded before it, each
// whole, and never a partial file (Download removes its temporary file).
// The caller discards the staging dir.
func FetchWorkshop(ctx context.Context, spec WorkshopSpec, staging string) (Result, error) {
	what := Job{Workshop: &spec}.what()
	fail := func(reason string, err error) (Result, error) {
		return Result{}, &Error{Reason: reason, URL: what, Err: err}
	}
	if !filepath.IsAbs(staging) {
		return fail(InvalidSpec, fmt.Errorf("staging %q is not an absolute path", staging))
	}
	if len(spec.Items)+len(spec.Collections) == 0 {
		return fail(InvalidSpec, errors.New("names no items or collections"))
	}
	into, err := workshopInto(spec.Into)
	if err != nil {
		return fail(InvalidSpec, err)
	}
	lim, err := spec.Extract.WithDefaults()
	if err != nil {
		return fail(InvalidSpec, fmt.Errorf("extract limits: %w", err))
	}
	client, err := spec.client()
	if err != nil {
		return fail(InvalidSpec, err)
	}
	defer client.HTTP.CloseIdleConnections()

	items, err := client.Resolve(ctx, spec.Items, spec.Collections)
	if err != nil {
		return Result{}, err
	}
	res := Result{Items: resultItems(items)}
	if spec.ResolveOnly {
		return res, nil
	}
	if err := checkWorkshopTree(items, into, lim); err != nil {
		return fail(ArchiveTooLarge, err)
	}
	dir, err := makeWorkshopDirs(filepath.Join(staging, TreeName), into)
	if err != nil {
		return fail(ExtractFailed, err)
	}
	res.Stats.Dirs = len(strings.Split(into, "/"))
	// One item at a time: the large items that make a fetch long are
	// bound by the node's bandwidth, which two downloads would only
	// share (and sharing it halves what each shows the stall rule);
	// many small items lose a round trip each, which is seconds on a
	// fetch that runs in the background. And the first failure stops
	// the fetch with no other download half done.
	for _, it := range items {
		if err := client.Download(ctx, it, filepath.Join(dir, it.ID+".vpk")); err != nil {
			return Result{}, err
		}
		res.Stats.Files++
		res.Stats.Bytes += it.Size
	}
	return res, nil
}

// workshopInto checks Into: empty means DefaultWorkshopInto; anything else
// must be a clean relative path with no "..", as extract.Options.Into.
func workshopInto(into string) (string, error) {
	if into == "" {
		return DefaultWorkshopInto, nil
	}
	switch {
	case strings.HasPrefix(into, "/"):
		return "", fmt.Errorf("into %q: must be relative", into)
	case strings.ContainsRune(into, 0):
		return "", fmt.Errorf("into %q: contains a NUL byte", into)
	case path.Clean(into) != into || into == ".":
		return "", fmt.Errorf("into %q: must be a clean path (no \".\", empty components or trailing slash)", into)
	}
	for _, c := range strings.Split(into, "/") {
		if c == ".." {
			return "", fmt.Errorf("into %q: must not contain \"..\"", into)
		}
	}
	return into, nil
}

// client is the Steam Web API client the spec asks for: Download's
// limits (an HTTP client that keeps the bytes as served, the redirect
// rules, the node's extra CAs) and its retry and progress rules.
func (s WorkshopSpec) client() (*workshop.Client, error) {
	if s.Download.MaxBytes != 0 || len(s.Download.FileRoots) > 0 {
		return nil, errors.New("download.maxBytes and download.fileRoots do not apply to a workshop source (maxItemBytes bounds an item)")
	}
	if s.MaxItemBytes < 0 {
		return nil, fmt.Errorf("maxItemBytes %d: must not be negative (zero means the default)", s.MaxItemBytes)
	}
	base := s.APIURL
	if base == "" {
		base = workshop.DefaultBaseURL
	}
	if err := checkAPIURL(base); err != nil {
		return nil, err
	}
	l, err := s.Download.withDefaults()
	if err != nil {
		return nil, err
	}
	hc, err := l.client()
	if err != nil {
		return nil, err
	}
	return &workshop.Client{
		BaseURL: base, HTTP: hc, MaxItemBytes: s.MaxItemBytes,
		DownloadTimeout: l.Timeout, StallWindow: l.StallWindow, MinBytesPerWindow: l.MinBytesPerWindow,
		MaxAttempts: l.MaxAttempts, RetryBase: l.RetryBase, RetryMax: l.RetryMax, MaxRetryAfter: l.MaxRetryAfter,
		Log: l.Log,
	}, nil
}

// checkAPIURL accepts a scheme and host the Web API's paths can follow:
// http(s), no credentials, query or fragment.
func checkAPIURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("apiURL: %w", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("apiURL %q: want an https or http URL", s)
	case u.Host == "":
		return fmt.Errorf("apiURL %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("apiURL %q: want only a scheme, host and path (no credentials, query or fragment)", s)
	}
	return nil
}

// resultItems is what Result says of each item.
func resultItems(items []workshop.Item) []WorkshopItem {
	out := make([]WorkshopItem, len(items))
	for i, it := range items {
		out[i] = WorkshopItem{ID: it.ID, Title: it.Title, Size: it.Size, TimeUpdated: it.TimeUpdated}
	}
	return out
}

// checkWorkshopTree is the limits decision, pure: the tree would hold
// into's directories and one <id>.vpk of Size bytes per item, and must fit
// lim (with its defaults) as an extracted archive must.
func checkWorkshopTree(items []workshop.Item, into string, lim extract.Limits) error {
	if n := len(strings.Split(into, "/")) + len(items); n > lim.MaxEntries {
		return fmt.Errorf("%w: %d items in %s make %d entries, more than MaxEntries (%d)", extract.ErrLimit, len(items), into, n, lim.MaxEntries)
	}
	var total int64
	for _, it := range items {
		if p := path.Join(into, it.ID+".vpk"); len(p) > lim.MaxPathLength {
			return fmt.Errorf("%w: workshop item %s: the path %s is %d bytes, more than MaxPathLength (%d)", extract.ErrLimit, it.ID, p, len(p), lim.MaxPathLength)
		}
		if it.Size > lim.MaxEntryBytes {
			return fmt.Errorf("%w: workshop item %s is %s, more than MaxEntryBytes (%s)", extract.ErrLimit, it.ID, sizeString(it.Size), sizeString(lim.MaxEntryBytes))
		}
		total += it.Size
	}
	if total > lim.MaxTotalBytes {
		return fmt.Errorf("%w: the %d items total %s, more than MaxTotalBytes (%s)", extract.ErrLimit, len(items), sizeString(total), sizeString(lim.MaxTotalBytes))
	}
	return nil
}

// makeWorkshopDirs makes tree (it must not exist) and into's directories
// below it, each 0755 whatever the umask, and returns the last.
func makeWorkshopDirs(tree, into string) (string, error) {
	dir := tree
	for i, c := range append([]string{""}, strings.Split(into, "/")...) {
		dir = filepath.Join(dir, c)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if i == 0 {
				return "", fmt.Errorf("the staging tree (want a fresh staging directory): %w", err)
			}
			return "", err
		}
		// Mkdir's mode is masked by the umask; Verify wants exactly 0755.
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}
