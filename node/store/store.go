// Package store is the node's content-addressed store of fetched overlays,
// overlays/.store below LEFT4ME_ROOT. Every source of an Overlay but a path
// (inline files, archives, git, the Workshop) becomes one entry here,
// named by a digest of its content, and an Instance stacks the entry's
// tree/ as its lower layer. Entries are root's and immutable: a new
// version of an Overlay is a new entry beside the old one, so a game keeps
// the content it started with until the rollout restarts it onto the new.
//
// Layout (root's throughout):
//
//	.store/                 0711: a fetcher's unit passes through to its staging dir
//	  .staging/<random>/    0700, handed to a fetcher account while its unit runs
//	    tree/               written by a materializer (the agent, or an unprivileged fetcher)
//	  <scheme>-<hex>/       0700: an entry, renamed here whole by Add
//	    tree/               0755 directories, 0644/0755 files, rooted at the game root
//	  index.json            0600: each Overlay's newest entries, what each source gave
//
// Add checks a staging tree (extract.Verify), seals it (root's, modes
// normalized, no link followed), names it, syncs the filesystem and
// renames it into place: an entry is complete or absent, never half
// there. Decisions (which entries to remove) are pure functions beside
// the effects (GC, Remember).
package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/safefs"
)

// DirName is the store's directory below the overlays root. The API and
// the node refuse a path source that names it (apis/validation's
// OverlayStoreDir, which must be the same).
const DirName = ".store"

const (
	stagingName = ".staging"
	treeName    = "tree"
	indexName   = "index.json"
)

// Scheme says how an entry's digest was computed; it is the first part of
// the entry's name, so two schemes can never name the same entry.
type Scheme string

const (
	// SchemeFiles is a files source's digest, v1alpha1.FilesDigest of its
	// spec: the SHA-256 of the tree's sha256sum listing. The control plane
	// computes it from the spec alone, so it is the Overlay's digest before
	// any node has written the files. Such a tree holds only regular files,
	// 0644, and the directories leading to them.
	SchemeFiles Scheme = "files"
	// SchemeTree is extract.Digest of a fetched tree (archive, git,
	// workshop): every entry's path, type, executable bit, content and
	// symlink target. It exists only once the tree does.
	SchemeTree Scheme = "tree"
)

// digestPrefix starts a digest as the API writes it.
const digestPrefix = "sha256:"

// Key names one entry: its scheme and the hex of its digest.
type Key struct {
	Scheme Scheme
	Hex    string
}

// NewKey is the key of a digest ("sha256:<64 hex>") in a scheme.
func NewKey(scheme Scheme, digest string) (Key, error) {
	hexPart, ok := strings.CutPrefix(digest, digestPrefix)
	k := Key{Scheme: scheme, Hex: hexPart}
	if !ok || !k.valid() {
		return Key{}, fmt.Errorf("store key: %q is no %s digest (want sha256: and 64 lowercase hex digits)", digest, scheme)
	}
	return k, nil
}

// ParseKey reads an entry's name ("files-<hex>", "tree-<hex>").
func ParseKey(name string) (Key, error) {
	scheme, hexPart, _ := strings.Cut(name, "-")
	k := Key{Scheme: Scheme(scheme), Hex: hexPart}
	if !k.valid() {
		return Key{}, fmt.Errorf("store key: %q is not <files|tree>-<64 hex>", name)
	}
	return k, nil
}

func (k Key) valid() bool {
	if k.Scheme != SchemeFiles && k.Scheme != SchemeTree || len(k.Hex) != 64 {
		return false
	}
	for i := 0; i < len(k.Hex); i++ {
		if c := k.Hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Name is the entry's directory name.
func (k Key) Name() string { return string(k.Scheme) + "-" + k.Hex }

// String is Name.
func (k Key) String() string { return k.Name() }

// Digest is the digest as the API writes it ("sha256:<hex>").
func (k Key) Digest() string { return digestPrefix + k.Hex }

// IsZero reports whether k names nothing.
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText writes Name (keys are map keys and list items in index.json).
func (k Key) MarshalText() ([]byte, error) { return []byte(k.Name()), nil }

// UnmarshalText reads Name.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Store is an open store directory.
type Store struct {
	root   string
	limits extract.Limits
}

// Open makes the store at root (overlays/.store) and its staging directory
// if they are missing, checks that both are root's and writable by root
// alone (a rename into the store trusts that nothing else can write
// there), and removes whatever a crash left in staging. limits bound what
// Add accepts (zero fields: extract's defaults).
func Open(root string, limits extract.Limits) (*Store, error) {
	parent, err := safefs.Open(filepath.Dir(root))
	if err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	defer parent.Close()
	rootOwned := safefs.Owner{UID: 0, GID: 0, Mode: 0o711}
	if err := parent.EnsureDir(filepath.Base(root), rootOwned); err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	if err := rootOnly(parent, filepath.Base(root)); err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	s := &Store{root: root, limits: limits}
	d, err := s.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := d.EnsureDir(stagingName, rootOwned); err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	if err := rootOnly(d, stagingName); err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	if err := s.cleanStaging(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Tree is where an entry's tree is: the lower layer Instances stack.
func (s *Store) Tree(k Key) string { return filepath.Join(s.root, k.Name(), treeName) }

func (s *Store) open() (*safefs.Dir, error) {
	d, err := safefs.Open(s.root)
	if err != nil {
		return nil, fmt.Errorf("open overlay store: %w", err)
	}
	return d, nil
}

// Has reports whether the entry is in the store.
func (s *Store) Has(k Key) (bool, error) {
	d, err := s.open()
	if err != nil {
		return false, err
	}
	defer d.Close()
	st, err := d.Lstat(k.Name() + "/" + treeName)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up store entry %s: %w", k, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, fmt.Errorf("store entry %s: its %s is not a directory", k, treeName)
	}
	return true, nil
}

// List is every entry in the store, by name. Names that are no entry's
// (staging, the index, anything an admin put there) are not listed, and
// so never removed.
func (s *Store) List() ([]Key, error) {
	d, err := s.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Names()
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, n := range names {
		if k, err := ParseKey(n); err == nil {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Staging is an empty directory for one materializer to write an entry's
// tree into (Tree, which it makes), below the store's staging directory;
// Add moves the tree into the store, Discard drops it.
type Staging struct {
	// Dir is the materializer's directory: root's, 0700, empty. It may
	// hand it to an unprivileged writer for the time it runs (a fetcher
	// account's unit), and put its own files beside the tree (a download,
	// a spec): Add keeps only Tree.
	Dir string
	// Tree is Dir/tree: what lands at the game root.
	Tree string
	s    *Store
	name string
}

// Stage makes a new staging directory (root's, 0700; its parents are
// root's and may only be passed through).
func (s *Store) Stage() (*Staging, error) {
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	name := "st-" + hex.EncodeToString(buf)
	stg, err := safefs.Open(filepath.Join(s.root, stagingName))
	if err != nil {
		return nil, fmt.Errorf("stage an overlay: %w", err)
	}
	defer stg.Close()
	entry, err := stg.MkdirAll(name, safefs.Owner{UID: 0, GID: 0, Mode: 0o700})
	if err != nil {
		return nil, fmt.Errorf("stage an overlay: %w", err)
	}
	entry.Close()
	dir := filepath.Join(s.root, stagingName, name)
	return &Staging{Dir: dir, Tree: filepath.Join(dir, treeName), s: s, name: name}, nil
}

// Discard removes the staging tree (without following anything its writer
// planted); a missing one is fine.
func (st *Staging) Discard() error {
	stg, err := safefs.Open(filepath.Join(st.s.root, stagingName))
	if err != nil {
		return err
	}
	defer stg.Close()
	return stg.RemoveAll(st.name)
}

// Add checks, seals and stores a staging tree whose writer has exited, and
// returns the entry's key; the staging directory is gone afterwards,
// whatever the outcome. In order:
//
//  1. the staging directory is made root's and 0700 (nothing but root
//     reaches the tree any more), and everything in it but the tree is
//     removed (without following anything);
//  2. extract.Verify: only directories, regular files with one link and
//     symlinks that stay inside; no setuid, setgid or sticky bit, nothing
//     writable by group or others; within the store's limits;
//  3. sealed (safefs.SealTree): everything root's, directories 0755, files
//     0644 or 0755, no link followed;
//  4. named: SchemeTree by extract.Digest, SchemeFiles by FilesDigest of
//     the tree (which refuses anything but plain files);
//  5. synced (syncfs) and renamed into place without replacing anything.
//     An entry of that key already there (the same content, fetched twice
//     or by two Overlays) is kept and the staging copy discarded: entries
//     never change.
//
// The errors of step 2 wrap extract.ErrUnsafe or extract.ErrLimit and name
// the entry.
func (s *Store) Add(st *Staging, scheme Scheme) (k Key, err error) {
	defer func() {
		if derr := st.Discard(); derr != nil && err == nil {
			err = fmt.Errorf("discard the staging copy of %s: %w", k, derr)
		}
	}()
	if scheme != SchemeFiles && scheme != SchemeTree {
		return Key{}, fmt.Errorf("store an overlay: unknown scheme %q", scheme)
	}
	stg, err := safefs.Open(filepath.Join(s.root, stagingName))
	if err != nil {
		return Key{}, fmt.Errorf("store an overlay: %w", err)
	}
	defer stg.Close()
	entry, err := stg.OpenDir(st.name)
	if err != nil {
		return Key{}, fmt.Errorf("store an overlay: %w", err)
	}
	defer entry.Close()
	if err := entry.Chown(safefs.Owner{UID: 0, GID: 0, Mode: 0o700}); err != nil {
		return Key{}, fmt.Errorf("store an overlay: %w", err)
	}
	if err := onlyTree(entry); err != nil {
		return Key{}, fmt.Errorf("store an overlay: %w", err)
	}
	if err := extract.Verify(st.Tree, extract.VerifyOptions{Limits: s.limits}); err != nil {
		return Key{}, err
	}
	tree, err := entry.OpenDir(treeName)
	if err != nil {
		return Key{}, fmt.Errorf("store an overlay: %w", err)
	}
	defer tree.Close()
	if err := tree.SealTree(); err != nil {
		return Key{}, fmt.Errorf("seal %s: %w", st.Tree, err)
	}
	digest := ""
	if scheme == SchemeTree {
		digest, err = extract.Digest(st.Tree)
	} else {
		digest, err = FilesDigest(st.Tree)
	}
	if err != nil {
		return Key{}, err
	}
	if k, err = NewKey(scheme, digest); err != nil {
		return Key{}, err
	}
	if err := tree.Syncfs(); err != nil {
		return k, err
	}
	root, err := s.open()
	if err != nil {
		return k, err
	}
	defer root.Close()
	err = stg.RenameNoReplace(st.name, root, k.Name())
	if errors.Is(err, fs.ErrExist) {
		return k, nil // the same content is here already: Discard drops the copy
	}
	if err != nil {
		return k, fmt.Errorf("move %s into the store: %w", k, err)
	}
	return k, root.Sync()
}

// onlyTree removes everything in a staging directory but its tree, which
// must be a directory (a writer that made none, or a symlink in its
// place, wrote no tree).
func onlyTree(entry *safefs.Dir) error {
	st, err := entry.Lstat(treeName)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the materializer wrote no %s", treeName)
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("the materializer's %s is not a directory", treeName)
	}
	names, err := entry.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if n != treeName {
			if err := entry.RemoveAll(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes an entry: renamed into staging first, so a half-removed
// tree is never taken for an entry, then removed without following
// anything. A missing entry is fine.
func (s *Store) Remove(k Key) error {
	root, err := s.open()
	if err != nil {
		return err
	}
	defer root.Close()
	stg, err := root.OpenDir(stagingName)
	if err != nil {
		return fmt.Errorf("remove store entry %s: %w", k, err)
	}
	defer stg.Close()
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	gone := "rm-" + hex.EncodeToString(buf)
	err = root.RenameNoReplace(k.Name(), stg, gone)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove store entry %s: %w", k, err)
	}
	if err := root.Sync(); err != nil {
		return err
	}
	if err := stg.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove store entry %s: %w", k, err)
	}
	return nil
}

// cleanStaging removes what a crash left in staging: trees half written,
// or renamed there to be removed.
func (s *Store) cleanStaging() error {
	stg, err := safefs.Open(filepath.Join(s.root, stagingName))
	if err != nil {
		return fmt.Errorf("open overlay store: %w", err)
	}
	defer stg.Close()
	names, err := stg.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := stg.RemoveAll(n); err != nil {
			return fmt.Errorf("clean the overlay store's staging: %w", err)
		}
	}
	return nil
}

// rootOnly checks that rel below d is a directory of root's that nobody
// else may write.
func rootOnly(d *safefs.Dir, rel string) error {
	st, err := d.Lstat(rel)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s: want a directory of root's that only root writes, found uid %d mode %o", filepath.Join(d.Path, rel), st.Uid, st.Mode&0o7777)
	}
	return nil
}
