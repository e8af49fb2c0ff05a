#!/usr/bin/env bash
# Fails when a generated file is stale: runs `make generate` and compares
# what it wrote with what is committed, putting the committed files back
# when they differ (so a failed check changes nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
generated=(
  apis/left4me/v1alpha1/zz_generated.deepcopy.go
  apis/left4me/v1alpha1/zz_generated.model_name.go
  apis/openapi/zz_generated.openapi.go
  hack/api-violations.list
  config/schemas
)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for f in "${generated[@]}"; do
  mkdir -p "$scratch/committed/$(dirname "$f")"
  cp -a "$f" "$scratch/committed/$f"
done
make --no-print-directory generate >"$scratch/log" 2>&1 || { cat "$scratch/log" >&2; exit 1; }
stale=0
for f in "${generated[@]}"; do
  if ! diff -ru "$scratch/committed/$f" "$f"; then
    stale=1
    rm -rf "$f"
    cp -a "$scratch/committed/$f" "$f"
    echo "$f is stale: run 'make generate' and commit the result" >&2
  fi
done
[ "$stale" = 0 ] && echo "generated files up to date"
exit "$stale"
