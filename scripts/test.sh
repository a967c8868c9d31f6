#!/usr/bin/env bash
# The one test command: installs what the tests need (npm packages; containerd, runc, CNI, a registry and
# image tools from Debian), then runs lint, type checks, the release build, unit, integration and end-to-end
# tests.
# The end-to-end suite runs real pods and needs root; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing system packages for the end-to-end suite"
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the end-to-end suite runs a real containerd and must run as root (try: sudo $0)" >&2
  exit 1
fi
bash scripts/install-e2e-deps.sh

step "installing npm packages"
# npm install installs exactly what the lockfile pins; --no-save keeps it from rewriting package-lock.json,
# so running the tests leaves a fresh clone unchanged.
npm install --no-audit --no-fund --no-save

step "lint (eslint, import cycles, unused code) and type check"
npm run lint --silent
npx tsc -p tsconfig.json --noEmit

step "build"
npm run build --silent

step "release (the single executable, the npm package)"
./scripts/release.sh
# The e2e suite tests this tarball instead of building another.
CRI_PROXY_RELEASE_TARBALL="release/cri-proxy-$(node -p 'require("./package.json").version')-linux-x64.tar.gz"
export CRI_PROXY_RELEASE_TARBALL

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0

step "unit and integration tests"
npx jest --selectProjects unit integration --json --outputFile="$results/fast.json" || status=1

step "end-to-end tests (real containerd)"
npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e.json" || status=1

# shellcheck disable=SC2016 # the script is JavaScript: its $ are not the shell's
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests + r.numRuntimeErrorTestSuites;
  }
  console.log(`\ntests: ${passed} passed, ${failed} failed`);
' "$results/fast.json" "$results/e2e.json"
exit $status
