#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 180
#
# ICMP errors about NAT connections, in both directions.
#
#   client -> director (VIP 10.0.100.1) -> rs1 (NAT, -m), UDP services
#
# From the real server to the client: VIP:81 goes to rs1:81, where nothing
# listens. rs1 answers with ICMP port unreachable (from RIP, quoting
# CIP -> RIP:81); the director must rewrite it as the client expects it:
# from the VIP, quoting CIP -> VIP:81. The client's connected UDP socket
# must get ECONNREFUSED, and a raw socket in the client's namespace checks
# the source, the quoted addresses and ports and the ICMP checksum.
#
# From the client to the real server: through VIP:82 (rs1:82) the client
# sends a datagram and gets an answer from a socket of rs1 connected to it;
# then the client closes its socket and rs1 sends again. The client answers
# port unreachable to the VIP, quoting VIP:82 -> CIP; the director must
# forward it to rs1 rewritten (to RIP, quoting RIP:82 -> CIP), and rs1's
# connected socket must get ECONNREFUSED.
#
# ICMP rate limits are off in the client and rs1 (icmp_ratelimit=0), so
# every error is sent. Both cases run twice, from different client ports.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ICMP=$TOOLS/lib/ipvs-icmp

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 5
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	topo_nat 1 || return 1
	nsx "$NS_C" sysctl -qw net.ipv4.icmp_ratelimit=0 || return 1
	nsx "${NS_RS[1]}" sysctl -qw net.ipv4.icmp_ratelimit=0 || return 1
	local port
	for port in 81 82; do
		nsx "$NS_D" ipvsadm -A -u "$VIP:$port" -s rr || return 1
		nsx "$NS_D" ipvsadm -a -u "$VIP:$port" -r "${RIP[1]}:$port" -m || return 1
	done
}

if setup; then
	ktap_pass "setup: UDP services VIP:81 and VIP:82 to a NAT real server"
else
	ktap_fail "setup: UDP services VIP:81 and VIP:82 to a NAT real server"
	ktap_exit
fi

# run_case NAME ARGS...: run ipvs-icmp, one result.
run_case() {
	local name=$1 out
	shift
	out=$(timeout -k 5 30 "$ICMP" "$@" --client-ns "$NS_C" --cip "$CIP" --vip "$VIP" 2>&1)
	ktap_diag "$out"
	if [ "$(tail -1 <<< "$out")" = "result: ok" ]; then
		ktap_pass "$name"
	else
		ktap_fail "$name"
	fi
}

for sport in 41000 41001; do
	run_case "port unreachable from the real server reaches the client from the VIP (client port $sport)" \
		to-client --port 81 --sport $sport
done
for sport in 42000 42001; do
	run_case "port unreachable from the client reaches the real server rewritten (client port $sport)" \
		to-server --server-ns "${NS_RS[1]}" --rip "${RIP[1]}" --port 82 --sport $sport
done

ktap_exit
