#!/usr/bin/env bash
# make run: the whole single-machine system as far as it exists today:
# l4m-server with embedded etcd, its data under .data/ in this checkout.
# Nothing outside the checkout is written.
set -euo pipefail
cd "$(dirname "$0")/.."
data="$PWD/.data"
listen="${LISTEN:-127.0.0.1:6443}"
mkdir -p "$data"
cat <<HINT
left4me API on https://$listen (etcd embedded, data in $data)

In another shell (the admin config appears at first start):
  export L4MCONFIG=$data/server/admin.yaml PATH=$PWD/bin:\$PATH
  l4mctl apply -f config/samples/
  l4mctl get instances -o wide
  l4mctl get instances -w

Stop with Ctrl-C; 'make clean-data' forgets everything.
HINT
exec ./bin/l4m-server --data-dir "$data/server" --listen "$listen"
