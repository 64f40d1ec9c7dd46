#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# IPv6 and mixed-family tunnel real servers, end to end, the C IPVS and
# ours side by side in one boot: every kind of tunnel the real server's
# family and tunnel type give, decapsulated by the real server's kernel.
#
#   client -- director (VIP6 fd00:100::1, VIP4 10.0.100.1) -- rs1 (-i)
#      \______________ return path (x1 -- ret0) ________________/
#
#   [VIP6]:80 -> fd01:1::2   ipip             IPv6 in IPv6 (ip6tnl0)
#   [VIP6]:81 -> fd01:1::2   gue, port 6080   IPv6 in GUE in IPv6 (fou)
#   [VIP6]:82 -> fd01:1::2   gue --tun-csum   the same, UDP checksum (6081)
#   [VIP6]:83 -> fd01:1::2   gre              IPv6 in GRE in IPv6 (ip6gre0)
#   [VIP6]:84 -> fd01:1::4   gre --tun-csum   the same, GRE checksum (an
#                                             ip6gre device that wants it)
#   VIP4:85   -> fd01:1::3   ipip             IPv4 in IPv6 (ip6tnl mode ipip6)
#   [VIP6]:86 -> 10.1.1.2    ipip             IPv6 in IPv4 (sit0)
#
# For each service the client sends two UDP datagrams from a fixed port; the
# real server's kernel decapsulates them and a UDP server on the virtual
# addresses answers by the return path, so the client must get both
# answers. tools/lib/ipvs-tunnel-capture records the tunnelled packets on
# rs1's link: ours must be the C IPVS's byte for byte (IPv4 IDs masked),
# and the oracle's must carry the expected outer header. The listings of
# both must match too.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CAPTURE=$TOOLS/lib/ipvs-tunnel-capture
V6=fd00:100::1
V4=10.0.100.1
# name port vip real-server options outer-protocol(hex, v4 protocol or v6
# next header) and what follows the outer header (hex regular expression)
CASES=(
	"ip6ip6 80 [$V6] [fd01:1::2] --tun-type=ipip 6 29:"
	"gue6 81 [$V6] [fd01:1::2] --tun-type=gue,--tun-port=6080,--tun-nocsum 6 11:....17c0....000000290000"
	"gue6-csum 82 [$V6] [fd01:1::2] --tun-type=gue,--tun-port=6081,--tun-csum 6 11:....17c1........00290000"
	"gre6 83 [$V6] [fd01:1::2] --tun-type=gre,--tun-nocsum 6 2f:000086dd"
	"gre6-csum 84 [$V6] [fd01:1::4] --tun-type=gre,--tun-csum 6 2f:800086dd"
	"ipip6 85 $V4 [fd01:1::3] --tun-type=ipip 6 04:"
	"6in4 86 [$V6] 10.1.1.2 --tun-type=ipip 4 29:"
)
impls=(c rust)
ktap_header $(( ${#CASES[@]} * 2 + 2 ))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" tunnel6; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

setup() {
	ns_add NS_C client || return 1
	ns_add NS_D director || return 1
	ns_add R rs1 || return 1
	veth_add "$NS_C" c0 "$NS_D" d0 || return 1
	veth_add "$NS_D" r1 "$R" eth0 || return 1
	ip link add x1 netns "$NS_C" type veth peer name ret0 netns "$R" || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		addr add fd00::2/64 dev c0 nodad
		addr add 10.0.0.2/24 dev c0
		route add default via fd00::1
		route add default via 10.0.0.1
		link set x1 up
		addr add fd02:1::1/64 dev x1 nodad
		addr add 10.2.1.1/24 dev x1
	EOF
	ip -n "$NS_D" -b - <<-EOF || return 1
		addr add fd00::1/64 dev d0 nodad
		addr add 10.0.0.1/24 dev d0
		addr add $V6/128 dev lo
		addr add $V4/32 dev lo
		addr add fd01:1::1/64 dev r1 nodad
		addr add 10.1.1.1/24 dev r1
	EOF
	ip -n "$R" -b - <<-EOF || return 1
		addr add fd01:1::2/64 dev eth0 nodad
		addr add fd01:1::3/64 dev eth0 nodad
		addr add fd01:1::4/64 dev eth0 nodad
		addr add 10.1.1.2/24 dev eth0
		addr add $V6/128 dev lo
		addr add $V4/32 dev lo
		link set ret0 up
		addr add fd02:1::2/64 dev ret0 nodad
		addr add 10.2.1.2/24 dev ret0
		route add fd00::2/128 via fd02:1::1 dev ret0
		route add 10.0.0.2/32 via 10.2.1.1 dev ret0
		link set ip6tnl0 up
		link set sit0 up
		link set ip6gre0 up
		link add t46 type ip6tnl mode ipip6 local fd01:1::3 remote any
		link set t46 up
		link add g6c type ip6gre local fd01:1::4 remote fd01:1::1 icsum
		link set g6c up
	EOF
	ip netns exec "$R" ip fou add port 6080 gue -6 || return 1
	ip netns exec "$R" ip fou add port 6081 gue -6 || return 1
	nsx "$NS_D" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
	nsx "$NS_C" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.x1.rp_filter=0
	nsx "$R" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.t46.rp_filter=0 net.ipv4.conf.sit0.rp_filter=0
	# The real server's answers: every datagram to a virtual address is
	# echoed with "rs1" in front.
	bg "$R" python3 -c '
import select, socket
socks = []
for port in range(80, 87):
    for fam, addr in ((socket.AF_INET6, "'"$V6"'"), (socket.AF_INET, "'"$V4"'")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((addr, port))
        socks.append(s)
open("'"$work"'/ready", "w").close()
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(2048)
        s.sendto(b"rs1 " + data, peer)
'
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$work/ready" ] && break
		sleep 0.1
	done
	rm -f "$work/ready"
	local c name port vip rs opts
	for c in "${CASES[@]}"; do
		read -r name port vip rs opts _ <<< "$c"
		nsx "$NS_D" ipvsadm -A -u "$vip:$port" -s rr || return 1
		# shellcheck disable=SC2046
		nsx "$NS_D" ipvsadm -a -u "$vip:$port" -r "$rs:$port" -i $(tr , ' ' <<< "$opts") || return 1
	done
}

# send: two datagrams per service from port 40000 + service port; prints
# "NAME answered N".
send() {
	nsx "$NS_C" python3 - "${CASES[@]}" <<-'EOF'
		import socket, sys
		for c in sys.argv[1:]:
		    name, port, vip = c.split()[:3]
		    port = int(port)
		    v6 = vip.startswith("[")
		    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
		    s.bind(("::" if v6 else "0.0.0.0", 40000 + port))
		    s.settimeout(3)
		    n = 0
		    for i in range(2):
		        s.sendto(b"tunnel6-%s-%d" % (name.encode(), i), (vip.strip("[]"), port))
		        try:
		            if s.recv(2048).startswith(b"rs1 tunnel6-"):
		                n += 1
		        except socket.timeout:
		            pass
		    print(name, "answered", n, flush=True)
	EOF
}

run_impl() {
	local impl=$1 ready cpid i
	mkdir -p "$work/$impl"
	ipvs_use "$impl" || return 1
	setup || return 1
	ready=$work/$impl/ready
	nsx "$R" "$CAPTURE" eth0 fd01:1::2 fd01:1::3 fd01:1::4 10.1.1.2 --count $(( ${#CASES[@]} * 2 )) \
		--ready-file "$ready" > "$work/$impl/pkts" 2> "$work/$impl/capture.err" &
	cpid=$!
	for ((i = 0; i < 100; i++)); do
		[ -e "$ready" ] && break
		sleep 0.1
	done
	send > "$work/$impl/answers" 2>&1
	wait "$cpid"
	nsx "$NS_D" ipvsadm -Ln --tun-info > "$work/$impl/list" 2>&1
	# Services sorted, each with its real server: the listing order is the
	# service hash table's, whose key ours (as upstream since 7.1) draws
	# at random.
	nsx "$NS_D" cat /proc/net/ip_vs 2>&1 | awk '
		NR <= 3 { print; fflush(); next }
		/^[A-Z]/ { if (b != "") print b | "LC_ALL=C sort"; b = $0; next }
		{ b = b "\001" $0 }
		END { if (b != "") print b | "LC_ALL=C sort" }' | tr '\001' '\n' > "$work/$impl/proc"
	cleanup_ns
}

setup_ok=1
for impl in "${impls[@]}"; do
	if ! run_impl "$impl"; then
		setup_ok=0
		ktap_diag "$impl: setup failed"
		cleanup_ns
	fi
done
if [ $setup_ok = 1 ]; then
	ktap_pass "set up under c and rust"
else
	ktap_fail "set up under c and rust"
fi

idx=0
for c in "${CASES[@]}"; do
	read -r name port vip rs opts family want <<< "$c"
	proto=${want%%:*}
	after=${want#*:}
	# The oracle's two packets: the outer family and protocol, the header
	# after it, the datagram inside; and both answered.
	bad=""
	for p in $(sed -n "$((idx * 2 + 1)),$((idx * 2 + 2))p" "$work/c/pkts"); do
		if [ "$family" = 6 ]; then
			[ "${p:0:1}" = 6 ] && [ "${p:12:2}" = "$proto" ] || bad+="outer ${p:0:14}; "
			[[ "${p:80}" =~ ^$after ]] || bad+="header ${p:80:40}; "
		else
			[ "${p:0:1}" = 4 ] && [ "${p:18:2}" = "$proto" ] || bad+="outer ${p:0:20}; "
		fi
		[[ "$p" == *$(printf 'tunnel6-%s' "$name" | xxd -p | tr -d '\n')* ]] || bad+="no datagram inside; "
	done
	grep -qx "$name answered 2" "$work/c/answers" || bad+="$(grep "^$name " "$work/c/answers" || echo "no answer line"); "
	if [ -z "$bad" ]; then
		ktap_pass "$name: the C IPVS tunnels and the real server answers"
	else
		ktap_diag "c $name: $bad"
		ktap_fail "$name: the C IPVS tunnels and the real server answers"
	fi
	# Ours: the same packets, both answered.
	if [ "$(sed -n "$((idx * 2 + 1)),$((idx * 2 + 2))p" "$work/c/pkts")" = \
	     "$(sed -n "$((idx * 2 + 1)),$((idx * 2 + 2))p" "$work/rust/pkts")" ] &&
	   grep -qx "$name answered 2" "$work/rust/answers"; then
		ktap_pass "$name: ours sends the C IPVS's packets and is answered"
	else
		ktap_diag "rust $name: $(grep "^$name " "$work/rust/answers" || echo "no answer line")"
		ktap_diag "c:    $(sed -n "$((idx * 2 + 1))p" "$work/c/pkts" | cut -c1-160)"
		ktap_diag "rust: $(sed -n "$((idx * 2 + 1))p" "$work/rust/pkts" | cut -c1-160)"
		ktap_fail "$name: ours sends the C IPVS's packets and is answered"
	fi
	idx=$((idx + 1))
done

if diff -u "$work/c/list" "$work/rust/list" > "$work/list.diff" &&
   diff -u "$work/c/proc" "$work/rust/proc" >> "$work/list.diff"; then
	ktap_pass "listings (ipvsadm -Ln --tun-info, /proc/net/ip_vs) identical"
else
	while read -r l; do ktap_diag "$l"; done < <(head -30 "$work/list.diff")
	ktap_fail "listings (ipvsadm -Ln --tun-info, /proc/net/ip_vs) identical"
fi
ktap_exit
