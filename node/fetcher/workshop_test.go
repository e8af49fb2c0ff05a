package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/workshop"
)

// steam serves the catalog from the Steam Web API double on a real
// 127.0.0.1 listener (API and file_urls alike) and returns its URL.
func steam(t *testing.T, cat steamapi.Catalog) (*steamapi.Server, string) {
	t.Helper()
	s := steamapi.New(cat)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL
}

// l4dItem is an item of the double with its own VPK content.
func l4dItem(id, title string, size int, updated int64) steamapi.Item {
	return steamapi.Item{ID: id, Title: title, TimeUpdated: updated, Content: steamapi.VPK(id, size)}
}

// addonsCatalog holds four items; collection 900 lists 103, 101 (also
// listed directly) and 104.
func addonsCatalog() steamapi.Catalog {
	return steamapi.Catalog{
		Items: []steamapi.Item{
			l4dItem("101", "Dark Carnival Remix", 2048, 1_700_000_000),
			l4dItem("102", "Tank Run", 1500, 1_700_001_000),
			l4dItem("103", "Left 4 Mario", 4096, 1_700_002_000),
			l4dItem("104", "Admin System", 100, 1_700_003_000),
		},
		Collections: []steamapi.Collection{{ID: "900", Title: "Server pack", Children: []steamapi.Child{{ID: "103"}, {ID: "101"}, {ID: "104"}}}},
	}
}

// addonsItems is what Result.Items says of addonsCatalog's items for
// items 101, 102 and collection 900: Resolve's order, each id once.
var addonsItems = []WorkshopItem{
	{ID: "101", Title: "Dark Carnival Remix", Size: 2048, TimeUpdated: time.Unix(1_700_000_000, 0).UTC()},
	{ID: "102", Title: "Tank Run", Size: 1500, TimeUpdated: time.Unix(1_700_001_000, 0).UTC()},
	{ID: "103", Title: "Left 4 Mario", Size: 4096, TimeUpdated: time.Unix(1_700_002_000, 0).UTC()},
	{ID: "104", Title: "Admin System", Size: 100, TimeUpdated: time.Unix(1_700_003_000, 0).UTC()},
}

func addonsSpec(apiURL string) WorkshopSpec {
	return WorkshopSpec{Items: []string{"101", "102"}, Collections: []string{"900"}, APIURL: apiURL, Download: fast()}
}

func sameItems(got, want []WorkshopItem) bool {
	return slices.EqualFunc(got, want, func(a, b WorkshopItem) bool {
		return a.ID == b.ID && a.Title == b.Title && a.Size == b.Size && a.TimeUpdated.Equal(b.TimeUpdated)
	})
}

func TestFetchWorkshop(t *testing.T) {
	s, api := steam(t, addonsCatalog())
	staging := t.TempDir()
	res, err := FetchWorkshop(context.Background(), addonsSpec(api), staging)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(res.Items, addonsItems) {
		t.Errorf("items %+v\nwant %+v", res.Items, addonsItems)
	}
	tree := filepath.Join(staging, TreeName)
	want := []string{"left4dead2/ dir", "left4dead2/addons/ dir",
		"left4dead2/addons/101.vpk 0644", "left4dead2/addons/102.vpk 0644", "left4dead2/addons/103.vpk 0644", "left4dead2/addons/104.vpk 0644"}
	if got := listing(t, tree); !slices.Equal(got, want) {
		t.Errorf("tree:\n%v\nwant:\n%v", got, want)
	}
	for _, it := range addonsCatalog().Items {
		if got := readFile(t, filepath.Join(tree, "left4dead2/addons", it.ID+".vpk")); got != string(it.Content) {
			t.Errorf("%s.vpk: %d bytes, not the item's %d", it.ID, len(got), len(it.Content))
		}
		if n := s.Downloads(it.ID); n != 1 {
			t.Errorf("item %s downloaded %d times, want once", it.ID, n)
		}
	}
	if st := res.Stats; st.Files != 4 || st.Dirs != 2 || st.Bytes != 2048+1500+4096+100 {
		t.Errorf("stats %+v", st)
	}
	if got := names(t, staging); !slices.Equal(got, []string{TreeName}) {
		t.Errorf("staging holds %v: want only the tree", got)
	}
	// What the agent does next accepts it, within the limits it applies.
	if err := extract.Verify(tree, extract.VerifyOptions{}); err != nil {
		t.Errorf("Verify refuses the fetched tree: %v", err)
	}
}

func TestFetchWorkshopInto(t *testing.T) {
	_, api := steam(t, addonsCatalog())
	staging := t.TempDir()
	spec := WorkshopSpec{Items: []string{"104"}, Into: "left4dead2/custom/maps", APIURL: api, Download: fast()}
	res, err := FetchWorkshop(context.Background(), spec, staging)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"left4dead2/ dir", "left4dead2/custom/ dir", "left4dead2/custom/maps/ dir", "left4dead2/custom/maps/104.vpk 0644"}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, want) {
		t.Errorf("tree:\n%v\nwant:\n%v", got, want)
	}
	if res.Stats.Dirs != 3 || res.Stats.Files != 1 {
		t.Errorf("stats %+v", res.Stats)
	}
}

// The fetcher's default is the API's, without importing it.
func TestDefaultWorkshopIntoIsTheAPIs(t *testing.T) {
	if DefaultWorkshopInto != v1alpha1.DefaultWorkshopInto {
		t.Errorf("DefaultWorkshopInto %q, the API's %q", DefaultWorkshopInto, v1alpha1.DefaultWorkshopInto)
	}
}

func TestFetchWorkshopResolveOnly(t *testing.T) {
	s, api := steam(t, addonsCatalog())
	staging := t.TempDir()
	spec := addonsSpec(api)
	spec.ResolveOnly = true
	res, err := FetchWorkshop(context.Background(), spec, staging)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(res.Items, addonsItems) {
		t.Errorf("items %+v\nwant %+v", res.Items, addonsItems)
	}
	if got := names(t, staging); len(got) != 0 {
		t.Errorf("staging holds %v: ResolveOnly must write nothing", got)
	}
	if d := s.Stats().Downloads; len(d) != 0 {
		t.Errorf("downloads %v: ResolveOnly must download nothing", d)
	}
	if res.Stats != (extract.Stats{}) {
		t.Errorf("stats %+v for no tree", res.Stats)
	}
}

// refusedCatalog: 201 is another game's, 202 is private or removed and
// listed by collection 901 only; 101 is fine.
func refusedCatalog() steamapi.Catalog {
	cat := addonsCatalog()
	cs := l4dItem("201", "de_dust2", 1024, 1_700_000_000)
	cs.AppID = 730
	cat.Items = append(cat.Items, cs, steamapi.Item{ID: "202", Missing: true})
	cat.Collections = append(cat.Collections, steamapi.Collection{ID: "901", Children: []steamapi.Child{{ID: "101"}, {ID: "202"}}})
	return cat
}

func refusedSpec(api string) WorkshopSpec {
	return WorkshopSpec{Items: []string{"101", "201"}, Collections: []string{"901"}, APIURL: api, Download: fast()}
}

// workshopErrors flattens errors.Join into its *workshop.Errors.
func workshopErrors(t *testing.T, err error) []*workshop.Error {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*workshop.Error
		for _, e := range j.Unwrap() {
			out = append(out, workshopErrors(t, e)...)
		}
		return out
	}
	var e *workshop.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not a *workshop.Error", err, err)
	}
	return []*workshop.Error{e}
}

func TestFetchWorkshopRefusesItems(t *testing.T) {
	s, api := steam(t, refusedCatalog())
	staging := t.TempDir()
	_, err := FetchWorkshop(context.Background(), refusedSpec(api), staging)
	if err == nil {
		t.Fatal("no error for another game's item and a private one")
	}
	es := workshopErrors(t, err)
	if len(es) != 2 || es[0].Reason != workshop.WrongGame || es[0].ID != "201" ||
		es[1].Reason != workshop.ItemUnavailable || es[1].ID != "202" || es[1].From != "901" {
		t.Errorf("errors %v: want WrongGame for 201, ItemUnavailable for 202 from 901", err)
	}
	for _, part := range []string{"item 201", "app 730", "item 202 (in collection 901)"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	var f Failure
	if !errors.As(err, &f) || f.FailureReason() != workshop.WrongGame {
		t.Errorf("the joined error's reason is not the first's: %v", f)
	}
	if got := names(t, staging); len(got) != 0 {
		t.Errorf("staging holds %v after a refusal", got)
	}
	if d := s.Stats().Downloads; len(d) != 0 {
		t.Errorf("downloads %v: a refused source must download nothing", d)
	}
}

func TestFetchWorkshopDownloadFails(t *testing.T) {
	for _, c := range []struct {
		name   string
		fault  steamapi.Fault
		reason string
		says   string
	}{
		{"CDN 404", steamapi.Fault{Status: 404}, workshop.DownloadFailed, "404"},
		{"cut short every try", steamapi.Fault{TruncateAt: 700}, workshop.Truncated, "after 700 of 4096 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, api := steam(t, addonsCatalog())
			s.FailFile("103", c.fault)
			staging := t.TempDir()
			_, err := FetchWorkshop(context.Background(), addonsSpec(api), staging)
			es := workshopErrors(t, err)
			if len(es) != 1 || es[0].Reason != c.reason || es[0].ID != "103" || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v: want %s for item 103 saying %q", err, c.reason, c.says)
			}
			// The items before it are whole, no partial file is left, and
			// nothing after it was fetched.
			if got := names(t, filepath.Join(staging, TreeName, "left4dead2/addons")); !slices.Equal(got, []string{"101.vpk", "102.vpk"}) {
				t.Errorf("addons holds %v, want only the two items downloaded before", got)
			}
			if n := s.Downloads("104"); n != 0 {
				t.Errorf("item 104 downloaded %d times after 103 failed", n)
			}
		})
	}
}

func TestFetchWorkshopOverLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		lim  extract.Limits
		says string
	}{
		{"total bytes", extract.Limits{MaxTotalBytes: 7000}, "the 4 items total 7.6 KiB (7744 bytes), more than MaxTotalBytes (6.8 KiB (7000 bytes))"},
		{"one item's bytes", extract.Limits{MaxEntryBytes: 4000}, "workshop item 103 is 4 KiB, more than MaxEntryBytes (3.9 KiB (4000 bytes))"},
		{"entries", extract.Limits{MaxEntries: 5}, "4 items in left4dead2/addons make 6 entries, more than MaxEntries (5)"},
		{"path length", extract.Limits{MaxPathLength: 24}, "the path left4dead2/addons/101.vpk is 25 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, api := steam(t, addonsCatalog())
			spec := addonsSpec(api)
			spec.Extract = c.lim
			staging := t.TempDir()
			_, err := FetchWorkshop(context.Background(), spec, staging)
			wantReason(t, err, ArchiveTooLarge, c.says)
			if !errors.Is(err, extract.ErrLimit) {
				t.Errorf("%v is not extract.ErrLimit", err)
			}
			if d := s.Stats().Downloads; len(d) != 0 {
				t.Errorf("downloads %v: the limits are checked before any", d)
			}
			if got := names(t, staging); len(got) != 0 {
				t.Errorf("staging holds %v", got)
			}
		})
	}
}

func TestCheckWorkshopTreeAtTheLimits(t *testing.T) {
	items := []workshop.Item{{ID: "101", Size: 10}, {ID: "102", Size: 20}}
	lim := extract.Limits{MaxEntries: 4, MaxEntryBytes: 20, MaxTotalBytes: 30, MaxPathLength: len("left4dead2/addons/101.vpk")}
	if err := checkWorkshopTree(items, "left4dead2/addons", lim); err != nil {
		t.Errorf("a tree exactly at the limits refused: %v", err)
	}
}

func TestFetchWorkshopBadSpec(t *testing.T) {
	s, api := steam(t, addonsCatalog())
	for _, c := range []struct {
		name string
		edit func(*WorkshopSpec)
		says string
	}{
		{"no ids", func(w *WorkshopSpec) { w.Items, w.Collections = nil, nil }, "names no items or collections"},
		{"into absolute", func(w *WorkshopSpec) { w.Into = "/left4dead2/addons" }, "must be relative"},
		{"into ..", func(w *WorkshopSpec) { w.Into = "left4dead2/../../etc" }, "must be a clean path"},
		{"into leaves", func(w *WorkshopSpec) { w.Into = "../addons" }, `must not contain ".."`},
		{"into dot", func(w *WorkshopSpec) { w.Into = "." }, "must be a clean path"},
		{"into trailing slash", func(w *WorkshopSpec) { w.Into = "left4dead2/addons/" }, "must be a clean path"},
		{"api url scheme", func(w *WorkshopSpec) { w.APIURL = "file:///etc" }, "want an https or http URL"},
		{"api url credentials", func(w *WorkshopSpec) { w.APIURL = "https://u:p@api.steampowered.com" }, "no credentials"},
		{"negative limit", func(w *WorkshopSpec) { w.Extract.MaxEntries = -1 }, "must not be negative"},
		{"negative item size", func(w *WorkshopSpec) { w.MaxItemBytes = -1 }, "maxItemBytes -1"},
		{"file roots", func(w *WorkshopSpec) { w.Download.FileRoots = []string{"/srv"} }, "do not apply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := addonsSpec(api)
			c.edit(&spec)
			staging := t.TempDir()
			_, err := FetchWorkshop(context.Background(), spec, staging)
			wantReason(t, err, InvalidSpec, c.says)
			if got := names(t, staging); len(got) != 0 {
				t.Errorf("staging holds %v", got)
			}
		})
	}
	if n := s.Requests(steamapi.MethodDetails) + s.Requests(steamapi.MethodCollection); n != 0 {
		t.Errorf("%d requests to Steam for specs refused up front", n)
	}
}

func TestFetchWorkshopWantsAFreshStaging(t *testing.T) {
	_, api := steam(t, addonsCatalog())
	staging := t.TempDir()
	if err := os.Mkdir(filepath.Join(staging, TreeName), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := FetchWorkshop(context.Background(), addonsSpec(api), staging)
	wantReason(t, err, ExtractFailed, "want a fresh staging directory")
}

func TestFetchWorkshopCanceled(t *testing.T) {
	_, api := steam(t, addonsCatalog())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := FetchWorkshop(ctx, addonsSpec(api), t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v: want context.Canceled", err)
	}
}

// runWorkshopCommand runs the fetcher process's work (RunCommand) on a
// workshop job, and reads its result line back as the Runner does.
func runWorkshopCommand(t *testing.T, spec WorkshopSpec, staging string) (Result, *Error, error) {
	t.Helper()
	j := Job{Workshop: &spec}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	runErr := RunCommand(context.Background(), bytes.NewReader(data), staging, &out, logr.Discard())
	res, ferr, ok := parseResult(out.String(), j.what())
	if !ok {
		t.Fatalf("no result line in %q", out.String())
	}
	if (runErr == nil) != (ferr == nil) {
		t.Fatalf("RunCommand returned %v, its result line says %v", runErr, ferr)
	}
	return res, ferr, runErr
}

func TestRunCommandWorkshop(t *testing.T) {
	_, api := steam(t, addonsCatalog())
	staging := t.TempDir()
	res, _, err := runWorkshopCommand(t, addonsSpec(api), staging)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(res.Items, addonsItems) {
		t.Errorf("items read back %+v\nwant %+v", res.Items, addonsItems)
	}
	if st := res.Stats; st.Files != 4 || st.Dirs != 2 || st.Bytes != 2048+1500+4096+100 {
		t.Errorf("stats read back %+v", st)
	}
	if err := extract.Verify(filepath.Join(staging, TreeName), extract.VerifyOptions{}); err != nil {
		t.Errorf("Verify refuses the fetched tree: %v", err)
	}
}

// A joined error of several items crosses the process boundary as the
// first one's reason and a message naming every id.
func TestRunCommandWorkshopRefusal(t *testing.T) {
	_, api := steam(t, refusedCatalog())
	_, ferr, _ := runWorkshopCommand(t, refusedSpec(api), t.TempDir())
	if ferr.Reason != workshop.WrongGame {
		t.Errorf("reason %s (%v), want WrongGame", ferr.Reason, ferr)
	}
	for _, part := range []string{"item 201", "item 202 (in collection 901)", "result 9"} {
		if !strings.Contains(ferr.Message, part) {
			t.Errorf("message %q does not say %q", ferr.Message, part)
		}
	}
}

// Every reason node/workshop can give survives parseResult, which keeps
// only the reasons it knows.
func TestKnownReasonKeepsWorkshopReasons(t *testing.T) {
	for _, r := range []string{workshop.InvalidID, workshop.ItemUnavailable, workshop.WrongGame, workshop.NoFileURL,
		workshop.Banned, workshop.TooLarge, workshop.NotVPK, workshop.EmptyCollection, workshop.SizeMismatch,
		workshop.Truncated, workshop.Stalled, workshop.TimedOut, workshop.RateLimited, workshop.SteamUnavailable,
		workshop.BadResponse, workshop.DownloadFailed} {
		if got := knownReason(r); got != r {
			t.Errorf("knownReason(%s) = %s", r, got)
		}
	}
}

// Through the fetcher process proper: the Runner runs this test binary as
// the fetcher, which fetches from the double on loopback.
func TestRunnerFetchesWorkshop(t *testing.T) {
	r, _ := newRunner(t, Config{})
	s, api := steam(t, addonsCatalog())
	staging := stagingDir(t)
	res, err := r.Fetch(context.Background(), Job{Workshop: ptr(addonsSpec(api))}, staging)
	if err != nil {
		t.Fatal(err)
	}
	if !sameItems(res.Items, addonsItems) {
		t.Errorf("items %+v\nwant %+v", res.Items, addonsItems)
	}
	tree := filepath.Join(staging, TreeName)
	if err := extract.Verify(tree, extract.VerifyOptions{}); err != nil {
		t.Errorf("Verify refuses the fetched tree: %v", err)
	}
	if got := readFile(t, filepath.Join(tree, "left4dead2/addons/103.vpk")); got != string(steamapi.VPK("103", 4096)) {
		t.Errorf("103.vpk is not the item's content")
	}
	if n := s.Downloads("101"); n != 1 {
		t.Errorf("item 101 downloaded %d times", n)
	}
}

func ptr[T any](v T) *T { return &v }
