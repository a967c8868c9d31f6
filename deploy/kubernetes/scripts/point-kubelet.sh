#!/usr/bin/env bash
# Points kubelet at cri-proxy (POINT_KUBELET=true) or back at the runtime (POINT_KUBELET=false, undoing only
# what this script did), in kubelet's configuration file and, where kubelet gets them as flags (kubeadm's
# kubelet flags file), in its flags; restarts kubelet when something changed. Pointing waits until
# cri-proxy.service is active, which under Type=notify means the runtime answers through it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

point=${POINT_KUBELET:-false}
kubelet_config="$HOST_ROOT${KUBELET_CONFIG:-/var/lib/kubelet/config.yaml}"
kubelet_flags="$HOST_ROOT${KUBELET_FLAGS_FILE:-/var/lib/kubelet/kubeadm-flags.env}"
proxy_endpoint=${PROXY_ENDPOINT:-unix:///run/cri-proxy/cri-proxy.sock}
runtime_endpoint=${RUNTIME_ENDPOINT:-unix:///run/containerd/containerd.sock}
marker="$HOST_ETC/kubelet-pointed"

case "$point" in
  true) endpoint=$proxy_endpoint ;;
  false)
    if [ ! -e "$marker" ]; then
      log "POINT_KUBELET is false; kubelet's endpoints are left as they are"
      exit 0
    fi
    endpoint=$runtime_endpoint
    ;;
  *) log "POINT_KUBELET must be true or false, not \"$point\""; exit 1 ;;
esac

if [ "$point" = true ] && ! on_host systemctl is-active --quiet cri-proxy.service; then
  log "cri-proxy.service is not active; kubelet stays on its current endpoint"
  exit 1
fi

changed=0
# KubeletConfiguration (YAML): top-level containerRuntimeEndpoint and imageServiceEndpoint.
if [ -f "$kubelet_config" ]; then
  if grep -q '^[[:space:]]*{' "$kubelet_config"; then
    log "$kubelet_config is JSON; set containerRuntimeEndpoint and imageServiceEndpoint to $endpoint by hand"
    exit 1
  fi
  before=$(sha256sum <"$kubelet_config")
  [ -e "$kubelet_config.cri-proxy-orig" ] || cp -p "$kubelet_config" "$kubelet_config.cri-proxy-orig"
  for key in containerRuntimeEndpoint imageServiceEndpoint; do
    if grep -q "^$key:" "$kubelet_config"; then
      sed -i "s|^$key:.*|$key: $endpoint|" "$kubelet_config"
    else
      printf '%s: %s\n' "$key" "$endpoint" >>"$kubelet_config"
    fi
  done
  [ "$before" = "$(sha256sum <"$kubelet_config")" ] || changed=1
else
  log "no kubelet configuration file at $kubelet_config"
fi

# Flags win over the file: where kubeadm passes them, they are changed too.
if [ -f "$kubelet_flags" ]; then
  before=$(sha256sum <"$kubelet_flags")
  sed -i -E "s#--(container-runtime-endpoint|image-service-endpoint)=[^ \"']*#--\\1=$endpoint#g" "$kubelet_flags"
  [ "$before" = "$(sha256sum <"$kubelet_flags")" ] || changed=1
fi

if [ "$point" = true ]; then
  mkdir -p "$(dirname "$marker")"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
else
  rm -f "$marker"
fi
if [ "$changed" -eq 1 ]; then
  log "kubelet now uses $endpoint; restarting kubelet"
  on_host systemctl restart kubelet.service
else
  log "kubelet already uses $endpoint"
fi
