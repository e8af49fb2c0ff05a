package extract

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math"
)

// zip extracts a zip archive, entry by entry in the central directory's
// order.
func (x *extractor) zip(ra io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked here, not by archive/zip
		return archiveErr(corrupt(err))
	}
	if len(zr.File) > x.o.MaxEntries {
		return entryErr(zr.File[x.o.MaxEntries].Name, ErrLimit, "more than MaxEntries (%d) entries: the archive lists %d", x.o.MaxEntries, len(zr.File))
	}
	var prev *string
	for _, f := range zr.File {
		if err := x.ctx.Err(); err != nil {
			return afterErr(prev, err)
		}
		prev = &f.Name
		if err := x.zipEntry(f); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) zipEntry(f *zip.File) error {
	mode := f.Mode()
	e := &entry{name: f.Name, mode: mode}
	switch {
	case mode.IsDir():
		e.kind = kindDir
		return x.handle(e)
	case mode&fs.ModeSymlink != 0:
		e.kind = kindSymlink
	case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice != 0:
		e.kind, e.what = kindRefused, "character device"
	case mode&fs.ModeDevice != 0:
		e.kind, e.what = kindRefused, "block device"
	case mode&fs.ModeNamedPipe != 0:
		e.kind, e.what = kindRefused, "fifo"
	case mode&fs.ModeSocket != 0:
		e.kind, e.what = kindRefused, "socket"
	case mode&fs.ModeIrregular != 0:
		e.kind, e.what = kindRefused, "irregular file"
	default:
		e.kind = kindFile
		e.size = int64(min(f.UncompressedSize64, math.MaxInt64))
	}
	if e.kind == kindRefused || (e.kind == kindFile && e.size > x.o.MaxEntryBytes) {
		return x.handle(e) // refused before a byte is inflated
	}
	rc, err := f.Open()
	if errors.Is(err, zip.ErrAlgorithm) {
		return entryErr(f.Name, ErrFormat, "compression method %d, which archive/zip does not read", f.Method)
	}
	if err != nil {
		return &EntryError{Entry: f.Name, Err: corrupt(err)}
	}
	defer rc.Close()
	e.data = rc
	if e.kind == kindSymlink {
		// The target is the entry's content.
		var target bytes.Buffer
		if _, err := x.copy(&target, io.LimitReader(rc, int64(x.o.MaxPathLength)+1), true); err != nil {
			return &EntryError{Entry: f.Name, Err: err}
		}
		e.link, e.data = target.String(), nil
	}
	return x.handle(e)
}
