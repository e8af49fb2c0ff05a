#!/usr/bin/env bash
# Keeps the dependency direction honest: the CLI and the node agent talk to
# the API server only, so they must not link etcd's server, the storage
# package, or (for l4mctl) systemd; apis/ depends on nothing above it:
# the controllers and their leader election are wired in by cmd/l4m-server;
# and node/steamcmd, node/workshop, node/extract, node/fetcher and
# node/store depend on nothing of the agent's.
set -euo pipefail
cd "$(dirname "$0")/.."
module=$(go list -m)
fail=0
check() { # binary, forbidden regexp
  local bad
  bad=$(go list -deps "./cmd/$1" | grep -E "$2" || true)
  if [ -n "$bad" ]; then
    echo "cmd/$1 must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
  fi
}
check l4mctl "^go\.etcd\.io/etcd/(server|client)|^github\.com/coreos/go-systemd|^${module}/apis/storage|^${module}/apis/server"
check l4m-node "^go\.etcd\.io/etcd/(server|client)|^${module}/apis/storage|^${module}/apis/server"
bad=$(go list -deps ./apis/... | grep -E "^${module}/(controllers|node|cmd)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "apis/... must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/steamcmd is a part the agent uses (it implements the agent's
# Steamcmd): it knows nothing of the agent, the API or the controllers.
bad=$(go list -deps ./node/steamcmd | grep -E "^${module}/(node/agent|apis|controllers|cmd)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "node/steamcmd must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/workshop is the Steam Web API client the overlay fetcher uses: it
# knows nothing of the agent, the API, the controllers or the doubles.
bad=$(go list -deps ./node/workshop | grep -E "^${module}/(node/agent|apis|controllers|cmd|hack)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "node/workshop must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/extract runs inside the unprivileged fetcher as well as the agent:
# it knows nothing of the agent, the API, the controllers or the binaries.
bad=$(go list -deps ./node/extract | grep -E "^${module}/(node/agent|apis|controllers|cmd)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "node/extract must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/fetcher runs as the unprivileged fetcher (l4m-node fetch)
# as well as in the agent: it knows nothing of the agent, the API server,
# the controllers or the binaries.
bad=$(go list -deps ./node/fetcher | grep -E "^${module}/(node/agent|apis/server|apis/storage|controllers|cmd)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "node/fetcher must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/store is the node's overlay store: what it accepts and how it names
# it depend on the tree alone, never on the agent, the API or the binaries.
bad=$(go list -deps ./node/store | grep -E "^${module}/(node/agent|apis|controllers|cmd)(/|$)" || true)
if [ -n "$bad" ]; then
  echo "node/store must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# node/transfer is shared by the fetcher and the Workshop client: it
# depends on nothing of this module.
bad=$(go list -deps ./node/transfer | grep -E "^${module}/" | grep -v "^${module}/node/transfer$" || true)
if [ -n "$bad" ]; then
  echo "node/transfer must not depend on:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
# go-git parses what a tenant's repository serves: only node/fetcher,
# which runs it as the unprivileged fetcher account, imports it (the agent
# links node/fetcher for its Runner, but never reads a repository as root).
bad=$(go list -f '{{.ImportPath}} {{join .Imports " "}}' ./... | grep -E ' github\.com/go-git/' | cut -d' ' -f1 | grep -v "^${module}/node/fetcher$" || true)
if [ -n "$bad" ]; then
  echo "only node/fetcher may import go-git:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
[ $fail -eq 0 ] && echo "dependency direction ok"
exit $fail
