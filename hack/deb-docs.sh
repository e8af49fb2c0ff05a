#!/usr/bin/env bash
# Writes the packages' copyright and changelog.gz (Debian policy 12.5, 12.7)
# into the build directory: VERSION BUILD_DIR. The changelog is the commit
# log since the last tag, as a native package's changelog is.
set -euo pipefail
v=$1 out=$2
cd "$(dirname "$0")/.."
cat > "$out/copyright" <<EOT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: left4me
Source: https://github.com/left4me/left4me

Files: *
Copyright: the left4me developers
License: none-chosen
 The repository names no license yet; until it does, ask its developers
 before redistributing these packages.
EOT
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
{
  echo "left4me ($v) unstable; urgency=medium"
  echo
  range=HEAD
  if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then range="$tag..HEAD"; fi
  git log --no-merges --format='  * %s' -n 50 $range | cut -c1-79
  echo
  echo " -- left4me developers <left4me@example.org>  $date"
} | gzip -9n > "$out/changelog.gz"
