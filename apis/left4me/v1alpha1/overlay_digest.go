package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
)

// DigestPrefix starts every content digest: the algorithm, as OCI writes it.
const DigestPrefix = "sha256:"

// IsDigest reports whether s is a content digest: "sha256:" and 64
// lowercase hex digits.
func IsDigest(s string) bool {
	hexPart, ok := strings.CutPrefix(s, DigestPrefix)
	return ok && isLowerHex(hexPart, sha256.Size*2)
}

// ShortDigest is the first 12 hex digits of a digest, as l4mctl shows it
// (docker's short image ids); anything that is not a digest is returned as
// it is.
func ShortDigest(d string) string {
	if !IsDigest(d) {
		return d
	}
	return d[len(DigestPrefix) : len(DigestPrefix)+12]
}

// IsSHA256Hex reports whether s is a SHA-256 in lowercase hex, as an
// archive source's sha256 is written.
func IsSHA256Hex(s string) bool { return isLowerHex(s, sha256.Size*2) }

// IsCommitID reports whether s is a full git commit id: 40 lowercase hex
// digits (SHA-1), or 64 in a SHA-256 repository.
func IsCommitID(s string) bool { return isLowerHex(s, 40) || isLowerHex(s, 64) }

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IsWorkshopID reports whether s is a Steam Workshop published file id as
// Steam writes it: a non-zero decimal uint64, no sign, no leading zero.
// Validation checks specs with it; the Workshop client checks what Steam
// answers with it.
func IsWorkshopID(s string) bool {
	if s == "" || s[0] == '0' || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// FilesDigest is the content digest of a files source: "sha256:" and the
// SHA-256 of its sha256sum listing. The listing has one line per file, in
// byte order of the paths (LC_ALL=C sort): the hex SHA-256 of the file's
// content, two spaces, its path, a newline. With the files written out
// below a directory, coreutils compute the same:
//
//	cd DIR && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
//
// Modes are not part of it: a files tree is always regular files 0644 in
// directories 0755. Validation keeps the paths free of newlines and
// backslashes, which sha256sum would escape. The same files give the same
// digest on every node and in the API, whatever the map's order.
func FilesDigest(files map[string]string) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	listing := sha256.New()
	for _, p := range paths {
		sum := sha256.Sum256([]byte(files[p]))
		listing.Write([]byte(hex.EncodeToString(sum[:]) + "  " + p + "\n"))
	}
	return DigestPrefix + hex.EncodeToString(listing.Sum(nil))
}
