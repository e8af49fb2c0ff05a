package extract

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// The default limits. They are far above what the content admins stack
// needs (a SourceMod release has about 1,500 entries and 20 MB; the
// largest Workshop maps are around 1 GB) and far below what would fill a
// host's disk or memory.
const (
	DefaultMaxEntries     = 100_000
	DefaultMaxEntryBytes  = 2 << 30 // 2 GiB
	DefaultMaxTotalBytes  = 8 << 30 // 8 GiB
	DefaultMaxPathLength  = 1024    // bytes of a path below dst, Into included
	DefaultMaxXZDictBytes = 128 << 20
)

// maxNameLength is NAME_MAX: a longer component cannot be created anyway;
// refusing it first gives a clearer error.
const maxNameLength = 255

// Limits bound what an archive, or a tree, may hold. A zero field means its
// default; there is no "unlimited".
type Limits struct {
	// MaxEntries is the most entries an archive may have, counting the ones
	// SubPath skips (DefaultMaxEntries).
	MaxEntries int
	// MaxEntryBytes is the largest a single file may be, uncompressed
	// (DefaultMaxEntryBytes).
	MaxEntryBytes int64
	// MaxTotalBytes is the most uncompressed bytes the archive may hold in
	// all its entries, the skipped ones included, so a bomb stops however
	// it is packed (DefaultMaxTotalBytes).
	MaxTotalBytes int64
	// MaxPathLength is the longest path below dst, and the longest symlink
	// target, in bytes (DefaultMaxPathLength).
	MaxPathLength int
}

// WithDefaults returns the limits with each zero field set to its
// default, or an error for a negative one: for a caller that checks a tree
// it writes itself (a Workshop fetch) against the limits Extract and
// Verify apply.
func (l Limits) WithDefaults() (Limits, error) { return l.withDefaults() }

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxEntries < 0 || l.MaxEntryBytes < 0 || l.MaxTotalBytes < 0 || l.MaxPathLength < 0 {
		return l, errors.New("limits must not be negative (zero means the default)")
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxEntryBytes == 0 {
		l.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxPathLength == 0 {
		l.MaxPathLength = DefaultMaxPathLength
	}
	return l, nil
}

// Options say which part of an archive lands where below dst.
type Options struct {
	// StripComponents drops this many leading directories from every
	// entry's name, after "." components are removed (so "./sm-1.12/x"
	// with 1 is "x", unlike GNU tar, which counts the "."). Directories
	// left with no name are skipped; any other entry left with no name is
	// an error: it says StripComponents is wrong for this archive.
	StripComponents int
	// SubPath keeps only the entries below this directory of the archive
	// (after stripping), re-rooted: with "addons", "addons/x.smx" lands as
	// "x.smx". Entries outside it are skipped, but still read and checked.
	SubPath string
	// Into is the directory below dst the tree lands in ("left4dead2").
	Into string
	// MaxXZDictBytes is the largest dictionary an xz stream may ask the
	// reader to allocate (DefaultMaxXZDictBytes, twice xz -9's); the
	// first block's is checked.
	MaxXZDictBytes int64
	Limits
}

func (o Options) withDefaults() (Options, error) {
	var err error
	if o.Limits, err = o.Limits.withDefaults(); err != nil {
		return o, err
	}
	if o.MaxXZDictBytes < 0 {
		return o, errors.New("MaxXZDictBytes must not be negative")
	}
	if o.MaxXZDictBytes == 0 {
		o.MaxXZDictBytes = DefaultMaxXZDictBytes
	}
	if o.StripComponents < 0 {
		return o, fmt.Errorf("stripComponents %d: must not be negative", o.StripComponents)
	}
	if err := checkOptionPath("subPath", o.SubPath); err != nil {
		return o, err
	}
	if err := checkOptionPath("into", o.Into); err != nil {
		return o, err
	}
	return o, nil
}

// Check says whether o can be used (what Extract and NewWriter would
// refuse before reading anything): for a caller that checks a spec
// before fetching what it names.
func (o Options) Check() error {
	_, err := o.withDefaults()
	return err
}

// checkOptionPath accepts "" or a clean relative path without "..".
func checkOptionPath(field, p string) error {
	if p == "" {
		return nil
	}
	switch {
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s %q: must be relative", field, p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%s %q: contains a NUL byte", field, p)
	case path.Clean(p) != p || p == ".":
		return fmt.Errorf("%s %q: must be a clean path (no \".\", empty components or trailing slash)", field, p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("%s %q: must not contain \"..\"", field, p)
		}
	}
	return nil
}

// Format is an archive's format.
type Format int

const (
	// Auto detects the format from the archive's first bytes.
	Auto Format = iota
	Tar
	TarGz
	TarXz
	Zip
)

var formatNames = map[Format]string{Auto: "auto", Tar: "tar", TarGz: "tar.gz", TarXz: "tar.xz", Zip: "zip"}

func (f Format) String() string {
	if s, ok := formatNames[f]; ok {
		return s
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat reads a format's name: auto, tar, tar.gz (tgz), tar.xz
// (txz) or zip.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "tgz":
		return TarGz, nil
	case "txz":
		return TarXz, nil
	}
	for f, name := range formatNames {
		if name == s {
			return f, nil
		}
	}
	return Auto, fmt.Errorf("archive format %q: want one of auto, tar, tar.gz, tar.xz, zip", s)
}
