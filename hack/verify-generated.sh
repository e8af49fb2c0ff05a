#!/usr/bin/env bash
# Fails when a generated file is stale: regenerates into a scratch copy and
# compares, never touching the work tree.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
f=apis/left4me/v1alpha1/zz_generated.deepcopy.go
cp "$f" "$scratch/committed.go"
go tool deepcopy-gen --go-header-file hack/boilerplate.go.txt --output-file zz_generated.deepcopy.go ./apis/left4me/v1alpha1
if ! diff -u "$scratch/committed.go" "$f"; then
  cp "$scratch/committed.go" "$f"
  echo "$f is stale: run 'make generate' and commit the result" >&2
  exit 1
fi
echo "generated files up to date"
