#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# /proc/sys/net/ipv4/vs sysctls, under the C IPVS and ours in one boot:
#  - every sysctl ours offers exists in the C IPVS with the same default;
#  - sloppy_tcp: a bare ACK to a virtual service (no SYN seen) creates a
#    connection only when sloppy_tcp is 1;
#  - pmtu_disc=0: a tunnel service no longer answers "fragmentation needed"
#    for DF packets too big for the tunnel, it fragments the outer packet;
#    so a DF upload of full-sized segments gets through while the client
#    learns no smaller path MTU.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

SYS=/proc/sys/net/ipv4/vs
BULK=$TOOLS/lib/ipvs-bulk
impls=(c rust)

ktap_header 5

# defaults IMPL: "name=value" for each sysctl of a fresh namespace.
defaults() {
	local ns f
	ns_add ns sysctl || return 1
	nsx "$ns" ipvsadm -A -t 10.9.9.9:1 >/dev/null 2>&1
	# One process for all of them: "name=value".
	nsx "$ns" grep -H . "$SYS"/* 2>/dev/null | sed "s|^$SYS/||; s|:|=|" | tr -s '\t ' ' '
	nsx "$ns" ipvsadm -C
	ip netns del "$ns"
}

ipvs_use c || ktap_skip_all "cannot load the C IPVS"
cdef=$(defaults)
ipvs_use rust || ktap_skip_all "cannot load the Rust IPVS"
rdef=$(defaults)
missing=$(comm -13 <(sort <<< "$cdef") <(sort <<< "$rdef"))
if [ -n "$rdef" ] && [ -z "$missing" ]; then
	ktap_pass "ours: $(wc -l <<< "$rdef") sysctls, each with the C IPVS's name and default"
else
	ktap_diag "ours not as in C: $missing"
	ktap_fail "ours: every sysctl with the C IPVS's name and default"
fi

# A bare ACK from the client to VIP:80 (raw socket): does it make a connection?
bare_ack() {
	nsx "$NS_C" python3 - "$CIP" "$VIP" <<- 'EOF'
	import socket, struct, sys
	src, dst = sys.argv[1], sys.argv[2]
	sport, dport = 45678, 80
	def csum(b):
	    if len(b) % 2:
	        b += b"\0"
	    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
	    while s >> 16:
	        s = (s & 0xffff) + (s >> 16)
	    return ~s & 0xffff
	tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, 0x10, 65535, 0, 0)
	pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
	tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
	s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
	s.sendto(tcp, (dst, 0))
	EOF
	sleep 0.5
	nsx "$NS_D" ipvsadm -Lcn | grep -c ":45678 "
}

for impl in "${impls[@]}"; do
	cleanup_ns
	ipvs_use "$impl" || { ktap_fail "$impl: load"; continue; }
	if ! topo_nat 2 || ! start_servers 1; then
		ktap_fail "$impl: setup"
		continue
	fi
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m
	off=$(bare_ack)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.sloppy_tcp=1
	on=$(bare_ack)
	if [ "$off" = 0 ] && [ "$on" = 1 ]; then
		ktap_pass "$impl: sloppy_tcp=1 lets a bare ACK start a connection, 0 does not"
	else
		ktap_diag "connections made by a bare ACK: sloppy_tcp=0: $off, =1: $on"
		ktap_fail "$impl: sloppy_tcp=1 lets a bare ACK start a connection, 0 does not"
	fi

	# pmtu_disc=0 on a tunnel real server: rs2, 1500-byte links.
	ready=$(mktemp -d)
	if ! rs_direct 2 tun "$VIP"; then
		ktap_fail "$impl: tunnel setup"
		continue
	fi
	bg "${NS_RS[2]}" "$BULK" server --port 8080 --ready-file "$ready/rs2"
	for ((j = 0; j < 300; j++)); do [ -e "$ready/rs2" ] && break; sleep 0.1; done
	rm -rf "$ready"
	ip -n "$NS_C" link set c0 gso_max_segs 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:8080" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:8080" -r "${RIP[2]}:8080" -i
	nsx "$NS_D" sysctl -qw net.ipv4.vs.pmtu_disc=0
	out=$(nsx "$NS_C" timeout -k 5 90 "$BULK" client "$VIP" 8080 up 524288 --timeout 30 2>&1)
	route=$(ip -n "$NS_C" route get "$VIP" 2>&1)
	ktap_diag "$impl: $out"
	if [[ "$out" == "up ok "*" mtu=1500" ]] && ! grep -q "cache.* mtu " <<< "$route"; then
		ktap_pass "$impl: pmtu_disc=0: tunnel fragments, no fragmentation needed to the client"
	else
		ktap_diag "client: ip route get $VIP: $route"
		ktap_fail "$impl: pmtu_disc=0: tunnel fragments, no fragmentation needed to the client"
	fi
done

ktap_exit
