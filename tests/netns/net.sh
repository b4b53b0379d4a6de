#!/usr/bin/env bash
# Virtual hosts for nexnet's multi-host tests (tests/netns.rs): Linux network
# namespaces joined by veth pairs to a bridge, and the faults the tests
# inject into them. Needs root, iproute2 (ip, tc) and nftables (nft).
#
#   net.sh up NAME N            NAME-sw: the switch, bridge br0 with 10.77.0.100/24;
#                               NAME-h1..NAME-hN: host i, eth0 = 10.77.0.i/24, lo up;
#                               port hI of the switch is the other end of host i's eth0.
#   net.sh down NAME            delete NAME-* (killing any process left inside)
#   net.sh sweep                `down` every nxt-PID-N-* whose PID is gone (runs
#                               that were killed before they could clean up)
#   net.sh link NAME I up|down  plug in / pull host i's cable (the switch port)
#   net.sh loss NAME I PCT      drop PCT% of the TCP packets in and out of host i's
#                               eth0 at random (nftables numgen)
#   net.sh rate NAME I RATE     cap what host i receives, RATE as tc takes it
#                               (400mbit), with a tbf qdisc on its switch port;
#                               RATE `off` removes the cap
#   net.sh via NAME I ADDR MAP...  host i speaks TCP only with ADDR: its
#                               connections to DEST:PORT are rewritten to ADDR:PROXYPORT
#                               for each MAP `DEST:PORT=PROXYPORT` (nftables dnat),
#                               and any other TCP in or out of eth0 is refused
#   net.sh drops NAME I         packets dropped by `loss` on host i, and refused
#                               by `via`: "LOST REFUSED"
#   net.sh bytes NAME I         bytes host i sent and received on its cable: "SENT RECEIVED"
#
# Nothing is created in the caller's network namespace: every link is made
# directly inside the namespaces (`ip -n`), and the switch is a namespace too.
# `up` removes what it made if a step fails.
set -euo pipefail

SUBNET=10.77.0
SWITCH_IP=$SUBNET.100

die() { echo "net.sh: $*" >&2; exit 1; }

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "missing $tool (Debian: apt-get install -y iproute2 nftables)"
  done
}

down() {
  local name=$1 ns pid
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${name}-(sw|h[0-9]+)$" || true); do
    # A process left inside would keep the namespace alive after `del`.
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

up() {
  local name=$1 n=$2 i sw=$1-sw h
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 99 ]] || die "bad host count $n"
  need ip tc nft
  [[ $(id -u) == 0 ]] || die "must run as root to create network namespaces"
  # Undo everything if any step fails (set -e runs the trap on the way out).
  trap 'down "$name"' ERR
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" addr add "$SWITCH_IP/24" dev br0
  ip -n "$sw" link set br0 gso_max_size 1500
  ip -n "$sw" link set br0 up
  for i in $(seq 1 "$n"); do
    h=$name-h$i
    ip netns add "$h"
    ip -n "$h" link set lo up
    ip -n "$sw" link add "h$i" type veth peer name eth0 netns "$h"
    ip -n "$sw" link set "h$i" master br0
    ip -n "$sw" link set "h$i" up
    ip -n "$h" addr add "$SUBNET.$i/24" dev eth0
    # Real packets, not 64 KiB offload bundles: `loss` then drops one
    # segment at a time, as a lossy link would.
    ip -n "$h" link set eth0 gso_max_size 1500
    ip -n "$h" link set eth0 up
  done
  trap - ERR
}

sweep() {
  local ns pid name done=" "
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns =~ ^(nxt-([0-9]+)-[0-9]+)-(sw|h[0-9]+)$ ]] || continue
    name=${BASH_REMATCH[1]} pid=${BASH_REMATCH[2]}
    [[ -e /proc/$pid || $done == *" $name "* ]] && continue
    echo "net.sh: removing network $name, left by process $pid (gone)" >&2
    down "$name"
    done+="$name "
  done
}

host() { echo "$1-h$2"; }

cmd=${1:-}
shift || true
case $cmd in
  up) [[ $# == 2 ]] || die "usage: up NAME N"; up "$1" "$2" ;;
  down) [[ $# == 1 ]] || die "usage: down NAME"; down "$1" ;;
  sweep) sweep ;;
  link)
    [[ $# == 3 && ($3 == up || $3 == down) ]] || die "usage: link NAME I up|down"
    ip -n "$1-sw" link set "h$2" "$3"
    ;;
  loss)
    [[ $# == 3 ]] || die "usage: loss NAME I PCT"
    ip netns exec "$(host "$1" "$2")" nft -f - <<NFT
table inet nexnet_loss {
  chain in {
    type filter hook input priority 0; policy accept;
    iifname "eth0" meta l4proto tcp numgen random mod 100 < $3 counter drop
  }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "eth0" meta l4proto tcp numgen random mod 100 < $3 counter drop
  }
}
NFT
    ;;
  rate)
    [[ $# == 3 ]] || die "usage: rate NAME I RATE|off"
    if [[ $3 == off ]]; then
      tc -n "$1-sw" qdisc del dev "h$2" root
    else
      tc -n "$1-sw" qdisc replace dev "h$2" root tbf rate "$3" burst 512kb latency 100ms
    fi
    ;;
  via)
    [[ $# -ge 3 ]] || die "usage: via NAME I ADDR [DEST:PORT=PROXYPORT...]"
    name=$1 i=$2 addr=$3
    shift 3
    rules=""
    for map in "$@"; do
      [[ $map =~ ^([0-9.]+):([0-9]+)=([0-9]+)$ ]] || die "bad map $map"
      rules+="    ip daddr ${BASH_REMATCH[1]} tcp dport ${BASH_REMATCH[2]} dnat to $addr:${BASH_REMATCH[3]}"$'\n'
    done
    ip netns exec "$(host "$name" "$i")" nft -f - <<NFT
table ip nexnet_via {
  chain nat_out {
    type nat hook output priority -100; policy accept;
$rules  }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "eth0" meta l4proto tcp ip daddr != $addr counter reject with tcp reset
  }
  chain in {
    type filter hook input priority 0; policy accept;
    iifname "eth0" meta l4proto tcp ip saddr != $addr counter drop
  }
}
NFT
    ;;
  drops)
    [[ $# == 2 ]] || die "usage: drops NAME I"
    h=$(host "$1" "$2")
    count() {
      ip netns exec "$h" nft list table "$1" 2>/dev/null |
        grep -o 'packets [0-9]*' | awk '{s += $2} END {print s + 0}'
    }
    echo "$(count 'inet nexnet_loss') $(count 'ip nexnet_via')"
    ;;
  bytes)
    [[ $# == 2 ]] || die "usage: bytes NAME I"
    # The switch port receives what the host sends, and the reverse.
    ip netns exec "$1-sw" sh -c "cat /sys/class/net/h$2/statistics/rx_bytes /sys/class/net/h$2/statistics/tx_bytes" | paste -sd ' '
    ;;
  *) die "usage: net.sh up|down|sweep|link|loss|rate|via|drops|bytes ... (see the top of this file)" ;;
esac
