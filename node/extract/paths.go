package extract

import (
	"fmt"
	"io/fs"
	"strings"
)

// The decisions about names, link targets and modes: pure, so the tests
// can go through every case without an archive.

// components splits an archive name into its components, dropping empty
// and "." ones ("./a//b/" is a, b). It refuses what could land outside the
// tree or cannot be a Linux file name: absolute names, "..", NUL bytes, and
// backslashes (a zip made on Windows; on Linux they are not separators,
// so "..\x" is one odd file name, refused rather than guessed at).
func components(name string) ([]string, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: empty name", ErrUnsafe)
	case strings.HasPrefix(name, "/"):
		return nil, fmt.Errorf("%w: absolute path", ErrUnsafe)
	case strings.ContainsRune(name, 0):
		return nil, fmt.Errorf("%w: NUL byte in the name", ErrUnsafe)
	case strings.ContainsRune(name, '\\'):
		return nil, fmt.Errorf("%w: backslash in the name (a zip made on Windows?)", ErrUnsafe)
	}
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("%w: \"..\" in the path", ErrUnsafe)
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// place says where an entry lands below dst: its path, or skip when it is
// a directory stripped to nothing or outside SubPath. o must have been
// through withDefaults.
func (o Options) place(name string, isDir bool) (rel string, skip bool, err error) {
	parts, err := components(name)
	if err != nil {
		return "", false, err
	}
	if len(parts) <= o.StripComponents {
		if isDir {
			return "", true, nil
		}
		if len(parts) == 0 {
			return "", false, fmt.Errorf("%w: empty name", ErrUnsafe)
		}
		return "", false, fmt.Errorf("%w: %d path components, stripComponents %d leaves nothing", ErrUnsafe, len(parts), o.StripComponents)
	}
	parts = parts[o.StripComponents:]
	if o.SubPath != "" {
		sub := strings.Split(o.SubPath, "/")
		if len(parts) < len(sub) || !equal(parts[:len(sub)], sub) {
			return "", true, nil
		}
		parts = parts[len(sub):]
		if len(parts) == 0 {
			if isDir {
				return "", true, nil
			}
			return "", false, fmt.Errorf("%w: subPath %q is not a directory in this archive", ErrUnsafe, o.SubPath)
		}
	}
	for _, c := range parts {
		if len(c) > maxNameLength {
			return "", false, fmt.Errorf("%w: a path component of %d bytes, more than %d", ErrLimit, len(c), maxNameLength)
		}
	}
	rel = strings.Join(parts, "/")
	if o.Into != "" {
		rel = o.Into + "/" + rel
	}
	if len(rel) > o.MaxPathLength {
		return "", false, fmt.Errorf("%w: a path of %d bytes below the destination, more than MaxPathLength (%d)", ErrLimit, len(rel), o.MaxPathLength)
	}
	return rel, false, nil
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// linkTarget checks the target of a symlink at rel (a path below the
// tree's root) and returns it with "." and empty components removed.
//
// The target must be relative, and ".." may appear only as a leading
// prefix, no more of them than rel has parent directories. That is enough
// for the kernel's resolution, not only the lexical one, to stay inside:
// the leading ".."s climb real directories (the link's own parents, which
// hold no symlink), and what follows only descends, each symlink it meets
// obeying the same rule. "a/../b" is refused even though it names "b":
// if a is a symlink, the kernel's ".." is taken from a's target.
func linkTarget(rel, target string, maxLen int) (string, error) {
	switch {
	case target == "":
		return "", fmt.Errorf("%w: a symlink with an empty target", ErrUnsafe)
	case strings.HasPrefix(target, "/"):
		return "", fmt.Errorf("%w: a symlink to the absolute path %q", ErrUnsafe, target)
	case strings.ContainsRune(target, 0):
		return "", fmt.Errorf("%w: NUL byte in the symlink's target", ErrUnsafe)
	case len(target) > maxLen:
		return "", fmt.Errorf("%w: a symlink target of %d bytes, more than MaxPathLength (%d)", ErrLimit, len(target), maxLen)
	}
	ups, names := 0, []string(nil)
	for _, c := range strings.Split(target, "/") {
		switch {
		case c == "" || c == ".":
		case c == ".." && len(names) > 0:
			return "", fmt.Errorf("%w: a symlink to %q (\"..\" after a name could leave the tree through another link)", ErrUnsafe, target)
		case c == "..":
			ups++
		default:
			names = append(names, c)
		}
	}
	if depth := strings.Count(rel, "/"); ups > depth {
		return "", fmt.Errorf("%w: a symlink to %q, which leaves the tree", ErrUnsafe, target)
	}
	clean := strings.Join(append(repeat("..", ups), names...), "/")
	if clean == "" {
		clean = "."
	}
	return clean, nil
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// fileMode is the mode a file lands with: 0755 if the archive gave it any
// execute bit, else 0644; setuid, setgid and sticky are dropped (stripped
// says so), as are the archive's other permission bits.
func fileMode(m fs.FileMode) (perm fs.FileMode, stripped bool) {
	stripped = m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0
	if m&0o111 != 0 {
		return 0o755, stripped
	}
	return 0o644, stripped
}

// dirMode is the mode of every directory: whatever the archive said, the
// tree must stay readable and writable by the extractor while it works.
const dirMode fs.FileMode = 0o755
