#!/usr/bin/env bash
# The bare loop for containers in a user namespace: as create.sh, but the lower layer is a
# template already owned by the id range (LOWER), and each private area is owned by the range's
# root (OWNER) so that the container's root can write it. runc gets the id mappings from the config.
# Usage: LOWER=DIR OWNER=UID [RUN_DIR=DIR] create-userns.sh WORKDIR N CONFIG_TEMPLATE
set -euo pipefail
work=$1
n=$2
template=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
mkdir -p "$root" "$run/bundles" "$work/c"
trap 'status=$?; echo "baseline create-userns.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
trap '"$here/cleanup.sh" "$work" "$template"; exit 130' INT TERM
for ((i = 0; i < n; i++)); do
  id=b$i
  d=$work/c/$id
  b=$run/bundles/$id
  mkdir -p "$d/upper" "$d/work" "$d/rootfs" "$b"
  chown "$OWNER:$OWNER" "$d/upper" "$d/work"
  mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$d/upper,workdir=$d/work" "$d/rootfs"
  sed -e "s|@ROOTFS@|$d/rootfs|g" -e "s|@ID@|$id|g" "$template" >"$b/config.json"
  if ! runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log"; then
    cat "$d/stdio.log" >&2
    false
  fi
done
