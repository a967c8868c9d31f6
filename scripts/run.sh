#!/usr/bin/env bash
# Sets up (npm packages, build) and runs cri-proxy with the arguments given, e.g.
#   ./scripts/run.sh --upstream unix:///run/containerd/containerd.sock
#   ./scripts/run.sh --config /etc/cri-proxy/config.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --no-save >&2
fi
npm run build --silent >&2
# The same V8 flag as the command's shebang and the systemd unit (see src/cli.ts).
exec node --max-semi-space-size=1 dist/src/cli.js "$@"
