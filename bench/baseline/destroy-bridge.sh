#!/usr/bin/env bash
# The bare loop's destroy of create-bridge.sh's containers: runc kill + delete, CNI DEL of
# firewall, portmap, bridge (reverse order, the kept ADD result as prevResult), the namespace
# unmounted, the overlay unmounted, the directories deleted. Idempotent: also the cleanup.
# Usage: [RUN_DIR=DIR] destroy-bridge.sh WORKDIR CONFIG_TEMPLATE BRIDGE SUBNET
set -uo pipefail
work=$1
template=$2
bridge=$3
subnet=$4
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$work}
root=$run/runc
net=bench-$bridge
gw=${subnet%.*/*}.1
export CNI_PATH=/usr/lib/cni
del() { # del PLUGIN CONFIG_JSON
  CNI_COMMAND=DEL CNI_IFNAME=eth0 "$CNI_PATH/$1" <<<"$2" >/dev/null
}
for d in "$work"/c/*/; do
  [ -d "$d" ] || continue
  id=$(basename "$d")
  ns=$run/netns/$id
  runc --root "$root" kill "$id" KILL 2>/dev/null || true
  runc --root "$root" delete --force "$id" 2>/dev/null || true
  if [ -f "$d/cni-result.json" ]; then
    port=$(cat "$d/cni-port")
    r=$(cat "$d/cni-result.json")  # the plugins print indented JSON: several lines
    export CNI_CONTAINERID=$id CNI_NETNS=$ns
    del firewall '{"cniVersion":"1.0.0","name":"'"$net"'","type":"firewall","backend":"iptables","prevResult":'"$r"'}'
    del portmap '{"cniVersion":"1.0.0","name":"'"$net"'","type":"portmap","snat":true,"runtimeConfig":{"portMappings":[{"hostPort":'"$port"',"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]},"prevResult":'"$r"'}'
    del bridge '{"cniVersion":"1.0.0","name":"'"$net"'","type":"bridge","bridge":"'"$bridge"'","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"'"$subnet"'","gateway":"'"$gw"'"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"'"$work/leases"'"},"prevResult":'"$r"'}'
  fi
  if [ -e "$ns" ]; then umount "$ns" 2>/dev/null; rm -f "$ns"; fi
  umount "$d/rootfs" 2>/dev/null
  rm -rf "$d" "$run/bundles/$id"
done
# Whatever else create.sh's cleanup removes (runc root, mounts, cgroup parent, the work dir).
"$here/cleanup.sh" "$work" "$template"
rm -rf "$run/netns"
exit 0
