#!/usr/bin/env bash
# hack/sandbox.sh boots a real systemd as PID 1 in a throw-away "host" for
# tests and the demo, and tears it down without a trace.
#
#   hack/sandbox.sh up NAME      boot; prints the PID of the sandbox's systemd
#   hack/sandbox.sh up NAME --net ADDR/PREFIX --bridge BR
#                                boot with its own network namespace: eth0
#                                with ADDR, on a veth pair whose other end
#                                (l4v-NAME) joins bridge BR, which the caller
#                                made in its own network namespace
#   hack/sandbox.sh link NAME up|down   plug or cut the sandbox's cable
#   hack/sandbox.sh exec NAME CMD...   run CMD inside (all namespaces)
#   hack/sandbox.sh pid NAME     the PID of the sandbox's systemd, if running
#   hack/sandbox.sh down NAME    kill everything inside, remove the cgroup
#                                and the state dir (idempotent)
#
# The sandbox sees the host's root through an overlay whose upper layer is a
# tmpfs, so nothing it writes reaches the host: systemd booted with the
# host's root writable would wipe /tmp and write /var. Without --net it
# shares the caller's network namespace (its game servers answer on the
# caller's loopback); it always gets its own pid, mount, cgroup, uts and ipc
# namespaces. /var/lib/left4me
# inside is a real directory of the host (STATE/left4me), so overlayfs can
# use it for upper dirs and tests can prepare it from outside.
#
# Environment: L4M_SANDBOX_STATE (default /var/tmp/l4m-sandbox) holds one
# directory per sandbox.
set -euo pipefail

state_root=${L4M_SANDBOX_STATE:-/var/tmp/l4m-sandbox}
cg_root=/sys/fs/cgroup/unified
[ -f "$cg_root/cgroup.procs" ] || cg_root=/sys/fs/cgroup
# Units the host image enables that must not start in a sandbox.
masked_units="etcd.service etcd2.service postgresql.service e2scrub_reap.service getty@.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer"

die() { echo "sandbox: $*" >&2; exit 1; }

name_ok() { [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad sandbox name '$1'"; }

# veth is the caller's end of a sandbox's cable (interface names: 15 bytes).
veth() { echo "l4v-${1:0:11}"; }

sandbox_pid() {
  local dir=$state_root/$1
  [ -f "$dir/pid" ] || return 1
  local pid; pid=$(cat "$dir/pid")
  [ -d "/proc/$pid" ] && grep -q "l4m-sandbox-$1" "/proc/$pid/cgroup" 2>/dev/null || return 1
  echo "$pid"
}

# inner runs as PID 1 of the new namespaces: build the root, pivot, exec systemd.
inner() {
  local name=$1 dir=$2
  local root=$dir/root
  mount --make-rprivate /
  mount -t tmpfs -o mode=0755 tmpfs "$dir/tmpfs"
  mkdir -p "$dir/tmpfs/upper" "$dir/tmpfs/work"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/tmpfs/upper,workdir=$dir/tmpfs/work" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"
  mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
  for d in null zero full random urandom tty fuse; do
    [ -e "/dev/$d" ] || continue
    touch "$root/dev/$d"
    mount --bind "/dev/$d" "$root/dev/$d"
  done
  mkdir -p "$root/dev/pts" "$root/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
  ln -s pts/ptmx "$root/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
  mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
  mkdir -p "$root/var/lib/left4me"
  mount --bind "$dir/left4me" "$root/var/lib/left4me"
  for u in $masked_units; do ln -sf /dev/null "$root/etc/systemd/system/$u"; done
  echo "$name" > "$root/etc/hostname"
  hostname "$name"
  : > "$root/etc/machine-id"
  cd "$root"
  mkdir -p .oldroot
  pivot_root . .oldroot
  cd /
  umount -l /.oldroot
  rmdir /.oldroot
  # A booted host's root is shared (systemd makes it so outside containers):
  # services' private mount namespaces then follow mounts made later.
  mount --make-rshared /
  exec env -i container="l4m-$name" TERM=dumb /lib/systemd/systemd --unit=multi-user.target --log-target=console
}

up() {
  local name=$1; name_ok "$name"; shift
  local addr="" bridge="" netns=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --net) addr=$2; shift 2 ;;
      --bridge) bridge=$2; shift 2 ;;
      *) die "up: unknown option $1" ;;
    esac
  done
  if [ -n "$addr" ]; then
    [ -n "$bridge" ] || die "up: --net needs --bridge"
    [[ "$addr" =~ ^[0-9.]+/[0-9]+$ ]] || die "up: --net wants ADDR/PREFIX, not '$addr'"
    ip link show "$bridge" >/dev/null 2>&1 || die "up: no bridge $bridge in this network namespace"
    netns=(--net)
  fi
  sandbox_pid "$name" >/dev/null && die "sandbox $name is already running"
  local dir=$state_root/$name cg=$cg_root/l4m-sandbox-$name
  rm -rf "$dir"
  mkdir -p "$dir/root" "$dir/tmpfs" "$dir/left4me"
  mkdir -p "$cg"
  # The launcher moves itself into the sandbox's cgroup, so that the cgroup
  # namespace's root is that directory and systemd manages only it.
  (
    echo "$BASHPID" > "$cg/cgroup.procs"
    exec unshare --fork --pid --mount --cgroup --uts --ipc "${netns[@]}" --propagation private \
      "$0" __inner "$name" "$dir"
  ) </dev/null >"$dir/console.log" 2>&1 &
  local launcher=$!
  echo "$launcher" > "$dir/launcher"
  # PID 1 inside is unshare's child.
  local pid="" i
  for i in $(seq 100); do
    pid=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null | awk '{print $1}')
    [ -n "$pid" ] && break
    sleep 0.05
  done
  [ -n "$pid" ] || { cat "$dir/console.log" >&2; down "$name"; die "sandbox $name did not start"; }
  echo "$pid" > "$dir/pid"
  if [ -n "$addr" ]; then
    local v; v=$(veth "$name")
    ip link del "$v" 2>/dev/null || true
    if ! { ip link add "$v" type veth peer name eth0 netns "$pid" &&
           ip link set "$v" master "$bridge" up &&
           nsenter -t "$pid" -n ip addr add "$addr" dev eth0 &&
           nsenter -t "$pid" -n ip link set eth0 up &&
           nsenter -t "$pid" -n ip link set lo up; }; then
      down "$name"; die "sandbox $name: could not wire $addr to $bridge"
    fi
    echo "$addr" > "$dir/addr"
  fi
  local st=""
  for i in $(seq 300); do
    st=$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)
    case "$st" in running|degraded) break ;; esac
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  case "$st" in
    running|degraded) echo "$pid" ;;
    *) tail -30 "$dir/console.log" >&2; down "$name"; die "sandbox $name did not reach running (state '$st')" ;;
  esac
}

down() {
  local name=$1; name_ok "$name"
  local dir=$state_root/$name cg=$cg_root/l4m-sandbox-$name pid launcher
  pid=$(sandbox_pid "$name" || true)
  # Killing PID 1 of a pid namespace kills everything in it; the mounts of
  # the private mount namespace go with its last process.
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  # The caller's end of the cable dies with the sandbox's namespace; this
  # only catches a sandbox that was never fully up.
  [ -f "$dir/addr" ] && ip link del "$(veth "$name")" 2>/dev/null || true
  if [ -f "$dir/launcher" ]; then
    launcher=$(cat "$dir/launcher")
    for _ in $(seq 100); do [ -d "/proc/$launcher" ] || break; sleep 0.05; done
  fi
  if [ -d "$cg" ]; then
    # Anything left (it should not be) is killed by PID, then the cgroup
    # tree is removed depth-first.
    for _ in $(seq 100); do
      local left; left=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')
      [ -z "${left// /}" ] && break
      kill -KILL $left 2>/dev/null || true
      sleep 0.05
    done
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$cg" ] && die "could not remove cgroup $cg"
  fi
  if [ -d "$dir" ]; then
    # The state dir holds no mounts (they lived in the sandbox's namespace);
    # make sure before deleting, then remove it, root-owned 000 dirs included.
    if grep -q " $dir/" /proc/self/mountinfo; then die "mounts remain under $dir"; fi
    chmod -R u+rwx "$dir" 2>/dev/null || true
    rm -rf "$dir"
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  up) up "$@" ;;
  down) down "$@" ;;
  pid) name_ok "$1"; sandbox_pid "$1" || die "sandbox $1 is not running" ;;
  link) name_ok "$1"; [[ "${2:-}" =~ ^(up|down)$ ]] || die "link NAME up|down"
        ip link set "$(veth "$1")" "$2" ;;
  exec) name=$1; shift; name_ok "$name"; pid=$(sandbox_pid "$name") || die "sandbox $name is not running"; exec nsenter -t "$pid" -a "$@" ;;
  __inner) inner "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
