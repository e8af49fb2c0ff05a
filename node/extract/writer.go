package extract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
)

// Writer lands a tree entry by entry for a source that is not an archive
// (a git commit's tree, read object by object): the entries go through
// the same checks as an archive's, in one place, so such a source gets
// Extract's rules (names, link targets, modes, duplicates, every limit in
// Options) without a copy of them. Entries are named as the source names
// them ("addons/x.smx", slash-separated, below the source's root);
// SubPath and Into apply as they do for an archive, StripComponents too.
//
// Every method but Stats and Close returns an *EntryError naming the
// entry when it refuses or fails it; the caller stops there and discards
// dst, as after a failed Extract. A Writer is not safe for concurrent use.
type Writer struct {
	x *extractor
}

// NewWriter starts a tree in dst, which must be an empty directory, and
// makes o.Into in it first (as Extract does). Close it when done.
func NewWriter(ctx context.Context, dst string, o Options) (*Writer, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	x, err := newExtractor(ctx, dst, o)
	if err != nil {
		return nil, err
	}
	if err := x.makeInto(); err != nil {
		x.root.Close()
		return nil, err
	}
	return &Writer{x: x}, nil
}

// Dir lands the directory name (a source's directory entry; files' parents
// are made without one).
func (w *Writer) Dir(name string) error {
	return w.handle(&entry{name: name, kind: kindDir, mode: fs.ModeDir | dirMode})
}

// File lands the regular file name with size bytes read from r: mode 0755
// if mode has any execute bit, else 0644 (setuid, setgid and sticky are
// dropped, counted in Stats.ModesStripped). A size over MaxEntryBytes is
// refused before r is read, so r may open its content lazily; r yielding
// more than MaxEntryBytes is refused too, whatever size said.
func (w *Writer) File(name string, mode fs.FileMode, size int64, r io.Reader) error {
	return w.handle(&entry{name: name, kind: kindFile, mode: mode &^ fs.ModeType, size: size, data: r})
}

// Symlink lands the symlink name whose target r holds (as a zip entry or
// a git blob holds it), read up to MaxPathLength bytes: kept only when the
// target stays inside the tree, by linkTarget's rule.
func (w *Writer) Symlink(name string, target io.Reader) error {
	if err := w.x.ctx.Err(); err != nil {
		return &EntryError{Entry: name, Err: err}
	}
	var b bytes.Buffer
	if _, err := w.x.copy(&b, io.LimitReader(target, int64(w.x.o.MaxPathLength)+1), true); err != nil {
		return &EntryError{Entry: name, Err: err}
	}
	return w.handle(&entry{name: name, kind: kindSymlink, mode: fs.ModeSymlink | 0o777, link: b.String()})
}

// Skip counts an entry of the source that lands nowhere (a git submodule:
// the commit names another repository's commit, not content): it counts
// toward MaxEntries and Stats.Skipped.
func (w *Writer) Skip(name string) error {
	return w.handle(&entry{name: name, kind: kindMeta})
}

func (w *Writer) handle(e *entry) error {
	if err := w.x.ctx.Err(); err != nil {
		return &EntryError{Entry: e.name, Err: err}
	}
	return w.x.handle(e)
}

// Stats says what the Writer has done so far.
func (w *Writer) Stats() Stats {
	s := w.x.stats
	s.Uncompressed = w.x.total
	return s
}

// Close releases dst. It writes nothing: every entry is complete on disk
// when its method returns.
func (w *Writer) Close() error { return w.x.root.Close() }
