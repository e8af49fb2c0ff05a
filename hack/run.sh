#!/usr/bin/env bash
# make run: the whole single-machine system.
#   - l4m-server with embedded etcd, data in .data/server of this checkout
#   - one sandbox host (hack/sandbox.sh: real systemd as PID 1 over a
#     throw-away root) named node-1, bare: no game installed, only the
#     steamcmd double at steamcmd/steamcmd.sh (Steam cannot be reached
#     here; remote.json beside it says which build "Steam" holds, and the
#     game it installs is the srcds double) and the samples' overlay
#     directories
#   - l4m-node inside it, hardened as in production
#   - config/samples/ applied
# Ctrl-C stops everything; the sandbox leaves no trace. Nothing is written
# outside this checkout but the sandbox's state dir (/var/tmp/l4m-sandbox),
# which goes with it. Needs root (mounts, namespaces, systemd).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make run needs root: it boots a sandbox host with systemd" >&2; exit 1; }
data="$PWD/.data"
listen="${LISTEN:-127.0.0.1:6443}"
node=node-1
mkdir -p "$data"
export L4MCONFIG="$data/server/admin.yaml"
l4mctl="$PWD/bin/l4mctl"

server_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping: sandbox $node, l4m-server"
  ./hack/sandbox.sh down "$node" || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./bin/l4m-server --data-dir "$data/server" --listen "$listen" >"$data/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -f "$L4MCONFIG" ] && "$l4mctl" version >/dev/null 2>&1 && break; sleep 0.1; done
"$l4mctl" version >/dev/null || { cat "$data/server.log"; exit 1; }

./hack/sandbox.sh down "$node" >/dev/null 2>&1 || true
./hack/sandbox.sh up "$node" >/dev/null
root="${L4M_SANDBOX_STATE:-/var/tmp/l4m-sandbox}/$node/left4me"
mkdir -p "$root/steamcmd" "$root/overlays/sourcemod/left4dead2/cfg" "$root/overlays/configs/competitive/left4dead2/cfg" "$root/bin"
# The node installs the samples' Installation l4d2 with this "steamcmd".
cp bin/steamcmd-double "$root/steamcmd/steamcmd.sh"
cp bin/srcds-double "$root/steamcmd/srcds-double"
build=18012455
printf '{"branches": {"public": {"buildid": "%s", "size": 8589934592}}}\n' "$build" > "$root/steamcmd/remote.json"
cp bin/l4m-node "$root/bin/l4m-node"
printf 'sm_show_activity "0"\n' > "$root/overlays/sourcemod/left4dead2/cfg/server.cfg"
printf 'hostname "left4me competitive (from its overlay)"\n' > "$root/overlays/configs/competitive/left4dead2/cfg/server.cfg"

token=$("$l4mctl" token create node "$node" 2>/dev/null)
python3 - "$L4MCONFIG" "$token" > "$root/node.yaml" <<'PY'
import sys
src = open(sys.argv[1]).read().splitlines()
out = [l for l in src if not l.startswith("token:")]
out.append("token: " + sys.argv[2])
print("\n".join(out))
PY
chmod 600 "$root/node.yaml"
./hack/sandbox.sh exec "$node" systemd-run --unit=l4m-node -p ProtectSystem=strict -p PrivateTmp=yes \
  -p "ReadWritePaths=/var/lib/left4me /run/systemd/system /etc" \
  /var/lib/left4me/bin/l4m-node --config /var/lib/left4me/node.yaml --node-name "$node" >/dev/null

"$l4mctl" apply -f config/samples/

cat <<HINT

left4me is running: API https://$listen (etcd embedded, data in $data), node $node in a sandbox host.

In another shell:
  export L4MCONFIG=$L4MCONFIG PATH=$PWD/bin:\$PATH
  l4mctl get installations -w            # the node installs the game: Downloading → Ready
  l4mctl describe installation l4d2      # build $build, per node
  l4mctl get instances -o wide -w        # Pending → Running with players/max, map and build
  l4mctl describe instance versus-1
  l4mctl logs versus-1 -f
  l4mctl get nodes -o wide
  # query a server the way the server browser does (A2S_INFO), at the
  # ADDRESS and port that get -o wide shows (the scheduler allocated it):
  go run ./hack/a2s-query 127.0.0.1:27015
  # look inside the host:
  hack/sandbox.sh exec $node systemctl status 'l4m-*'
  hack/sandbox.sh exec $node ls /var/lib/left4me/installation/l4d2/builds
  # Valve ships a new build: "Steam" has it; ask the nodes to look now
  # (else they do every checkInterval) and the empty servers move onto it:
  sed -i 's/$build/$((build + 1))/' $root/steamcmd/remote.json
  l4mctl annotate installation l4d2 left4me.io/checkRequestedAt=\$(date -u +%FT%TZ) --overwrite
  l4mctl rollout status installation/l4d2

Ctrl-C stops the node, the sandbox and the server; 'make clean-data' forgets the objects.
HINT
wait "$server_pid"
