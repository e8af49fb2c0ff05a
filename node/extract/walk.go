package extract

import (
	"sort"

	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/safefs"
)

// visitFunc sees one entry: its parent (open), its name there, its path
// below the root and its lstat. For a directory, false skips what it holds.
type visitFunc func(parent *safefs.Dir, name, rel string, st *unix.Stat_t) (descend bool, err error)

// walk visits every entry below d, depth first: each directory's entries
// in byte order of their names, a directory before what it holds. It never
// follows a symlink or enters a mount (safefs refuses both), so what it
// sees is the tree itself, whatever links it holds. The order depends only
// on the names, never on the directory's read order.
func walk(d *safefs.Dir, rel string, fn visitFunc) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		child := name
		if rel != "" {
			child = rel + "/" + name
		}
		st, err := d.Lstat(name)
		if err != nil {
			return &EntryError{Entry: child, Err: err}
		}
		descend, err := fn(d, name, child, &st)
		if err != nil {
			return &EntryError{Entry: child, Err: err}
		}
		if !descend || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		sub, err := d.OpenDir(name)
		if err != nil {
			return &EntryError{Entry: child, Err: err}
		}
		err = walk(sub, child, fn)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
