#!/usr/bin/env bash
# Installs cri-proxy from this unpacked release onto a systemd host, or upgrades it:
#   ROOT/usr/local/bin/cri-proxy
#   ROOT/etc/systemd/system/cri-proxy.service, cri-proxy.socket
#   ROOT/etc/cri-proxy/cri-proxy.yaml and policies/   (only when absent: a config in place is never replaced)
#   ROOT/usr/local/share/doc/cri-proxy/
# then enables and starts cri-proxy.socket and cri-proxy.service. On an upgrade the new executable first
# validates the config in place (nothing changes if it refuses it), then replaces the old one, and the service
# restarts while the socket stays open: kubelet's calls wait, none fail.
#
# Usage: install.sh [--root DIR] [--systemctl PROGRAM] [--no-start]
#   --root DIR           install under DIR instead of / (e.g. the host's / mounted into a container)
#   --systemctl PROGRAM  what to run as systemctl (e.g. a wrapper that enters the host's namespaces)
#   --no-start           install the files only
set -euo pipefail

release=$(cd "$(dirname "$0")" && pwd)
root=/
systemctl=systemctl
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --systemctl) systemctl=${2:?--systemctl needs a program}; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=${root%/}

bin="$root/usr/local/bin/cri-proxy"
units="$root/etc/systemd/system"
etc="$root/etc/cri-proxy"
doc="$root/usr/local/share/doc/cri-proxy"
log() { echo "install.sh: $*"; }

# Copies to a temporary name beside the target, then renames: a running proxy, or a reader, sees the old file
# or the new one, never a part. Returns 1 when the target already had this content.
place() {
  local src=$1 dst=$2 mode=$3
  if [ -e "$dst" ] && cmp -s "$src" "$dst"; then return 1; fi
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst.new"
  chmod "$mode" "$dst.new"
  mv -f "$dst.new" "$dst"
}

# The example config and policy go in only where nothing is; then the config must pass the new executable.
mkdir -p "$etc/policies"
chmod 0750 "$etc"
if [ ! -e "$etc/cri-proxy.yaml" ]; then place "$release/etc/cri-proxy/cri-proxy.yaml" "$etc/cri-proxy.yaml" 0640 || true; fi
for policy in "$release"/etc/cri-proxy/policies/*; do
  if [ ! -e "$etc/policies/$(basename "$policy")" ]; then place "$policy" "$etc/policies/$(basename "$policy")" 0640 || true; fi
done
if ! "$release/cri-proxy" config validate "$etc/cri-proxy.yaml"; then
  echo "install.sh: $etc/cri-proxy.yaml does not validate with $("$release/cri-proxy" --version); nothing installed" >&2
  exit 1
fi

changed=0
if place "$release/cri-proxy" "$bin" 0755; then changed=1; log "installed $bin ($("$bin" --version))"; fi
if place "$release/systemd/cri-proxy.service" "$units/cri-proxy.service" 0644; then changed=1; log "installed cri-proxy.service"; fi
socket_changed=0
if [ -e "$units/cri-proxy.socket" ] && ! cmp -s "$release/systemd/cri-proxy.socket" "$units/cri-proxy.socket"; then socket_changed=1; fi
place "$release/systemd/cri-proxy.socket" "$units/cri-proxy.socket" 0644 && log "installed cri-proxy.socket"
for file in INSTALL doc/operations.md; do
  place "$release/$file" "$doc/$(basename "$file")" 0644 || true
done

if [ "$start" -eq 0 ]; then exit 0; fi
"$systemctl" daemon-reload
"$systemctl" enable cri-proxy.socket cri-proxy.service
"$systemctl" start cri-proxy.socket
if [ "$changed" -eq 1 ] && "$systemctl" is-active --quiet cri-proxy.service; then
  log "restarting cri-proxy.service on the open socket"
  "$systemctl" restart cri-proxy.service
else
  "$systemctl" start cri-proxy.service
fi
if [ "$socket_changed" -eq 1 ]; then
  # Restarting the socket closes the connections queued on it; that is the operator's call, not ours.
  log "cri-proxy.socket changed: it applies after 'systemctl restart cri-proxy.socket cri-proxy.service'"
fi
log "cri-proxy is $("$systemctl" is-active cri-proxy.service)"
