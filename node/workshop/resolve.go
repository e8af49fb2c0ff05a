package workshop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Resolve turns item and collection ids into the items to download, in
// order: the items listed, then each collection's items in the
// collection's sort order, each id once (where it first appears). It
// refuses the lot, naming every bad id (errors.Join of *Error), if any id
// is not a Workshop id, any collection is unavailable or holds no items,
// or any item is unavailable, another game's, banned, without a
// file_url, not a .vpk, or larger than MaxItemBytes.
//
// A collection's children that are collections themselves (filetype 2,
// the Workshop's "linked collections") are skipped, not followed: Steam
// subscribes to those separately too, and following them would let a
// collection anyone can edit pull in an unbounded tree. List such a
// collection under collections to include it. Each skip is logged.
//
// The caller's ctx ending returns its error (errors.Is(err,
// context.Canceled)), not an *Error.
func (c *Client) Resolve(ctx context.Context, items, collections []string) ([]Item, error) {
	if err := checkIDs(items, collections); err != nil {
		return nil, err
	}
	cols, err := c.collectionDetails(ctx, dedupe(collections))
	if err != nil {
		return nil, err
	}
	wanted, skipped, errs := expand(items, collections, cols)
	for _, s := range skipped {
		c.Log.Info("skipping a collection nested in a collection; list it under collections to include it",
			"collection", s.From, "nested", s.ID)
	}
	ids := make([]string, len(wanted))
	for i, w := range wanted {
		ids[i] = w.ID
	}
	details, err := c.fileDetails(ctx, ids)
	if err != nil {
		return nil, err
	}
	maxBytes := orDefault(c.MaxItemBytes, DefaultMaxItemBytes)
	var out []Item
	for _, w := range wanted {
		it, e := checkItem(w, details[w.ID], maxBytes)
		if e != nil {
			errs = append(errs, e)
			continue
		}
		out = append(out, it)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func checkIDs(items, collections []string) error {
	var errs []error
	for _, id := range items {
		if err := ValidID(id); err != nil {
			errs = append(errs, &Error{Reason: InvalidID, ID: id, Message: err.Error()})
		}
	}
	for _, id := range collections {
		if err := ValidID(id); err != nil {
			errs = append(errs, &Error{Reason: InvalidID, ID: id, Collection: true, Message: err.Error()})
		}
	}
	return errors.Join(errs...)
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// wanted is an item id to look up, and the collection that listed it.
type wanted struct {
	ID, From string
}

// expand is Resolve's plan, pure: the items in order and deduplicated,
// the nested collections skipped (ID the nested one, From its parent),
// and the collections refused. cols holds GetCollectionDetails' entry
// per collection id; an id without one was not in Steam's answer.
func expand(items, collections []string, cols map[string]*collectionEntry) ([]wanted, []wanted, []error) {
	var out, skipped []wanted
	var errs []error
	seen := map[string]bool{}
	add := func(id, from string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, wanted{ID: id, From: from})
		}
	}
	for _, id := range items {
		add(id, "")
	}
	done := map[string]bool{}
	for _, col := range collections {
		if done[col] {
			continue
		}
		done[col] = true
		e := cols[col]
		switch {
		case e == nil:
			errs = append(errs, &Error{Reason: BadResponse, ID: col, Collection: true,
				Message: "Steam's GetCollectionDetails answer has no entry for it"})
			continue
		case e.Result != 1:
			errs = append(errs, &Error{Reason: ItemUnavailable, ID: col, Collection: true,
				Message: fmt.Sprintf("Steam answers result %d: a private or removed collection, or an id that is not a collection (list items under items)", e.Result)})
			continue
		}
		children := slices.Clone(e.Children)
		slices.SortStableFunc(children, func(a, b collectionChild) int { return a.SortOrder - b.SortOrder })
		n := 0
		for _, ch := range children {
			id := string(ch.ID)
			if err := ValidID(id); err != nil {
				errs = append(errs, &Error{Reason: BadResponse, ID: col, Collection: true,
					Message: fmt.Sprintf("Steam lists a child %q: %v", id, err)})
				continue
			}
			if ch.FileType == fileTypeCollection {
				skipped = append(skipped, wanted{ID: id, From: col})
				continue
			}
			n++
			add(id, col)
		}
		if n == 0 {
			msg := "holds no items"
			if len(children) > 0 {
				msg = "holds only collections, which are not followed (list them under collections)"
			}
			errs = append(errs, &Error{Reason: EmptyCollection, ID: col, Collection: true, Message: msg})
		}
	}
	return out, skipped, errs
}

// fileTypeCollection is EWorkshopFileType's k_EWorkshopFileTypeCollection,
// GetCollectionDetails' filetype for a child that is a collection.
const fileTypeCollection = 2

// checkItem is Resolve's verdict on one item, pure: d is its
// GetPublishedFileDetails entry (nil if Steam's answer had none).
func checkItem(w wanted, d *fileDetails, maxBytes int64) (Item, *Error) {
	it := Item{ID: w.ID, From: w.From}
	if d == nil {
		return it, itemError(it, BadResponse, "Steam's GetPublishedFileDetails answer has no entry for it", nil)
	}
	if d.Result != 1 {
		return it, itemError(it, ItemUnavailable,
			fmt.Sprintf("Steam answers result %d: private, friends-only, removed, or no such item", d.Result), nil)
	}
	it.Title, it.Filename, it.FileURL, it.Size = d.Title, d.Filename, d.FileURL, int64(d.FileSize)
	it.TimeUpdated = time.Unix(int64(d.TimeUpdated), 0).UTC()
	switch {
	case d.ConsumerAppID != AppL4D2:
		return it, itemError(it, WrongGame,
			fmt.Sprintf("it is for app %d, not Left 4 Dead 2 (%d)", int64(d.ConsumerAppID), AppL4D2), nil)
	case bool(d.Banned):
		msg := "banned on the Workshop"
		if d.BanReason != "" {
			msg += ": " + d.BanReason
		}
		return it, itemError(it, Banned, msg, nil)
	case d.FileURL == "":
		return it, itemError(it, NoFileURL,
			"Steam gives no file_url: a private or removed item, a collection (list it under collections), or content the Web API cannot download", nil)
	}
	if u, err := url.Parse(d.FileURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return it, itemError(it, BadResponse, fmt.Sprintf("file_url %q is not an http(s) URL", d.FileURL), nil)
	}
	name := path.Base(strings.ReplaceAll(d.Filename, `\`, "/"))
	switch {
	case !strings.EqualFold(path.Ext(name), ".vpk"):
		return it, itemError(it, NotVPK, fmt.Sprintf("filename %q is not a .vpk: only VPK addons can be loaded", d.Filename), nil)
	case d.FileSize <= 0:
		return it, itemError(it, BadResponse, fmt.Sprintf("file_size is %d", int64(d.FileSize)), nil)
	case int64(d.FileSize) > maxBytes:
		return it, itemError(it, TooLarge, fmt.Sprintf("file_size %s is over the limit of %s", bytesText(int64(d.FileSize)), bytesText(maxBytes)), nil)
	}
	return it, nil
}

// bytesText writes n in the largest binary unit that keeps it readable.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// fileDetails is the part of a GetPublishedFileDetails entry used. Steam
// sends file_size as a string, and some tools say it has sent numbers, so
// both are read.
type fileDetails struct {
	PublishedFileID flexString `json:"publishedfileid"`
	Result          int        `json:"result"`
	ConsumerAppID   flexInt    `json:"consumer_app_id"`
	Filename        string     `json:"filename"`
	FileSize        flexInt    `json:"file_size"`
	FileURL         string     `json:"file_url"`
	Title           string     `json:"title"`
	TimeUpdated     flexInt    `json:"time_updated"`
	Banned          flexBool   `json:"banned"`
	BanReason       string     `json:"ban_reason"`
}

type collectionEntry struct {
	PublishedFileID flexString        `json:"publishedfileid"`
	Result          int               `json:"result"`
	Children        []collectionChild `json:"children"`
}

type collectionChild struct {
	ID        flexString `json:"publishedfileid"`
	SortOrder int        `json:"sortorder"`
	FileType  int        `json:"filetype"`
}

// fileDetails asks GetPublishedFileDetails about ids, BatchSize at a
// time, and returns the entries by id.
func (c *Client) fileDetails(ctx context.Context, ids []string) (map[string]*fileDetails, error) {
	out := map[string]*fileDetails{}
	for batch := range slices.Chunk(ids, orDefault(c.BatchSize, DefaultBatchSize)) {
		var resp struct {
			Response struct {
				Details []fileDetails `json:"publishedfiledetails"`
			} `json:"response"`
		}
		if err := c.call(ctx, "GetPublishedFileDetails", "itemcount", batch, &resp); err != nil {
			return nil, err
		}
		for i := range resp.Response.Details {
			d := &resp.Response.Details[i]
			out[string(d.PublishedFileID)] = d
		}
	}
	return out, nil
}

// collectionDetails asks GetCollectionDetails about ids, BatchSize at a
// time, and returns the entries by id.
func (c *Client) collectionDetails(ctx context.Context, ids []string) (map[string]*collectionEntry, error) {
	out := map[string]*collectionEntry{}
	for batch := range slices.Chunk(ids, orDefault(c.BatchSize, DefaultBatchSize)) {
		var resp struct {
			Response struct {
				Details []collectionEntry `json:"collectiondetails"`
			} `json:"response"`
		}
		if err := c.call(ctx, "GetCollectionDetails", "collectioncount", batch, &resp); err != nil {
			return nil, err
		}
		for i := range resp.Response.Details {
			d := &resp.Response.Details[i]
			out[string(d.PublishedFileID)] = d
		}
	}
	return out, nil
}

// call POSTs one ISteamRemoteStorage method with ids as
// publishedfileids[i] and countField = len(ids), as Steam requires, and
// decodes the JSON answer into out, retrying 429s, 5xx and network
// errors.
func (c *Client) call(ctx context.Context, method, countField string, ids []string, out any) error {
	form := url.Values{countField: {strconv.Itoa(len(ids))}}
	for i, id := range ids {
		form.Set(fmt.Sprintf("publishedfileids[%d]", i), id)
	}
	body := form.Encode()
	endpoint := strings.TrimSuffix(c.baseURL(), "/") + "/ISteamRemoteStorage/" + method + "/v1/"
	base := &Error{}
	if len(ids) == 1 {
		// A failed call about one id names it.
		base.ID, base.Collection = ids[0], method == "GetCollectionDetails"
	}
	timeout := orDefault(c.RequestTimeout, DefaultRequestTimeout)
	err := c.withRetries(ctx, func(ctx context.Context) attempt {
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		fail := func(reason, msg string, err error, retry bool) attempt {
			e := *base
			e.Reason, e.Message, e.Err = reason, method+msg, err
			if actx.Err() != nil && ctx.Err() == nil {
				e.Message, e.Err = fmt.Sprintf("%s: no answer within %s", method, timeout), nil
			}
			return attempt{err: &e, retry: retry}
		}
		req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return fail(BadResponse, "", err, false)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := c.http().Do(req)
		if err != nil {
			return fail(SteamUnavailable, "", err, true)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			drain(resp)
			a := statusAttempt(resp, base, BadResponse)
			a.err.Message = method + ": " + a.err.Message
			return a
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse+1))
		switch {
		case err != nil:
			return fail(SteamUnavailable, ": reading the answer", err, true)
		case len(b) > maxAPIResponse:
			return fail(BadResponse, ": answer over "+bytesText(maxAPIResponse), nil, false)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fail(BadResponse, ": answer is not the JSON expected", err, false)
		}
		return attempt{}
	})
	if ctx.Err() != nil {
		return fmt.Errorf("workshop %s: %w", method, ctx.Err())
	}
	return err
}

// drain reads a little of an answer not used, so its connection can be
// used again.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
}

// flexString reads a JSON string or number as its text.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		err := json.Unmarshal(b, &v)
		*s = flexString(v)
		return err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*s = flexString(n)
	return nil
}

// flexInt reads a JSON number or a string holding one.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*n = flexInt(v)
	return nil
}

// flexBool reads Steam's 0/1 as well as true/false.
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", "1", `"1"`:
		*v = true
	case "false", "0", `"0"`, "null":
		*v = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}
