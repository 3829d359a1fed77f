#!/usr/bin/env bash
# The bare loop acetate is measured against: for each container, what it takes at the minimum
# to run it the same way (an overlay rootfs with lower=/ and a private upper dir, then
# `runc run -d` with the same OCI config acetate would write) and nothing else: no supervisor
# (conmon), no records, no logs, no checks. Sequential, one container after the other.
#
# Usage: [RUN_DIR=DIR] create.sh WORKDIR N CONFIG_TEMPLATE
#   WORKDIR          its own directory: containers' private areas in WORKDIR/c/<id>
#   LOWER            the overlay's lower dir(s) (default /; the images benchmark: an image's layers)
#   RUN_DIR          what describes processes, as acetate's run dir: runc root RUN_DIR/runc,
#                    bundles RUN_DIR/bundles/<id> (default WORKDIR)
#   N                containers b0..b<N-1>
#   CONFIG_TEMPLATE  an OCI config.json with @ROOTFS@ and @ID@ placeholders (the cgroup parent
#                    in it is the baseline's own, e.g. /acetate-bench-base-<hash>/@ID@)
# On any failure or interruption everything created so far is removed (cleanup.sh).
set -euo pipefail
work=$1
n=$2
template=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
mkdir -p "$root" "$run/bundles" "$work/c"
trap 'status=$?; echo "baseline create.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
trap '"$here/cleanup.sh" "$work" "$template"; exit 130' INT TERM
for ((i = 0; i < n; i++)); do
  id=b$i
  d=$work/c/$id
  b=$run/bundles/$id
  mkdir -p "$d/upper" "$d/work" "$d/rootfs" "$b"
  mount -t overlay overlay -o "lowerdir=${LOWER:-/},upperdir=$d/upper,workdir=$d/work" "$d/rootfs"
  sed -e "s|@ROOTFS@|$d/rootfs|g" -e "s|@ID@|$id|g" "$template" >"$b/config.json"
  # The container's stdio is runc's: keep it away from our caller's pipes.
  if ! runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log"; then
    cat "$d/stdio.log" >&2
    false
  fi
done
