#!/usr/bin/env bash
# The bare loop for containers with a disk limit: for each container, by hand, what acetate does
# for resources.disk (an image allocated whole as acetate makes it by default, mkfs.xfs, mounted through a loop device, the overlay's upper
# and work dirs on it) and then the same overlay + `runc run -d` as create.sh. Sequential.
#
# Usage: [RUN_DIR=DIR] create-disk.sh WORKDIR N CONFIG_TEMPLATE SIZE
#   SIZE  the image size, e.g. 64M (below 300 MB mkfs.xfs needs the fstests variables, as acetate sets)
# Cleaned up by cleanup.sh (overlays unmount before the XFS mounts, whose loop devices autoclear).
set -euo pipefail
work=$1
n=$2
template=$3
size=$4
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
mkdir -p "$root" "$run/bundles" "$work/c"
trap 'status=$?; echo "baseline create-disk.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
trap '"$here/cleanup.sh" "$work" "$template"; exit 130' INT TERM
for ((i = 0; i < n; i++)); do
  id=b$i
  d=$work/c/$id
  b=$run/bundles/$id
  mkdir -p "$d/disk" "$d/rootfs" "$b"
  truncate -s "$size" "$d/disk.img"
  fallocate -l "$size" "$d/disk.img"
  TEST_DIR=/nonexistent TEST_DEV=/nonexistent QA_CHECK_FS=0 mkfs.xfs -q -f -K "$d/disk.img"
  mount --make-private -t xfs -o loop "$d/disk.img" "$d/disk"
  mkdir -p "$d/disk/upper" "$d/disk/work"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$d/disk/upper,workdir=$d/disk/work" "$d/rootfs"
  sed -e "s|@ROOTFS@|$d/rootfs|g" -e "s|@ID@|$id|g" "$template" >"$b/config.json"
  if ! runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log"; then
    cat "$d/stdio.log" >&2
    false
  fi
done
