# Shared by the installer's scripts (sourced, not run). The pod sees the host's / at $HOST_ROOT and the
# host's processes (hostPID), so host commands run in PID 1's mount namespace.
# shellcheck shell=bash

HOST_ROOT=${HOST_ROOT:-/host}
# The release inside the installer image, and the ConfigMaps as mounted into the pod.
RELEASE_DIR=${RELEASE_DIR:-/opt/cri-proxy}
STAGED_CONFIG=${STAGED_CONFIG:-/staged/config}
STAGED_POLICIES=${STAGED_POLICIES:-/staged/policies}
HOST_ETC="$HOST_ROOT/etc/cri-proxy"

# No command substitutions in what sync.sh's loop runs: bash 5.2 can misparse one that a trapped SIGTERM
# interrupts, and fail instead of running the trap.
log() { TZ=UTC printf '%(%Y-%m-%dT%H:%M:%SZ)T %s: %s\n' -1 "${0##*/}" "$*"; }

# Runs a command on the host, as the host sees it.
on_host() { nsenter --target 1 --mount --uts --ipc --net -- "$@"; }

# A systemctl for install.sh's --systemctl: the host's, run on the host.
host_systemctl_wrapper() {
  local wrapper=/tmp/host-systemctl
  printf '#!/bin/sh\nexec nsenter --target 1 --mount --uts --ipc --net -- systemctl "$@"\n' >"$wrapper"
  chmod 0755 "$wrapper"
  echo "$wrapper"
}

# Copies SRC over DST through a temporary file in DST's folder and a rename, so that the proxy (which
# watches the folder) and any reader see the old file or the new one, never a part. Returns 1 when DST
# already had this content.
place() {
  local src=$1 dst=$2
  if [ -e "$dst" ] && cmp -s "$src" "$dst"; then return 1; fi
  mkdir -p "${dst%/*}"
  cp "$src" "$dst.tmp.$$"
  chmod 0640 "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
}

# Brings the node's image policy files in line with the policy ConfigMap. Returns 1 when nothing changed.
sync_policies() {
  local changed=1 file
  for file in "$STAGED_POLICIES"/*; do
    [ -f "$file" ] || continue
    if place "$file" "$HOST_ETC/policies/${file##*/}"; then
      log "updated policies/${file##*/}; the proxy rereads it by itself"
      changed=0
    fi
  done
  return "$changed"
}

# Puts the config ConfigMap's cri-proxy.yaml in place once EXECUTABLE accepts it, checked in a copy of the
# folder it will live in (its relative paths resolve against the policy files as they will be on the node).
# Returns 1 when nothing changed, 2 when the new config is refused (the node keeps its current one).
sync_config() {
  local executable=$1 candidate=/tmp/cri-proxy-candidate.$$
  if [ -e "$HOST_ETC/cri-proxy.yaml" ] && cmp -s "$STAGED_CONFIG/cri-proxy.yaml" "$HOST_ETC/cri-proxy.yaml"; then return 1; fi
  rm -rf "$candidate"
  mkdir -p "$candidate/policies"
  cp "$STAGED_CONFIG/cri-proxy.yaml" "$candidate/"
  cp -L "$STAGED_POLICIES"/* "$candidate/policies/" 2>/dev/null || true
  if ! "$executable" config validate "$candidate/cri-proxy.yaml"; then
    rm -rf "$candidate"
    log "the config ConfigMap's cri-proxy.yaml does not validate; the node keeps its current configuration"
    return 2
  fi
  rm -rf "$candidate"
  place "$STAGED_CONFIG/cri-proxy.yaml" "$HOST_ETC/cri-proxy.yaml"
  log "updated cri-proxy.yaml"
}
