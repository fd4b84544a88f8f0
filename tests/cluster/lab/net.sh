#!/usr/bin/env bash
# The lab's network: Linux network namespaces and veth pairs, no link to the host's network.
#
#   <lab>-router    the VPC's router: a bridge holding the subnet's gateway address (10.10.0.1 for
#                   10.10.0.0/22, GCE's gateway), the mirror's address (the lab's apt repositories
#                   and registry), and a "public" link to the deployer. Like GCE's 1:1 NAT, the load
#                   balancer's external address is translated to its internal one (DNAT); nothing
#                   else crosses from the public side, and nothing leaves the subnet but replies.
#   <lab>-deployer  where `pulumi up` would run: reaches the cluster only at the external address
#                   (SSH to the jump host, the API on 6443), like an operator's machine.
#   <lab>-m-<name>  one per machine: eth0 with its plan address on the bridge, routed via the gateway.
#
# Usage:
#   net.sh up <lab> <gateway/prefix> <mirror ip> <public gateway/prefix> <deployer ip>
#   net.sh nat <lab> <external ip> <internal ip>     the external address of the load balancer
#   net.sh attach <lab> <machine> <index> <ip/prefix> <gateway>
#   net.sh detach <lab> <machine>
#   net.sh down <lab>                                every namespace of the lab (and so its links)
#   net.sh list <lab>                                the lab's namespaces
# Safe to run again: `up` and `attach` replace what they would create; `down` and `detach` succeed
# when there is nothing left.
set -euo pipefail

log() { printf 'net.sh: %s\n' "$*" >&2; }
in_ns() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$@"
}
router() { printf '%s-router' "$1"; }
machine_ns() { printf '%s-m-%s' "$1" "$2"; }
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1-(router|deployer|m-.+)\$" || true; }

up() {
  local lab="$1" gateway="$2" mirror="$3" public="$4" deployer_ip="$5" r d
  r="$(router "$lab")"
  d="$lab-deployer"
  for ns in "$r" "$d"; do ip netns del "$ns" 2>/dev/null || true; done
  ip netns add "$r"
  ip netns add "$d"
  in_ns "$r" ip link set lo up
  in_ns "$d" ip link set lo up
  # The subnet's switch and gateway. Frames between machines are switched, not routed, and must not
  # meet the router's firewall (br_netfilter is per network namespace).
  in_ns "$r" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=0
  in_ns "$r" ip link add br0 type bridge
  in_ns "$r" ip addr add "$gateway" dev br0
  in_ns "$r" ip link set br0 up
  in_ns "$r" ip addr add "$mirror/32" dev lo
  # The public side.
  in_ns "$r" ip link add pub type veth peer name eth0 netns "$d"
  in_ns "$r" ip addr add "$public" dev pub
  in_ns "$r" ip link set pub up
  in_ns "$d" ip addr add "$deployer_ip/${public#*/}" dev eth0
  in_ns "$d" ip link set eth0 up
  in_ns "$d" ip route add default via "${public%/*}"
  # Only translated connections cross from the public side, and only replies go back.
  in_ns "$r" iptables -P FORWARD DROP
  in_ns "$r" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  in_ns "$r" iptables -A FORWARD -i pub -o br0 -m conntrack --ctstate DNAT -j ACCEPT
  in_ns "$r" iptables -A FORWARD -i br0 -o br0 -j ACCEPT
  log "lab $lab: router $r (gateway $gateway, mirror $mirror), deployer $d ($deployer_ip)"
}

nat() {
  local lab="$1" external="$2" internal="$3" r
  r="$(router "$lab")"
  in_ns "$r" iptables -t nat -D PREROUTING -d "$external/32" -j DNAT --to-destination "$internal" 2>/dev/null || true
  in_ns "$r" iptables -t nat -A PREROUTING -d "$external/32" -j DNAT --to-destination "$internal"
  log "lab $lab: $external is $internal (1:1 NAT)"
}

attach() {
  local lab="$1" name="$2" index="$3" address="$4" gateway="$5" ns r
  ns="$(machine_ns "$lab" "$name")"
  r="$(router "$lab")"
  ip netns del "$ns" 2>/dev/null || true
  in_ns "$r" ip link del "m$index" 2>/dev/null || true
  ip netns add "$ns"
  in_ns "$r" ip link add "m$index" type veth peer name eth0 netns "$ns"
  in_ns "$r" ip link set "m$index" master br0 up
  in_ns "$ns" ip link set lo up
  in_ns "$ns" ip addr add "$address" dev eth0
  in_ns "$ns" ip link set eth0 up
  in_ns "$ns" ip route add default via "$gateway"
}

detach() {
  ip netns del "$(machine_ns "$1" "$2")" 2>/dev/null || true
}

down() {
  local ns
  for ns in $(lab_namespaces "$1"); do ip netns del "$ns" 2>/dev/null || true; done
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) up "$@" ;;
  nat) nat "$@" ;;
  attach) attach "$@" ;;
  detach) detach "$@" ;;
  down) down "$@" ;;
  list) lab_namespaces "$@" ;;
  *)
    log "usage: net.sh up|nat|attach|detach|down|list <lab> ..."
    exit 2
    ;;
esac
