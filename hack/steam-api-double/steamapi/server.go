package steamapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The methods the double serves, as Steam names them.
const (
	MethodDetails    = "GetPublishedFileDetails"
	MethodCollection = "GetCollectionDetails"
	iface            = "ISteamRemoteStorage"
)

// StatsPath serves Stats as JSON, for tests that run the double as its
// own process. Steam has no such path.
const StatsPath = "/_double/stats"

// Server serves a Catalog as Steam would. It is an http.Handler; the
// zero value is not usable, call New.
type Server struct {
	// PublicURL is the scheme and host the file_urls it hands out start
	// with ("http://127.0.0.1:8080"). Empty: http:// and the Host the
	// API request came to, which is right for a listener on loopback.
	PublicURL string

	mu        sync.Mutex
	items     map[string]*entry
	cols      map[string]Collection
	files     map[string]string // "<handle>/<hash>" → item id
	faults    map[string][]*faultState
	requests  map[string]int
	downloads map[string]int
}

type entry struct {
	Item
	handle, hash string
}

type faultState struct {
	Fault
	used int
}

// New returns a server holding the catalog.
func New(c Catalog) *Server {
	s := &Server{requests: map[string]int{}, downloads: map[string]int{}}
	s.SetCatalog(c)
	return s
}

// SetCatalog replaces what Steam holds, and the faults with the
// catalog's (the request counts stay). An item whose content changed gets
// a new file_url; the old one answers 404, as a stale Steam URL can.
func (s *Server) SetCatalog(c Catalog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = map[string]*entry{}
	s.files = map[string]string{}
	s.faults = map[string][]*faultState{}
	for _, it := range c.Items {
		it = it.withContent()
		e := &entry{Item: it, handle: ugcHandle(it.ID, it.Content), hash: fileHash(it.Content)}
		s.items[it.ID] = e
		s.files[e.handle+"/"+e.hash] = it.ID
		for _, f := range it.Faults {
			s.faults["file:"+it.ID] = append(s.faults["file:"+it.ID], &faultState{Fault: f})
		}
	}
	s.cols = map[string]Collection{}
	for _, col := range c.Collections {
		s.cols[col.ID] = col
	}
	for m, fs := range c.Faults {
		for _, f := range fs {
			s.faults["api:"+m] = append(s.faults["api:"+m], &faultState{Fault: f})
		}
	}
}

// FailAPI adds faults to an API method (MethodDetails, MethodCollection).
func (s *Server) FailAPI(method string, f ...Fault) { s.addFaults("api:"+method, f) }

// FailFile adds faults to downloads of an item's file.
func (s *Server) FailFile(id string, f ...Fault) { s.addFaults("file:"+id, f) }

func (s *Server) addFaults(key string, fs []Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range fs {
		s.faults[key] = append(s.faults[key], &faultState{Fault: f})
	}
}

// Stats is what the double has seen since it started.
type Stats struct {
	// Requests per API method, whatever their answer.
	Requests map[string]int `json:"requests"`
	// Downloads per item id: GET requests for its file, whole or not.
	Downloads map[string]int `json:"downloads"`
}

// Stats returns a copy of the counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: maps.Clone(s.requests), Downloads: maps.Clone(s.downloads)}
}

// Requests is how many requests an API method has had.
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method]
}

// Downloads is how many times an item's file was requested.
func (s *Server) Downloads(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downloads[id]
}

// fault returns the fault the next request for key meets, if any, and
// counts it as used.
func (s *Server) fault(key string) *Fault {
	for _, f := range s.faults[key] {
		if f.Times == 0 || f.used < f.Times {
			f.used++
			ff := f.Fault
			return &ff
		}
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == StatsPath:
		writeJSON(w, r, s.Stats(), nil)
	case strings.HasPrefix(r.URL.Path, "/ugc/"):
		s.serveFile(w, r)
	default:
		s.serveAPI(w, r)
	}
}

// serveAPI routes /<interface>/<method>/<version>/ as Steam does: an
// unknown interface or method is a 404 naming it, a known method called
// with anything but POST a 405.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || !validVersion(parts[2]) {
		steamHTML(w, http.StatusNotFound, "")
		return
	}
	if parts[0] != iface {
		steamHTML(w, http.StatusNotFound, fmt.Sprintf("Interface '%s' not found", parts[0]))
		return
	}
	method := parts[1]
	if method != MethodDetails && method != MethodCollection {
		steamHTML(w, http.StatusNotFound, fmt.Sprintf("Method '%s' not found in interface '%s'", method, iface))
		return
	}
	s.mu.Lock()
	s.requests[method]++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		steamHTML(w, http.StatusMethodNotAllowed, "This API must be called with a HTTP POST request")
		return
	}
	s.mu.Lock()
	f := s.fault("api:" + method)
	s.mu.Unlock()
	if f != nil && f.Status != 0 {
		if !wait(r, time.Duration(f.Delay)) {
			return
		}
		steamFault(w, f)
		return
	}
	countField := "itemcount"
	if method == MethodCollection {
		countField = "collectioncount"
	}
	ids, msg := formIDs(r, countField)
	if msg != "" {
		steamHTML(w, http.StatusBadRequest, msg)
		return
	}
	var body any
	if method == MethodDetails {
		body = s.details(r, ids)
	} else {
		body = s.collections(ids)
	}
	writeJSON(w, r, body, f)
}

func validVersion(v string) bool {
	return v == "v1" || v == "v0001"
}

// formIDs reads count and publishedfileids[0..count-1] from the form (the
// body or the query, as Steam takes either). The messages are Steam's.
func formIDs(r *http.Request, countField string) ([]string, string) {
	if err := r.ParseForm(); err != nil {
		return nil, "Unable to parse the request body"
	}
	cs := r.Form.Get(countField)
	if cs == "" {
		return nil, fmt.Sprintf("Required parameter '%s' is missing", countField)
	}
	n, err := strconv.ParseUint(cs, 10, 32)
	if err != nil {
		return nil, fmt.Sprintf("Parameter '%s' is invalid", countField)
	}
	ids := make([]string, 0, n)
	for i := range int(n) {
		key := fmt.Sprintf("publishedfileids[%d]", i)
		id := r.Form.Get(key)
		if id == "" {
			return nil, fmt.Sprintf("Required parameter '%s' is missing", key)
		}
		ids = append(ids, id)
	}
	return ids, ""
}

// detailsResponse is GetPublishedFileDetails' answer. resultcount is the
// number of entries; every id asked gets one, in the order asked.
type detailsResponse struct {
	Response struct {
		Result      int   `json:"result"`
		ResultCount int   `json:"resultcount"`
		Details     []any `json:"publishedfiledetails"`
	} `json:"response"`
}

// missing is the whole entry Steam gives for an id it will not show.
type missing struct {
	ID     string `json:"publishedfileid"`
	Result int    `json:"result"`
}

// details is one item's entry, fields in Steam's order and of Steam's
// types: ids, file_size and hcontent_file as strings, banned as 0 or 1.
type details struct {
	ID            string `json:"publishedfileid"`
	Result        int    `json:"result"`
	Creator       string `json:"creator"`
	CreatorAppID  uint32 `json:"creator_app_id"`
	ConsumerAppID uint32 `json:"consumer_app_id"`
	Filename      string `json:"filename"`
	FileSize      string `json:"file_size"`
	FileURL       string `json:"file_url"`
	HContentFile  string `json:"hcontent_file"`
	PreviewURL    string `json:"preview_url"`
	HContentPrev  string `json:"hcontent_preview"`
	Title         string `json:"title"`
	Description   string `json:"description"`
	TimeCreated   int64  `json:"time_created"`
	TimeUpdated   int64  `json:"time_updated"`
	Visibility    int    `json:"visibility"`
	Banned        int    `json:"banned"`
	BanReason     string `json:"ban_reason"`
	Subscriptions int    `json:"subscriptions"`
	Favorited     int    `json:"favorited"`
	LifetimeSubs  int    `json:"lifetime_subscriptions"`
	LifetimeFavs  int    `json:"lifetime_favorited"`
	Views         int    `json:"views"`
	Tags          []tag  `json:"tags"`
}

type tag struct {
	Tag string `json:"tag"`
}

// Steam's EResult values the double answers with.
const (
	resultOK       = 1
	resultNotFound = 9
)

const defaultCreator = "76561197960287930"

func (s *Server) details(r *http.Request, ids []string) detailsResponse {
	var resp detailsResponse
	resp.Response.Result = resultOK
	base := s.PublicURL
	if base == "" {
		base = "http://" + r.Host
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if e, ok := s.items[id]; ok && !e.Missing {
			resp.Response.Details = append(resp.Response.Details, e.details(base))
			continue
		}
		if col, ok := s.cols[id]; ok && !col.Missing {
			// A collection is a published file too: result 1, no file.
			resp.Response.Details = append(resp.Response.Details, details{
				ID: id, Result: resultOK, Creator: defaultCreator, CreatorAppID: AppL4D2, ConsumerAppID: AppL4D2,
				FileSize: "0", HContentFile: "0", HContentPrev: "0", Title: col.Title, Tags: []tag{},
			})
			continue
		}
		resp.Response.Details = append(resp.Response.Details, missing{ID: id, Result: resultNotFound})
	}
	resp.Response.ResultCount = len(resp.Response.Details)
	return resp
}

func (e *entry) details(base string) details {
	d := details{
		ID: e.ID, Result: resultOK, Creator: e.Creator, CreatorAppID: e.CreatorApp, ConsumerAppID: e.AppID,
		Filename: e.Filename, FileSize: strconv.Itoa(len(e.Content)), HContentFile: e.handle,
		PreviewURL: base + "/ugc/0/PREVIEW/", HContentPrev: "0",
		Title: e.Title, Description: e.Description, TimeCreated: e.TimeCreated, TimeUpdated: e.TimeUpdated,
		Visibility: e.Visibility, BanReason: e.BanReason, Subscriptions: 1, LifetimeSubs: 1, Views: 1, Tags: []tag{},
	}
	if d.Creator == "" {
		d.Creator = defaultCreator
	}
	if d.ConsumerAppID == 0 {
		d.ConsumerAppID = AppL4D2
	}
	if d.CreatorAppID == 0 {
		d.CreatorAppID = d.ConsumerAppID
	}
	if d.Filename == "" {
		d.Filename = e.ID + ".vpk"
	}
	if d.TimeCreated == 0 && d.TimeUpdated > 0 {
		d.TimeCreated = d.TimeUpdated - 86400
	}
	if e.FileSize != nil {
		d.FileSize = strconv.FormatInt(*e.FileSize, 10)
	}
	if !e.NoFileURL {
		d.FileURL = base + "/ugc/" + e.handle + "/" + e.hash + "/"
	}
	if e.Banned {
		d.Banned = 1
	}
	for _, t := range e.Tags {
		d.Tags = append(d.Tags, tag{Tag: t})
	}
	return d
}

// collectionResponse is GetCollectionDetails' answer. Unlike the details
// call, resultcount counts only the collections found (Steam answers
// resultcount 0 for a lone private collection).
type collectionResponse struct {
	Response struct {
		Result      int   `json:"result"`
		ResultCount int   `json:"resultcount"`
		Details     []any `json:"collectiondetails"`
	} `json:"response"`
}

type collectionJSON struct {
	ID       string      `json:"publishedfileid"`
	Result   int         `json:"result"`
	Children []childJSON `json:"children"`
}

type childJSON struct {
	ID        string `json:"publishedfileid"`
	SortOrder int    `json:"sortorder"`
	FileType  int    `json:"filetype"`
}

func (s *Server) collections(ids []string) collectionResponse {
	var resp collectionResponse
	resp.Response.Result = resultOK
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		col, ok := s.cols[id]
		if !ok || col.Missing {
			resp.Response.Details = append(resp.Response.Details, missing{ID: id, Result: resultNotFound})
			continue
		}
		c := collectionJSON{ID: id, Result: resultOK, Children: []childJSON{}}
		for i, ch := range col.Children {
			c.Children = append(c.Children, childJSON{ID: ch.ID, SortOrder: i, FileType: ch.FileType})
		}
		resp.Response.Details = append(resp.Response.Details, c)
		resp.Response.ResultCount++
	}
	return resp
}

// serveFile serves /ugc/<handle>/<hash>/, the file_urls handed out.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	key := strings.Trim(strings.TrimPrefix(r.URL.Path, "/ugc/"), "/")
	s.mu.Lock()
	id, ok := s.files[key]
	var e *entry
	var f *Fault
	if ok {
		e = s.items[id]
		if r.Method == http.MethodGet {
			s.downloads[id]++
		}
		f = s.fault("file:" + id)
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "404 Not Found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if f != nil && f.Status != 0 {
		if wait(r, time.Duration(f.Delay)) {
			steamFault(w, f)
		}
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	writeBody(w, r, e.Content, f)
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any, f *Fault) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	writeBody(w, r, b, f)
}

// writeBody sends body with Content-Length set, shaped by the fault:
// held back, trickled, lengthened, without Content-Length, or cut short
// (the connection is aborted, so the client sees fewer bytes than
// announced, or than chunked encoding's end).
func writeBody(w http.ResponseWriter, r *http.Request, body []byte, f *Fault) {
	if f == nil {
		f = &Fault{}
	}
	if !wait(r, time.Duration(f.Delay)) {
		return
	}
	if f.Extra > 0 {
		body = append(body[:len(body):len(body)], make([]byte, f.Extra)...)
	}
	if !f.Chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	send := body
	cut := f.TruncateAt > 0 && f.TruncateAt < int64(len(body))
	if cut {
		send = body[:f.TruncateAt]
	}
	if f.Trickle > 0 {
		step := max(f.TrickleBytes, 1)
		fl := http.NewResponseController(w)
		for len(send) > 0 {
			n := min(step, len(send))
			if _, err := w.Write(send[:n]); err != nil {
				return
			}
			send = send[n:]
			if fl.Flush() != nil || !wait(r, time.Duration(f.Trickle)) {
				return
			}
		}
	} else if _, err := w.Write(send); err != nil {
		return
	}
	if cut {
		http.NewResponseController(w).Flush()
		// Aborts the connection without a log line: the body ends short
		// of its Content-Length, as a dropped CDN connection does.
		panic(http.ErrAbortHandler)
	}
}

// wait sleeps d unless the client goes away first, and says whether to
// go on.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func steamFault(w http.ResponseWriter, f *Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	steamHTML(w, f.Status, "")
}

// steamHTML answers an error the way Steam's Web API front end does: a
// small HTML page titled with the status text.
func steamHTML(w http.ResponseWriter, status int, msg string) {
	text := http.StatusText(status)
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(status)
	if status == http.StatusNotFound && msg == "" {
		fmt.Fprint(w, "<html>\n<head>\n<title>404 Not Found</title>\n</head>\n<body>\n<h1>Not Found</h1>\n</body>\n</html>")
		return
	}
	fmt.Fprintf(w, "<html><head><title>%s</title></head><body><h1>%s</h1>%s</body></html>", text, text, msg)
}

// ItemIDs lists the catalog's item ids, sorted (for the command's log).
func (s *Server) ItemIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.items))
}
