#!/usr/bin/env bash
# make run: the whole single-machine system.
#   - l4m-server with embedded etcd, data in .data/server of this checkout
#   - one sandbox host (hack/sandbox.sh: real systemd as PID 1 over a
#     throw-away root) named node-1, bare: no game installed, only the
#     steamcmd double at steamcmd/steamcmd.sh (Steam cannot be reached
#     here; remote.json beside it says which build "Steam" holds, and the
#     game it installs is the srcds double) and the samples' overlay
#     directories
#   - what the samples' Overlays are fetched from: a release archive and a
#     git repository on the node (archives/, the node's overlayFileRoots),
#     and the Steam Web API double on loopback serving Workshop items
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
# l4m-node's Prometheus metrics (the sandbox shares this loopback).
metrics="${METRICS:-127.0.0.1:9740}"
node=node-1
mkdir -p "$data"
export L4MCONFIG="$data/server/admin.yaml"
l4mctl="$PWD/bin/l4mctl"

server_pid=""
steam_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping: sandbox $node, the Steam Web API double, l4m-server"
  ./hack/sandbox.sh down "$node" || true
  [ -n "$steam_pid" ] && kill "$steam_pid" 2>/dev/null && wait "$steam_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./bin/l4m-server --data-dir "$data/server" --listen "$listen" >"$data/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -f "$L4MCONFIG" ] && "$l4mctl" version >/dev/null 2>&1 && break; sleep 0.1; done
"$l4mctl" version >/dev/null || { cat "$data/server.log"; exit 1; }

# The dashboard's admin: a password user whose password is in a 0600 file
# (made once; a later run with the same .data keeps both).
pwfile="$data/server/dashboard-password"
new_password() { (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$pwfile"); }
if ! "$l4mctl" get users admin >/dev/null 2>&1; then
  new_password
  "$l4mctl" user create admin --role admin --password-stdin < "$pwfile" >/dev/null
elif [ ! -s "$pwfile" ]; then
  new_password   # the file was removed: give admin a new password
  "$l4mctl" user passwd admin --password-stdin < "$pwfile" >/dev/null
fi

./hack/sandbox.sh down "$node" >/dev/null 2>&1 || true
./hack/sandbox.sh up "$node" >/dev/null
root="${L4M_SANDBOX_STATE:-/var/tmp/l4m-sandbox}/$node/left4me"
mkdir -p "$root/steamcmd" "$root/archives" "$root/bin"
# The node installs the samples' Installation l4d2 with this "steamcmd".
cp bin/steamcmd-double "$root/steamcmd/steamcmd.sh"
cp bin/srcds-double "$root/steamcmd/srcds-double"
build=18012455
printf '{"branches": {"public": {"buildid": "%s", "size": 8589934592}}}\n' "$build" > "$root/steamcmd/remote.json"
cp bin/l4m-node "$root/bin/l4m-node"

# What the samples' Overlays fetch: an archive and a git repository below
# the node's /var/lib/left4me/archives, and the Workshop catalog.
./hack/sample-sources.sh "$root" "$data"
rm -f "$data/steam/addr"
./bin/steam-api-double --listen 127.0.0.1:0 --catalog "$data/steam/catalog.json" --addr-file "$data/steam/addr" >"$data/steam.log" 2>&1 &
steam_pid=$!
for _ in $(seq 100); do [ -s "$data/steam/addr" ] && break; sleep 0.1; done
[ -s "$data/steam/addr" ] || { cat "$data/steam.log"; exit 1; }
steam_url="http://$(cat "$data/steam/addr")"

token=$("$l4mctl" token create node "$node" 2>/dev/null)
python3 - "$L4MCONFIG" "$token" "$steam_url" > "$root/node.yaml" <<'PY'
import sys
src = open(sys.argv[1]).read().splitlines()
out = [l for l in src if not l.startswith("token:")]
out.append("token: " + sys.argv[2])
out.append("node:")
out.append("  overlayFileRoots: [/var/lib/left4me/archives]")
out.append("  steamAPIURL: " + sys.argv[3])
print("\n".join(out))
PY
chmod 600 "$root/node.yaml"
./hack/sandbox.sh exec "$node" systemd-run --unit=l4m-node -p ProtectSystem=strict -p PrivateTmp=yes \
  -p "ReadWritePaths=/var/lib/left4me /run/systemd/system /etc" \
  /var/lib/left4me/bin/l4m-node --config /var/lib/left4me/node.yaml --node-name "$node" \
  --metrics-bind-address "$metrics" >/dev/null

"$l4mctl" apply -f config/samples/

cat <<HINT

left4me is running: API https://$listen (etcd embedded, data in $data), node $node in a sandbox host.

Dashboard: https://$listen/ui/ — log in as admin with the password in $pwfile
  (cat it; the certificate is signed by l4m-server's own CA, $data/server/pki/ca.crt:
  import it into the browser, or accept the warning once).

In another shell:
  export L4MCONFIG=$L4MCONFIG PATH=$PWD/bin:\$PATH
  l4mctl get installations -w            # the node installs the game: Downloading → Ready
  l4mctl describe installation l4d2      # build $build, per node
  l4mctl get instances -o wide -w        # Pending → Running with players/max, map and build
  l4mctl describe instance versus-1
  l4mctl logs versus-1 -f
  l4mctl get nodes -o wide
  # Prometheus metrics: the node's (players, up, CPU, memory, restarts, A2S
  # answer time per Instance) and the API server's (admins only)
  curl -s http://$metrics/metrics | grep ^left4me_
  curl -s --cacert $data/server/pki/ca.crt -H "Authorization: Bearer \$(sed -n 's/^token: //p' $L4MCONFIG)" https://$listen/metrics | grep ^left4me_
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
  # Overlays: where each layer comes from, its digest, the nodes that have it
  l4mctl get overlays -o wide
  l4mctl describe overlay coop-maps      # the Workshop items, titles and sizes
  # a new commit on the competitive branch: within its checkInterval (1m)
  # the node fetches it and the empty versus servers restart onto it
  cd $data/competitive && echo 'sv_alltalk 1' >> server.cfg && git commit -qam 'alltalk' && git push -q origin main; cd -
  l4mctl describe overlay competitive    # the commit

Ctrl-C stops the node, the sandbox and the server; 'make clean-data' forgets the objects.
HINT
wait "$server_pid"
