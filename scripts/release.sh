#!/usr/bin/env bash
# Builds the release for Linux x64 in release/ (git-ignored):
#   cri-proxy-VERSION-linux-x64.tar.gz  one executable that needs no Node.js (a Node single-executable
#                                       application), the systemd units, an example /etc/cri-proxy, INSTALL
#   cri-proxy-VERSION.tgz               the npm package (`npm install -g` it to get the command with Node.js)
# Needs what `npm install` brings (esbuild, postject) and the Node.js that runs this script, whose binary
# becomes the executable.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "release.sh: builds the linux-x64 release and must run on Linux x86_64" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund >&2
fi

# The executable is this node binary: one built against a shared libnode (as some distributions ship it)
# would need that library on every node.
if ldd "$(command -v node)" | grep -q libnode; then
  echo "release.sh: $(command -v node) links libnode; build with a self-contained Node.js (e.g. the official build)" >&2
  exit 1
fi

version=$(node -p 'require("./package.json").version')
name="cri-proxy-$version-linux-x64"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

npm run build --silent
node dist/scripts/bundle.js "$work"
node --experimental-sea-config "$work/sea-config.json" >"$work/sea.log" 2>&1 || { cat "$work/sea.log" >&2; exit 1; }

stage="$work/$name"
mkdir -p "$stage/systemd" "$stage/etc/cri-proxy/policies" "$stage/doc"
cp "$(command -v node)" "$stage/cri-proxy"
chmod u+w "$stage/cri-proxy"
# postject reports harmless section-name warnings on Node's ELF binaries; only its exit status matters.
npx --no-install postject "$stage/cri-proxy" NODE_SEA_BLOB "$work/sea-prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >"$work/postject.log" 2>&1 ||
  { cat "$work/postject.log" >&2; exit 1; }
chmod 0755 "$stage/cri-proxy"

cp deploy/systemd/cri-proxy.service deploy/systemd/cri-proxy.socket "$stage/systemd/"
cp deploy/systemd/install.sh "$stage/install.sh"
cp deploy/systemd/INSTALL "$stage/INSTALL"
cp docs/operations.md "$stage/doc/operations.md"
cp deploy/systemd/cri-proxy.yaml "$stage/etc/cri-proxy/cri-proxy.yaml"
cp config/policies/image-policy-rules.yaml "$stage/etc/cri-proxy/policies/"
cp dist/build-info.json "$stage/build-info.json"

# The executable must start before it ships.
"$stage/cri-proxy" --version >/dev/null
"$stage/cri-proxy" config validate "$stage/etc/cri-proxy/cri-proxy.yaml" >/dev/null

mkdir -p release
rm -f "release/$name.tar.gz" release/cri-proxy-*.tgz
tar -C "$work" --owner=0 --group=0 --numeric-owner -czf "release/$name.tar.gz.tmp" "$name"
mv "release/$name.tar.gz.tmp" "release/$name.tar.gz"
npm pack --silent --ignore-scripts --pack-destination release >/dev/null
(cd release && sha256sum "$name.tar.gz" "cri-proxy-$version.tgz" >SHA256SUMS)
echo "release/$name.tar.gz"
echo "release/cri-proxy-$version.tgz"
