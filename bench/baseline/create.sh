#!/usr/bin/env bash
# The bare loop acetate is measured against: for each container, what it takes at the minimum
# to run it the same way and nothing else: no supervisor (conmon), no records, no logs, no
# checks. Per container one process, `runc run -d`, with the same OCI config acetate writes.
#
# The fastest honest loop (issue 25): every other step is a bash builtin, because a process costs
# ~5-20 ms here (fork + exec on this VM, more under load), as much as the mount or the config
# itself: the config is made with bash's own substitution (no sed), the private areas' dirs are
# made for all containers by one `mkdir -p` before the first runc, and when the template carries
# the overlay root mount (as acetate's config does: runc mounts it inside the container's mount
# namespace) nothing is mounted on the node. A template without it (rootfs used as it is) gets
# the overlay mounted here first, one `mount` per container, as before.
#
# Usage: [RUN_DIR=DIR] [LOWER=DIRS] [CONCURRENCY=K] create.sh WORKDIR N CONFIG_TEMPLATE
#   WORKDIR          its own directory: containers' private areas in WORKDIR/c/<id>
#   LOWER            host-mount templates only: the overlay's lower dir(s) (default /; the images
#                    benchmark: an image's layers)
#   RUN_DIR          what describes processes, as acetate's run dir: runc root RUN_DIR/runc,
#                    bundles RUN_DIR/bundles/<id> (default WORKDIR)
#   CONCURRENCY      K loops side by side, each over every K-th container (default 1)
#   N                containers b0..b<N-1>
#   CONFIG_TEMPLATE  an OCI config.json with placeholders: @ROOTFS@ (the rootfs dir), @ID@ (the
#                    container id, also its cgroup's name under the baseline's own parent), and,
#                    when runc mounts the overlay, @DIR@ (the private area: @DIR@/upper, @DIR@/work)
# On any failure or interruption everything created so far is removed (cleanup.sh).
set -euo pipefail
work=$1
n=$2
template=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
conc=${CONCURRENCY:-1}
tpl=$(<"$template")
# runc mounts the root overlay itself when the config has a mount whose destination is "/".
inconfig=0
if [[ $tpl == *'"destination": "/",'* || $tpl == *'"destination":"/",'* ]]; then inconfig=1; fi
trap 'status=$?; echo "baseline create.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
trap '"$here/cleanup.sh" "$work" "$template"; exit 130' INT TERM
# Every container's dirs in one process (xargs splits the list only past the argument limit).
for ((i = 0; i < n; i++)); do
  printf '%s\0' "$work/c/b$i/upper" "$work/c/b$i/work" "$work/c/b$i/rootfs" "$run/bundles/b$i"
done | xargs -0 mkdir -p "$root"

one() { # one I: config, (mount,) runc run -d
  local id=b$1
  local d=$work/c/$id b=$run/bundles/$id c
  if ((inconfig == 0)); then
    mount -t overlay overlay -o "lowerdir=${LOWER:-/},upperdir=$d/upper,workdir=$d/work" "$d/rootfs" || return 1
  fi
  c=${tpl//@ROOTFS@/$d/rootfs}
  c=${c//@DIR@/$d}
  printf '%s' "${c//@ID@/$id}" >"$b/config.json" || return 1
  # The container's stdio is runc's: keep it away from our caller's pipes.
  if ! runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log"; then
    echo "runc run $id failed: $(<"$d/stdio.log")" >&2
    return 1
  fi
}

if ((conc <= 1)); then
  for ((i = 0; i < n; i++)); do
    if ! one "$i"; then
      "$here/cleanup.sh" "$work" "$template"
      exit 1
    fi
  done
  exit 0
fi
# K workers (one subshell each, forked once), each over i ≡ k (mod K).
pids=()
for ((k = 0; k < conc && k < n; k++)); do
  (
    trap - ERR INT TERM
    for ((i = k; i < n; i += conc)); do one "$i" || exit 1; done
  ) &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if ((failed)); then
  echo "baseline create.sh: a worker failed; cleaning up" >&2
  "$here/cleanup.sh" "$work" "$template"
  exit 1
fi
