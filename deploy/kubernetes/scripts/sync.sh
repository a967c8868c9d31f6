#!/usr/bin/env bash
# The DaemonSet's long-running container: keeps /etc/cri-proxy on the node in line with the ConfigMaps.
# Kubernetes updates the projected files some time after a ConfigMap changes; every SYNC_INTERVAL seconds
# this copies what changed: a policy file is reread by the proxy on its own, a new cri-proxy.yaml is applied
# with `systemctl reload cri-proxy` once the installed executable accepts it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

interval=${SYNC_INTERVAL:-10}
trap 'exit 0' TERM INT

log "keeping $HOST_ETC in line with the ConfigMaps every ${interval}s"
while true; do
  sync_policies || true
  status=0
  sync_config "$HOST_ROOT/usr/local/bin/cri-proxy" || status=$?
  if [ "$status" -eq 0 ]; then
    if on_host systemctl reload cri-proxy.service; then
      log "cri-proxy reloaded its configuration"
    else
      log "systemctl reload cri-proxy failed; see journalctl -u cri-proxy on the node"
    fi
  fi
  # In the background, so that SIGTERM ends the wait at once.
  sleep "$interval" &
  wait $! || true
done
