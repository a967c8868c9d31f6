#!/usr/bin/env bash
# Installs what the end-to-end suite needs (a real containerd, runc and crun, CNI plugins, a registry and image
# tools) from Debian packages. Idempotent: does nothing when everything is present. The suite runs private instances
# of containerd and the registry, so no system service may be left running or enabled by the install.
set -euo pipefail

# systemd for systemd-analyze (the units are verified), shellcheck for the scripts the release and the
# Kubernetes installer run; crun is the second runtime of the routing tests; chromium (/usr/bin/chromium) is the
# headless browser the admin page's tests drive.
packages=(containerd runc crun containernetworking-plugins docker-registry skopeo umoci busybox-static iproute2 gcc libc6-dev
  systemd shellcheck chromium)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-e2e-deps: must run as root (apt-get install, and the e2e suite itself needs root)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-e2e-deps: all packages present"
  exit 0
fi

echo "install-e2e-deps: installing ${missing[*]}"

# policy-rc.d answering 101 keeps maintainer scripts from starting services during the install.
# An existing one (e.g. in a container image) is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() {
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

# Another apt or dpkg (unattended-upgrades, a second test run) may hold the locks: wait for it rather than fail.
# apt waits for the dpkg lock by itself (DPkg::Lock::Timeout); the lists lock of `apt-get update` it does not, so
# a failure that names a lock is retried until LOCK_WAIT_SECONDS have passed.
LOCK_WAIT_SECONDS=${LOCK_WAIT_SECONDS:-900}
apt_get() {
  local deadline=$((SECONDS + LOCK_WAIT_SECONDS)) log status
  log=$(mktemp)
  while :; do
    status=0
    apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT_SECONDS" "$@" 2>&1 | tee "$log" || status=$?
    if [ "$status" -eq 0 ]; then
      rm -f "$log"
      return 0
    fi
    if grep -qiE 'could not get lock|unable to (acquire|lock)|is another process using it' "$log" && [ "$SECONDS" -lt "$deadline" ]; then
      echo "install-e2e-deps: another apt or dpkg is running; waiting for it to finish"
      sleep 5
      continue
    fi
    rm -f "$log"
    return "$status"
  done
}

export DEBIAN_FRONTEND=noninteractive
apt_get update
apt_get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"

# Belt and braces: a service that slipped through (e.g. systemd enabling units) is stopped and disabled; only
# for packages installed just now, so a machine's own containerd is never touched. Service names = package names.
for svc in "${missing[@]}"; do
  case "$svc" in containerd | docker-registry) ;; *) continue ;; esac
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
  fi
done

for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    echo "install-e2e-deps: $pkg is still not installed" >&2
    exit 1
  fi
done
echo "install-e2e-deps: done"
