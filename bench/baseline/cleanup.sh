#!/usr/bin/env bash
# Removes everything create.sh may have left, whatever state it is in (idempotent, never fails):
# runc containers of its root, mounts under WORKDIR, the cgroup parent, WORKDIR itself.
# Usage: [RUN_DIR=DIR] cleanup.sh WORKDIR [CONFIG_TEMPLATE]   (RUN_DIR as given to create.sh;
# its runc root and bundles are removed, not RUN_DIR itself)
work=$1
template=${2:-}
run=${RUN_DIR:-$work}
root=$run/runc
if [ -d "$root" ]; then
  for s in "$root"/*/; do
    [ -d "$s" ] || continue
    runc --root "$root" delete --force "$(basename "$s")" >/dev/null 2>&1 || true
  done
fi
# Unmount deepest first.
grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
done
parent=
if [ -n "$template" ] && [ -f "$template" ]; then
  parent=$(sed -n 's|.*"cgroupsPath": *"/\([^/"]*\)/.*|\1|p' "$template" | head -n1)
fi
if [ -n "$parent" ]; then
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$parent" ] || continue
    for c in "$h$parent"/*/; do
      [ -d "$c" ] || continue
      # Processes still inside (runc state lost): kill them, then remove the cgroup.
      while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$c/cgroup.procs"
      for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$c" 2>/dev/null && break; sleep 0.1; done
    done
    rmdir "$h$parent" 2>/dev/null || true
  done
fi
rm -rf "$root" "$run/bundles"
if ! grep -qF " $work/" /proc/self/mountinfo; then rm -rf "$work"; fi
exit 0
