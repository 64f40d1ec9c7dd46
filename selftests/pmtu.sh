#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# Path MTU discovery through the director, NAT and tunnel.
#
#   client (c0 mtu 1500) -> director -> rs1 NAT (-m) over a 1280-byte link
#                                    -> rs2 tunnel (-i) over a 1500-byte link,
#                                       answering the client directly
#
# rs1 advertises an MSS of 1460 (route advmss) although its own link is
# 1280 bytes, and the client sends one TCP segment per packet (c0
# gso_max_segs 1: no GSO packet, which IPVS, like the kernel's forwarding,
# does not check against the MTU), with DF on every packet
# (IP_PMTUDISC_DO). So the client's full-sized segments do not fit:
#  - to VIP:80 (NAT to rs1) the director must answer "fragmentation
#    needed" with MTU 1280;
#  - to VIP2:80 (tunnel to rs2) the 20-byte IPIP header makes them 20
#    bytes too big for the 1500-byte link: "fragmentation needed", 1480.
# For each service 2 MB go from the client to the real server and 2 MB
# back (tools/lib/ipvs-bulk, SHA-256 checked). Without the ICMP error the
# upload stalls (nothing is fragmented). The client must have learnt the
# path MTU: `ip route get VIP` shows it as a cached exception and the
# socket's IP_MTU reports it.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

VIP2=10.0.100.2
SIZE=$((2 * 1024 * 1024))
BULK=$TOOLS/lib/ipvs-bulk

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 7
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	topo_nat 2 || return 1
	ip -n "$NS_D" addr add "$VIP2/32" dev lo || return 1
	# rs1: the 1280-byte link, an MSS of 1460 advertised all the same.
	ip -n "$NS_D" link set r1 mtu 1280 || return 1
	ip -n "${NS_RS[1]}" link set eth0 mtu 1280 || return 1
	ip -n "${NS_RS[1]}" route replace default via 10.1.1.1 advmss 1460 || return 1
	# rs2: tunnel real server for VIP2.
	rs_direct 2 tun "$VIP2" || return 1
	# The client: one segment per packet.
	ip -n "$NS_C" link set c0 gso_max_segs 1 || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP2:80" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -t "$VIP2:80" -r "${RIP[2]}:80" -i || return 1
	local ready i j
	ready=$(mktemp -d)
	for i in 1 2; do
		bg "${NS_RS[i]}" "$BULK" server --port 80 --ready-file "$ready/rs$i"
	done
	for i in 1 2; do
		for ((j = 0; j < 300; j++)); do
			[ -e "$ready/rs$i" ] && break
			sleep 0.1
		done
	done
	[ -e "$ready/rs1" ] && [ -e "$ready/rs2" ]
	local rc=$?
	rm -rf "$ready"
	return $rc
}

if setup; then
	ktap_pass "setup: NAT real server behind a 1280-byte link, tunnel real server"
else
	ktap_fail "setup: NAT real server behind a 1280-byte link, tunnel real server"
	ktap_exit
fi

# transfer NAME VIP DIRECTION: one 2 MB transfer, checked; the upload's
# output (with the socket's path MTU) is kept in upload_out.
transfer() {
	local name=$1 vip=$2 dir=$3 out what
	if [ "$dir" = up ]; then
		what="$name: 2 MB client -> real server, data intact"
	else
		what="$name: 2 MB real server -> client, data intact"
	fi
	out=$(nsx "$NS_C" timeout -k 5 90 "$BULK" client "$vip" 80 "$dir" $SIZE --timeout 30 2>&1)
	ktap_diag "$name $out"
	if [[ "$out" == "$dir ok "* ]]; then
		ktap_pass "$what"
	else
		ktap_fail "$what"
	fi
	if [ "$dir" = up ]; then
		upload_out=$out
	fi
}

# check_pmtu NAME VIP MTU: the client learnt MTU for VIP.
check_pmtu() {
	local name=$1 vip=$2 mtu=$3 route sock what
	what="$name: client learnt path MTU $mtu for $vip (fragmentation needed from the director)"
	route=$(ip -n "$NS_C" route get "$vip" 2>&1)
	sock=$(sed -n 's/.* mtu=\([0-9]*\).*/\1/p' <<< "$upload_out")
	if grep -q "cache.* mtu $mtu\b" <<< "$route" && [ "$sock" = "$mtu" ]; then
		ktap_pass "$what"
	else
		ktap_diag "ip route get $vip: $route"
		ktap_diag "socket IP_MTU after the upload: ${sock:-?}, want $mtu"
		ktap_fail "$what"
	fi
}

upload_out=
transfer nat "$VIP" up
check_pmtu nat "$VIP" 1280
transfer nat "$VIP" down

upload_out=
transfer tunnel "$VIP2" up
check_pmtu tunnel "$VIP2" 1480
transfer tunnel "$VIP2" down

ktap_exit
