package extract

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/node/safefs"
)

// digestVersion starts every digest's input, so a change to what is hashed
// can never give an old tree's digest to different content.
const digestVersion = "left4me tree digest v1\x00"

// Digest names a tree by its content: "sha256:<hex>" over every entry's
// path below dir, its type, its normalized mode (a file is executable or
// not; nothing else of the mode counts), a file's size and content, a
// symlink's target. Owners, times and the order a directory lists its
// entries in do not count, so the same content fetched on two nodes, or
// twice, gets the same name, and any change to it a new one. The entries
// go in walk order (each directory's names in byte order, a directory
// before its contents), each as a type byte and length-prefixed fields,
// so no two trees encode alike.
//
// Run it on a tree Verify accepted: it refuses devices, fifos and sockets
// but checks nothing else.
func Digest(dir string) (string, error) {
	root, err := safefs.Open(dir)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", dir, err)
	}
	defer root.Close()
	h := sha256.New()
	io.WriteString(h, digestVersion)
	file := sha256.New()
	err = walk(root, "", func(parent *safefs.Dir, name, rel string, st *unix.Stat_t) (bool, error) {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			h.Write([]byte{'d'})
			writeString(h, rel)
			return true, nil
		case unix.S_IFREG:
			f, err := parent.OpenFile(name)
			if err != nil {
				return false, err
			}
			defer f.Close()
			file.Reset()
			n, err := io.Copy(file, f)
			if err != nil {
				return false, err
			}
			t := byte('f')
			if st.Mode&0o111 != 0 {
				t = 'x'
			}
			h.Write([]byte{t})
			writeString(h, rel)
			writeUint(h, uint64(n))
			h.Write(file.Sum(nil))
			return false, nil
		case unix.S_IFLNK:
			target, err := parent.Readlink(name)
			if err != nil {
				return false, err
			}
			h.Write([]byte{'l'})
			writeString(h, rel)
			writeString(h, target)
			return false, nil
		}
		return false, fmt.Errorf("%w: a %s", ErrUnsafe, typeName(st.Mode))
	})
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writeUint(h hash.Hash, n uint64) {
	h.Write(binary.AppendUvarint(nil, n))
}

func writeString(h hash.Hash, s string) {
	writeUint(h, uint64(len(s)))
	io.WriteString(h, s)
}
