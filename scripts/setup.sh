#!/usr/bin/env bash
# Installs what acetate needs on a fresh Debian machine and builds it. Safe to run again:
# each step is skipped when already done. Needs root for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v conmon >/dev/null 2>&1 || missing+=(conmon)
[ -x /usr/bin/busybox ] || [ -x /bin/busybox ] || missing+=(busybox-static)
# resources.disk: the private area's XFS image (mkfs.xfs, xfs_growfs); losetup and mount are util-linux's.
command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "acetate setup: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "acetate setup: installing ${missing[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "acetate setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

npx --no-install tsc -p . >&2
node dist/src/api/validator-build.js >&2
