#!/usr/bin/env bash
# Installs what acetate needs on a fresh Debian machine and builds it. Safe to run again:
# each step is skipped when already done. Needs root for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v conmon >/dev/null 2>&1 || missing+=(conmon)
[ -x /usr/bin/busybox ] || [ -x /bin/busybox ] || missing+=(busybox-static)
# Seccomp profiles: Docker's (acetate's RuntimeDefault, shipped in Debian's moby source package)
# and Podman's (containers' common files; ACETATE_SECCOMP_PROFILE can select it).
[ -f /usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json ] || missing+=(golang-github-docker-docker-dev)
[ -f /usr/share/containers/seccomp.json ] || missing+=(golang-github-containers-common)
# The container init (spec.init, default on): a static binary bind-mounted into containers.
command -v catatonit >/dev/null 2>&1 || missing+=(catatonit)
# `systemd-analyze verify` of controller/systemd/*.service (a test), without systemd as PID 1, and
# systemd-notify, which `acetate run` sends its sd_notify messages with under a Type=notify unit.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The sd_notify test's service-manager end: a unix datagram socket held by python3 (Node cannot bind one).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# `acetate exec -t` is tested under a pseudo-terminal made by script(1).
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)  # the node lock (src/runtime/node-lock.ts)
# network: bridge: the CNI reference plugins (bridge, host-local, portmap, firewall, loopback),
# the iptables their rules go through, and util-linux's unshare for the network namespaces.
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/portmap ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
# nft: the walls around bridge containers (src/runtime/network/walls.ts); python3: the network
# walls test crafts raw frames from inside a container of the host template.
command -v nft >/dev/null 2>&1 || missing+=(nftables)
[ -x /usr/bin/python3 ] || missing+=(python3-minimal)
# conntrack: the tracked flows of a removed port mapping are deleted (src/runtime/network/conntrack.ts).
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)  # unshare: the network namespaces
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# Images (src/images): skopeo pulls, setfattr marks overlay opaque dirs; the tests' registry.
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v setfattr >/dev/null 2>&1 || missing+=(attr)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
# resources.disk: the private area's XFS image (mkfs.xfs, xfs_growfs); losetup and mount are util-linux's.
command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
# The Git source (src/sources/git): Debian's git and gpg (--verify-signatures; the tests sign commits, which needs the agent).
command -v git >/dev/null 2>&1 || missing+=(git)
command -v gpg >/dev/null 2>&1 || missing+=(gpg)
command -v gpg-agent >/dev/null 2>&1 || missing+=(gpg-agent)
command -v gpgconf >/dev/null 2>&1 || missing+=(gpgconf)
# User namespaces: native/acetate-idmap.c (idmapped layer mounts) is compiled at build time, with
# native/acetate-launch.c (starts each conmon inside the conmons' cgroup): gcc and libc6-dev.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/include/x86_64-linux-gnu/sys/mount.h ] || [ -f /usr/include/sys/mount.h ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "acetate setup: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "acetate setup: installing ${missing[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "acetate setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# The build as `npm run build` does it (one definition: tsc, the precompiled validator, the native
# helpers, the CLI bundle). It starts with rm -rf dist: a moved or deleted source must not leave a
# stale compiled test behind.
npm run --silent build >&2
