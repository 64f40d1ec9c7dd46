#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 1200
#
# Scale-out with connection sync: two directors A and B, both active behind
# a router that spreads the flows to the VIP over them (ECMP, hashed on
# the ports: fib_multipath_hash_policy=1), each running a master AND a
# backup sync daemon on the segment they share (syncid 9), the same mh
# service (DR to three real servers, which answer the client through the
# router). The C IPVS and ours in one boot, one after the other.
#
#   client fd00:c::2 (+ fd00:c::10-17), 10.30.0.2 (+ 10.30.0.10-17)
#     |
#   router  ECMP route to the VIP: nexthop A, nexthop B
#     |
#   [ bridge: router fd00:20::1, A ::11, B ::12, rs1-3 ::21-23;
#     10.20.0.0/24 alike (the sync multicast is IPv4 in both cases) ]
#
#   VIP fd00:100::80 (IPv6), 10.0.100.80 (IPv4), on lo of the directors and
#   of the real servers (which never answer ARP for it).
#
# Per implementation and address family:
#
#  1. Both daemons run on each director (`ipvsadm -L --daemon`).
#  2. From 8 client addresses, 6 connections each (to VIP:81; VIP:80 is
#     for the held connections, whose real servers echo): the router spreads them
#     over A and B (each director has LOCAL entries in
#     /proc/net/ip_vs_conn_sync) and each client address lands on one real
#     server whichever director took it (mh hashes the source address).
#  3. Each director learns the other's connections: every LOCAL entry of
#     one is a SYNC entry of the other.
#  4. Held connections (tools/lib/ipvs-hold, a line every 100 ms) are
#     started until at least two go through A and one through B; B learns
#     those of A (ESTABLISHED, same real server).
#  5. A's nexthop goes (A is lost to the router): the connections held
#     through A go on through B without a reset (their echoes continue;
#     B's VIP:80 counts more packets, A's no more), and those through B too.
#  6. They all end cleanly.
#
# This kernel has IPv4 multipath routing only with CONFIG_IP_ROUTE_MULTIPATH
# (IPv6's is always there): without it, the IPv4 round is skipped.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

# The implementation under test ($IPVS_IMPL) by default: make check stays
# within its time; SYNC_SCALEOUT_IMPLS="c rust" runs both side by side.
impls=("$IPVS_IMPL")
[ -n "${SYNC_SCALEOUT_IMPLS:-}" ] && read -r -a impls <<< "$SYNC_SCALEOUT_IMPLS"
families=(6 4)
NSTEPS=6
ktap_header $(( ${#impls[@]} * ${#families[@]} * NSTEPS ))

SYNCID=9
work=$(mktemp -d)
rm_work() { save_artifacts "$work" sync_scaleout; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

NS_SW= NS_R= NS_A= NS_B=
VIPX= A_LAN= B_LAN= SRCS=() FAM=

# wait_for SECONDS CMD...: until CMD succeeds (every 0.2 s).
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# port NS IF: a veth from NS's IF to the bridge.
port() {
	local p=p$RANDOM
	ip link add "$2" netns "$1" type veth peer name "$p" netns "$NS_SW" || return 1
	ip -n "$NS_SW" link set "$p" master br0 up || return 1
	ip -n "$1" link set "$2" up
}

# multipath4: whether this kernel routes IPv4 over several nexthops.
multipath4() {
	local ns r
	ns_add ns probe || return 1
	ip -n "$ns" link add v0 type veth peer name v1 || return 1
	ip -n "$ns" link set v0 up
	ip -n "$ns" addr add 10.99.0.1/24 dev v0
	ip -n "$ns" route add 10.98.0.1/32 nexthop via 10.99.0.2 nexthop via 10.99.0.3 2>/dev/null
	r=$?
	ip netns del "$ns"
	return $r
}

setup() {
	local i ns
	ns_add NS_SW sw || return 1
	ip -n "$NS_SW" link add br0 type bridge mcast_snooping 0 || return 1
	ip -n "$NS_SW" link set br0 up || return 1
	ns_add NS_C client || return 1
	ns_add NS_R router || return 1
	veth_add "$NS_C" c0 "$NS_R" r0 || return 1
	{
		echo "addr add 10.30.0.2/24 dev c0"
		echo "addr add fd00:c::2/64 dev c0 nodad"
		for i in 10 11 12 13 14 15 16 17; do
			echo "addr add 10.30.0.$i/24 dev c0"
			echo "addr add fd00:c::$i/64 dev c0 nodad"
		done
		echo "route add default via 10.30.0.1"
		echo "route add default via fd00:c::1"
	} | ip -n "$NS_C" -b - || return 1
	port "$NS_R" lan0 || return 1
	ip -n "$NS_R" -b - <<-EOF || return 1
		addr add 10.30.0.1/24 dev r0
		addr add fd00:c::1/64 dev r0 nodad
		addr add 10.20.0.1/24 dev lan0
		addr add fd00:20::1/64 dev lan0 nodad
	EOF
	nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv6.fib_multipath_hash_policy=1 || return 1
	nsx "$NS_R" sysctl -qw net.ipv4.fib_multipath_hash_policy=1 2>/dev/null
	ns_add NS_A dirA || return 1
	ns_add NS_B dirB || return 1
	NS_RS=("")
	for i in 1 2 3; do
		ns_add ns "rs$i" || return 1
		NS_RS[i]=$ns
	done
	# Directors 11 and 12, real servers 21-23: the VIPs on lo, default
	# routes via the router.
	for i in A:11 B:12 1:21 2:22 3:23; do
		case ${i%:*} in
		A) ns=$NS_A ;;
		B) ns=$NS_B ;;
		*) ns=${NS_RS[${i%:*}]} ;;
		esac
		port "$ns" lan0 || return 1
		ip -n "$ns" -b - <<-EOF || return 1
			addr add 10.20.0.${i#*:}/24 dev lan0
			addr add fd00:20::${i#*:}/64 dev lan0 nodad
			addr add 10.0.100.80/32 dev lo
			addr add fd00:100::80/128 dev lo
			route add default via 10.20.0.1
			route add default via fd00:20::1
		EOF
		nsx "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.lan0.rp_filter=0 || return 1
	done
	for i in 1 2 3; do
		bg "${NS_RS[i]}" "$SERVER" "rs$i" --ipv6 --port 81 --echo-port 80 \
			--ready-file "$work/$IMPL/ready.rs$i"
	done
	wait_for 30 test -e "$work/$IMPL/ready.rs1" -a -e "$work/$IMPL/ready.rs2" -a -e "$work/$IMPL/ready.rs3"
}

# family 4|6: the addresses of this round.
family() {
	FAM=$1
	local i
	SRCS=()
	if [ "$1" = 6 ]; then
		VIPX=fd00:100::80 A_LAN=fd00:20::11 B_LAN=fd00:20::12
		for i in 10 11 12 13 14 15 16 17; do SRCS+=("fd00:c::$i"); done
	else
		VIPX=10.0.100.80 A_LAN=10.20.0.11 B_LAN=10.20.0.12
		for i in 10 11 12 13 14 15 16 17; do SRCS+=("10.30.0.$i"); done
	fi
}

# vs [PORT]: a service (port 80 by default), rs_addr I [PORT]: its real
# servers, as ipvsadm names them.
vs() {
	if [ "$FAM" = 6 ]; then echo "[$VIPX]:${1:-80}"; else echo "$VIPX:${1:-80}"; fi
}
rs_addr() {
	if [ "$FAM" = 6 ]; then echo "[fd00:20::2$1]:${2:-80}"; else echo "10.20.0.2$1:${2:-80}"; fi
}

# round_setup: the service on both directors, both daemons on each, the
# ECMP route on the router.
round_setup() {
	local ns i port
	for ns in "$NS_A" "$NS_B"; do
		nsx "$ns" ipvsadm -C || return 1
		for port in 80 81; do
			nsx "$ns" ipvsadm -A -t "$(vs $port)" -s mh || return 1
			for i in 1 2 3; do
				nsx "$ns" ipvsadm -a -t "$(vs $port)" -r "$(rs_addr $i $port)" -g || return 1
			done
		done
		nsx "$ns" ipvsadm --start-daemon master --mcast-interface lan0 --syncid $SYNCID || return 1
		nsx "$ns" ipvsadm --start-daemon backup --mcast-interface lan0 --syncid $SYNCID || return 1
	done
	ip -n "$NS_R" route add "$VIPX" nexthop via "$A_LAN" dev lan0 nexthop via "$B_LAN" dev lan0
}

round_teardown() {
	local ns
	touch "$work/$IMPL/$FAM.stop"
	for ns in "$NS_A" "$NS_B"; do
		nsx "$ns" ipvsadm --stop-daemon master
		nsx "$ns" ipvsadm --stop-daemon backup
		nsx "$ns" ipvsadm -C
	done
	ip -n "$NS_R" route del "$VIPX" 2>/dev/null
}

# entries NS: NS's connection entries to this round's VIP, one a line:
# "client port server origin state vport", addresses normalized (/proc/net/ip_vs_conn_sync prints
# IPv4 ones in hexadecimal, IPv6 ones in full).
ENTRIES_PY='
import ipaddress, sys
def a(x):
    return str(ipaddress.ip_address(x if ":" in x else int(x, 16)))
for l in open("/proc/net/ip_vs_conn_sync").readlines()[1:]:
    f = l.split()
    if a(f[3]) == sys.argv[1]:
        print(a(f[1]), int(f[2], 16), a(f[5]), f[8], f[7], int(f[4], 16))
'
entries() {
	nsx "$1" python3 -c "$ENTRIES_PY" "$VIPX"
}

# local_keys NS / sync_keys NS: "client port" of NS's LOCAL / SYNC entries.
local_keys() { entries "$1" | awk '$4 == "LOCAL" { print $1, $2 }' | sort; }
sync_keys() { entries "$1" | awk '$4 == "SYNC" { print $1, $2 }' | sort; }

# learned_both: each director has the other's LOCAL entries as SYNC ones.
learned_both() {
	local la lb
	la=$(local_keys "$NS_A")
	lb=$(local_keys "$NS_B")
	[ -n "$la" ] && [ -n "$lb" ] &&
		[ -z "$(comm -23 <(echo "$la") <(sync_keys "$NS_B"))" ] &&
		[ -z "$(comm -23 <(echo "$lb") <(sync_keys "$NS_A"))" ]
}

inpkts() {
	nsx "$1" ipvsadm -Ln --stats --exact -t "$(vs)" 2>/dev/null | awk '$1 == "TCP" { print $4 }'
}

# hold NAME KEY: a field of a held connection's status.
hold() {
	sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$work/$IMPL/$FAM.$1.status" 2>/dev/null
}
echoes_past() {
	[ "$(hold "$1" state)" = open ] && [ "$(hold "$1" echoes)" -gt "$2" ] 2>/dev/null
}

result() {
	local name=$1 ok=$2
	shift 2
	if [ "$ok" = 1 ]; then
		ktap_pass "$IMPL IPv$FAM: $name"
	else
		[ $# -gt 0 ] && ktap_diag "$("$@")"
		ktap_fail "$IMPL IPv$FAM: $name"
	fi
}

show() {
	local ns
	for ns in A B; do
		local v=NS_$ns
		echo "$ns: daemons: $(nsx "${!v}" ipvsadm -L --daemon | awk '{ print $1 }' | xargs); InPkts $(inpkts "${!v}")"
		entries "${!v}" | sed 's/^/  /'
	done
	cat "$work/$IMPL/$FAM".*.status 2>/dev/null
}

run_round() {
	local ok i out src via_a via_b n held=() h key t0=$SECONDS
	local -A rs_of dirs
	family "$1"
	if [ "$FAM" = 4 ] && ! multipath4; then
		for ((i = 0; i < NSTEPS; i++)); do
			ktap_skip "$IMPL IPv4: step $((i + 1))" "no IPv4 multipath routing in this kernel"
		done
		return
	fi
	if ! round_setup; then
		for ((i = 0; i < NSTEPS; i++)); do ktap_fail "$IMPL IPv$FAM: setup"; done
		round_teardown
		return
	fi

	# 1. Both daemons on each director.
	ok=0
	[ "$(nsx "$NS_A" ipvsadm -L --daemon | awk '{ print $1 }' | sort | xargs)" = "backup master" ] &&
		[ "$(nsx "$NS_B" ipvsadm -L --daemon | awk '{ print $1 }' | sort | xargs)" = "backup master" ] &&
		ok=1
	result "a master and a backup sync daemon run on each director" $ok show

	# 2. Spread, and one real server per client address.
	local bad=
	for src in "${SRCS[@]}"; do
		out=$(nsx "$NS_C" "$CLIENT" tcp "$VIPX" 81 6 --source "$src" --timeout 5 | awk '{ print $2 }' | sort -u | xargs)
		[[ "$out" =~ ^rs[123]$ ]] || bad+=" $src:'$out'"
	done
	via_a=$(entries "$NS_A" | awk '$4 == "LOCAL" && $6 == 81' | wc -l)
	via_b=$(entries "$NS_B" | awk '$4 == "LOCAL" && $6 == 81' | wc -l)
	# The real servers per client address over both directors' own entries.
	while read -r src _ rs _; do
		rs_of[$src]+=" $rs"
	done < <(entries "$NS_A" | awk '$4 == "LOCAL"'; entries "$NS_B" | awk '$4 == "LOCAL"')
	n=0
	for src in "${!rs_of[@]}"; do
		[ "$(tr ' ' '\n' <<< "${rs_of[$src]}" | sort -u | grep -c .)" = 1 ] || bad+=" $src:${rs_of[$src]}"
	done
	# Client addresses seen through both directors.
	n=$(comm -12 <(local_keys "$NS_A" | awk '{ print $1 }' | sort -u) \
		<(local_keys "$NS_B" | awk '{ print $1 }' | sort -u) | wc -l)
	ktap_diag "$IMPL IPv$FAM: 48 connections: $via_a through A, $via_b through B; $n of 8 client addresses through both"
	ok=0
	[ -z "$bad" ] && [ "$via_a" -gt 0 ] && [ "$via_b" -gt 0 ] && [ $((via_a + via_b)) = 48 ] && ok=1
	result "ECMP spreads the connections over A and B, each client address on one real server" $ok \
		echo "wrong:$bad"

	# 3. Each learns the other's.
	ok=0
	wait_for 30 learned_both && ok=1
	result "each director learns the other's connections" $ok show

	# 4. Held connections until two go through A and one through B.
	local through_a=() through_b=()
	for ((i = 0; i < 12; i++)); do
		h=h$i
		bg "$NS_C" "$TOOLS/lib/ipvs-hold" "$VIPX" 80 --source "${SRCS[i % 8]}" \
			--status "$work/$IMPL/$FAM.$h.status" --stop-file "$work/$IMPL/$FAM.stop"
		held+=("$h")
		wait_for 30 echoes_past "$h" 3 || break
		key="${SRCS[i % 8]} $(hold "$h" sport)"
		if local_keys "$NS_A" | grep -qx "$key"; then
			through_a+=("$h")
			dirs[$h]=A
		elif local_keys "$NS_B" | grep -qx "$key"; then
			through_b+=("$h")
			dirs[$h]=B
		fi
		[ ${#through_a[@]} -ge 2 ] && [ ${#through_b[@]} -ge 1 ] && break
	done
	b_learned() {
		local h key
		for h in "${through_a[@]}"; do
			key="${SRCS[${h#h} % 8]} $(hold "$h" sport)"
			entries "$NS_B" | awk -v k="$key" '$1 " " $2 == k && $4 == "SYNC" && $5 == "ESTABLISHED" { f = 1 } END { exit !f }' ||
				return 1
		done
	}
	ok=0
	[ ${#through_a[@]} -ge 2 ] && [ ${#through_b[@]} -ge 1 ] && wait_for 30 b_learned && ok=1
	ktap_diag "$IMPL IPv$FAM: held through A: ${through_a[*]}; through B: ${through_b[*]}"
	result "held connections through A and B; B learns those through A" $ok show

	# 5. A's nexthop goes: A sees no more packets of the service, B more.
	ip -n "$NS_R" route replace "$VIPX" via "$B_LAN" dev lan0
	ktap_diag "$IMPL IPv$FAM: route now: $(ip -n "$NS_R" -"$FAM" route show "$VIPX" | xargs)"
	# Until what was on its way to A has arrived: A's count stays the same
	# over a check (the held connections send every 0.1 s).
	local a0 b0 last=
	a_settled() {
		local now
		now=$(inpkts "$NS_A")
		[ "$now" = "$last" ] && return 0
		last=$now
		return 1
	}
	wait_for 10 a_settled
	a0=$(inpkts "$NS_A")
	b0=$(inpkts "$NS_B")
	ok=1
	for h in "${held[@]}"; do
		wait_for 60 echoes_past "$h" $(( $(hold "$h" echoes) + 30 )) || ok=0
	done
	ktap_diag "$IMPL IPv$FAM: InPkts after the change: A $a0 -> $(inpkts "$NS_A"), B $b0 -> $(inpkts "$NS_B")"
	[ "$(inpkts "$NS_B")" -gt "$b0" ] && [ "$(inpkts "$NS_A")" = "$a0" ] || ok=0
	result "A's nexthop removed: the held connections go on through B" $ok show

	# 6. Clean ends.
	touch "$work/$IMPL/$FAM.stop"
	ok=1
	for h in "${held[@]}"; do
		wait_for 30 grep -q 'state=closed' "$work/$IMPL/$FAM.$h.status" || ok=0
	done
	result "the held connections end cleanly, never reset" $ok show
	for h in "${held[@]}"; do
		ktap_diag "$IMPL IPv$FAM: $h (${dirs[$h]:-?}): $(cat "$work/$IMPL/$FAM.$h.status")"
	done
	ktap_diag "$IMPL IPv$FAM: $((SECONDS - t0)) s"
	round_teardown
}

for impl in "${impls[@]}"; do
	IMPL=$impl
	mkdir -p "$work/$IMPL"
	if ! ipvs_use "$IMPL" || ! setup; then
		for ((i = 0; i < ${#families[@]} * NSTEPS; i++)); do ktap_fail "$IMPL: setup"; done
		cleanup_ns
		continue
	fi
	for f in "${families[@]}"; do
		run_round "$f"
	done
	cleanup_ns
done
ktap_exit
