#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 240
#
# Real servers on the director itself (upstream's "local node").
#
#   client -> director (VIP 10.0.100.1, DIP 10.0.0.1) -> rs1 (NAT, -m)
#             with an ipvs-server "local" in the director's namespace
#
# Three services, each with rr over a local real server and rs1, TCP and
# UDP (ipvs-server --udp-pktinfo answers UDP from the address it was
# sent to):
#   VIP:80 -> 127.0.0.1:80 -g  and rs1:80 -m  (DR to loopback: the packet
#             is delivered locally unchanged, to VIP:80)
#   VIP:81 -> DIP:81 -g        and rs1:81 -m  (DR to the director's address)
#   VIP:82 -> DIP:8080 -m      and rs1:82 -m  (NAT to a local port: the
#             local server's answer from DIP:8080 must leave as VIP:82)
# 6 TCP connections and 6 UDP datagrams per service must all be answered,
# 3 by the local server and 3 by rs1. For VIP:80 and VIP:81 the local
# server would answer the client even without IPVS (it listens on all
# addresses), so the even split is what shows that IPVS scheduled the
# local real server; nothing listens on VIP:82 on the director.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

REQ=6
PER=$((REQ / 2))

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 7
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

# Services: port, local real server, its forwarding flag, rs1's port.
SVC_PORT=(80 81 82)
SVC_LOCAL=("127.0.0.1:80" "$DIP:81" "$DIP:8080")
SVC_FLAG=(-g -g -m)
SVC_NAME=("DR to 127.0.0.1:80" "DR to the director address $DIP:81" "NAT to the local port $DIP:8080")

setup() {
	local i p ready j
	topo_nat 1 || return 1
	start_servers 1 80 --port 81 --port 82 --udp-pktinfo || return 1
	ready=$(mktemp -d)
	bg "$NS_D" "$SERVER" local --port 80 --port 81 --port 8080 --udp-pktinfo \
		--ready-file "$ready/local"
	for ((j = 0; j < 300; j++)); do
		[ -e "$ready/local" ] && break
		sleep 0.1
	done
	[ -e "$ready/local" ] || { rm -rf "$ready"; return 1; }
	rm -rf "$ready"
	for ((i = 0; i < ${#SVC_PORT[@]}; i++)); do
		for p in -t -u; do
			nsx "$NS_D" ipvsadm -A "$p" "$VIP:${SVC_PORT[i]}" -s rr || return 1
			nsx "$NS_D" ipvsadm -a "$p" "$VIP:${SVC_PORT[i]}" -r "${SVC_LOCAL[i]}" "${SVC_FLAG[i]}" || return 1
			nsx "$NS_D" ipvsadm -a "$p" "$VIP:${SVC_PORT[i]}" -r "${RIP[1]}:${SVC_PORT[i]}" -m || return 1
		done
	done
}

if setup; then
	ktap_pass "setup: three services with a local and a remote real server"
else
	ktap_diag "$(nsx "$NS_D" ipvsadm -Ln 2>&1)"
	ktap_fail "setup: three services with a local and a remote real server"
	ktap_exit
fi

# check NAME OUTPUT: REQ answers, PER from the local server, PER from rs1.
check() {
	local name=$1 out=$2 nlocal nrs nerr
	nlocal=$(grep -c -E '^[0-9]+ local$' <<< "$out")
	nrs=$(grep -c -E '^[0-9]+ rs1$' <<< "$out")
	nerr=$(grep -c -v -E '^[0-9]+ (local|rs1)$' <<< "$out")
	if [ "$nlocal" = $PER ] && [ "$nrs" = $PER ] && [ "$nerr" = 0 ]; then
		ktap_pass "$name: $REQ answered, $PER by the local real server"
	else
		ktap_diag "$name: local $nlocal, rs1 $nrs, unanswered or wrong $nerr (want $PER, $PER, 0)"
		[ "$nerr" = 0 ] || ktap_diag "$(grep -v -E '^[0-9]+ (local|rs1)$' <<< "$out" | head -6)"
		ktap_fail "$name: $REQ answered, $PER by the local real server"
	fi
}

for ((i = 0; i < ${#SVC_PORT[@]}; i++)); do
	port=${SVC_PORT[i]}
	out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" "$port" $REQ --timeout 3)
	tcp_out=$out
	out=$(nsx "$NS_C" "$CLIENT" udp "$VIP" "$port" $REQ --sport-base $((40000 + 100 * i)) --timeout 3)
	check "VIP:$port ${SVC_NAME[i]}, tcp" "$tcp_out"
	check "VIP:$port ${SVC_NAME[i]}, udp" "$out"
done

ktap_exit
