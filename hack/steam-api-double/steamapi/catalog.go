// Package steamapi is the Steam Web API double's server: the two
// ISteamRemoteStorage methods left4me uses to resolve Workshop items
// (GetPublishedFileDetails and GetCollectionDetails, POST only, as Steam
// serves them) and the item files at the file_url it hands out, all on
// one listener, so a test's downloads stay on loopback.
//
// What "Steam" holds is a Catalog, given from Go (in-process tests) or
// read from a JSON file (the command in the directory above). Faults
// make it fail the ways Steam and its CDN do: a 5xx, a 429 with
// Retry-After, a slow or trickling body, a download cut short. It counts
// the requests per method and the downloads per item, so tests can assert
// that something was downloaded once.
package steamapi

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AppL4D2 is the app id Left 4 Dead 2 and its Workshop are published under.
const AppL4D2 = 550

// Catalog is what the double's Steam holds.
type Catalog struct {
	Items       []Item       `json:"items"`
	Collections []Collection `json:"collections"`
	// Faults on the API methods, keyed by method name
	// ("GetPublishedFileDetails", "GetCollectionDetails").
	Faults map[string][]Fault `json:"faults,omitempty"`
}

// Item is one Workshop item. Zero fields take Steam-like defaults (see
// details): consumer and creator app 550, filename "<id>.vpk", a creator
// SteamID, time_created one day before time_updated.
type Item struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Filename    string   `json:"filename,omitempty"`
	Creator     string   `json:"creator,omitempty"`
	AppID       uint32   `json:"consumerAppID,omitempty"`
	CreatorApp  uint32   `json:"creatorAppID,omitempty"`
	TimeCreated int64    `json:"timeCreated,omitempty"`
	TimeUpdated int64    `json:"timeUpdated,omitempty"`
	Visibility  int      `json:"visibility,omitempty"`
	Banned      bool     `json:"banned,omitempty"`
	BanReason   string   `json:"banReason,omitempty"`
	Tags        []string `json:"tags,omitempty"`

	// Content is the file's bytes. From JSON it comes from Text, from
	// ContentFile (relative to the catalog file), or is made by VPK from
	// the id and Size; with none of them it is a 1 KiB VPK.
	Content     []byte `json:"-"`
	Text        string `json:"text,omitempty"`
	ContentFile string `json:"contentFile,omitempty"`
	Size        int    `json:"size,omitempty"`

	// FileSize, when set, is the file_size declared instead of
	// len(Content): a lie the client must catch while downloading.
	FileSize *int64 `json:"fileSize,omitempty"`
	// Missing answers result 9 with no other fields, as Steam does for
	// an id that is private, friends-only, removed or was never used.
	Missing bool `json:"missing,omitempty"`
	// NoFileURL answers result 1 with an empty file_url, as Steam does
	// for an item whose content is on SteamPipe rather than in UGC.
	NoFileURL bool `json:"noFileURL,omitempty"`
	// Faults on downloads of this item's file.
	Faults []Fault `json:"faults,omitempty"`
}

// Collection is one Workshop collection: its children in sort order.
type Collection struct {
	ID       string  `json:"id"`
	Title    string  `json:"title,omitempty"`
	Children []Child `json:"children"`
	// Missing answers result 9, as Steam does for a private collection
	// or an id that is not a collection.
	Missing bool `json:"missing,omitempty"`
}

// Child is an entry in a collection. FileType is Steam's
// EWorkshopFileType: 0 an item, 2 a (linked) collection.
type Child struct {
	ID       string `json:"id"`
	FileType int    `json:"fileType,omitempty"`
}

// File types GetCollectionDetails reports.
const (
	FileTypeItem       = 0
	FileTypeCollection = 2
)

// Fault is one way a request goes wrong. It applies to the next Times
// requests of its method or file (every one when Times is 0); the first
// fault in a list that still applies wins.
type Fault struct {
	// Status answers this HTTP status with an HTML body like Steam's
	// front end (e.g. 429, 500, 502, 503) instead of the real answer.
	Status int `json:"status,omitempty"`
	// RetryAfter is the Retry-After header sent with Status.
	RetryAfter string `json:"retryAfter,omitempty"`
	// Delay holds the response headers back this long.
	Delay Duration `json:"delay,omitempty"`
	// Trickle sends the body TrickleBytes (default 1) at a time, this
	// long apart.
	Trickle      Duration `json:"trickle,omitempty"`
	TrickleBytes int      `json:"trickleBytes,omitempty"`
	// TruncateAt cuts the connection after this many body bytes, with
	// the full Content-Length announced (0: not cut).
	TruncateAt int64 `json:"truncateAt,omitempty"`
	// Chunked leaves Content-Length out (chunked encoding), as some CDN
	// answers do, so only the bytes themselves tell a short or long file.
	Chunked bool `json:"chunked,omitempty"`
	// Extra appends this many bytes to the body (with Chunked, a file
	// longer than its file_size that no header gives away).
	Extra int `json:"extra,omitempty"`
	Times int `json:"times,omitempty"`
}

// Duration is a time.Duration written in JSON as Go writes it ("50ms").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"50ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// VPK returns size bytes that start like a VPK version 1 file (the
// signature 0x55aa1234, version 1, an empty tree) followed by bytes drawn
// from seed, so every item's file differs and a test can rebuild it.
// Sizes under 12 give just that many bytes of the header.
func VPK(seed string, size int) []byte {
	b := make([]byte, size)
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0x55aa1234)
	binary.LittleEndian.PutUint32(hdr[4:], 1)
	n := copy(b, hdr[:])
	h := fnv.New64a()
	h.Write([]byte(seed))
	x := h.Sum64() | 1
	for i := n; i < size; i++ {
		// xorshift64: cheap, deterministic filler.
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// LoadCatalog reads a catalog from a JSON file, filling each item's
// Content as Item says (contentFile is relative to the file's directory).
func LoadCatalog(path string) (Catalog, error) {
	var c Catalog
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("catalog: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("catalog %s: %w", path, err)
	}
	for i := range c.Items {
		it := &c.Items[i]
		if it.ContentFile != "" {
			p := it.ContentFile
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			if it.Content, err = os.ReadFile(p); err != nil {
				return c, fmt.Errorf("catalog %s: items[%d] (%s) contentFile: %w", path, i, it.ID, err)
			}
		}
		*it = it.withContent()
	}
	return c, c.check()
}

// check refuses what the double cannot serve: an id that is not a decimal
// number (Steam's ids are uint64s) or is used twice.
func (c Catalog) check() error {
	seen := map[string]bool{}
	var errs []error
	for i, it := range c.Items {
		if _, err := strconv.ParseUint(it.ID, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("items[%d].id %q: not a decimal Workshop id", i, it.ID))
		}
		if seen[it.ID] {
			errs = append(errs, fmt.Errorf("items[%d].id %q: used twice", i, it.ID))
		}
		seen[it.ID] = true
	}
	for i, col := range c.Collections {
		if _, err := strconv.ParseUint(col.ID, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("collections[%d].id %q: not a decimal Workshop id", i, col.ID))
		}
		if seen[col.ID] {
			errs = append(errs, fmt.Errorf("collections[%d].id %q: used twice", i, col.ID))
		}
		seen[col.ID] = true
	}
	return errors.Join(errs...)
}

// withContent returns the item with Content filled as Item's doc says.
func (it Item) withContent() Item {
	if it.Content != nil {
		return it
	}
	switch {
	case it.Text != "":
		it.Content = []byte(it.Text)
	default:
		size := it.Size
		if size == 0 {
			size = 1024
		}
		it.Content = VPK(it.ID+"@"+strconv.FormatInt(it.TimeUpdated, 10), size)
	}
	return it
}

// ugcHandle is the item file's hcontent_file: Steam gives each upload a
// new uint64 handle, and the file_url names it, so a changed file has a
// new URL. Here it is derived from the id and the content.
func ugcHandle(id string, content []byte) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(content)
	return strconv.FormatUint(h.Sum64()>>1, 10)
}

// fileHash is the second path element of the file_url: 40 upper-case hex
// digits, like Steam's (a SHA-1 of the content here; what Steam hashes is
// not documented).
func fileHash(content []byte) string {
	s := sha1.Sum(content)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}
