// Package hostmount mounts and unmounts in the host's mount namespace (PID
// 1's) from a node agent that systemd runs in a namespace of its own
// (ProtectSystem=strict).
//
// Why not a mount unit: systemd takes 120-160 ms to start an overlay
// .mount unit even on an idle host, and much longer while a hundred games
// start (380-680 ms, measured in a burst); mount(2) itself takes 2 ms.
// The unit file stays: systemd sees the mount appear and counts its unit
// active, and a game's crash restart (Wants= the unit) mounts through it.
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

// Mount is mount(2) of what on where (an absolute path in the host's
// namespace), of fstype with options, in the host's namespace.
func (Host) Mount(what, where, fstype, options string) error {
	return inHost(func() error {
		if err := unix.Mount(what, where, fstype, 0, options); err != nil {
			return fmt.Errorf("mount %s on %s in the host's namespace: %w", fstype, where, err)
		}
		return nil
	})
}

// Unmount is umount(2) of where in the host's namespace; it fails (EBUSY)
// rather than detach a mount something uses. Not mounted is no error.
func (Host) Unmount(where string) error {
	return inHost(func() error {
		err := unix.Unmount(where, unix.UMOUNT_NOFOLLOW)
		if err == unix.EINVAL { // not a mount point (any more)
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s in the host's namespace: %w", where, err)
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
