#!/usr/bin/env bash
# Writes the version and commit a build is made from to FILE (dist/build-info.json), for `cri-proxy --version`.
# The commit gets "+dirty" when tracked files differ from it; outside a git checkout it is "unknown".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: build-info.sh FILE}

version=$(node -p 'require("./package.json").version')
commit=unknown
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  commit=$(git rev-parse --short=12 HEAD)
  if ! git diff --quiet HEAD -- 2>/dev/null; then commit="$commit+dirty"; fi
fi
mkdir -p "$(dirname "$out")"
printf '{"version":"%s","commit":"%s"}\n' "$version" "$commit" >"$out.tmp"
mv "$out.tmp" "$out"
