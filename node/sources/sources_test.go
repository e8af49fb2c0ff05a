package sources

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/agent"
	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/fetcher"
)

// recorder is a Fetcher that records the jobs it is given and answers res.
type recorder struct {
	jobs []fetcher.Job
	dirs []string
	res  fetcher.Result
	err  error
}

func (r *recorder) Fetch(_ context.Context, j fetcher.Job, staging string) (fetcher.Result, error) {
	r.jobs, r.dirs = append(r.jobs, j), append(r.dirs, staging)
	return r.res, r.err
}

func overlay(src v1.OverlaySource) *v1.Overlay { return &v1.Overlay{Spec: v1.OverlaySpec{Source: src}} }

func TestArchiveJob(t *testing.T) {
	rec := &recorder{}
	roots := fetcher.Limits{FileRoots: []string{"/srv/archives"}}
	ms := Materializers(Config{Fetcher: rec, Download: roots, Extract: extract.Limits{MaxEntries: 10}})
	sum := strings.Repeat("ab", 32)
	ov := overlay(v1.OverlaySource{Archive: &v1.ArchiveSource{URL: "https://example.org/sm.tar.gz", SHA256: sum, StripComponents: 1, SubPath: "addons", Into: "left4dead2"}})
	if _, err := ms[v1.SourceArchive].Materialize(context.Background(), ov, agent.Fetched{}, "/store/.staging/st-1"); err != nil {
		t.Fatal(err)
	}
	a := rec.jobs[0].Archive
	if a == nil || rec.jobs[0].Git != nil || a.URL != ov.Spec.Source.Archive.URL || a.SHA256 != sum || a.StripComponents != 1 || a.SubPath != "addons" ||
		a.Into != "left4dead2" || a.Download.FileRoots[0] != "/srv/archives" || a.Extract.MaxEntries != 10 || rec.dirs[0] != "/store/.staging/st-1" {
		t.Fatalf("archive job %+v in %s", a, rec.dirs[0])
	}
	if _, ok := ms[v1.SourceArchive].(agent.Checker); ok {
		t.Error("an archive source is checked: its sha256 pins it")
	}
	rec.err = &fetcher.Error{Reason: fetcher.ChecksumMismatch, URL: a.URL, Message: "sha256 is x"}
	if _, err := ms[v1.SourceArchive].Materialize(context.Background(), ov, agent.Fetched{}, "/s"); !errors.Is(err, rec.err) {
		t.Fatalf("the fetcher's error is not passed on: %v", err)
	}
}

func TestGitPinsTheCheckedCommit(t *testing.T) {
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	rec := &recorder{res: fetcher.Result{Commit: c1}}
	g := Materializers(Config{Fetcher: rec})[v1.SourceGit]
	branch := overlay(v1.OverlaySource{Git: &v1.GitSource{URL: "https://git.example/cfg.git", Ref: "main", SubPath: "cfg", Into: "left4dead2/cfg", CheckInterval: "2m"}})
	c := g.(agent.Checker)
	if d := c.CheckInterval(branch); d != 2*time.Minute {
		t.Errorf("a branch's interval: %v", d)
	}
	if d := c.CheckInterval(overlay(v1.OverlaySource{Git: &v1.GitSource{URL: "https://g/r.git", Ref: c1}})); d != 0 {
		t.Errorf("a commit id is checked every %v", d)
	}
	if d := c.CheckInterval(overlay(v1.OverlaySource{Git: &v1.GitSource{URL: "https://g/r.git", Ref: "v1"}})); d != 10*time.Minute {
		t.Errorf("an unset interval: %v, want the default 10m", d)
	}
	f, err := c.Check(context.Background(), branch, "/s")
	if err != nil || f.Commit != c1 || !rec.jobs[0].Git.ResolveOnly || rec.jobs[0].Git.Ref != "main" {
		t.Fatalf("check: %+v %v (job %+v)", f, err, rec.jobs[0].Git)
	}
	rec.res.Commit = c2
	f, err = g.Materialize(context.Background(), branch, agent.Fetched{Commit: c2}, "/s")
	if j := rec.jobs[1].Git; err != nil || f.Commit != c2 || j.ResolveOnly || j.Ref != c2 || j.SubPath != "cfg" || j.Into != "left4dead2/cfg" {
		t.Fatalf("fetch pinned to the checked commit: %+v %v (job %+v)", f, err, j)
	}
	if _, err := g.Materialize(context.Background(), branch, agent.Fetched{}, "/s"); err != nil || rec.jobs[2].Git.Ref != "main" {
		t.Fatalf("an unpinned fetch asks for the ref: %+v", rec.jobs[2].Git)
	}
}

func TestWorkshopItems(t *testing.T) {
	updated := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	rec := &recorder{res: fetcher.Result{Items: []fetcher.WorkshopItem{{ID: "3001", Title: "Dark Carnival Remix", Size: 70000, TimeUpdated: updated}, {ID: "3002"}}}}
	w := Materializers(Config{Fetcher: rec, SteamAPIURL: "http://127.0.0.1:8099", Download: fetcher.Limits{FileRoots: []string{"/srv"}}})[v1.SourceWorkshop]
	ov := overlay(v1.OverlaySource{Workshop: &v1.WorkshopSource{Items: []string{"3001"}, Collections: []string{"121115793"}, CheckInterval: "5m"}})
	f, err := w.Materialize(context.Background(), ov, agent.Fetched{}, "/s")
	j := rec.jobs[0].Workshop
	if err != nil || j.Into != "left4dead2/addons" || j.APIURL != "http://127.0.0.1:8099" || j.ResolveOnly || j.Items[0] != "3001" || j.Collections[0] != "121115793" {
		t.Fatalf("workshop job %+v, %v", j, err)
	}
	if len(j.Download.FileRoots) != 0 {
		t.Errorf("a workshop job carries the file roots: %+v", j.Download)
	}
	if len(f.Items) != 2 || f.Items[0].Title != "Dark Carnival Remix" || !f.Items[0].TimeUpdated.Time.Equal(updated) || f.Items[0].TimeUpdated.Location() != time.UTC || f.Items[1].TimeUpdated != nil {
		t.Fatalf("items %+v", f.Items)
	}
	c := w.(agent.Checker)
	if d := c.CheckInterval(ov); d != 5*time.Minute {
		t.Errorf("interval %v", d)
	}
	if _, err := c.Check(context.Background(), ov, "/s"); err != nil || !rec.jobs[1].Workshop.ResolveOnly {
		t.Fatalf("a check downloads: %+v %v", rec.jobs[1].Workshop, err)
	}
	if f.Fingerprint() == "" {
		t.Error("items give no fingerprint")
	}
}
