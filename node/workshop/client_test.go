package workshop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.uber.org/goleak"

	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// steam serves the catalog from the Steam double on a real 127.0.0.1
// listener, and returns a client for it with quick retries; the minimum
// progress rule is loose enough that a loaded machine does not trip it.
func steam(t *testing.T, cat steamapi.Catalog) (*steamapi.Server, *Client) {
	t.Helper()
	s := steamapi.New(cat)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, &Client{
		BaseURL: hs.URL, HTTP: hs.Client(),
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
		StallWindow: 10 * time.Second, MinBytesPerWindow: 1,
	}
}

// errorsOf flattens errors.Join into its *Errors.
func errorsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, errorsOf(t, e)...)
		}
		return out
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not an *Error", err, err)
	}
	return []*Error{e}
}

// wantError checks err is one *Error with the reason, naming the id.
func wantError(t *testing.T, err error, reason, id string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s for %s", reason, id)
	}
	es := errorsOf(t, err)
	if len(es) != 1 || es[0].Reason != reason || !strings.Contains(err.Error(), id) {
		t.Fatalf("got %v, want one %s naming %s", err, reason, id)
	}
	return es[0]
}

func addons(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "left4dead2", "addons")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// onlyFiles fails if dir holds anything but the named files (a failed
// download leaves no partial file behind).
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

var threeMaps = steamapi.Catalog{
	Items: []steamapi.Item{
		{ID: "3001", Title: "Map One", Filename: "one.vpk", TimeUpdated: 1700000001, Content: steamapi.VPK("one", 70000)},
		{ID: "3002", Title: "Map Two", Filename: "two.vpk", TimeUpdated: 1700000002, Content: steamapi.VPK("two", 1234)},
		{ID: "3003", Title: "Map Three", Filename: "three.vpk", TimeUpdated: 1700000003, Content: steamapi.VPK("three", 300000)},
	},
	Collections: []steamapi.Collection{{ID: "121115793", Title: "Three maps", Children: []steamapi.Child{{ID: "3003"}, {ID: "3001"}, {ID: "3002"}}}},
}

func TestCollectionOfThreeMaps(t *testing.T) {
	s, c := steam(t, threeMaps)
	ctx := context.Background()
	items, err := c.Resolve(ctx, nil, []string{"121115793"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, fmt.Sprintf("%s %s %s %d %d %s", it.ID, it.Title, it.Filename, it.Size, it.TimeUpdated.Unix(), it.From))
	}
	want := []string{
		"3003 Map Three three.vpk 300000 1700000003 121115793",
		"3001 Map One one.vpk 70000 1700000001 121115793",
		"3002 Map Two two.vpk 1234 1700000002 121115793",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resolved\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dir := addons(t)
	for _, it := range items {
		if err := c.Download(ctx, it, filepath.Join(dir, it.ID+".vpk")); err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range threeMaps.Items {
		b, err := os.ReadFile(filepath.Join(dir, it.ID+".vpk"))
		if err != nil || !bytes.Equal(b, it.Content) {
			t.Fatalf("%s: %v, %d bytes", it.ID, err, len(b))
		}
		if fi, _ := os.Stat(filepath.Join(dir, it.ID+".vpk")); fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s: mode %v", it.ID, fi.Mode())
		}
		if n := s.Downloads(it.ID); n != 1 {
			t.Fatalf("%s downloaded %d times", it.ID, n)
		}
	}
	onlyFiles(t, dir, "3001.vpk", "3002.vpk", "3003.vpk")
	if d, col := s.Requests(steamapi.MethodDetails), s.Requests(steamapi.MethodCollection); d != 1 || col != 1 {
		t.Fatalf("requests: %d details, %d collection", d, col)
	}
}

// A collection inside a collection is skipped; listed itself, it counts.
// Items come first, each id once, where it first appears.
func TestNestedCollections(t *testing.T) {
	cat := steamapi.Catalog{
		Items: []steamapi.Item{{ID: "1"}, {ID: "2"}, {ID: "3"}, {ID: "4"}},
		Collections: []steamapi.Collection{
			{ID: "100", Children: []steamapi.Child{{ID: "1"}, {ID: "200", FileType: steamapi.FileTypeCollection}, {ID: "2"}}},
			{ID: "200", Children: []steamapi.Child{{ID: "3"}, {ID: "2"}}},
			{ID: "300", Children: []steamapi.Child{{ID: "100", FileType: steamapi.FileTypeCollection}}},
		},
	}
	_, c := steam(t, cat)
	ids := func(items []Item) (out []string) {
		for _, it := range items {
			out = append(out, it.ID+"<"+it.From)
		}
		return out
	}
	items, err := c.Resolve(context.Background(), nil, []string{"100"})
	if err != nil || !slices.Equal(ids(items), []string{"1<100", "2<100"}) {
		t.Fatalf("one collection: %v %v", ids(items), err)
	}
	items, err = c.Resolve(context.Background(), []string{"4", "2"}, []string{"100", "200"})
	if err != nil || !slices.Equal(ids(items), []string{"4<", "2<", "1<100", "3<200"}) {
		t.Fatalf("both: %v %v", ids(items), err)
	}
	_, err = c.Resolve(context.Background(), nil, []string{"300"})
	if e := wantError(t, err, EmptyCollection, "collection 300"); !strings.Contains(e.Message, "only collections") {
		t.Fatalf("message %q", e.Message)
	}
}

// Every bad id is refused, each named, in one answer.
func TestResolveRefusals(t *testing.T) {
	big := int64(3 << 30)
	cat := steamapi.Catalog{
		Items: []steamapi.Item{
			{ID: "10", Title: "fine"},
			{ID: "11", Title: "CS map", AppID: 730},
			{ID: "12", Missing: true},
			{ID: "13", Title: "on SteamPipe", NoFileURL: true},
			{ID: "14", Title: "huge", FileSize: &big},
			{ID: "15", Title: "a zip", Filename: "map.zip"},
			{ID: "16", Title: "banned", Banned: true, BanReason: "copyright"},
		},
		Collections: []steamapi.Collection{
			{ID: "20", Children: []steamapi.Child{{ID: "10"}, {ID: "11"}}},
			{ID: "21", Missing: true},
			{ID: "22"},
		},
	}
	_, c := steam(t, cat)
	_, err := c.Resolve(context.Background(), []string{"12", "13", "14", "15", "16", "17", "22"}, []string{"20", "21", "22", "10"})
	var got []string
	for _, e := range errorsOf(t, err) {
		got = append(got, e.Reason+" "+e.ID+" "+e.From)
		if !strings.Contains(e.Error(), e.ID) {
			t.Errorf("%q does not name %s", e.Error(), e.ID)
		}
	}
	want := []string{
		"ItemUnavailable 21 ", "EmptyCollection 22 ", "ItemUnavailable 10 ", // 10 is an item, not a collection
		"ItemUnavailable 12 ", "NoFileURL 13 ", "TooLarge 14 ", "NotVPK 15 ", "Banned 16 ",
		"ItemUnavailable 17 ", // never published
		"NoFileURL 22 ",       // a collection listed as an item
		"WrongGame 11 20",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("refusals\n%s\nwant\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
	if !strings.Contains(err.Error(), `workshop item 11 "CS map" (in collection 20): it is for app 730, not Left 4 Dead 2 (550)`) {
		t.Fatalf("message: %v", err)
	}

	_, err = c.Resolve(context.Background(), []string{"0123", "x"}, []string{"-1"})
	if es := errorsOf(t, err); len(es) != 3 || es[0].Reason != InvalidID || !strings.Contains(err.Error(), `item "0123"`) ||
		!strings.Contains(err.Error(), `collection "-1"`) {
		t.Fatalf("invalid ids: %v", err)
	}
}

func TestBatches(t *testing.T) {
	var cat steamapi.Catalog
	var ids []string
	for i := range 250 {
		id := fmt.Sprint(5000 + i)
		ids = append(ids, id)
		cat.Items = append(cat.Items, steamapi.Item{ID: id, Size: 16})
	}
	s, c := steam(t, cat)
	c.BatchSize = 100
	items, err := c.Resolve(context.Background(), ids, nil)
	if err != nil || len(items) != 250 || items[249].ID != "5249" {
		t.Fatalf("%d items, %v", len(items), err)
	}
	if n := s.Requests(steamapi.MethodDetails); n != 3 {
		t.Fatalf("%d requests for 250 items in batches of 100", n)
	}
}

func TestAPIRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("5xx, then an answer", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodCollection, steamapi.Fault{Status: 502, Times: 1})
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 503, Times: 2})
		if _, err := c.Resolve(ctx, nil, []string{"121115793"}); err != nil {
			t.Fatal(err)
		}
		if d, col := s.Requests(steamapi.MethodDetails), s.Requests(steamapi.MethodCollection); d != 3 || col != 2 {
			t.Fatalf("requests: %d details, %d collection", d, col)
		}
	})
	t.Run("5xx every time", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 500})
		_, err := c.Resolve(ctx, []string{"3001"}, nil)
		if e := wantError(t, err, SteamUnavailable, "item 3001"); !strings.Contains(e.Message, "4 tries") {
			t.Fatalf("message %q", e.Message)
		}
		if n := s.Requests(steamapi.MethodDetails); n != DefaultMaxAttempts {
			t.Fatalf("%d requests", n)
		}
	})
	t.Run("429 honors Retry-After", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		if _, err := c.Resolve(ctx, []string{"3001"}, nil); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < time.Second {
			t.Fatalf("tried again after %v, Retry-After said 1s", el)
		}
		if n := s.Requests(steamapi.MethodDetails); n != 2 {
			t.Fatalf("%d requests", n)
		}
	})
	t.Run("429 asking too long a wait", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 429, RetryAfter: "3600"})
		_, err := c.Resolve(ctx, []string{"3001"}, nil)
		if e := wantError(t, err, RateLimited, "item 3001"); !strings.Contains(e.Message, "1h0m0s") {
			t.Fatalf("message %q", e.Message)
		}
		if n := s.Requests(steamapi.MethodDetails); n != 1 {
			t.Fatalf("%d requests", n)
		}
	})
	t.Run("no answer within RequestTimeout", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		c.RequestTimeout = 100 * time.Millisecond
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Delay: steamapi.Duration(time.Hour), Times: 1})
		if _, err := c.Resolve(ctx, []string{"3001"}, nil); err != nil {
			t.Fatal(err)
		}
		if n := s.Requests(steamapi.MethodDetails); n != 2 {
			t.Fatalf("%d requests", n)
		}
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Delay: steamapi.Duration(time.Hour)})
		c.MaxAttempts = 2
		_, err := c.Resolve(ctx, []string{"3001"}, nil)
		if e := wantError(t, err, SteamUnavailable, "item 3001"); e.Message != "GetPublishedFileDetails: no answer within 100ms (2 tries)" {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("4xx is final", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 403})
		_, err := c.Resolve(ctx, []string{"3001", "3002"}, nil)
		if e := wantError(t, err, BadResponse, "403"); e.ID != "" {
			t.Fatalf("a two-id call names %q", e.ID)
		}
		if n := s.Requests(steamapi.MethodDetails); n != 1 {
			t.Fatalf("%d requests", n)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		s, c := steam(t, threeMaps)
		s.FailAPI(steamapi.MethodDetails, steamapi.Fault{Status: 503})
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
		cctx, cancel := context.WithCancel(ctx)
		c.Log = cancelOnLog(cancel)
		if _, err := c.Resolve(cctx, []string{"3001"}, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDownloadFailures(t *testing.T) {
	ctx := context.Background()
	resolve := func(t *testing.T, c *Client, id string) Item {
		t.Helper()
		items, err := c.Resolve(ctx, []string{id}, nil)
		if err != nil || len(items) != 1 {
			t.Fatal(err)
		}
		return items[0]
	}
	content := steamapi.VPK("m", 50000)
	cat := func(it steamapi.Item) steamapi.Catalog {
		it.ID, it.Title = "777", "The Map"
		if it.Content == nil {
			it.Content = content
		}
		return steamapi.Catalog{Items: []steamapi.Item{it}}
	}
	for _, tc := range []struct {
		name      string
		item      steamapi.Item
		client    func(*Client)
		reason    string // "" succeeds
		downloads int
	}{
		{name: "cut once, then whole", item: steamapi.Item{Faults: []steamapi.Fault{{TruncateAt: 20000, Times: 1}}}, downloads: 2},
		{name: "cut every time", item: steamapi.Item{Faults: []steamapi.Fault{{TruncateAt: 20000}}}, reason: Truncated, downloads: 4},
		{name: "503 then 429 then whole", item: steamapi.Item{Faults: []steamapi.Fault{{Status: 503, Times: 1}, {Status: 429, RetryAfter: "0", Times: 1}}}, downloads: 3},
		{name: "more than file_size", item: steamapi.Item{FileSize: ptr(int64(40000))}, reason: SizeMismatch, downloads: 1},
		{name: "less than file_size", item: steamapi.Item{FileSize: ptr(int64(60000))}, reason: SizeMismatch, downloads: 1},
		{name: "more than file_size, unannounced", item: steamapi.Item{Faults: []steamapi.Fault{{Chunked: true, Extra: 1}}}, reason: SizeMismatch, downloads: 1},
		{name: "cut, unannounced", item: steamapi.Item{Faults: []steamapi.Fault{{Chunked: true, TruncateAt: 100}}}, reason: Truncated, downloads: 4},
		{name: "chunked, whole", item: steamapi.Item{Faults: []steamapi.Fault{{Chunked: true}}}, downloads: 1},
		{name: "not a VPK", item: steamapi.Item{Content: []byte("\x89PNG\r\n\x1a\n a preview image")}, reason: NotVPK, downloads: 1},
		{
			name:   "trickling",
			item:   steamapi.Item{Faults: []steamapi.Fault{{Trickle: steamapi.Duration(20 * time.Millisecond), TrickleBytes: 10}}},
			client: func(c *Client) { c.StallWindow, c.MinBytesPerWindow, c.MaxAttempts = 200*time.Millisecond, 4096, 2 },
			reason: Stalled, downloads: 2,
		},
		{
			name:   "headers never come",
			item:   steamapi.Item{Faults: []steamapi.Fault{{Delay: steamapi.Duration(time.Hour)}}},
			client: func(c *Client) { c.StallWindow, c.MaxAttempts = 100*time.Millisecond, 2 },
			reason: Stalled, downloads: 2,
		},
		{
			name:   "slow but moving, past DownloadTimeout",
			item:   steamapi.Item{Faults: []steamapi.Fault{{Trickle: steamapi.Duration(10 * time.Millisecond), TrickleBytes: 100}}},
			client: func(c *Client) { c.DownloadTimeout = 300 * time.Millisecond },
			reason: TimedOut, downloads: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := steam(t, cat(tc.item))
			if tc.client != nil {
				tc.client(c)
			}
			it := resolve(t, c, "777")
			dir := addons(t)
			err := c.Download(ctx, it, filepath.Join(dir, "777.vpk"))
			if n := s.Downloads("777"); n != tc.downloads {
				t.Errorf("downloaded %d times, want %d", n, tc.downloads)
			}
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "777.vpk")); !bytes.Equal(b, content) {
					t.Fatalf("%d bytes, not the file", len(b))
				}
				onlyFiles(t, dir, "777.vpk")
				return
			}
			if e := wantError(t, err, tc.reason, "item 777"); !strings.Contains(err.Error(), `"The Map"`) {
				t.Fatalf("%v does not name the title", e)
			}
			onlyFiles(t, dir)
		})
	}

	t.Run("stale file_url", func(t *testing.T) {
		s, c := steam(t, cat(steamapi.Item{TimeUpdated: 1}))
		it := resolve(t, c, "777")
		s.SetCatalog(cat(steamapi.Item{TimeUpdated: 2, Content: steamapi.VPK("new", 100)}))
		err := c.Download(ctx, it, filepath.Join(addons(t), "777.vpk"))
		if e := wantError(t, err, DownloadFailed, "item 777"); !strings.Contains(e.Message, "404") {
			t.Fatalf("message %q", e.Message)
		}
	})
	t.Run("an existing file stays until the new one is whole", func(t *testing.T) {
		_, c := steam(t, cat(steamapi.Item{Faults: []steamapi.Fault{{TruncateAt: 10}}}))
		c.MaxAttempts = 1
		dst := filepath.Join(addons(t), "777.vpk")
		os.WriteFile(dst, []byte("old"), 0o644)
		wantError(t, c.Download(ctx, resolve(t, c, "777"), dst), Truncated, "item 777")
		if b, _ := os.ReadFile(dst); string(b) != "old" {
			t.Fatalf("dst now %q", b)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		_, c := steam(t, cat(steamapi.Item{Faults: []steamapi.Fault{{Status: 503}}}))
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
		cctx, cancel := context.WithCancel(ctx)
		c.Log = cancelOnLog(cancel)
		dir := addons(t)
		if err := c.Download(cctx, resolve(t, c, "777"), filepath.Join(dir, "777.vpk")); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		onlyFiles(t, dir)
	})
}

func ptr[T any](v T) *T { return &v }

// cancelOnLog is a logger that cancels when a line is logged: the client
// logs before it waits to try again, so the test cancels during that wait.
func cancelOnLog(cancel context.CancelFunc) logr.Logger {
	return funcr.New(func(prefix, args string) { cancel() }, funcr.Options{})
}
