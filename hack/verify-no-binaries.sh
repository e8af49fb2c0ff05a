#!/usr/bin/env bash
# Fails when git tracks a build output: an executable (ELF) or a file over
# 1 MiB. Build outputs belong in bin/ (ignored), never in a commit.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]; then
    echo "tracked executable: $f"; bad=1
  elif [ "$(stat -c %s "$f")" -gt 1048576 ]; then
    echo "tracked file over 1 MiB: $f"; bad=1
  fi
done < <(git ls-files -z)
[ $bad -eq 0 ] && echo "no build outputs tracked"
exit $bad
