package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"
)

// KeepPerOverlay is how many of an Overlay's newest entries stay in the
// store whether or not a game stacks them: the one it resolves to now and
// the previous one, so rolling an Overlay back (its spec edited back, a
// previous sha256 or ref restored) needs no fetch.
const KeepPerOverlay = 2

// GC is which entries to remove: every one that no Instance on the node
// stacks (inUse: what their records and mount units name) and that is not
// among the KeepPerOverlay newest of an Overlay an Instance here uses
// (overlays: "namespace/name" → its entries, newest first). Entries are
// returned by name. Pure: the agent removes what it returns.
func GC(entries []Key, inUse map[Key]bool, overlays map[string][]Key) []Key {
	keep := map[Key]bool{}
	for k, used := range inUse {
		if used {
			keep[k] = true
		}
	}
	for _, history := range overlays {
		for i, k := range history {
			if i >= KeepPerOverlay {
				break
			}
			keep[k] = true
		}
	}
	var out []Key
	for _, k := range entries {
		if !keep[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Remember is an Overlay's history with k as its newest entry: k moves to
// the front (once), and only the KeepPerOverlay newest stay.
func Remember(history []Key, k Key) []Key {
	out := []Key{k}
	for _, h := range history {
		if h != k && len(out) < KeepPerOverlay {
			out = append(out, h)
		}
	}
	return out
}

// Index is what the store remembers beside its entries (index.json): it
// survives an agent restart, so the previous entry of each Overlay is
// still known to be the previous one, and a fetched source is not fetched
// again.
type Index struct {
	// Overlays are each Overlay's entries ("namespace/name" → newest
	// first, Remember's), for GC.
	Overlays map[string][]Key `json:"overlays,omitempty"`
	// Sources are the entry each source gave, by a hash of the source's
	// spec: a source whose content only the fetched tree names (archive,
	// git, workshop) is fetched once per spec, not on every reconcile.
	Sources map[string]Key `json:"sources,omitempty"`
	// Resolved are what each source spec ("kind/hash", the prefix of its
	// Sources keys: "kind/hash@fingerprint" for one that is checked) was
	// last found to hold, and when: a restarted agent checks a git branch
	// or Workshop items on schedule (unless a check request stands), and still names their
	// commit and items.
	Resolved map[string]Resolution `json:"resolved,omitempty"`
}

// Resolution is what a source was found to hold at a time.
type Resolution struct {
	// At is when it was checked (zero: never; it was fetched).
	At time.Time `json:"at,omitempty"`
	// Fingerprint names the content (a commit, the items' versions).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Info is the agent's, as JSON (the commit, the items).
	Info json.RawMessage `json:"info,omitempty"`
}

// newIndex is an empty index.
func newIndex() Index {
	return Index{Overlays: map[string][]Key{}, Sources: map[string]Key{}, Resolved: map[string]Resolution{}}
}

// NewIndex is an empty index, its maps made.
func NewIndex() Index { return newIndex() }

// Equal reports whether two indexes say the same.
func (x Index) Equal(y Index) bool {
	if len(x.Overlays) != len(y.Overlays) || len(x.Sources) != len(y.Sources) || len(x.Resolved) != len(y.Resolved) {
		return false
	}
	for src, r := range x.Resolved {
		yr, ok := y.Resolved[src]
		if !ok || !yr.At.Equal(r.At) || yr.Fingerprint != r.Fingerprint || string(yr.Info) != string(r.Info) {
			return false
		}
	}
	for o, h := range x.Overlays {
		if !slices.Equal(h, y.Overlays[o]) {
			return false
		}
	}
	for src, k := range x.Sources {
		if yk, ok := y.Sources[src]; !ok || yk != k {
			return false
		}
	}
	return true
}

// Clone is a deep copy.
func (x Index) Clone() Index {
	y := newIndex()
	for o, h := range x.Overlays {
		y.Overlays[o] = slices.Clone(h)
	}
	for s, k := range x.Sources {
		y.Sources[s] = k
	}
	for s, r := range x.Resolved {
		y.Resolved[s] = r
	}
	return y
}

// Prune is the index with what no longer holds: Overlays not in used (no
// Instance here stacks them) dropped, and every entry not in present
// dropped from the histories and sources. Pure.
func (x Index) Prune(used map[string]bool, present []Key) Index {
	have := map[Key]bool{}
	for _, k := range present {
		have[k] = true
	}
	y := newIndex()
	for o, h := range x.Overlays {
		if !used[o] {
			continue
		}
		var kept []Key
		for _, k := range h {
			if have[k] {
				kept = append(kept, k)
			}
		}
		if len(kept) > 0 {
			y.Overlays[o] = kept
		}
	}
	specs := map[string]bool{}
	for s, k := range x.Sources {
		if have[k] {
			y.Sources[s] = k
			spec, _, _ := strings.Cut(s, "@")
			specs[spec] = true
		}
	}
	for s, r := range x.Resolved {
		if specs[s] {
			y.Resolved[s] = r
		}
	}
	return y
}

// maxIndexBytes bounds index.json (a few hundred bytes per Overlay).
const maxIndexBytes = 16 << 20

// ReadIndex reads index.json; a missing one is an empty index.
func (s *Store) ReadIndex() (Index, error) {
	x := newIndex()
	d, err := s.open()
	if err != nil {
		return x, err
	}
	defer d.Close()
	data, err := d.ReadFile(indexName, maxIndexBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return x, nil
	}
	if err != nil {
		return x, fmt.Errorf("read the overlay store's index: %w", err)
	}
	if err := json.Unmarshal(data, &x); err != nil {
		return newIndex(), fmt.Errorf("read the overlay store's index %s: %w", d.Path+"/"+indexName, err)
	}
	if x.Overlays == nil {
		x.Overlays = map[string][]Key{}
	}
	if x.Sources == nil {
		x.Sources = map[string]Key{}
	}
	if x.Resolved == nil {
		x.Resolved = map[string]Resolution{}
	}
	return x, nil
}

// WriteIndex replaces index.json atomically (root's, 0600).
func (s *Store) WriteIndex(x Index) error {
	data, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	if len(data) > maxIndexBytes {
		// ReadIndex would refuse it at the next start, losing it all.
		return fmt.Errorf("write the overlay store's index: %d bytes, over its %d", len(data), maxIndexBytes)
	}
	d, err := s.open()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.WriteFile(indexName, append(data, '\n'), 0o600, 0, 0); err != nil {
		return fmt.Errorf("write the overlay store's index: %w", err)
	}
	return nil
}
