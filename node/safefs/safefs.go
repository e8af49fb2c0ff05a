// Package safefs is how the node agent, running as root, touches directories
// a game can write (its upper dir and home) and content a tenant supplied
// (overlay trees): every path is resolved from an open directory with
// openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV, so no symlink
// a game plants, no ".." and no mount leads the agent anywhere else; files
// are created with O_EXCL|O_NOFOLLOW and owners and modes are set on the
// open descriptor, never on a path name that could be swapped in between.
//
// A game can still rename things under the agent's feet; the worst it gets
// is an error (ELOOP, EXDEV, ENOTDIR), reported by the agent and retried.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrNotSupported means the kernel lacks openat2 (Linux < 5.6).
var ErrNotSupported = errors.New("safefs: openat2 is not supported by this kernel")

// ErrUnsafe is wrapped by every refusal to follow a symlink, cross a mount
// or leave the directory.
var ErrUnsafe = errors.New("refusing to follow a symlink, cross a mount or leave the directory")

// resolveFlags are the rules for every lookup below an open Dir.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS

// Dir is an open directory. Its Path is for messages only: operations use
// the descriptor.
type Dir struct {
	fd   int
	Path string
}

// Open opens a directory the agent trusts the path of (LEFT4ME_ROOT and
// the root-owned directories below it that no game can write).
func Open(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, Path: path}, nil
}

// Close releases the descriptor.
func (d *Dir) Close() error { return unix.Close(d.fd) }

func (d *Dir) join(rel string) string { return filepath.Join(d.Path, rel) }

func (d *Dir) openat2(rel string, flags uint64, mode uint64) (int, error) {
	fd, err := unix.Openat2(d.fd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolveFlags})
	if err != nil {
		return -1, pathError("open", d.join(rel), err)
	}
	return fd, nil
}

// pathError names the path and turns the kernel's refusals into ErrUnsafe.
func pathError(op, path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return ErrNotSupported
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s %s: %w (%v)", op, path, ErrUnsafe, err)
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

// OpenDir opens a directory below d.
func (d *Dir) OpenDir(rel string) (*Dir, error) {
	fd, err := d.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{fd: fd, Path: d.join(rel)}, nil
}

// Owner says who a directory should belong to when MkdirAll creates it.
type Owner struct {
	UID, GID int
	Mode     os.FileMode
}

// MkdirAll makes rel and its missing parents below d, each new one with
// owner's mode and ids, and returns it open. Existing directories are kept
// as they are; a symlink or mount in the way is an error.
func (d *Dir) MkdirAll(rel string, owner Owner) (*Dir, error) {
	cur := &Dir{fd: -1, Path: d.Path}
	fd := d.fd
	for _, part := range strings.Split(filepath.Clean(rel), "/") {
		if part == "." || part == "" {
			continue
		}
		if part == ".." {
			cur.closeIfOwned()
			return nil, fmt.Errorf("mkdir %s: %w", d.join(rel), ErrUnsafe)
		}
		created := false
		if err := unix.Mkdirat(fd, part, uint32(owner.Mode.Perm())); err == nil {
			created = true
		} else if !errors.Is(err, unix.EEXIST) {
			cur.closeIfOwned()
			return nil, pathError("mkdir", filepath.Join(cur.Path, part), err)
		}
		next, err := unix.Openat2(fd, part, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags})
		if err != nil {
			cur.closeIfOwned()
			return nil, pathError("open", filepath.Join(cur.Path, part), err)
		}
		path := filepath.Join(cur.Path, part)
		cur.closeIfOwned()
		cur = &Dir{fd: next, Path: path}
		fd = next
		if created {
			if err := cur.chown(owner); err != nil {
				cur.Close()
				return nil, err
			}
		}
	}
	if cur.fd == -1 { // rel was "."
		return d.OpenDir(".")
	}
	return cur, nil
}

// EnsureDir is MkdirAll for a directory the caller does not need open: an
// existing last component is left alone without being opened, so it may be
// a mount point (a mounted overlay's merged dir).
func (d *Dir) EnsureDir(rel string, owner Owner) error {
	rel = filepath.Clean(rel)
	parent, name := filepath.Split(rel)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("mkdir %s: %w", d.join(rel), ErrUnsafe)
	}
	p := d
	if parent != "" {
		var err error
		if p, err = d.MkdirAll(parent, owner); err != nil {
			return err
		}
		defer p.Close()
	}
	if err := unix.Mkdirat(p.fd, name, uint32(owner.Mode.Perm())); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return pathError("mkdir", d.join(rel), err)
	}
	made, err := p.OpenDir(name)
	if err != nil {
		return err
	}
	defer made.Close()
	return made.chown(owner)
}

func (d *Dir) closeIfOwned() {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
}

// chown sets owner and mode on the open directory itself.
func (d *Dir) chown(o Owner) error {
	if err := unix.Fchown(d.fd, o.UID, o.GID); err != nil {
		return pathError("chown", d.Path, err)
	}
	if err := unix.Fchmod(d.fd, uint32(o.Mode.Perm())); err != nil {
		return pathError("chmod", d.Path, err)
	}
	return nil
}

// Chown sets the directory's owner and mode (on its descriptor).
func (d *Dir) Chown(o Owner) error { return d.chown(o) }

// Stat is fstat of the directory.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, pathError("stat", d.Path, err)
	}
	return st, nil
}

// Lstat is lstat(2) of rel below d: no symlink on the way is followed (one
// is refused with ErrUnsafe), and a symlink as the last component is
// described itself, not its target. It checks what a process that could
// plant links left, without opening it.
func (d *Dir) Lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := d.openat2(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, pathError("stat", d.join(rel), err)
	}
	return st, nil
}

var tmpSeq atomic.Uint64

// WriteFile replaces name in d atomically with data, owned uid:gid with
// mode: a temporary file made with O_EXCL|O_NOFOLLOW (so nothing planted
// under that name is opened), fchown'd and fchmod'd before it holds data,
// then renamed over name (a rename replaces a symlink, never follows it).
// Unchanged content is left alone.
func (d *Dir) WriteFile(name string, data []byte, mode os.FileMode, uid, gid int) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("write %s: %w", d.join(name), ErrUnsafe)
	}
	if old, err := d.ReadFile(name, int64(len(data))+1); err == nil && string(old) == string(data) {
		if st, err := d.statAt(name); err == nil && st.Uid == uint32(uid) && st.Gid == uint32(gid) && os.FileMode(st.Mode).Perm() == mode.Perm() {
			return nil
		}
	}
	tmp := "." + name + ".tmp." + strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(tmpSeq.Add(1), 10)
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return pathError("create", d.join(tmp), err)
	}
	f := os.NewFile(uintptr(fd), d.join(tmp))
	err = func() error {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return pathError("chown", d.join(tmp), err)
		}
		if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
			return pathError("chmod", d.join(tmp), err)
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if rerr := unix.Renameat(d.fd, tmp, d.fd, name); rerr != nil {
			err = pathError("rename", d.join(name), rerr)
		}
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return fmt.Errorf("write %s: %w", d.join(name), err)
	}
	return nil
}

func (d *Dir) statAt(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// ReadFile reads a regular file below d, at most max bytes (a longer one is
// an error): no symlink is followed, and a FIFO or device is refused rather
// than read (either could block or never end).
func (d *Dir) ReadFile(rel string, max int64) ([]byte, error) {
	f, st, err := d.openRegular(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size > max {
		return nil, fmt.Errorf("read %s: %d bytes, more than the %d allowed", d.join(rel), st.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: more than the %d bytes allowed", d.join(rel), max)
	}
	return data, nil
}

// OpenFile opens a regular file below d for reading: no symlink is
// followed, and a FIFO or device is refused rather than opened for reading
// (either could block or never end).
func (d *Dir) OpenFile(rel string) (*os.File, error) {
	f, _, err := d.openRegular(rel)
	return f, err
}

func (d *Dir) openRegular(rel string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := d.openat2(rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, st, err
	}
	f := os.NewFile(uintptr(fd), d.join(rel))
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, st, pathError("stat", d.join(rel), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, st, fmt.Errorf("read %s: not a regular file", d.join(rel))
	}
	return f, st, nil
}

// Create makes the new regular file rel below d, open for writing, with
// mode perm whatever the umask. Nothing existing is opened or replaced
// (O_EXCL), and no symlink on the way is followed: a tree an archive is
// extracted into cannot be written through a link the archive planted.
func (d *Dir) Create(rel string, perm os.FileMode) (*os.File, error) {
	fd, err := d.openat2(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, uint64(perm.Perm()))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.join(rel))
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		f.Close()
		return nil, pathError("chmod", d.join(rel), err)
	}
	return f, nil
}

// Readlink reads the target of the symlink rel below d (no symlink on the
// way is followed).
func (d *Dir) Readlink(rel string) (string, error) {
	fd, err := d.openat2(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", pathError("readlink", d.join(rel), err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Names lists d's entries, in the order the directory returns them.
func (d *Dir) Names() ([]string, error) { return d.names() }

// Symlink creates name -> target in d unless something named name exists
// (whatever it is: the agent never replaces what the game made).
func (d *Dir) Symlink(target, name string) error {
	err := unix.Symlinkat(target, d.fd, name)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return pathError("symlink", d.join(name), err)
	}
	return nil
}

// Remove removes one entry of d that is not a directory (a symlink is
// removed, not followed); a missing one is fine.
func (d *Dir) Remove(name string) error {
	err := unix.Unlinkat(d.fd, name, 0)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return pathError("remove", d.join(name), err)
	}
	return nil
}

// RemoveAll removes name below d and everything in it without following
// a symlink or entering a mount (a mount point in the tree is an error,
// and nothing below it is touched). Directories are made 0700 first:
// overlayfs leaves work/work with mode 000.
func (d *Dir) RemoveAll(name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return pathError("stat", d.join(name), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return d.Remove(name)
	}
	sub, err := d.OpenDir(name)
	if err != nil {
		return err
	}
	err = sub.removeContents()
	sub.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return pathError("remove", d.join(name), err)
	}
	return nil
}

func (d *Dir) removeContents() error {
	if err := unix.Fchmod(d.fd, 0o700); err != nil {
		return pathError("chmod", d.Path, err)
	}
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := d.RemoveAll(n); err != nil {
			return err
		}
	}
	return nil
}

// names lists d's entries (through a duplicate descriptor, so d's own
// offset is untouched).
func (d *Dir) names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError("open", d.Path, err)
	}
	f := os.NewFile(uintptr(fd), d.Path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.Path, err)
	}
	return names, nil
}

// ChownTree gives every entry below d (d included) owned by uid from to
// the owner to, group too, without following symlinks (a symlink itself is
// re-owned) or entering mounts. It moves a game's files to a new account.
func (d *Dir) ChownTree(from int, toUID, toGID int) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) == from {
		if err := unix.Fchown(d.fd, toUID, toGID); err != nil {
			return pathError("chown", d.Path, err)
		}
	}
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		var est unix.Stat_t
		if err := unix.Fstatat(d.fd, n, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return pathError("stat", d.join(n), err)
		}
		if est.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := d.OpenDir(n)
			if err != nil {
				return err
			}
			err = sub.ChownTree(from, toUID, toGID)
			sub.Close()
			if err != nil {
				return err
			}
			continue
		}
		if int(est.Uid) == from {
			if err := unix.Fchownat(d.fd, n, toUID, toGID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return pathError("chown", d.join(n), err)
			}
		}
	}
	return nil
}

// SealTree makes d and everything below it root's and writable by root
// alone: directories 0755, regular files 0755 when any execute bit was set
// and 0644 otherwise (setuid, setgid and sticky bits go), symlinks
// re-owned (a symlink's own mode means nothing). It seals a tree an
// unprivileged process wrote (a fetcher's staging directory) before the
// tree is stacked under games: afterwards neither that process nor a game
// can change it. No symlink is followed and no mount entered; a device,
// fifo or socket, or a regular file with more than one link (one name of
// it may be outside the tree), is an error and stops the walk, leaving
// what was sealed so far root's.
//
// Run it once the writer has exited (what still runs as its owner can
// change an entry not sealed yet), on a tree already checked for what it
// may hold (node/extract.Verify): it normalizes modes, it does not judge
// them.
func (d *Dir) SealTree() error {
	if err := d.chown(Owner{UID: 0, GID: 0, Mode: 0o755}); err != nil {
		return err
	}
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathError("stat", d.join(n), err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sub, err := d.OpenDir(n)
			if err != nil {
				return err
			}
			err = sub.SealTree()
			sub.Close()
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := d.sealFile(n); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if err := unix.Fchownat(d.fd, n, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return pathError("chown", d.join(n), err)
			}
		default:
			return fmt.Errorf("seal %s: not a file, directory or symlink (mode %#o): %w", d.join(n), st.Mode&unix.S_IFMT, ErrUnsafe)
		}
	}
	return nil
}

// sealFile makes the regular file name root's, 0644 or 0755, through a
// descriptor (what is sealed is what was checked to be a regular file with
// one link).
func (d *Dir) sealFile(name string) error {
	fd, err := d.openat2(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathError("stat", d.join(name), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("seal %s: not a regular file any more: %w", d.join(name), ErrUnsafe)
	}
	if st.Nlink != 1 {
		return fmt.Errorf("seal %s: a file with %d links (another name of it may be outside the tree): %w", d.join(name), st.Nlink, ErrUnsafe)
	}
	mode := uint32(0o644)
	if st.Mode&0o111 != 0 {
		mode = 0o755
	}
	// Owner first: a chown clears setuid and setgid, the chmod then sets
	// exactly the mode wanted.
	if err := unix.Fchown(fd, 0, 0); err != nil {
		return pathError("chown", d.join(name), err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return pathError("chmod", d.join(name), err)
	}
	return nil
}

// Syncfs flushes the whole filesystem d lives on to disk (syncfs(2)): one
// call makes a freshly written tree durable before it is renamed into
// place, where a crash must never leave a half-written one.
func (d *Dir) Syncfs() error {
	if err := unix.Syncfs(d.fd); err != nil {
		return pathError("syncfs", d.Path, err)
	}
	return nil
}

// RenameNoReplace renames old in d to name in to (renameat2 with
// RENAME_NOREPLACE): nothing that exists under name is replaced, and the
// error then wraps fs.ErrExist. Neither name may hold a '/'.
func (d *Dir) RenameNoReplace(old string, to *Dir, name string) error {
	if strings.Contains(old, "/") || strings.Contains(name, "/") {
		return fmt.Errorf("rename %s to %s: %w", d.join(old), to.join(name), ErrUnsafe)
	}
	err := unix.Renameat2(d.fd, old, to.fd, name, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY):
		return fmt.Errorf("rename %s to %s: %w", d.join(old), to.join(name), os.ErrExist)
	}
	return pathError("rename", d.join(old), err)
}

// Sync is fsync of the directory: the names created, renamed or removed
// in it are on disk when it returns.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return pathError("fsync", d.Path, err)
	}
	return nil
}
