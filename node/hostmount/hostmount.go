// Package hostmount detaches mounts in the host's mount namespace (PID
// 1's) from a node agent that systemd runs in a namespace of its own
// (ProtectSystem=strict).
//
// A game's overlay unit mounts the overlay on the host as the game starts;
// the agent detaches the host's copy here once the game's own namespace
// holds it, or the game has stopped (see unit.Service): a copy on the host
// only slows every later start.
package hostmount

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// HostNamespace is the mount namespace mounts are made in.
const HostNamespace = "/proc/1/ns/mnt"

// Host mounts in HostNamespace.
type Host struct{}

// Detach is a lazy umount(2) of where in the host's namespace: where
// leaves the host's mount table at once, and the file system lives on
// while something still uses it (a game's namespace holds its own copy
// anyway). Not mounted is no error; a symlink at where is not followed.
func (Host) Detach(where string) error {
	return inHost(func() error {
		err := unix.Unmount(where, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == unix.EINVAL { // not a mount point (any more)
			return nil
		}
		if err != nil {
			return fmt.Errorf("detach %s in the host's namespace: %w", where, err)
		}
		return nil
	})
}

// inHost runs f on a thread of its own that entered the host's mount
// namespace. The thread is never given back to the Go scheduler (no
// UnlockOSThread): it ends with the goroutine, so no other goroutine ever
// runs in that namespace.
func inHost(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// setns(CLONE_NEWNS) refuses a thread that shares its filesystem
		// attributes (root, cwd) with others, as Go's threads do.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare the filesystem attributes: %w", err)
			return
		}
		fd, err := unix.Open(HostNamespace, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("open %s: %w", HostNamespace, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("enter the host's mount namespace: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}
