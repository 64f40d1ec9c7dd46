#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 240
#
# Path MTU discovery through an IP-in-IP tunnel whose bottleneck is beyond
# the director: the "fragmentation needed" comes from a router on the way to
# the real server, about the director's tunnel packet, and the director must
# relay it to the client about the client's own packet (upstream's tunnel
# case of ip_vs_in_icmp).
#
#   client -- director ==1500== router ==1300== rs1 (tunnel, -i)
#                                                 \-- return path to client
#
# The client sends one TCP segment per packet with DF (ipvs-bulk:
# IP_PMTUDISC_DO, c0 gso_max_segs 1). Its 1460-byte segments first get
# "fragmentation needed, 1480" from the director itself (the tunnel's 20
# bytes on its own 1500-byte link); the resulting 1500-byte tunnel packets
# do not fit the router's 1300-byte link, so the router tells the director,
# which must learn MTU 1300 towards the real server and tell the client
# 1280. Without the relay the upload stalls. Checked: the 2 MB upload
# arrives intact, the client learnt 1280 for the VIP, the director 1300 for
# the real server.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

SIZE=$((2 * 1024 * 1024))
BULK=$TOOLS/lib/ipvs-bulk
NS_R=

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 4
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	local rs ready j
	topo_nat 0 || return 1
	ns_add NS_R router || return 1
	ns_add rs rs1 || return 1
	NS_RS=("" "$rs")
	RIP=("" 10.3.1.2)
	veth_add "$NS_D" r1 "$NS_R" a0 || return 1
	ip -n "$NS_D" addr add 10.1.1.1/24 dev r1
	ip -n "$NS_R" addr add 10.1.1.2/24 dev a0
	ip -n "$NS_D" route add 10.3.1.0/24 via 10.1.1.2 || return 1
	veth_add "$NS_R" b0 "$rs" eth0 || return 1
	ip -n "$NS_R" link set b0 mtu 1300
	ip -n "$rs" link set eth0 mtu 1300
	ip -n "$NS_R" addr add 10.3.1.1/24 dev b0
	ip -n "$rs" addr add "${RIP[1]}/24" dev eth0
	ip -n "$rs" route add default via 10.3.1.1 || return 1
	nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1 || return 1
	rs_direct 1 tun "$VIP" || return 1
	ip -n "$NS_C" link set c0 gso_max_segs 1 || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -i || return 1
	ready=$(mktemp -d)
	bg "$rs" "$BULK" server --port 80 --ready-file "$ready/rs1"
	for ((j = 0; j < 300; j++)); do
		[ -e "$ready/rs1" ] && break
		sleep 0.1
	done
	[ -e "$ready/rs1" ]
	local rc=$?
	rm -rf "$ready"
	return $rc
}

if setup; then
	ktap_pass "setup: tunnel real server behind a router with a 1300-byte link"
else
	ktap_fail "setup: tunnel real server behind a router with a 1300-byte link"
	ktap_exit
fi

out=$(nsx "$NS_C" timeout -k 5 120 "$BULK" client "$VIP" 80 up $SIZE --timeout 40 2>&1)
ktap_diag "$out"
if [[ "$out" == "up ok "* ]]; then
	ktap_pass "2 MB client -> tunnel real server, data intact"
else
	ktap_fail "2 MB client -> tunnel real server, data intact"
fi

route=$(ip -n "$NS_C" route get "$VIP" 2>&1)
sock=$(sed -n 's/.* mtu=\([0-9]*\).*/\1/p' <<< "$out")
if grep -q "cache.* mtu 1280\b" <<< "$route" && [ "$sock" = 1280 ]; then
	ktap_pass "client learnt path MTU 1280 for the VIP (error relayed by the director)"
else
	ktap_diag "client: ip route get $VIP: $route"
	ktap_diag "client socket IP_MTU after the upload: ${sock:-?}, want 1280"
	ktap_fail "client learnt path MTU 1280 for the VIP (error relayed by the director)"
fi

route=$(ip -n "$NS_D" route get "${RIP[1]}" 2>&1)
if grep -q "cache.* mtu 1300\b" <<< "$route"; then
	ktap_pass "director learnt path MTU 1300 towards the tunnel real server"
else
	ktap_diag "director: ip route get ${RIP[1]}: $route"
	ktap_fail "director learnt path MTU 1300 towards the tunnel real server"
fi

ktap_exit
