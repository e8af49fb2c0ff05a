// Package fetcher downloads the archives Overlays come from and extracts
// them into a staging directory, as an unprivileged process: nothing a
// tenant's URL serves is read, parsed or unpacked as root.
//
//	agent (root)                       l4m-fetch (a transient hardened unit)
//	Runner.FetchArchive(spec, staging)
//	  staging: spec.json, chown  ──▶   l4m-node fetch --spec … --staging …
//	                                     Download(url → staging/download): sha256, limits, retries
//	                                     extract (staging/download → staging/tree)
//	  result line in the log     ◀──   exit
//	extract.Verify(staging/tree) → extract.Digest → the store
//
// Download and FetchArchive are the fetcher process's work and can run in
// any process; Runner starts that process through systemd as the
// l4m-fetch system account, able to write only its staging directory.
// FetchGit is the same for a git repository (go-git: the ref resolved
// from the advertised refs, the commit fetched into staging/repo, its
// tree objects walked into staging/tree through an extract.Writer, never
// checked out by git), and Fetch runs whichever a Job names.
//
// file:// URLs: the fetcher runs as l4m-fetch, so a file:// URL reaches
// only what that account can read, which is every world-readable file on
// the node. A tenant could copy any of those into its overlay and read it
// back through a game, so file:// is refused unless the node names the
// directories it may read below (Limits.FileRoots, l4m-node
// --overlay-file-roots), and none is the default.
package fetcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/left4me/left4me/node/extract"
)

// The names below a staging directory.
const (
	// DownloadName is the archive while it is extracted (removed after).
	DownloadName = "download"
	// TreeName is the extracted tree: what the agent verifies and stores.
	TreeName = "tree"
	// SpecName is the spec the Runner hands the fetcher process.
	SpecName = "spec.json"
)

// FetchSpec is one archive to fetch and how: the fields of an Overlay's
// archive source (v1alpha1.ArchiveSource) and the node's limits. It is
// what the Runner hands the fetcher process, as JSON.
type FetchSpec struct {
	// URL is https://, http:// or file:///path.
	URL string `json:"url"`
	// SHA256 is the archive file's SHA-256 (64 lowercase hex digits);
	// required for http and https.
	SHA256 string `json:"sha256,omitempty"`
	// StripComponents, SubPath and Into shape the tree as
	// extract.Options says.
	StripComponents int    `json:"stripComponents,omitempty"`
	SubPath         string `json:"subPath,omitempty"`
	Into            string `json:"into,omitempty"`
	// Download bounds the download and names the file roots.
	Download Limits `json:"download,omitempty"`
	// Extract bounds what the archive may unpack to.
	Extract extract.Limits `json:"extract,omitempty"`
}

// FetchArchive downloads spec.URL into staging/download, extracts it
// (the format read from its content) into staging/tree, which it makes
// (mode 0755; it must not exist yet), and removes the download. staging
// must exist. Errors are *Error naming the URL, and for a refused entry
// the entry (Entry, and in the message); when ctx ends, its error.
//
// On an error staging/tree holds what was extracted before it: never
// anything outside it, and never anything extract.Verify would accept
// that the archive did not say. The caller discards the staging dir.
func FetchArchive(ctx context.Context, spec FetchSpec, staging string) (extract.Stats, error) {
	fail := func(reason, msg string, err error) (extract.Stats, error) {
		return extract.Stats{}, &Error{Reason: reason, URL: spec.URL, Message: msg, Err: err}
	}
	if !filepath.IsAbs(staging) {
		return fail(InvalidSpec, fmt.Sprintf("staging %q is not an absolute path", staging), nil)
	}
	download := filepath.Join(staging, DownloadName)
	tree := filepath.Join(staging, TreeName)
	if err := os.Mkdir(tree, 0o755); err != nil {
		return fail(ExtractFailed, "the staging tree (want a fresh staging directory)", err)
	}
	// Mkdir's mode is masked by the umask; Verify wants exactly 0755.
	if err := os.Chmod(tree, 0o755); err != nil {
		return fail(ExtractFailed, "", err)
	}
	defer os.Remove(download)
	if _, err := Download(ctx, spec.URL, download, spec.SHA256, spec.Download); err != nil {
		return extract.Stats{}, err
	}
	opts := extract.Options{StripComponents: spec.StripComponents, SubPath: spec.SubPath, Into: spec.Into, Limits: spec.Extract}
	stats, err := extract.ExtractFile(ctx, download, extract.Auto, tree, opts)
	if err != nil {
		if ctx.Err() != nil {
			return stats, fmt.Errorf("archive %s: extract: %w", spec.URL, ctx.Err())
		}
		e := &Error{Reason: extractReason(err), URL: spec.URL, Err: err}
		var ee *extract.EntryError
		if errors.As(err, &ee) {
			e.Entry = ee.Entry
		}
		return stats, e
	}
	if err := os.Remove(download); err != nil {
		return stats, &Error{Reason: ExtractFailed, URL: spec.URL, Message: "removing the download", Err: err}
	}
	return stats, nil
}
