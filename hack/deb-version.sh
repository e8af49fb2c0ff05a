#!/usr/bin/env bash
# Prints the Debian version of this checkout, from git: v1.2.3 tagged →
# 1.2.3; N commits after it → 1.2.3+N.gSHA; no tag yet → 0.0.0+N.gSHA (N
# counts every commit, so a later build always sorts higher and dpkg sees
# an upgrade); uncommitted changes add ~dirty (sorting before the clean
# build of the same commit; untracked files count). A pre-release tag's "-"
# becomes "~". DEB_VERSION overrides it.
set -euo pipefail
if [ -n "${DEB_VERSION:-}" ]; then echo "$DEB_VERSION"; exit 0; fi
cd "$(dirname "$0")/.."
if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "deb-version: a shallow clone cannot count its commits (git fetch --unshallow, or set DEB_VERSION)" >&2
  exit 1
fi
dirty=""
[ -z "$(git status --porcelain 2>/dev/null)" ] || dirty="~dirty"
sha=$(git rev-parse --short=12 HEAD)
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
  n=$(git rev-list --count "$tag"..HEAD)
  base=${tag#v}
  base=${base//-/\~}   # v1.3.0-rc1 → 1.3.0~rc1, which dpkg sorts before 1.3.0
  if [ "$n" = 0 ]; then echo "$base$dirty"; else echo "$base+$n.g$sha$dirty"; fi
else
  echo "0.0.0+$(git rev-list --count HEAD).g$sha$dirty"
fi
