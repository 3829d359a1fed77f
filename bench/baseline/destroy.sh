#!/usr/bin/env bash
# The bare loop's destroy: for each container created by create.sh, `runc kill KILL` then
# `runc delete --force` (removes runc state and cgroups), unmount the overlay, delete its
# directory. Sequential. (`runc delete --force` alone on a running container is ~10× slower:
# it polls for the process to die in 100 ms steps; killing first is what a careful script does.)
# Usage: [RUN_DIR=DIR] destroy.sh WORKDIR CONFIG_TEMPLATE   (RUN_DIR as given to create.sh)
set -euo pipefail
work=$1
template=$2
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
trap 'status=$?; echo "baseline destroy.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
for d in "$work"/c/*/; do
  [ -d "$d" ] || continue
  id=$(basename "$d")
  runc --root "$root" kill "$id" KILL 2>/dev/null || true
  runc --root "$root" delete --force "$id"
  umount "$d/rootfs"
  # create-disk.sh: the private area's XFS image (its loop device autoclears on umount).
  if [ -d "$d/disk" ]; then umount "$d/disk"; fi
  rm -rf "$d" "$run/bundles/$id"
done
# The cgroup parent runc leaves behind.
parent=$(sed -n 's|.*"cgroupsPath": *"/\([^/"]*\)/.*|\1|p' "$template" | head -n1)
if [ -n "$parent" ]; then
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$parent" ] && rmdir "$h$parent"
  done
fi
exit 0
