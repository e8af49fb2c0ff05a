// Package extract unpacks the archives Overlays come from (tar, tar.gz,
// tar.xz, zip) into a staging directory, and checks and digests the trees
// that end up in the node's content-addressed overlay store.
//
// The three parts run on different sides of a privilege boundary:
//
//	unprivileged fetcher            root agent
//	Extract(archive → staging)  →   Verify(staging) → Digest(staging) → move to .store/<digest>
//
// Extract runs as an unprivileged process in a directory it owns, so the
// kernel already keeps it out of root's files; it still treats the archive
// as hostile, because the tree it leaves is what every game on the node
// will see: nothing lands outside dst, no entry writes through a link
// another entry planted (every file is created with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, O_EXCL), no link points out of the
// tree, and no limit on entries, sizes or path lengths is exceeded however
// the archive is compressed. Verify is the agent's own check of what the
// fetcher left, since a fetcher that was subverted could have written
// anything there; Digest names the tree's content.
package extract

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/left4me/left4me/node/safefs"
)

// Stats says what an extraction did.
type Stats struct {
	// Entries is how many archive entries were read, skipped ones included.
	Entries int
	// Files, Dirs and Symlinks were created below dst (Dirs counts the
	// implicit parents too).
	Files, Dirs, Symlinks int
	// Hardlinks is how many of Files are copies of an earlier file, made
	// for a tar hardlink entry: the tree never holds a hardlink (Verify
	// refuses them).
	Hardlinks int
	// Skipped entries are outside SubPath, directories stripped to
	// nothing, and tar's global headers.
	Skipped int
	// ModesStripped is how many entries had a setuid, setgid or sticky bit,
	// dropped: such a tree is still extracted, without them.
	ModesStripped int
	// Bytes is the file content written; Uncompressed is everything read
	// out of the archive's entries (what MaxTotalBytes bounds).
	Bytes, Uncompressed int64
}

// ExtractFile extracts the archive at path into dst; see Extract.
func ExtractFile(ctx context.Context, path string, format Format, dst string, o Options) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	return Extract(ctx, f, format, dst, o)
}

// Extract unpacks the archive r holds into dst, which must be an empty
// directory. With Auto the format comes from the archive's first bytes.
//
// A zip archive needs random access: pass an *os.File (or anything with
// ReadAt and Size, such as a *bytes.Reader), or use ExtractFile. Such a
// reader is read from its start whatever its offset.
//
// What lands:
//   - Files get mode 0755 if the archive gave them any execute bit, else
//     0644; directories 0755. Setuid, setgid and sticky bits are stripped,
//     not refused (Stats.ModesStripped counts them). Owners, times and
//     extended attributes are not kept.
//   - Symlinks are kept when their target stays inside dst (see the rule
//     in linkTarget); tar hardlinks become copies of the earlier regular
//     file they name.
//
// What is refused, with an *EntryError naming the entry (or an error
// starting "archive: " for the archive as a whole): absolute names, "..",
// backslashes, names stripped to nothing; symlinks that are absolute or
// leave the tree; hardlinks to anything but an earlier extracted regular
// file; devices, fifos and sockets; a second entry for a path already made
// (a repeated directory excepted: refusing is simpler to reason about than
// "the later one wins", which would have to replace a tree), and any entry
// whose path crosses an earlier symlink or file; every limit in o.Limits;
// a truncated archive, a corrupt gzip or xz stream, a plain tar without
// its end-of-archive marker.
//
// Damage is reported at the entry being read when the decompressor found
// it: gzip and xz check their checksums at the end of the stream (xz also
// at the end of each block), so a damaged byte inside a file can show as
// an error after the last entry, with the damaged content already written.
//
// On an error dst holds what was extracted before it, possibly a partly
// written file: never anything outside dst, and never anything Verify
// would refuse. The caller discards it. Extract stops when ctx is done.
func Extract(ctx context.Context, r io.Reader, format Format, dst string, o Options) (Stats, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Stats{}, fmt.Errorf("extract: %w", err)
	}
	x, err := newExtractor(ctx, dst, o)
	if err != nil {
		return Stats{}, err
	}
	defer x.root.Close()
	err = x.run(r, format)
	x.stats.Uncompressed = x.total
	return x.stats, err
}

func (x *extractor) run(r io.Reader, format Format) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	ra, size, random := randomAccess(r)
	if random {
		r = io.NewSectionReader(ra, 0, size)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	if format == Auto {
		head, _ := br.Peek(headLen) // a shorter archive is Detect's to judge
		var err error
		if format, err = Detect(head); err != nil {
			return archiveErr(err)
		}
	}
	if err := x.makeInto(); err != nil {
		return err
	}
	switch format {
	case Tar:
		return x.tar(br, nil)
	case TarGz:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return archiveErr(corrupt(err))
		}
		defer zr.Close()
		return x.tar(zr, zr)
	case TarXz:
		head, _ := br.Peek(12 + 1024) // the stream header and the largest block header
		if dict, ok := xzDictCap(head); ok && dict > x.o.MaxXZDictBytes {
			return archiveErr(fmt.Errorf("%w: the xz stream asks for a %s dictionary, more than MaxXZDictBytes (%s)", ErrLimit, sizeString(dict), sizeString(x.o.MaxXZDictBytes)))
		}
		xr, err := xz.NewReader(br)
		if err != nil {
			return archiveErr(corrupt(err))
		}
		return x.tar(xr, xr)
	case Zip:
		if !random {
			return archiveErr(fmt.Errorf("%w: a zip archive needs random access: pass an *os.File or use ExtractFile", ErrFormat))
		}
		return x.zip(ra, size)
	}
	return fmt.Errorf("%w: format %v", ErrFormat, format)
}

// makeInto makes the directory the tree lands in, if any.
func (x *extractor) makeInto() error {
	if x.o.Into == "" {
		return nil
	}
	if err := x.mkdirAll(x.o.Into); err != nil {
		return fmt.Errorf("into %q: %w", x.o.Into, err)
	}
	return nil
}

// sizedReaderAt is what *bytes.Reader, *strings.Reader and
// *io.SectionReader offer.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

func randomAccess(r io.Reader) (io.ReaderAt, int64, bool) {
	switch v := r.(type) {
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return nil, 0, false
		}
		return v, st.Size(), true
	case sizedReaderAt:
		return v, v.Size(), true
	}
	return nil, 0, false
}

type kind int

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
	kindHardlink
	kindMeta    // tar's global header: no file
	kindRefused // a device, fifo or socket
	kindUnknown // an entry type this package does not know
)

func (k kind) String() string {
	switch k {
	case kindDir:
		return "directory"
	case kindFile:
		return "file"
	case kindSymlink:
		return "symlink"
	}
	return "entry"
}

// entry is one archive entry, whatever the format.
type entry struct {
	name string
	kind kind
	what string // for kindRefused and kindUnknown: what it is
	mode fs.FileMode
	size int64     // the size the archive declares for a file
	link string    // a symlink's target, a hardlink's target entry
	data io.Reader // a file's content (nil for none)
}

type extractor struct {
	ctx   context.Context
	o     Options
	root  *safefs.Dir
	owner safefs.Owner
	// seen is every path below dst made so far, with its kind: it tells a
	// duplicate, a path crossing a symlink, a hardlink's target.
	seen  map[string]kind
	stats Stats
	total int64
	buf   []byte
}

func newExtractor(ctx context.Context, dst string, o Options) (*extractor, error) {
	root, err := safefs.Open(dst)
	if err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	names, err := root.Names()
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("extract: %w", err)
	}
	if len(names) > 0 {
		root.Close()
		return nil, fmt.Errorf("extract into %s: the directory is not empty", dst)
	}
	return &extractor{
		ctx:   ctx,
		o:     o,
		root:  root,
		owner: safefs.Owner{UID: os.Getuid(), GID: os.Getgid(), Mode: dirMode},
		seen:  map[string]kind{},
		buf:   make([]byte, 256<<10),
	}, nil
}

// handle lands one entry, or says why not.
func (x *extractor) handle(e *entry) error {
	x.stats.Entries++
	if x.stats.Entries > x.o.MaxEntries {
		return entryErr(e.name, ErrLimit, "more than MaxEntries (%d) entries", x.o.MaxEntries)
	}
	switch e.kind {
	case kindMeta:
		x.stats.Skipped++
		return x.discard(e)
	case kindRefused:
		return entryErr(e.name, ErrUnsafe, "a %s: an overlay holds only files, directories and symlinks", e.what)
	case kindUnknown:
		return entryErr(e.name, ErrFormat, "%s", e.what)
	}
	if e.size > x.o.MaxEntryBytes {
		return entryErr(e.name, ErrLimit, "%s, more than MaxEntryBytes (%s)", sizeString(e.size), sizeString(x.o.MaxEntryBytes))
	}
	rel, skip, err := x.o.place(e.name, e.kind == kindDir)
	if err != nil {
		return &EntryError{Entry: e.name, Err: err}
	}
	if skip {
		x.stats.Skipped++
		return x.discard(e)
	}
	switch e.kind {
	case kindDir:
		err = x.dir(rel, e)
	case kindFile:
		err = x.file(rel, e)
	case kindSymlink:
		err = x.symlink(rel, e.link)
	case kindHardlink:
		err = x.hardlink(rel, e.link)
	}
	if err != nil {
		return &EntryError{Entry: e.name, Err: err}
	}
	return nil
}

func (x *extractor) discard(e *entry) error {
	if e.data == nil {
		return nil
	}
	if _, err := x.copy(io.Discard, e.data, true); err != nil {
		return &EntryError{Entry: e.name, Err: err}
	}
	return nil
}

func (x *extractor) dir(rel string, e *entry) error {
	if k, ok := x.seen[rel]; ok && k != kindDir {
		return duplicate(rel, k)
	}
	if _, stripped := fileMode(e.mode); stripped {
		x.stats.ModesStripped++
	}
	return x.mkdirAll(rel)
}

func (x *extractor) file(rel string, e *entry) error {
	perm, stripped := fileMode(e.mode)
	f, err := x.create(rel, perm)
	if err != nil {
		return err
	}
	n, err := x.copy(f, e.data, true)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	x.stats.Bytes += n
	if err != nil {
		return err
	}
	x.stats.Files++
	if stripped {
		x.stats.ModesStripped++
	}
	return nil
}

// create makes the new file rel (its parents first), recorded in seen
// before any data lands, so a partly written file is known too.
func (x *extractor) create(rel string, perm fs.FileMode) (*os.File, error) {
	if err := x.parents(rel); err != nil {
		return nil, err
	}
	if k, ok := x.seen[rel]; ok {
		return nil, duplicate(rel, k)
	}
	f, err := x.root.Create(rel, perm)
	if err != nil {
		return nil, err
	}
	x.seen[rel] = kindFile
	return f, nil
}

func (x *extractor) symlink(rel, target string) error {
	clean, err := linkTarget(rel, target, x.o.MaxPathLength)
	if err != nil {
		return err
	}
	if err := x.parents(rel); err != nil {
		return err
	}
	if k, ok := x.seen[rel]; ok {
		return duplicate(rel, k)
	}
	dir, name := path.Split(rel)
	parent := x.root
	if dir != "" {
		if parent, err = x.root.OpenDir(strings.TrimSuffix(dir, "/")); err != nil {
			return err
		}
		defer parent.Close()
	}
	if err := parent.Symlink(clean, name); err != nil {
		return err
	}
	// Symlink leaves an existing entry alone; nothing should exist (dst
	// was empty and seen knows every path), but make sure it is ours.
	if got, err := x.root.Readlink(rel); err != nil || got != clean {
		return fmt.Errorf("%w: something else is at %q (%v)", ErrDuplicate, rel, err)
	}
	x.seen[rel] = kindSymlink
	x.stats.Symlinks++
	return nil
}

// hardlink copies the earlier regular file linkname names to rel.
func (x *extractor) hardlink(rel, linkname string) error {
	target, skip, err := x.o.place(linkname, false)
	if err != nil {
		return fmt.Errorf("a hardlink to %q: %w", linkname, err)
	}
	if skip {
		return fmt.Errorf("%w: a hardlink to %q, which is outside subPath and so not extracted", ErrUnsafe, linkname)
	}
	if x.seen[target] != kindFile {
		return fmt.Errorf("%w: a hardlink to %q, which is not a regular file extracted before it", ErrUnsafe, linkname)
	}
	src, err := x.root.OpenFile(target)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	f, err := x.create(rel, st.Mode().Perm())
	if err != nil {
		return err
	}
	n, err := x.copy(f, src, false)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	x.stats.Bytes += n
	if err != nil {
		return err
	}
	x.stats.Files++
	x.stats.Hardlinks++
	return nil
}

// parents makes rel's parent directories.
func (x *extractor) parents(rel string) error {
	if dir := path.Dir(rel); dir != "." {
		return x.mkdirAll(dir)
	}
	return nil
}

// mkdirAll makes the directory rel and its parents, refusing a path
// through an earlier symlink or file.
func (x *extractor) mkdirAll(rel string) error {
	if x.seen[rel] == kindDir {
		return nil
	}
	missing := 0
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		p := rel[:i]
		k, ok := x.seen[p]
		switch {
		case !ok:
			missing++
		case k == kindSymlink:
			return fmt.Errorf("%w: the path crosses %q, a symlink an earlier entry made", ErrUnsafe, p)
		case k != kindDir:
			return fmt.Errorf("%w: the path goes through %q, a %v an earlier entry made", ErrDuplicate, p, k)
		}
	}
	d, err := x.root.MkdirAll(rel, x.owner)
	if err != nil {
		return err
	}
	d.Close()
	for i := 0; i <= len(rel); i++ {
		if i == len(rel) || rel[i] == '/' {
			x.seen[rel[:i]] = kindDir
		}
	}
	x.stats.Dirs += missing
	return nil
}

func duplicate(rel string, k kind) error {
	return fmt.Errorf("%w: %q is already a %v from an earlier entry", ErrDuplicate, rel, k)
}

// copy moves an entry's data to w, counting it against the limits and
// stopping when ctx is done. A read error of the archive's data is
// ErrCorrupt; fromArchive is false for a copy of an extracted file.
func (x *extractor) copy(w io.Writer, r io.Reader, fromArchive bool) (int64, error) {
	var n int64
	for {
		if err := x.ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(x.buf)
		if k > 0 {
			n += int64(k)
			x.total += int64(k)
			if n > x.o.MaxEntryBytes {
				return n, fmt.Errorf("%w: more than MaxEntryBytes (%s) uncompressed", ErrLimit, sizeString(x.o.MaxEntryBytes))
			}
			if x.total > x.o.MaxTotalBytes {
				return n, fmt.Errorf("%w: the archive holds more than MaxTotalBytes (%s) uncompressed", ErrLimit, sizeString(x.o.MaxTotalBytes))
			}
			if _, err := w.Write(x.buf[:k]); err != nil {
				return n, err
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil && fromArchive:
			return n, corrupt(rerr)
		case rerr != nil:
			return n, rerr
		}
	}
}

// errEndMarker: a plain tar that stops at an entry boundary, with no
// end-of-archive marker, was cut short (compressed ones are checked by
// their decompressor instead).
var errEndMarker = errors.New("the archive ends without its end-of-archive marker")
