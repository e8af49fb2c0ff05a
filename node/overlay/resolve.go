// Package overlay turns a Blueprint's overlay references into directories
// that are safe to stack: each reference is checked as a string (the API's
// rules) and then resolved on the real filesystem with openat2 and
// RESOLVE_BENEATH, so no "..", absolute symlink or relative symlink can lead
// outside the overlays root. The kernel's own path of the opened directory
// is what gets mounted, and Verify re-checks it after mounting, so a
// symlink swapped in between is caught before the game starts.
package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/left4me/left4me/apis/validation"
)

// ErrNotSupported means the kernel lacks openat2 (Linux < 5.6).
var ErrNotSupported = errors.New("overlay: openat2 is not supported by this kernel")

// ErrEscapes means a reference leads outside the overlays root.
var ErrEscapes = errors.New("leads outside the overlays root")

// ErrInStore means a reference leads into the node's store of fetched
// overlays (overlays/.store), which only the node stacks, by digest.
var ErrInStore = errors.New("a path source may not name")

// Layer is one resolved overlay directory.
type Layer struct {
	// Ref is the reference as written in the Overlay.
	Ref string
	// Path is the kernel's absolute path of the directory: no symlinks.
	Path string
	dev  uint64
	ino  uint64
}

// Resolve checks ref against the string rules and resolves it beneath root.
// The error names ref and says what is wrong with it.
func Resolve(root, ref string) (*Layer, error) {
	if errs := validation.ValidateOverlayPath(ref, field.NewPath("path")); len(errs) > 0 {
		return nil, fmt.Errorf("overlay %q: %s", ref, errs[0].ErrorBody())
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open overlays root %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	fd, err := unix.Openat2(rootFD, ref, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOSYS):
		return nil, ErrNotSupported
	case errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("overlay %q: a symlink in it %w", ref, ErrEscapes)
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("overlay %q: no such directory below %s", ref, root)
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("overlay %q: not a directory", ref)
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("overlay %q: too many symlinks", ref)
	case err != nil:
		return nil, fmt.Errorf("overlay %q: %w", ref, err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("overlay %q: read its path: %w", ref, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("overlays root %s: %w", root, err)
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+"/") {
		return nil, fmt.Errorf("overlay %q: resolved to %s, which %w", ref, real, ErrEscapes)
	}
	// The string check keeps ".store/..." out; a symlink an admin left
	// could still lead there, to another tenant's fetched content.
	if store := realRoot + "/" + validation.OverlayStoreDir; real == store || strings.HasPrefix(real, store+"/") {
		return nil, fmt.Errorf("overlay %q: resolved to %s, the node's store of fetched overlays, which %w", ref, real, ErrInStore)
	}
	// overlayfs splits lowerdir on ':' and ','; such a path cannot be mounted
	// safely as written.
	if strings.ContainsAny(real, ":,\\") {
		return nil, fmt.Errorf("overlay %q: its path %s holds ':', ',' or '\\', which overlayfs options cannot carry", ref, real)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("overlay %q: %w", ref, err)
	}
	return &Layer{Ref: ref, Path: real, dev: st.Dev, ino: st.Ino}, nil
}

// Verify re-opens Path without following any symlink and checks it is still
// the directory Resolve found. Call it after mounting: a swap in between
// fails here.
func (l *Layer) Verify() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, l.Path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("overlay %q changed after it was checked: %s: %w", l.Ref, l.Path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("overlay %q: %w", l.Ref, err)
	}
	if st.Dev != l.dev || st.Ino != l.ino {
		return fmt.Errorf("overlay %q changed after it was checked: %s is another directory now", l.Ref, l.Path)
	}
	return nil
}
