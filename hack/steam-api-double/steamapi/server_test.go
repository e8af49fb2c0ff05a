package steamapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves s on a real loopback listener until the test ends.
func start(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs
}

func post(t *testing.T, base, method string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.PostForm(base+"/ISteamRemoteStorage/"+method+"/v1/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func ids(field string, list ...string) url.Values {
	v := url.Values{field: {fmt.Sprint(len(list))}}
	for i, id := range list {
		v.Set(fmt.Sprintf("publishedfileids[%d]", i), id)
	}
	return v
}

func get(t *testing.T, u string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// The answer has Steam's fields, in Steam's types (file_size, ids and
// hcontent_file as strings; banned a number), and a missing item has only
// publishedfileid and result 9; the file_url serves the content.
func TestDetailsAnswerAsSteam(t *testing.T) {
	s := New(Catalog{Items: []Item{
		{ID: "121115793", Title: "Dark Carnival Remix", TimeUpdated: 1700000000, Tags: []string{"Campaigns"}, Content: VPK("a", 300)},
		{ID: "5", Missing: true},
	}})
	hs := start(t, s)
	resp, b := post(t, hs.URL, MethodDetails, ids("itemcount", "121115793", "5", "6"))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	var got struct {
		Response struct {
			Result      int                          `json:"result"`
			ResultCount int                          `json:"resultcount"`
			Details     []map[string]json.RawMessage `json:"publishedfiledetails"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	r := got.Response
	if r.Result != 1 || r.ResultCount != 3 || len(r.Details) != 3 {
		t.Fatalf("result %d resultcount %d entries %d", r.Result, r.ResultCount, len(r.Details))
	}
	want := []string{"publishedfileid", "result", "creator", "creator_app_id", "consumer_app_id", "filename", "file_size",
		"file_url", "hcontent_file", "preview_url", "hcontent_preview", "title", "description", "time_created", "time_updated",
		"visibility", "banned", "ban_reason", "subscriptions", "favorited", "lifetime_subscriptions", "lifetime_favorited", "views", "tags"}
	item := r.Details[0]
	for _, k := range want {
		if _, ok := item[k]; !ok {
			t.Errorf("entry lacks %s", k)
		}
	}
	for k, v := range map[string]string{
		"publishedfileid": `"121115793"`, "result": "1", "consumer_app_id": "550", "creator_app_id": "550",
		"file_size": `"300"`, "filename": `"121115793.vpk"`, "title": `"Dark Carnival Remix"`,
		"time_updated": "1700000000", "time_created": "1699913600", "banned": "0", "tags": `[{"tag":"Campaigns"}]`,
	} {
		if string(item[k]) != v {
			t.Errorf("%s = %s, want %s", k, item[k], v)
		}
	}
	if !bytes.HasPrefix(item["hcontent_file"], []byte(`"`)) {
		t.Errorf("hcontent_file is not a string: %s", item["hcontent_file"])
	}
	for i, id := range []string{"5", "6"} {
		m := r.Details[i+1]
		if len(m) != 2 || string(m["publishedfileid"]) != `"`+id+`"` || string(m["result"]) != "9" {
			t.Errorf("missing item %s: %v", id, m)
		}
	}
	var fileURL string
	json.Unmarshal(item["file_url"], &fileURL)
	if !strings.HasPrefix(fileURL, hs.URL+"/ugc/") || !strings.HasSuffix(fileURL, "/") {
		t.Fatalf("file_url %q", fileURL)
	}
	_, body, err := get(t, fileURL)
	if err != nil || !bytes.Equal(body, VPK("a", 300)) {
		t.Fatalf("file: %v, %d bytes", err, len(body))
	}
	if s.Downloads("121115793") != 1 || s.Requests(MethodDetails) != 1 {
		t.Fatalf("counts: %+v", s.Stats())
	}
}

func TestCollectionAnswerAsSteam(t *testing.T) {
	s := New(Catalog{
		Items: []Item{{ID: "1"}, {ID: "2"}},
		Collections: []Collection{
			{ID: "100", Children: []Child{{ID: "2"}, {ID: "1"}, {ID: "101", FileType: FileTypeCollection}}},
			{ID: "101", Children: []Child{{ID: "1"}}},
			{ID: "102", Missing: true},
		},
	})
	hs := start(t, s)
	_, b := post(t, hs.URL, MethodCollection, ids("collectioncount", "100", "102"))
	want := `{"response":{"result":1,"resultcount":1,"collectiondetails":[` +
		`{"publishedfileid":"100","result":1,"children":[{"publishedfileid":"2","sortorder":0,"filetype":0},` +
		`{"publishedfileid":"1","sortorder":1,"filetype":0},{"publishedfileid":"101","sortorder":2,"filetype":2}]},` +
		`{"publishedfileid":"102","result":9}]}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	// A collection asked about as an item has details but no file.
	_, b = post(t, hs.URL, MethodDetails, ids("itemcount", "100"))
	if !strings.Contains(string(b), `"file_url":""`) || !strings.Contains(string(b), `"result":1`) {
		t.Fatalf("collection as an item: %s", b)
	}
}

// Steam's front end: 405 for anything but POST, 404 naming an unknown
// interface or method, 400 naming a missing parameter.
func TestSteamErrors(t *testing.T) {
	s := New(Catalog{})
	hs := start(t, s)
	resp, b, _ := get(t, hs.URL+"/ISteamRemoteStorage/GetPublishedFileDetails/v1/?itemcount=1&publishedfileids[0]=1")
	if resp.StatusCode != 405 || string(b) != "<html><head><title>Method Not Allowed</title></head><body><h1>Method Not Allowed</h1>This API must be called with a HTTP POST request</body></html>" {
		t.Errorf("GET: %s %s", resp.Status, b)
	}
	resp, b = post(t, hs.URL, "GetUGCFileDetails", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(b), "Method 'GetUGCFileDetails' not found in interface 'ISteamRemoteStorage'") {
		t.Errorf("unknown method: %s %s", resp.Status, b)
	}
	resp, b, _ = get(t, hs.URL+"/ISteamUser/GetPlayerSummaries/v1/")
	if resp.StatusCode != 404 || !strings.Contains(string(b), "Interface 'ISteamUser' not found") {
		t.Errorf("unknown interface: %s %s", resp.Status, b)
	}
	resp, b = post(t, hs.URL, MethodDetails, url.Values{"publishedfileids[0]": {"1"}})
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Required parameter 'itemcount' is missing") {
		t.Errorf("no itemcount: %s %s", resp.Status, b)
	}
	resp, b = post(t, hs.URL, MethodCollection, url.Values{"collectioncount": {"2"}, "publishedfileids[0]": {"1"}})
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Required parameter 'publishedfileids[1]' is missing") {
		t.Errorf("short list: %s %s", resp.Status, b)
	}
	if got := s.Requests(MethodDetails); got != 2 {
		t.Errorf("details requests %d, want 2 (the 405 counts)", got)
	}
}

func TestFaults(t *testing.T) {
	content := VPK("x", 5000)
	s := New(Catalog{Items: []Item{{ID: "7", Content: content}}})
	hs := start(t, s)
	s.FailAPI(MethodDetails, Fault{Status: 429, RetryAfter: "3", Times: 1})
	resp, _ := post(t, hs.URL, MethodDetails, ids("itemcount", "7"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("first: %s %v", resp.Status, resp.Header)
	}
	resp, b := post(t, hs.URL, MethodDetails, ids("itemcount", "7"))
	if resp.StatusCode != 200 {
		t.Fatalf("second: %s", resp.Status)
	}
	var d struct {
		Response struct {
			Details []struct {
				FileURL string `json:"file_url"`
			} `json:"publishedfiledetails"`
		} `json:"response"`
	}
	json.Unmarshal(b, &d)
	u := d.Response.Details[0].FileURL

	s.FailFile("7", Fault{TruncateAt: 1000, Times: 1}, Fault{Status: 503, Times: 1}, Fault{Trickle: Duration(time.Millisecond), TrickleBytes: 1000, Times: 1})
	resp, body, err := get(t, u)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 1000 || resp.ContentLength != 5000 {
		t.Fatalf("truncated: %v, %d of %d bytes", err, len(body), resp.ContentLength)
	}
	if resp, _, _ := get(t, u); resp.StatusCode != 503 {
		t.Fatalf("503 fault: %s", resp.Status)
	}
	if _, body, err := get(t, u); err != nil || !bytes.Equal(body, content) {
		t.Fatalf("trickled: %v, %d bytes", err, len(body))
	}
	if _, body, err := get(t, u); err != nil || !bytes.Equal(body, content) {
		t.Fatalf("after the faults: %v, %d bytes", err, len(body))
	}
	if s.Downloads("7") != 4 {
		t.Fatalf("downloads %d", s.Downloads("7"))
	}
}

// A trickling answer ends when its client goes away, so closing the
// server does not wait for it (goleak checks).
func TestTrickleStopsWithClient(t *testing.T) {
	s := New(Catalog{Items: []Item{{ID: "7", Size: 100000, Faults: []Fault{{Trickle: Duration(time.Hour)}}}}})
	hs := start(t, s)
	resp, b := post(t, hs.URL, MethodDetails, ids("itemcount", "7"))
	var d struct {
		Response struct {
			Details []struct {
				FileURL string `json:"file_url"`
			} `json:"publishedfiledetails"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp.Status, err)
	}
	r, err := http.Get(d.Response.Details[0].FileURL)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(r.Body, one); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
}

// New content means a new file_url, and the old one is gone.
func TestUpdateChangesURL(t *testing.T) {
	s := New(Catalog{Items: []Item{{ID: "7", TimeUpdated: 1}}})
	hs := start(t, s)
	url1 := fileURL(t, hs.URL, "7")
	s.SetCatalog(Catalog{Items: []Item{{ID: "7", TimeUpdated: 2}}})
	url2 := fileURL(t, hs.URL, "7")
	if url1 == url2 {
		t.Fatal("same file_url after an update")
	}
	if resp, _, _ := get(t, url1); resp.StatusCode != 404 {
		t.Fatalf("old URL: %s", resp.Status)
	}
	if resp, b, _ := get(t, url2); resp.StatusCode != 200 || !bytes.Equal(b, VPK("7@2", 1024)) {
		t.Fatalf("new URL: %s", resp.Status)
	}
	resp, b, _ := get(t, hs.URL+StatsPath)
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil || resp.StatusCode != 200 || st.Requests[MethodDetails] != 2 || st.Downloads["7"] != 1 {
		t.Fatalf("stats: %s %s", resp.Status, b)
	}
}

func fileURL(t *testing.T, base, id string) string {
	t.Helper()
	_, b := post(t, base, MethodDetails, ids("itemcount", id))
	var d struct {
		Response struct {
			Details []struct {
				FileURL string `json:"file_url"`
			} `json:"publishedfiledetails"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &d); err != nil || len(d.Response.Details) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	return d.Response.Details[0].FileURL
}

func TestLoadCatalog(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.vpk"), []byte("from a file"), 0o644)
	p := filepath.Join(dir, "catalog.json")
	os.WriteFile(p, []byte(`{
		"items": [
			{"id": "1", "title": "text", "text": "hello"},
			{"id": "2", "contentFile": "m.vpk"},
			{"id": "3", "size": 64, "timeUpdated": 9, "faults": [{"status": 502, "times": 2}, {"trickle": "1ms"}]}
		],
		"collections": [{"id": "10", "children": [{"id": "1"}, {"id": "11", "fileType": 2}]}],
		"faults": {"GetCollectionDetails": [{"delay": "5ms", "times": 1}]}
	}`), 0o644)
	c, err := LoadCatalog(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Items[0].Content) != "hello" || string(c.Items[1].Content) != "from a file" {
		t.Fatalf("contents: %q %q", c.Items[0].Content, c.Items[1].Content)
	}
	if f := c.Items[2].Faults; len(f) != 2 || f[0].Status != 502 || time.Duration(f[1].Trickle) != time.Millisecond {
		t.Fatalf("faults: %+v", f)
	}
	if got := c.Items[2].withContent().Content; !bytes.Equal(got, VPK("3@9", 64)) {
		t.Fatal("size: not the VPK made from the id")
	}
	if c.Faults[MethodCollection][0].Delay != Duration(5*time.Millisecond) || c.Collections[0].Children[1].FileType != 2 {
		t.Fatalf("catalog: %+v", c)
	}
	for name, bad := range map[string]string{
		"bad id":    `{"items":[{"id":"x1"}]}`,
		"twice":     `{"items":[{"id":"1"}],"collections":[{"id":"1"}]}`,
		"duration":  `{"faults":{"GetCollectionDetails":[{"delay":5}]}}`,
		"no file":   `{"items":[{"id":"1","contentFile":"nope"}]}`,
		"not json":  `{`,
		"bad field": `{"items":[{"id":1}]}`,
	} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := LoadCatalog(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

func TestVPK(t *testing.T) {
	b := VPK("s", 40)
	if !bytes.HasPrefix(b, []byte{0x34, 0x12, 0xaa, 0x55, 1, 0, 0, 0}) || len(b) != 40 {
		t.Fatalf("% x", b)
	}
	if bytes.Equal(b, VPK("t", 40)) || !bytes.Equal(b, VPK("s", 40)) {
		t.Fatal("not one file per seed")
	}
	if got := VPK("s", 3); !slices.Equal(got, []byte{0x34, 0x12, 0xaa}) {
		t.Fatalf("short: % x", got)
	}
}
