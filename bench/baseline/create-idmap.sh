#!/usr/bin/env bash
# The bare loop for unprivileged containers (issue 23): create.sh's loop with what a user namespace
# of its own per container needs at the minimum, done the way acetate does it and nothing else:
#   - container I runs with ids BASE+I*SIZE.. (SIZE ids), the range acetate gives its I-th
#     container; the config is acetate's own with that container's mappings (@HOSTID@)
#   - its private area (dir, upper, work) and the dir of its idmapped layers are owned by the
#     range's root, all containers' by one perl process before the first runc (bash has no chown)
#   - its layers are mounted idmapped by acetate's own helper (native/acetate-idmap --hold, one
#     process for all layers), held while `runc run -d` creates the container, then detached (its
#     stdin closed), as acetate does around `runc create`
# No supervisor (conmon), no records, no logs, no checks, no machine id. For the host template the
# host view's shared layer is one of LAYERS (a copy of acetate's: bench/lib/idmap-baseline.ts),
# mounted as acetate mounts it.
#
# Usage: IDMAP=HELPER LAYERS=DIR[:DIR...] BASE=ID [SIZE=65536] [RUN_DIR=DIR] [CONCURRENCY=K] \
#        create-idmap.sh WORKDIR N CONFIG_TEMPLATE
#   LAYERS           the layers in acetate's order (the overlay's lowerdir: top first); layer k
#                    is mounted at RUN_DIR/containers/<id>/lower/k, where the config's lowerdir names it
#   CONFIG_TEMPLATE  as create.sh's (@DIR@, @ID@), plus @HOSTID@: the container's first node id
# On any failure or interruption everything created so far is removed (cleanup.sh; the
# caller releases the layer mounts with `acetate-idmap --release`, see bench/userns.ts).
set -euo pipefail
work=$1
n=$2
template=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
conc=${CONCURRENCY:-1}
size=${SIZE:-65536}
tpl=$(<"$template")
IFS=: read -r -a layers <<<"$LAYERS"
trap 'status=$?; echo "baseline create-idmap.sh failed (exit $status); cleaning up" >&2; "$here/cleanup.sh" "$work" "$template"; exit $status' ERR
trap '"$here/cleanup.sh" "$work" "$template"; exit 130' INT TERM
# Every container's dirs in one process, then every owner in one.
for ((i = 0; i < n; i++)); do
  printf '%s\0' "$work/c/b$i/upper" "$work/c/b$i/work" "$work/c/b$i/rootfs" "$run/bundles/b$i"
  for ((k = 0; k < ${#layers[@]}; k++)); do printf '%s\0' "$run/containers/b$i/lower/$k"; done
done | xargs -0 mkdir -p "$root"
perl -e '
  my ($work, $run, $n, $base, $size) = @ARGV;
  for my $i (0 .. $n - 1) {
    my $id = $base + $i * $size;
    for my $d ("$work/c/b$i", "$work/c/b$i/upper", "$work/c/b$i/work", "$run/containers/b$i/lower") {
      chown($id, $id, $d) or die "chown $d: $!\n";
    }
    chmod(0700, "$work/c/b$i", "$work/c/b$i/work", "$run/containers/b$i/lower") == 3 or die "chmod b$i: $!\n";
  }' "$work" "$run" "$n" "$BASE" "$size"

one() { # one I: config, idmapped layers held, runc run -d, layers detached
  local id=b$1 host=$((BASE + $1 * size))
  local d=$work/c/$id b=$run/bundles/$id c ready args=() k
  c=${tpl//@ROOTFS@/$d/rootfs}
  c=${c//@DIR@/$d}
  c=${c//@HOSTID@/$host}
  printf '%s' "${c//@ID@/$id}" >"$b/config.json" || return 1
  for ((k = 0; k < ${#layers[@]}; k++)); do args+=("${layers[k]}" "$run/containers/$id/lower/$k"); done
  # One helper per container as a coprocess (its stdin and stdout are pipes to this shell), named
  # after the container: bash unsets a finished coprocess's variables lazily, and would unset the
  # next one's if they shared the name.
  local in out pid
  eval "coproc I$1 { exec \"\$IDMAP\" --hold \"\$host\" \"\$size\" \"\${args[@]}\" 2>\"\$d/idmap.log\"; }"
  eval "in=\${I$1[1]} out=\${I$1[0]} pid=\$I$1_PID"
  if ! read -r ready <&"$out" || [[ $ready != ready ]]; then
    echo "acetate-idmap $id failed: $(<"$d/idmap.log")" >&2
    return 1
  fi
  local ok=0
  runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log" || ok=$?
  # Its stdin's end: the helper detaches the node's copies (the overlay keeps its own) and exits.
  exec {in}>&- {out}<&-
  wait "$pid" || return 1
  if ((ok != 0)); then
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
  echo "baseline create-idmap.sh: a worker failed; cleaning up" >&2
  "$here/cleanup.sh" "$work" "$template"
  exit 1
fi
