#!/usr/bin/env bash
# The DaemonSet's init container: installs (or upgrades) cri-proxy from the release in this image onto the
# node — executable, systemd units, configuration and image policy from the ConfigMaps — enables and starts
# the units, then points kubelet at the proxy when POINT_KUBELET is "true" (or back at the runtime when
# "false", if this installer had pointed it). cri-proxy itself runs under the host's systemd, never in a pod.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

mkdir -p "$HOST_ETC/policies"
chmod 0750 "$HOST_ETC"
sync_policies || true
status=0
sync_config "$RELEASE_DIR/cri-proxy" || status=$?
if [ "$status" -eq 2 ]; then exit 1; fi

"$RELEASE_DIR/install.sh" --root "$HOST_ROOT" --systemctl "$(host_systemctl_wrapper)"

"$(dirname "$0")/point-kubelet.sh"
