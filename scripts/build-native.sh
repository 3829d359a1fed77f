#!/usr/bin/env bash
# Builds acetate's native helper (native/acetate-idmap.c: idmapped layer mounts for user
# namespaces, see src/runtime/walls/idmap.ts) into dist/native/. Needs gcc and libc6-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/native
gcc -O2 -Wall -Wextra -Werror -o dist/native/acetate-idmap.tmp native/acetate-idmap.c
mv dist/native/acetate-idmap.tmp dist/native/acetate-idmap
