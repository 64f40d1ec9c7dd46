#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 240
#
# ICMPv6 and fragments of IPv6 NAT connections.
#
#   client (fd00::2) -> director (VIP fd00:100::1) -> rs1 (fd01:1::2, NAT)
#                                                  -> rs2 (fd01:2::2, tunnel)
#
# The links have MTU 1500 but the director's link to rs1 (1280 bytes);
# UDP services [VIP]:81..86 go to rs1 (-m), [VIP]:87 has no real server.
#
#  - [VIP]:81: rs1 has nothing on the port and answers port unreachable;
#    the client must get it from the VIP, quoting its own datagram to the
#    VIP (translated by the director), and its socket ECONNREFUSED;
#  - [VIP]:82: rs1 talks to the client, which then closes its socket and
#    answers port unreachable; rs1 must get it rewritten (from the client,
#    quoting rs1 -> client) and its socket ECONNREFUSED;
#  - [VIP]:83: a datagram bigger than the 1280-byte link to rs1 that the
#    client does not let be fragmented (IPV6_DONTFRAG) must be answered
#    "packet too big" with MTU 1280 (c0 has a larger MTU here), and the
#    client's socket must learn the path MTU;
#  - [VIP2]:86 (fd00:100::2, so that the client keeps a path MTU per
#    case): through an IPv6-in-IPv6 tunnel to rs2 over a 1400-byte link,
#    a datagram that does not fit in the 1360 bytes left inside the tunnel
#    must be answered "packet too big" with MTU 1360;
#  - [VIP]:84: a datagram with hop limit 1 must be answered "time
#    exceeded" (the director forwards to another host);
#  - [VIP]:85: a 3000-byte datagram, fragmented by the client, is
#    reassembled by the director, sent to rs1 in fragments, echoed and
#    comes back whole;
#  - [VIP]:87: no real server: the director answers port unreachable.
#
# ICMPv6 rate limits are off everywhere.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ICMP=$TOOLS/lib/ipvs-icmp
V6=fd00:100::1
V6B=fd00:100::2
C6=fd00::2
R6=fd01:1::2

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 10
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	ns_add NS_C client || return 1
	ns_add NS_D director || return 1
	ns_add R rs1 || return 1
	ns_add R2 rs2 || return 1
	veth_add "$NS_D" r2 "$R2" eth0 || return 1
	ip -n "$NS_D" -b - <<-EOF || return 1
		link set r2 mtu 1400
		addr add fd01:2::1/64 dev r2 nodad
	EOF
	ip -n "$R2" -b - <<-EOF || return 1
		link set eth0 mtu 1400
		addr add fd01:2::2/64 dev eth0 nodad
	EOF
	veth_add "$NS_C" c0 "$NS_D" d0 || return 1
	veth_add "$NS_D" r1 "$R" eth0 || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		link set c0 mtu 1500
		addr add $C6/64 dev c0 nodad
		route add default via fd00::1
	EOF
	ip -n "$NS_D" -b - <<-EOF || return 1
		link set d0 mtu 1500
		addr add fd00::1/64 dev d0 nodad
		addr add $V6/128 dev lo
		addr add $V6B/128 dev lo
		link set r1 mtu 1280
		addr add fd01:1::1/64 dev r1 nodad
	EOF
	ip -n "$R" -b - <<-EOF || return 1
		link set eth0 mtu 1280
		addr add $R6/64 dev eth0 nodad
		route add default via fd01:1::1
	EOF
	local ns
	for ns in "$NS_C" "$NS_D" "$R"; do
		nsx "$ns" sysctl -qw net.ipv6.icmp.ratelimit=0 || return 1
	done
	nsx "$NS_D" sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
	local port
	for port in 81 82 83 84 85; do
		nsx "$NS_D" ipvsadm -A -u "[$V6]:$port" -s rr || return 1
		nsx "$NS_D" ipvsadm -a -u "[$V6]:$port" -r "[$R6]:$port" -m || return 1
	done
	nsx "$NS_D" ipvsadm -A -u "[$V6B]:86" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -u "[$V6B]:86" -r "[fd01:2::2]:86" -i || return 1
	nsx "$NS_D" ipvsadm -A -u "[$V6]:87" -s rr || return 1
	# rs1 echoes datagrams on 83, 84 and 85.
	bg "$R" python3 -c '
import select, socket
socks = []
for port in (83, 84, 85):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", port))
    socks.append(s)
open("'"$work"'/ready", "w").close()
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
'
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$work/ready" ] && return 0
		sleep 0.1
	done
	return 1
}

work=$(mktemp -d)
rm_work() { rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

if setup; then
	ktap_pass "setup: IPv6 UDP services to a NAT real server behind a 1280-byte link"
else
	ktap_fail "setup: IPv6 UDP services to a NAT real server behind a 1280-byte link"
	ktap_exit
fi

# run_case NAME ARGS...: run ipvs-icmp, one result.
run_case() {
	local name=$1 out
	shift
	out=$(timeout -k 5 30 "$ICMP" "$@" --client-ns "$NS_C" --cip "$C6" --vip "${CASE_VIP:-$V6}" 2>&1)
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
run_case "port unreachable from the client reaches the real server rewritten" \
	to-server --server-ns "$R" --rip "$R6" --port 82 --sport 42000
run_case "packet too big for the real server's link: the client learns MTU 1280" \
	too-big --port 83 --sport 43000 --mtu 1280
CASE_VIP=$V6B run_case "packet too big for the IPv6 tunnel: the client learns MTU 1360" \
	too-big --port 86 --sport 46000 --mtu 1360
run_case "hop limit 1: time exceeded" hop-limit --port 84 --sport 44000
run_case "no real server: port unreachable from the director" to-client --port 87 --sport 47000

# Fragments: 3000 bytes out and back whole.
out=$(nsx "$NS_C" python3 - "$V6" <<-'EOF' 2>&1
	import socket, sys
	s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
	s.settimeout(5)
	data = bytes(range(256)) * 11 + b"end"
	s.sendto(data, (sys.argv[1], 85))
	try:
	    back, _ = s.recvfrom(65535)
	except socket.timeout:
	    back = b""
	print("echoed", len(back), "of", len(data), "identical" if back == data else "different")
EOF
)
ktap_diag "$out"
if [ "$out" = "echoed 2819 of 2819 identical" ]; then
	ktap_pass "a fragmented datagram is reassembled, sent on in fragments and echoed whole"
else
	ktap_fail "a fragmented datagram is reassembled, sent on in fragments and echoed whole"
fi

ktap_diag "$(nsx "$NS_D" ipvsadm -Ln --stats | tr '\n' '|')"
ktap_exit
