// Package sources are the node's Materializers for the Overlay sources it
// fetches (archive, git, workshop): each turns an Overlay's spec into a
// node/fetcher Job and runs it through the fetcher Runner, so what a
// tenant's URL or Workshop item serves is downloaded, parsed and unpacked
// by the unprivileged l4m-fetch account in a hardened unit, never by the
// agent. The agent (node/agent) then verifies, seals and stores the tree.
//
// Git refs that are not commit ids and Workshop items can change while
// the spec does not: those Materializers are Checkers too, resolving the
// source without fetching it (a ref listing, a Steam Web API call) at the
// source's checkInterval.
package sources

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/agent"
	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/fetcher"
	"github.com/left4me/left4me/node/store"
)

// Fetcher runs a fetch job in a staging directory (fetcher.Runner, as the
// unprivileged account).
type Fetcher interface {
	Fetch(ctx context.Context, j fetcher.Job, staging string) (fetcher.Result, error)
}

// Config is what the node says about every fetch.
type Config struct {
	// Fetcher runs the jobs.
	Fetcher Fetcher
	// Download bounds archive downloads and git transfers, and names the
	// directories file:// URLs may read below (none by default).
	Download fetcher.Limits
	// Extract bounds every tree written.
	Extract extract.Limits
	// SteamAPIURL is the Steam Web API (workshop.DefaultBaseURL when
	// empty; l4m-node --steam-api-url).
	SteamAPIURL string
	// MaxWorkshopItemBytes refuses larger Workshop items (the workshop
	// client's default when 0).
	MaxWorkshopItemBytes int64
}

// Materializers are the agent's Materializers for archive, git and
// workshop sources.
func Materializers(c Config) map[string]agent.Materializer {
	return map[string]agent.Materializer{
		v1.SourceArchive:  Archive{c},
		v1.SourceGit:      Git{c},
		v1.SourceWorkshop: Workshop{c},
	}
}

// Archive fetches archive sources.
type Archive struct{ c Config }

// Scheme is the tree's digest: only the extracted tree names the entry.
func (Archive) Scheme() store.Scheme { return store.SchemeTree }

// Key is unknown before the fetch: the sha256 names the archive file, not
// the tree it becomes.
func (Archive) Key(*v1.Overlay) (store.Key, bool, error) { return store.Key{}, false, nil }

// Materialize downloads, checks and extracts the archive.
func (a Archive) Materialize(ctx context.Context, ov *v1.Overlay, _ agent.Fetched, work string) (agent.Fetched, error) {
	src := ov.Spec.Source.Archive
	if src == nil {
		return agent.Fetched{}, fmt.Errorf("not an archive source")
	}
	_, err := a.c.Fetcher.Fetch(ctx, fetcher.Job{Archive: &fetcher.FetchSpec{
		URL: src.URL, SHA256: src.SHA256, StripComponents: int(src.StripComponents), SubPath: src.SubPath, Into: src.Into,
		Download: a.c.Download, Extract: a.c.Extract,
	}}, work)
	return agent.Fetched{}, err
}

// Git fetches git sources at one commit.
type Git struct{ c Config }

// Scheme is the tree's digest.
func (Git) Scheme() store.Scheme { return store.SchemeTree }

// Key is unknown before the fetch (a commit id names the commit, and the
// tree digest is of what subPath and into make of it).
func (Git) Key(*v1.Overlay) (store.Key, bool, error) { return store.Key{}, false, nil }

// CheckInterval is the source's checkInterval for a tag or branch; a
// commit id is never checked.
func (Git) CheckInterval(ov *v1.Overlay) time.Duration {
	g := ov.Spec.Source.Git
	if g == nil || v1.IsCommitID(g.Ref) {
		return 0
	}
	return interval(g.CheckInterval, v1.DefaultGitCheckInterval)
}

// Check resolves the ref to its commit.
func (g Git) Check(ctx context.Context, ov *v1.Overlay, work string) (agent.Fetched, error) {
	spec, err := g.spec(ov, agent.Fetched{})
	if err != nil {
		return agent.Fetched{}, err
	}
	spec.ResolveOnly = true
	res, err := g.c.Fetcher.Fetch(ctx, fetcher.Job{Git: &spec}, work)
	return agent.Fetched{Commit: res.Commit}, err
}

// Materialize writes the tree of the checked commit (pin), or of what the
// ref names now when it was not checked yet.
func (g Git) Materialize(ctx context.Context, ov *v1.Overlay, pin agent.Fetched, work string) (agent.Fetched, error) {
	spec, err := g.spec(ov, pin)
	if err != nil {
		return agent.Fetched{}, err
	}
	res, err := g.c.Fetcher.Fetch(ctx, fetcher.Job{Git: &spec}, work)
	return agent.Fetched{Commit: res.Commit}, err
}

func (g Git) spec(ov *v1.Overlay, pin agent.Fetched) (fetcher.GitSpec, error) {
	src := ov.Spec.Source.Git
	if src == nil {
		return fetcher.GitSpec{}, fmt.Errorf("not a git source")
	}
	ref := src.Ref
	if v1.IsCommitID(pin.Commit) {
		ref = pin.Commit
	}
	return fetcher.GitSpec{URL: src.URL, Ref: ref, SubPath: src.SubPath, Into: src.Into, Download: g.c.Download, Extract: g.c.Extract}, nil
}

// Workshop fetches Workshop items.
type Workshop struct{ c Config }

// Scheme is the tree's digest.
func (Workshop) Scheme() store.Scheme { return store.SchemeTree }

// Key is unknown before the fetch: Steam serves an item's newest file.
func (Workshop) Key(*v1.Overlay) (store.Key, bool, error) { return store.Key{}, false, nil }

// CheckInterval is the source's checkInterval.
func (Workshop) CheckInterval(ov *v1.Overlay) time.Duration {
	if ov.Spec.Source.Workshop == nil {
		return 0
	}
	return interval(ov.Spec.Source.Workshop.CheckInterval, v1.DefaultWorkshopCheckInterval)
}

// Check asks Steam for the items (time_updated) without downloading.
func (w Workshop) Check(ctx context.Context, ov *v1.Overlay, work string) (agent.Fetched, error) {
	return w.run(ctx, ov, work, true)
}

// Materialize downloads every item into into/<id>.vpk. Steam serves only
// an item's newest file, so pin cannot hold it back: what was fetched is
// what the result names.
func (w Workshop) Materialize(ctx context.Context, ov *v1.Overlay, _ agent.Fetched, work string) (agent.Fetched, error) {
	return w.run(ctx, ov, work, false)
}

func (w Workshop) run(ctx context.Context, ov *v1.Overlay, work string, resolveOnly bool) (agent.Fetched, error) {
	src := ov.Spec.Source.Workshop
	if src == nil {
		return agent.Fetched{}, fmt.Errorf("not a workshop source")
	}
	into := src.Into
	if into == "" {
		into = v1.DefaultWorkshopInto
	}
	res, err := w.c.Fetcher.Fetch(ctx, fetcher.Job{Workshop: &fetcher.WorkshopSpec{
		Items: src.Items, Collections: src.Collections, Into: into, APIURL: w.c.SteamAPIURL,
		ResolveOnly: resolveOnly, MaxItemBytes: w.c.MaxWorkshopItemBytes, Extract: w.c.Extract,
	}}, work)
	if err != nil {
		return agent.Fetched{}, err
	}
	return agent.Fetched{Items: items(res.Items)}, nil
}

// items are the fetcher's Workshop items as the API writes them.
func items(in []fetcher.WorkshopItem) []v1.WorkshopItem {
	out := make([]v1.WorkshopItem, 0, len(in))
	for _, it := range in {
		wi := v1.WorkshopItem{ID: it.ID, Title: it.Title, Size: it.Size}
		if !it.TimeUpdated.IsZero() {
			t := metav1.NewTime(it.TimeUpdated.UTC())
			wi.TimeUpdated = &t
		}
		out = append(out, wi)
	}
	return out
}

// interval parses a checkInterval the API validated, or the default.
func interval(s, def string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	d, _ := time.ParseDuration(def)
	return d
}
