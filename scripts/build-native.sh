#!/usr/bin/env bash
# Builds acetate's native helpers into dist/native/ (needs gcc and libc6-dev):
#   native/acetate-idmap.c   idmapped layer mounts for user namespaces (src/runtime/walls/idmap.ts),
#                            with native/idmap-mount.c
#   native/acetate-launch.c  starts conmon inside the conmons' cgroup (src/runtime/runc/conmon-launcher.ts)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/native
gcc -O2 -Wall -Wextra -Wpedantic -Werror -o dist/native/acetate-idmap.tmp native/acetate-idmap.c native/idmap-mount.c
gcc -O2 -Wall -Wextra -Wpedantic -Werror -o dist/native/acetate-launch.tmp native/acetate-launch.c
mv dist/native/acetate-idmap.tmp dist/native/acetate-idmap
mv dist/native/acetate-launch.tmp dist/native/acetate-launch
