#!/usr/bin/env bash
# The bare loop for bridge containers with a published port: create.sh's overlay + `runc run -d`,
# plus, per container, what acetate's network driver does at the minimum: a persistent network
# namespace (`unshare --net=FILE`), then the same CNI calls acetate makes, straight to the plugin
# binaries (loopback ADD on lo; bridge + host-local, portmap, firewall ADD on eth0, each given the
# previous result), the result kept for DEL. No port checks, no /etc files, no records.
#
# Usage: [RUN_DIR=DIR] create-bridge.sh WORKDIR N CONFIG_TEMPLATE BRIDGE SUBNET PORT_BASE
#   CONFIG_TEMPLATE  as create.sh, with an @NETNS@ placeholder for the network namespace path
#   containers b0..b<N-1>; container i publishes 127.0.0.1:(PORT_BASE+i) → 80/tcp
# On failure everything created so far is removed (destroy-bridge.sh).
set -euo pipefail
work=$1
n=$2
template=$3
bridge=$4
subnet=$5
base=$6
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
net=bench-$bridge
gw=${subnet%.*/*}.1
mkdir -p "$root" "$run/bundles" "$run/netns" "$work/c" "$work/leases"
trap 'status=$?; echo "baseline create-bridge.sh failed (exit $status); cleaning up" >&2; "$here/destroy-bridge.sh" "$work" "$template" "$bridge" "$subnet" >/dev/null 2>&1; exit $status' ERR
trap '"$here/destroy-bridge.sh" "$work" "$template" "$bridge" "$subnet" >/dev/null 2>&1; exit 130' INT TERM
export CNI_PATH=/usr/lib/cni
cni() { # cni PLUGIN IFNAME CONFIG_JSON → result on stdout
  CNI_COMMAND=ADD CNI_IFNAME=$2 "$CNI_PATH/$1" <<<"$3"
}
for ((i = 0; i < n; i++)); do
  id=b$i
  d=$work/c/$id
  b=$run/bundles/$id
  ns=$run/netns/$id
  port=$((base + i))
  mkdir -p "$d/upper" "$d/work" "$d/rootfs" "$b"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/rootfs"
  : >"$ns"
  unshare --net="$ns" true
  export CNI_CONTAINERID=$id CNI_NETNS=$ns
  cni loopback lo '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}' >/dev/null
  r=$(cni bridge eth0 '{"cniVersion":"1.0.0","name":"'"$net"'","type":"bridge","bridge":"'"$bridge"'","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"'"$subnet"'","gateway":"'"$gw"'"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"'"$work/leases"'"}}')
  r=$(cni portmap eth0 '{"cniVersion":"1.0.0","name":"'"$net"'","type":"portmap","snat":true,"runtimeConfig":{"portMappings":[{"hostPort":'"$port"',"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]},"prevResult":'"$r"'}')
  r=$(cni firewall eth0 '{"cniVersion":"1.0.0","name":"'"$net"'","type":"firewall","backend":"iptables","prevResult":'"$r"'}')
  echo "$port" >"$d/cni-port"
  printf '%s\n' "$r" >"$d/cni-result.json"
  sed -e "s|@ROOTFS@|$d/rootfs|g" -e "s|@ID@|$id|g" -e "s|@NETNS@|$ns|g" "$template" >"$b/config.json"
  if ! runc --root "$root" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$d/stdio.log"; then
    cat "$d/stdio.log" >&2
    false
  fi
done
