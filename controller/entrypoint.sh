#!/bin/sh
# Entry point of the acetate image (controller/Dockerfile, used by controller/daemonset.yaml).
#
# With ACETATE_HOST_CGROUPNS=true (the DaemonSet sets it), acetate first joins the node's cgroup
# namespace (nsenter --target 1 --cgroup; needs hostPID and privileged), so that runc puts the
# containers' cgroups under the node's cgroup root (/sys/fs/cgroup is the node's, mounted from
# the host) instead of under this pod's cgroup, which the kubelet removes with the pod. The mount,
# network and PID namespaces are the pod's (hostPID/hostNetwork make the last two the node's).
set -eu

ACETATE_HOME="${ACETATE_HOME:-/opt/acetate}"
# Whose cgroup namespace to join: the node's PID 1 (tests point it elsewhere).
TARGET="${ACETATE_NSENTER_TARGET:-1}"

if [ "${ACETATE_HOST_CGROUPNS:-false}" = "true" ]; then
  if [ "$$" = "1" ]; then
    echo "acetate: ACETATE_HOST_CGROUPNS=true needs hostPID: true in the pod spec (the node's PID 1 must be visible)" >&2
    exit 1
  fi
  if [ "$(readlink "/proc/$TARGET/ns/cgroup")" != "$(readlink /proc/self/ns/cgroup)" ]; then
    if [ -n "${ACETATE_CGROUPNS_JOINED:-}" ]; then
      echo "acetate: could not join the node's cgroup namespace" >&2
      exit 1
    fi
    ACETATE_CGROUPNS_JOINED=1 exec nsenter --target "$TARGET" --cgroup -- "$0" "$@"
  fi
fi

exec "$ACETATE_HOME/bin/acetate" "$@"
