package extract

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/safefs"
)

// VerifyOptions bound the tree Verify accepts; zero fields are the
// defaults, as for Extract.
type VerifyOptions struct {
	Limits
}

// Verify checks a tree an unprivileged process produced (a fetcher's
// staging directory) before the agent, as root, moves it into the
// root-owned overlay store, where every game that stacks it will see it.
// It accepts only what Extract makes:
//   - directories, regular files and symlinks (no device, fifo or socket);
//   - no setuid, setgid or sticky bit, nothing writable by group or others
//     (a root-owned store entry must not be writable by a game), the root
//     directory included;
//   - regular files with a single link: with nlink > 1 the fetcher could
//     have linked in a file from outside, or kept a name for it outside;
//   - symlinks whose targets stay inside the tree (the rule of Extract);
//   - at most MaxEntries entries, MaxEntryBytes per file, MaxTotalBytes in
//     all, MaxPathLength per path.
//
// It walks the tree without following a symlink or crossing a mount. Run
// it only after the process that wrote dir has exited: whatever can still
// write dir can change it after Verify returns.
func Verify(dir string, o VerifyOptions) error {
	lim, err := o.Limits.withDefaults()
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	root, err := safefs.Open(dir)
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	defer root.Close()
	st, err := root.Stat()
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	if err := checkMode(&st); err != nil {
		return fmt.Errorf("verify %s: the directory itself: %w", dir, err)
	}
	v := &verifier{lim: lim}
	if err := walk(root, "", v.visit); err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	return nil
}

type verifier struct {
	lim     Limits
	entries int
	total   int64
}

func (v *verifier) visit(parent *safefs.Dir, name, rel string, st *unix.Stat_t) (bool, error) {
	v.entries++
	if v.entries > v.lim.MaxEntries {
		return false, fmt.Errorf("%w: more than MaxEntries (%d) entries", ErrLimit, v.lim.MaxEntries)
	}
	if len(rel) > v.lim.MaxPathLength {
		return false, fmt.Errorf("%w: a path of %d bytes, more than MaxPathLength (%d)", ErrLimit, len(rel), v.lim.MaxPathLength)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return true, checkMode(st)
	case unix.S_IFREG:
		if err := checkMode(st); err != nil {
			return false, err
		}
		if st.Nlink > 1 {
			return false, fmt.Errorf("%w: a file with %d hard links (one could be a file from outside the tree)", ErrUnsafe, st.Nlink)
		}
		if st.Size > v.lim.MaxEntryBytes {
			return false, fmt.Errorf("%w: %s, more than MaxEntryBytes (%s)", ErrLimit, sizeString(st.Size), sizeString(v.lim.MaxEntryBytes))
		}
		v.total += st.Size
		if v.total > v.lim.MaxTotalBytes {
			return false, fmt.Errorf("%w: the tree holds more than MaxTotalBytes (%s)", ErrLimit, sizeString(v.lim.MaxTotalBytes))
		}
		return false, nil
	case unix.S_IFLNK:
		target, err := parent.Readlink(name)
		if err != nil {
			return false, err
		}
		_, err = linkTarget(rel, target, v.lim.MaxPathLength)
		return false, err
	}
	return false, fmt.Errorf("%w: a %s: an overlay holds only files, directories and symlinks", ErrUnsafe, typeName(st.Mode))
}

// checkMode refuses the mode bits a root-owned store entry must not have.
func checkMode(st *unix.Stat_t) error {
	switch {
	case st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0:
		return fmt.Errorf("%w: setuid or setgid (mode %04o)", ErrUnsafe, st.Mode&0o7777)
	case st.Mode&unix.S_ISVTX != 0:
		return fmt.Errorf("%w: the sticky bit (mode %04o)", ErrUnsafe, st.Mode&0o7777)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%w: writable by group or others (mode %04o)", ErrUnsafe, st.Mode&0o7777)
	}
	return nil
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}
