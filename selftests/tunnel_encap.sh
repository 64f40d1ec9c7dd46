#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# The tunnel types of a tunnel real server on the wire: IP in IP, GUE (to a
# tunnel port, with and without the UDP checksum, with remote checksum
# offload) and GRE (with and without its checksum), the C IPVS and ours
# side by side in one boot.
#
#   client -> director (VIP 10.0.100.1, udp :80, rr) -> rs1 (-i --tun-type ...)
#
# For each type, set with `ipvsadm -e` (over generic netlink, the only way to
# ask for GUE and GRE), the client sends two UDP datagrams from a fixed
# port through a normal socket (its checksum left to the veth "hardware":
# remote checksum offload applies) and one through a raw socket (its
# checksum complete). tools/lib/ipvs-tunnel-capture records what reaches
# rs1's link: outer IPv4 header, UDP and GUE header or GRE header, the
# inner packet. The packets of ours must be the C IPVS's byte for byte (IP
# ID and header checksum masked: the sender picks the ID); the GUE source
# port, which hashes the inner flow, is the same in both as they run in one
# boot. Sanity checks on the oracle's packets make sure each type is what
# it says (outer protocol, GUE header and port, GRE header, the datagram
# inside). The real server does not decapsulate GUE and GRE here, so
# nothing answers: the comparison is of the encapsulation (tunnel6.sh goes
# end to end, IPv6 and mixed families).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CAPTURE=$TOOLS/lib/ipvs-tunnel-capture
TYPES=(ipip gue gue-csum gue-remcsum gre gre-csum)
declare -A OPTS=(
	[ipip]="--tun-type ipip"
	[gue]="--tun-type gue --tun-port 6080 --tun-nocsum"
	[gue-csum]="--tun-type gue --tun-port 6081 --tun-csum"
	[gue-remcsum]="--tun-type gue --tun-port 6082 --tun-remcsum"
	[gre]="--tun-type gre --tun-nocsum"
	[gre-csum]="--tun-type gre --tun-csum"
)
# Outer protocol and what follows the outer IPv4 header (hex, a regular
# expression), for the oracle's sanity check: UDP to the tunnel port (no
# checksum without --tun-csum), then the GUE header (option length, IP in
# IP, flags: with remote checksum offload, the private flags option and the
# offsets, for the datagrams whose checksum was left to the hardware); GRE
# flags and EtherType.
declare -A WANT=(
	[ipip]="04:"
	[gue]="11:....17c0....000000040000"
	[gue-csum]="11:....17c1........00040000"
	[gue-remcsum]="11:....17c2........(0204000180000000|00040000)"
	[gre]="2f:00000800"
	[gre-csum]="2f:80000800"
)

impls=(c rust)
ktap_header $(( ${#TYPES[@]} * 2 + 1 ))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" tunnel_encap; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# send: two UDP datagrams through a socket, one built by hand (raw).
send() {
	nsx "$NS_C" python3 - "$VIP" <<-'EOF'
		import socket, struct, sys
		vip = sys.argv[1]
		u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		u.bind(("10.0.0.2", 40000))
		for i in range(2):
		    u.sendto(b"tunnel-encap-%d" % i, (vip, 80))
		# The same flow from a raw socket: a complete UDP checksum.
		payload = b"tunnel-encap-raw"
		src, dst = socket.inet_aton("10.0.0.2"), socket.inet_aton(vip)
		udp = struct.pack("!HHHH", 40000, 80, 8 + len(payload), 0) + payload
		ph = src + dst + struct.pack("!BBH", 0, 17, len(udp))
		data = ph + udp + (b"\0" if len(udp) % 2 else b"")
		s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
		while s >> 16:
		    s = (s & 0xFFFF) + (s >> 16)
		c = (~s & 0xFFFF) or 0xFFFF
		udp = udp[:6] + struct.pack("!H", c) + udp[8:]
		r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
		r.sendto(udp, (vip, 0))
	EOF
}

run_impl() {
	local impl=$1 t ready
	mkdir -p "$work/$impl"
	ipvs_use "$impl" || return 1
	topo_nat 1 || return 1
	rs_direct 1 tun "$VIP" || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[1]}:80" -i || return 1
	for t in "${TYPES[@]}"; do
		# shellcheck disable=SC2086
		nsx "$NS_D" ipvsadm -e -u "$VIP:80" -r "${RIP[1]}:80" -i ${OPTS[$t]} || return 1
		nsx "$NS_D" ipvsadm -L -n --tun-info > "$work/$impl/$t.list" 2>&1
		ready=$work/$impl/$t.ready
		nsx "${NS_RS[1]}" "$CAPTURE" eth0 "${RIP[1]}" --count 3 --ready-file "$ready" \
			> "$work/$impl/$t.pkts" 2> "$work/$impl/$t.err" &
		local cpid=$! i
		for ((i = 0; i < 100; i++)); do
			[ -e "$ready" ] && break
			sleep 0.1
		done
		send > "$work/$impl/$t.send" 2>&1
		wait "$cpid"
	done
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

for t in "${TYPES[@]}"; do
	# The oracle: three packets of the expected kind, the datagram inside.
	want=${WANT[$t]}
	proto=${want%%:*}
	after=${want#*:}
	bad=""
	n=0
	while read -r p; do
		n=$((n + 1))
		ihl=$(( (16#${p:1:1}) * 8 ))
		[ "${p:18:2}" = "$proto" ] || bad+="protocol ${p:18:2}; "
		[[ "${p:$ihl}" =~ ^$after ]] || bad+="header ${p:$ihl:40}; "
		# The client's datagram is inside ("tunnel-encap" in hex).
		[[ "$p" == *74756e6e656c2d656e636170* ]] || bad+="no datagram inside; "
	done < "$work/c/$t.pkts"
	[ "$n" = 3 ] || bad+="$n packets captured; "
	if [ -z "$bad" ]; then
		ktap_pass "$t: the C IPVS sends $n packets of the type"
	else
		ktap_diag "c $t: $bad"
		ktap_diag "$(head -3 "$work/c/$t.pkts")"
		ktap_fail "$t: the C IPVS sends packets of the type"
	fi
	if [ -s "$work/c/$t.pkts" ] && cmp -s "$work/c/$t.pkts" "$work/rust/$t.pkts" &&
	   cmp -s "$work/c/$t.list" "$work/rust/$t.list"; then
		ktap_pass "$t: ours sends the same packets and lists the same settings"
	else
		ktap_diag "$(diff --label c --label rust "$work/c/$t.pkts" "$work/rust/$t.pkts" | head -10)"
		ktap_diag "$(diff --label c --label rust "$work/c/$t.list" "$work/rust/$t.list" | head -10)"
		ktap_fail "$t: ours sends the same packets and lists the same settings"
	fi
done
ktap_exit
