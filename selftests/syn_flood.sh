#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 1200
# cpus: 2 (races between CPUs: tools/lib/check runs it in its 2-vCPU boot)
#
# SYN flood from spoofed sources at a NAT service, the C IPVS and ours side
# by side in one boot. For each implementation:
#
#   client (10.0.0.2) -- director (VIP 10.0.100.1:80, rr, NAT) -- rs1, rs2
#                                                                 (echo)
#
# an established TCP flow (tools/lib/ipvs-synflood flow: a line out and
# back every 50 ms over one connection) runs through the service while
# tools/lib/ipvs-synflood sends SYN_FLOOD_COUNT SYNs (default 3000; a long
# run sends a million, see Documentation/testing.rst) from 10.9.0.0/16 through a raw socket (the
# director routes the real servers' SYN-ACKs to that network back to the
# client, which drops them), twice:
#
#  1. defended: amemthresh above free memory (2^31-1 pages) with drop_entry,
#     drop_packet and secure_tcp at 1, so that the defense timer switches
#     all three on (2, checked): the table stays bounded (at most 10 % of
#     the connections the undefended flood leaves);
#  2. undefended (all three 0): the flood reaches IPVS (more than half of
#     the SYNs, or 1000, are connections; half-open ones expire after 60 s
#     in a long run), which shows the bound above means something;
#
# and in both the flow keeps flowing during the flood (round trips
# complete, none lost). Reported for both implementations: connections,
# MemAvailable and Slab growth (kB, /proc/meminfo) and ip_vs_conn slab
# objects (when /proc/slabinfo exists), also written to
# $VM_OUT/syn_flood.tsv. The runner fails the test on any kernel splat.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

COUNT=${SYN_FLOOD_COUNT:-3000}
FLOOD=$TOOLS/lib/ipvs-synflood
SYS=/proc/sys/net/ipv4/vs
impls=(c rust)
[ "$IPVS_IMPL" = c ] && impls=(c)
ipvs_available rust || impls=(c)

PER_IMPL=5
ktap_header $(( ${#impls[@]} * PER_IMPL ))
ktap_diag "SYN_FLOOD_COUNT=$COUNT"

tmp=$(mktemp -d)
flow_pid=
stop_flow() {
	[ -n "$flow_pid" ] || return 0
	touch "$tmp/stop"
	wait "$flow_pid" 2>/dev/null
	flow_pid=
}
CLEANUP_HOOKS+=(stop_flow)

meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# Connections of the service: ActiveConn + InActConn over its real servers.
conns() {
	nsx "$NS_D" ipvsadm -Ln -t "$VIP:80" | awk '$1 == "->" && $2 ~ /:80$/ { n += $5 + $6 } END { print n + 0 }'
}
slab_conns() {
	awk '$1 == "ip_vs_conn" { print $2; found = 1 } END { if (!found) print "-" }' /proc/slabinfo 2>/dev/null || echo -
}
defense_vals() {
	local n out=""
	for n in drop_entry drop_packet secure_tcp; do
		out+="$(nsx "$NS_D" cat "$SYS/$n") "
	done
	echo "${out% }"
}
rounds() { cat "$tmp/count" 2>/dev/null || echo 0; }

setup() {
	local i
	topo_nat 2 || return 1
	for ((i = 1; i <= 2; i++)); do
		bg "${NS_RS[i]}" socat TCP-LISTEN:80,fork,reuseaddr,backlog=128 PIPE
	done
	for ((i = 1; i <= 2; i++)); do
		wait_listen "${NS_RS[i]}" t 80 || return 1
	done
	ip -n "$NS_D" route add 10.9.0.0/16 via "$CIP" || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || return 1
	for ((i = 1; i <= 2; i++)); do
		nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m || return 1
	done
	rm -f "$tmp/stop" "$tmp/count" "$tmp"/go.* "$tmp"/sent.*
	# The sender of both floods starts now and waits for its go files.
	bg "$NS_C" "$FLOOD" flood "$VIP" 80 "$COUNT" --sport-base 1024 \
		--go-file "$tmp/go.defended" --out-file "$tmp/sent.defended" \
		--go-file "$tmp/go.undefended" --out-file "$tmp/sent.undefended"
	SENDER=${BG_PIDS[-1]}
	nsx "$NS_C" "$FLOOD" flow "$VIP" 80 --count-file "$tmp/count" \
		--stop-file "$tmp/stop" > "$tmp/flow.out" 2>&1 &
	flow_pid=$!
	for ((i = 0; i < 300; i++)); do
		[ "$(rounds)" -gt 0 ] && return 0
		sleep 0.1
	done
	echo "# the flow did not start: $(cat "$tmp/flow.out")" >&2
	return 1
}

# flood PHASE: start the flood set up for PHASE and wait for it; sets
# F_CONNS F_AVAIL F_SLAB F_OBJS F_ROUNDS F_OUT (changes over the flood,
# connections after it).
flood() {
	local a0 s0 o0 r0 o1 i
	a0=$(meminfo_kb MemAvailable)
	s0=$(meminfo_kb Slab)
	o0=$(slab_conns)
	r0=$(rounds)
	touch "$tmp/go.$1"
	while [ ! -e "$tmp/sent.$1" ] && kill -0 "$SENDER" 2>/dev/null; do
		sleep 0.1
	done
	F_OUT=$(cat "$tmp/sent.$1" 2>/dev/null || echo "the sender did not finish")
	# Let the last SYNs and the first SYN-ACK retransmissions pass.
	sleep 1
	F_CONNS=$(conns)
	F_AVAIL=$(( $(meminfo_kb MemAvailable) - a0 ))
	F_SLAB=$(( $(meminfo_kb Slab) - s0 ))
	o1=$(slab_conns)
	F_OBJS=-
	[ "$o0" != - ] && [ "$o1" != - ] && F_OBJS=$((o1 - o0))
	F_ROUNDS=$(( $(rounds) - r0 ))
	ktap_diag "$impl $1 (at ${SECONDS}s): $F_OUT; connections $F_CONNS;" \
		"MemAvailable $(printf %+d "$F_AVAIL") kB, Slab $(printf %+d "$F_SLAB") kB," \
		"ip_vs_conn objects $F_OBJS; flow round trips during it: $F_ROUNDS"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$1" "$COUNT" "$F_CONNS" \
		"$F_AVAIL" "$F_SLAB" "$F_OBJS" "$F_ROUNDS" >> "$tmp/results.tsv"
}

printf 'impl\tphase\tsyns\tconnections\tmemavailable_change_kb\tslab_change_kb\tip_vs_conn_objs\tflow_rounds\n' > "$tmp/results.tsv"
for impl in "${impls[@]}"; do
	if ! ipvs_use "$impl" || ! setup; then
		for ((k = 0; k < PER_IMPL; k++)); do ktap_fail "$impl: setup"; done
		stop_flow
		cleanup_ns
		continue
	fi
	ktap_diag "$impl: $(ipvs_which) (set up at ${SECONDS}s)"

	# 1. Defended.
	nsx "$NS_D" sysctl -qw net.ipv4.vs.amemthresh=2147483647
	nsx "$NS_D" sysctl -qw net.ipv4.vs.drop_entry=1 net.ipv4.vs.drop_packet=1 \
		net.ipv4.vs.secure_tcp=1
	# The defense timer runs every second.
	for ((i = 0; i < 30; i++)); do
		[ "$(defense_vals)" = "2 2 2" ] && break
		sleep 0.2
	done
	vals=$(defense_vals)
	if [ "$vals" = "2 2 2" ]; then
		ktap_pass "$impl: short of memory: drop_entry, drop_packet, secure_tcp active (2)"
	else
		ktap_fail "$impl: short of memory: drop_entry, drop_packet, secure_tcp active (2), got $vals"
	fi
	flood defended
	d_conns=$F_CONNS d_rounds=$F_ROUNDS

	# 2. Undefended (another source port range: new connections again).
	nsx "$NS_D" sysctl -qw net.ipv4.vs.drop_entry=0 net.ipv4.vs.drop_packet=0 \
		net.ipv4.vs.secure_tcp=0 net.ipv4.vs.amemthresh=1024
	flood undefended
	u_conns=$F_CONNS u_rounds=$F_ROUNDS
	# Half-open connections expire after 60 s: a long flood leaves those
	# of its last minute.
	want=$(( COUNT / 2 < 1000 ? COUNT / 2 : 1000 ))
	if [ "$u_conns" -gt "$want" ]; then
		ktap_pass "$impl: undefended: the flood reaches IPVS ($u_conns connections)"
	else
		ktap_fail "$impl: undefended: the flood reaches IPVS ($u_conns connections, want > $want)"
	fi
	if [ "$d_conns" -le $(( u_conns / 10 )) ]; then
		ktap_pass "$impl: defended: $COUNT SYNs leave $d_conns connections (<= 10 % of undefended)"
	else
		ktap_fail "$impl: defended: $COUNT SYNs leave $d_conns connections (<= 10 % of undefended: $u_conns)"
	fi
	if [ "$d_rounds" -gt 0 ] && [ "$u_rounds" -gt 0 ] && kill -0 "$flow_pid" 2>/dev/null; then
		ktap_pass "$impl: the established flow kept flowing during both floods ($d_rounds, $u_rounds round trips)"
	else
		ktap_fail "$impl: the established flow kept flowing during both floods ($d_rounds, $u_rounds round trips)"
	fi
	stop_flow
	out=$(cat "$tmp/flow.out")
	if [[ "$out" == *"errors=0 "* ]]; then
		ktap_pass "$impl: no round trip of the flow lost ($out)"
	else
		ktap_fail "$impl: no round trip of the flow lost ($out)"
	fi
	cleanup_ns
	ipvs_unload
	ktap_diag "$impl: cleaned up at ${SECONDS}s"
done

ktap_diag "$(column -t < "$tmp/results.tsv" 2>/dev/null || cat "$tmp/results.tsv")"
[ -n "${VM_OUT:-}" ] && cp "$tmp/results.tsv" "$VM_OUT/syn_flood.tsv"
rm -rf "$tmp"
ktap_exit
