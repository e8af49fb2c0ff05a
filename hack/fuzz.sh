#!/usr/bin/env bash
# Runs every fuzz target for a fixed number of executions (FUZZ_EXECS, default
# 20000 each), so CI's cost is bounded and the same on every run. The corpus
# in each package's testdata/fuzz also runs as plain tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
execs=${FUZZ_EXECS:-20000}
dirs=""
for d in apis cmd node controllers; do
  if [ -d "$d" ]; then dirs="$dirs $d"; fi
done
# file:FuzzName for every fuzz target
found=$(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' $dirs | sed 's/:func /:/' | sort)
[ -n "$found" ] || { echo "no fuzz targets found" >&2; exit 1; }
for entry in $found; do
  t=${entry##*:}
  pkg=$(dirname "${entry%%:*}")
  printf '%-22s %-22s ' "$t" "$pkg"
  out=$(go test -run '^$' -fuzz "^$t\$" -fuzztime "${execs}x" "./$pkg" 2>&1) || { echo FAIL; echo "$out"; exit 1; }
  echo "ok, $execs executions"
done
