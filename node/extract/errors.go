package extract

import (
	"errors"
	"fmt"
)

// The kinds of refusal, for errors.Is; the messages say the rest.
var (
	// ErrUnsafe: an entry that would land outside the tree or write
	// through a link (an absolute path, "..", a symlink or hardlink
	// pointing out, a path crossing an earlier symlink), or a tree entry a
	// root-owned store must not hold (a device, fifo or socket, setuid or
	// setgid, writable by others, hardlinked).
	ErrUnsafe = errors.New("unsafe")
	// ErrLimit: more entries, a bigger entry, more bytes or a longer path
	// than the limits allow.
	ErrLimit = errors.New("over the limit")
	// ErrCorrupt: the archive is truncated or its compression is damaged.
	ErrCorrupt = errors.New("truncated or corrupt archive")
	// ErrDuplicate: a second entry for a path an earlier one made.
	ErrDuplicate = errors.New("duplicate entry")
	// ErrFormat: not an archive of a format this package reads, or an
	// entry type it does not know.
	ErrFormat = errors.New("unsupported archive")
)

// EntryError is a refusal or failure at one archive entry (or one path of
// a tree Verify walks), named as the archive names it. A failure of the
// archive as a whole (not an archive, a damaged first header) is an error
// starting "archive: " instead.
type EntryError struct {
	// Entry is the entry's name in the archive.
	Entry string
	// After is set when the failure is in what follows Entry (its next
	// header, or the archive's end).
	After bool
	Err   error
}

func (e *EntryError) Error() string {
	if e.After {
		return fmt.Sprintf("after entry %q: %v", e.Entry, e.Err)
	}
	return fmt.Sprintf("entry %q: %v", e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

func archiveErr(err error) error { return fmt.Errorf("archive: %w", err) }

// afterErr is a failure past the last entry read, if any.
func afterErr(prev *string, err error) error {
	if prev == nil {
		return archiveErr(err)
	}
	return &EntryError{Entry: *prev, After: true, Err: err}
}

func entryErr(name string, kind error, format string, args ...any) error {
	return &EntryError{Entry: name, Err: fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))}
}

// corrupt marks a read error as ErrCorrupt, keeping the reader's own error
// in the chain and the message.
func corrupt(err error) error { return fmt.Errorf("%w: %w", ErrCorrupt, err) }

// sizeString writes a byte count for a message: "2 GiB", "300 bytes",
// "1.9 KiB (2000 bytes)".
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	name := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, name)
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", float64(n)/float64(div), name, n)
}
