#!/usr/bin/env bash
# The one-command demo: installs what it needs (Debian packages, npm packages), builds, and starts a private
# containerd and a local registry with cri-proxy in front, a demo pod running. Ctrl-C cleans everything up.
# `--routing`: two containerds (runc and crun) behind one cri-proxy that routes pods between them.
# Needs root (containerd, mounts, network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: the demo runs a private containerd and must run as root (try: sudo $0)" >&2
  exit 1
fi
bash scripts/install-e2e-deps.sh >&2
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --no-save >&2
fi
npm run build --silent >&2
exec node dist/test/e2e/demo/demo.js "$@"
