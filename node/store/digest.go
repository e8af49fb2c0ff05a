package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/safefs"
)

// FilesDigest is the digest of a files tree as v1alpha1.FilesDigest
// computes it from the spec: the SHA-256 of the tree's sha256sum listing
// (one "<hex sha256>  <path>\n" line per file, in byte order of the
// paths). Computing it from what was written, rather than trusting the
// spec's, is how Add knows the tree is the spec's content, byte for byte.
//
// It differs from extract.Digest (which also covers directories, modes and
// symlinks, in its own encoding), which is why the two are separate
// schemes. A files tree is plain: regular files 0644 and the directories
// holding them; a symlink, an executable file or an empty directory
// (which the listing could not tell apart from its absence) is refused.
func FilesDigest(dir string) (string, error) {
	root, err := safefs.Open(dir)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", dir, err)
	}
	defer root.Close()
	sums := map[string]string{}
	if err := listFiles(root, "", sums); err != nil {
		return "", fmt.Errorf("digest %s: %w", dir, err)
	}
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	listing := sha256.New()
	for _, p := range paths {
		io.WriteString(listing, sums[p]+"  "+p+"\n")
	}
	return digestPrefix + hex.EncodeToString(listing.Sum(nil)), nil
}

// listFiles adds each regular file below d (at rel) to sums, path → hex
// SHA-256 of its content.
func listFiles(d *safefs.Dir, rel string, sums map[string]string) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	if len(names) == 0 && rel != "" {
		return fmt.Errorf("%s: an empty directory (a files tree holds files)", rel)
	}
	for _, name := range names {
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		st, err := d.Lstat(name)
		if err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sub, err := d.OpenDir(name)
			if err != nil {
				return err
			}
			err = listFiles(sub, p, sums)
			sub.Close()
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if st.Mode&0o111 != 0 {
				return fmt.Errorf("%s: an executable file (a files tree's are 0644)", p)
			}
			f, err := d.OpenFile(name)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			sums[p] = hex.EncodeToString(h.Sum(nil))
		default:
			return fmt.Errorf("%s: not a regular file (a files tree holds only files and directories)", p)
		}
	}
	return nil
}
