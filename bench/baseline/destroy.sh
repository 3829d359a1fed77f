#!/usr/bin/env bash
# The bare loop's destroy: for each container created by create.sh, `runc kill KILL` then
# `runc delete --force` (removes runc state and cgroups), unmount the overlay if create.sh mounted
# it on the node (runc's own overlay goes with the container's mount namespace), then every
# private area and bundle with one `rm -rf`. (`runc delete --force` alone on a running container
# is ~10× slower: it polls for the process to die in 100 ms steps; killing first is what a careful
# script does.)
# Usage: [RUN_DIR=DIR] [CONCURRENCY=K] destroy.sh WORKDIR CONFIG_TEMPLATE   (RUN_DIR as given to create.sh)
set -euo pipefail
work=$1
template=$2
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
conc=${CONCURRENCY:-1}
trap 'status=$?; echo "baseline destroy.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
mounts=$(</proc/self/mountinfo)
ids=()
for d in "$work"/c/*/; do
  [ -d "$d" ] || continue
  d=${d%/}
  ids+=("${d##*/}")
done
one() { # one ID
  local d=$work/c/$1
  runc --root "$root" kill "$1" KILL 2>/dev/null || true
  runc --root "$root" delete --force "$1" || return 1
  if [[ $mounts == *" $d/rootfs "* ]]; then umount "$d/rootfs" || return 1; fi
  # create-disk.sh: the private area's XFS image (its loop device autoclears on umount).
  if [[ $mounts == *" $d/disk "* ]]; then umount "$d/disk" || return 1; fi
}
pids=()
for ((k = 0; k < conc && k < ${#ids[@]}; k++)); do
  (
    trap - ERR
    for ((i = k; i < ${#ids[@]}; i += conc)); do one "${ids[i]}" || exit 1; done
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
rm -rf "$work/c" "$run/bundles"
# The cgroup parent runc leaves behind.
parent=$(sed -n 's|.*"cgroupsPath": *"/\([^/"]*\)/.*|\1|p' "$template" | head -n1)
if [ -n "$parent" ]; then
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$parent" ] && rmdir "$h$parent"
  done
fi
exit 0
