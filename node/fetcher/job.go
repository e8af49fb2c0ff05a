package fetcher

import (
	"context"
	"fmt"
	"time"

	"github.com/left4me/left4me/node/extract"
)

// Job is one fetch the Runner hands the fetcher process (as JSON in its
// staging directory): exactly one of Archive, Git and Workshop.
type Job struct {
	Archive  *FetchSpec    `json:"archive,omitempty"`
	Git      *GitSpec      `json:"git,omitempty"`
	Workshop *WorkshopSpec `json:"workshop,omitempty"`
}

// GitSpec is a git source to fetch: the fields of an Overlay's git source
// (v1alpha1.GitSource) and the node's limits.
type GitSpec struct {
	// URL is https://, http:// or file:///path (file roots as an
	// archive's: Download.FileRoots).
	URL string `json:"url"`
	// Ref is a commit id, or a tag or branch name resolved to one.
	Ref string `json:"ref"`
	// SubPath and Into shape the tree as extract.Options says.
	SubPath string `json:"subPath,omitempty"`
	Into    string `json:"into,omitempty"`
	// ResolveOnly resolves Ref to its commit (Result.Commit) and writes
	// no tree: how the agent checks whether a branch moved.
	ResolveOnly bool `json:"resolveOnly,omitempty"`
	// Download bounds the transfer (Timeout; MaxBytes of all a server
	// sends, refs and pack) and names the file roots.
	Download Limits `json:"download,omitempty"`
	// Extract bounds the tree written (entries, bytes).
	Extract extract.Limits `json:"extract,omitempty"`
}

// WorkshopSpec is a workshop source to fetch: the fields of an Overlay's
// workshop source (v1alpha1.WorkshopSource) and the node's settings.
type WorkshopSpec struct {
	// Items and Collections are Workshop ids.
	Items       []string `json:"items,omitempty"`
	Collections []string `json:"collections,omitempty"`
	// Into is where <id>.vpk files land below the game root
	// (DefaultWorkshopInto when empty): a clean relative path.
	Into string `json:"into"`
	// APIURL is the Steam Web API's base URL (the node's
	// --steam-api-url; workshop.DefaultBaseURL when empty).
	APIURL string `json:"apiURL,omitempty"`
	// ResolveOnly asks Steam for the items (Result.Items) and downloads
	// nothing: how the agent checks for updated items.
	ResolveOnly bool `json:"resolveOnly,omitempty"`
	// MaxItemBytes refuses larger items (workshop.DefaultMaxItemBytes).
	MaxItemBytes int64 `json:"maxItemBytes,omitempty"`
	// Download bounds each API call's and item's transfer: Timeout is one
	// item's, tries included; the stall rule, tries, backoff, redirects
	// and CAPEM as for an archive. MaxBytes and FileRoots must be unset
	// (MaxItemBytes bounds an item; Steam is never a file:// URL).
	Download Limits `json:"download,omitempty"`
	// Extract bounds the tree written (entries, bytes).
	Extract extract.Limits `json:"extract,omitempty"`
}

// Result is what a fetch found besides the tree it wrote.
type Result struct {
	// Stats count the tree written.
	Stats extract.Stats `json:"stats"`
	// Commit is the commit a git Ref resolved to.
	Commit string `json:"commit,omitempty"`
	// Items are a workshop source's items, collections expanded, in the
	// order Resolve gives.
	Items []WorkshopItem `json:"items,omitempty"`
}

// WorkshopItem is one Workshop item as Steam described it.
type WorkshopItem struct {
	ID          string    `json:"id"`
	Title       string    `json:"title,omitempty"`
	Size        int64     `json:"size,omitempty"`
	TimeUpdated time.Time `json:"timeUpdated"`
}

// kind names the job's source, or "" when not exactly one is set.
func (j Job) kind() string {
	n, k := 0, ""
	if j.Archive != nil {
		n, k = n+1, "archive"
	}
	if j.Git != nil {
		n, k = n+1, "git"
	}
	if j.Workshop != nil {
		n, k = n+1, "workshop"
	}
	if n != 1 {
		return ""
	}
	return k
}

// what names the job in errors: its URL, or the Workshop ids.
func (j Job) what() string {
	switch {
	case j.Archive != nil:
		return j.Archive.URL
	case j.Git != nil:
		return j.Git.URL
	case j.Workshop != nil:
		return fmt.Sprintf("items %v collections %v", j.Workshop.Items, j.Workshop.Collections)
	}
	return "an empty fetch"
}

// Fetch runs a job into staging, in this process: the fetcher process's
// work (RunCommand), and the tests'.
func Fetch(ctx context.Context, j Job, staging string) (Result, error) {
	switch j.kind() {
	case "archive":
		stats, err := FetchArchive(ctx, *j.Archive, staging)
		return Result{Stats: stats}, err
	case "git":
		return FetchGit(ctx, *j.Git, staging)
	case "workshop":
		return FetchWorkshop(ctx, *j.Workshop, staging)
	}
	return Result{}, &Error{Reason: InvalidSpec, URL: j.what(), Message: "want exactly one of archive, git and workshop"}
}
