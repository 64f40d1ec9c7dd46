#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
#
# Debian's keepalived (2.2.7) driving IPVS over generic netlink, the C IPVS
# and ours side by side in one boot.
#
#   client -> director (VIP 10.0.100.1, VIP6 fd00:100::1; keepalived,
#             health checker only)
#          -> rs1, rs2 (NAT, tools/lib/ipvs-server on TCP :80, both families)
#
# keepalived's configuration: a TCP virtual server VIP:80 (rr, NAT), the
# same for IPv6 at [VIP6]:80 with the real servers' IPv6 addresses, and a
# firewall-mark virtual server (wlc, persistent 300 s), each with both real
# servers and a TCP_CHECK health check every second. For each
# implementation:
#
#  1. keepalived starts and adds the virtual servers with the real servers
#     its checks find alive: the table must come to both real servers in
#     each;
#  2. 6 connections to each VIP are shared 3/3 between rs1 and rs2;
#  3. rs2's server stops: keepalived must take rs2 out of both; 4
#     connections to each VIP all go to rs1;
#  4. rs2's server is back: keepalived puts it back; 6 connections to each
#     VIP 3/3;
#  5. keepalived stops (SIGTERM) and removes what it added: the table is
#     empty.
#
# The table after each step (`ipvsadm -Ln` without the counters) must be
# the same under both implementations. Waits are on the table itself (up to
# 60 s each), not on time.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

command -v keepalived >/dev/null || ktap_skip_all "keepalived not installed"
impls=(c rust)
STEPS=(start share fail failed-share back back-share stop)
ktap_header $(( ${#impls[@]} * ${#STEPS[@]} + ${#STEPS[@]} ))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" keepalived; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)
KA_PID=
stop_keepalived() {
	[ -n "$KA_PID" ] || return 0
	kill "$KA_PID" 2>/dev/null
	wait "$KA_PID" 2>/dev/null
	KA_PID=
}
CLEANUP_HOOKS+=(stop_keepalived)

# rr_server VIP RS...: a TCP virtual server VIP:80 (rr, NAT) with the real
# servers RS on port 80, each health-checked by TCP_CHECK.
rr_server() {
	local vip=$1 rs
	shift
	echo "virtual_server $vip 80 {"
	echo "    delay_loop 1"
	echo "    lb_algo rr"
	echo "    lb_kind NAT"
	echo "    protocol TCP"
	for rs in "$@"; do
		echo "    real_server $rs 80 {"
		echo "        weight 1"
		echo "        TCP_CHECK {"
		echo "            connect_timeout 1"
		echo "            retry 1"
		echo "            delay_before_retry 1"
		echo "        }"
		echo "    }"
	done
	echo "}"
}

write_conf() {
	local rs
	{
		echo "global_defs {"
		echo "    router_id ipvs_selftest"
		echo "}"
		rr_server "$VIP" "${RIP[1]}" "${RIP[2]}"
		rr_server "$VIP6" "${RIP6[1]}" "${RIP6[2]}"
		echo "virtual_server fwmark 5 {"
		echo "    delay_loop 1"
		echo "    lb_algo wlc"
		echo "    lb_kind NAT"
		echo "    persistence_timeout 300"
		echo "    protocol TCP"
		for rs in "${RIP[1]}" "${RIP[2]}"; do
			echo "    real_server $rs 80 {"
			echo "        weight 2"
			echo "        TCP_CHECK {"
			echo "            connect_timeout 1"
			echo "        }"
			echo "    }"
		done
		echo "}"
	} > "$1"
}

# table: the IPVS table without counters.
table() {
	nsx "$NS_D" ipvsadm -Ln | awk '$1 == "->" { print $1, $2, $3, $4; next } { print }'
}

# wait_table N: until the VIP:80, [VIP6]:80 and fwmark 5 services have N
# real servers each (60 s). keepalived's checkers of each virtual server
# run on their own timers, so each one must be waited for before the table
# is compared.
wait_table() {
	local end=$((SECONDS + 60)) n n6 nf
	while [ $SECONDS -lt $end ]; do
		n=$(nsx "$NS_D" ipvsadm -Ln -t "$VIP:80" 2>/dev/null | grep -c -- '-> 10\.')
		n6=$(nsx "$NS_D" ipvsadm -Ln -t "[$VIP6]:80" 2>/dev/null | grep -c -- '-> \[fd00:')
		nf=$(nsx "$NS_D" ipvsadm -Ln -f 5 2>/dev/null | grep -c -- '-> 10\.')
		[ "$n" = "$1" ] && [ "$n6" = "$1" ] && [ "$nf" = "$1" ] && return 0
		sleep 0.2
	done
	return 1
}

wait_empty() {
	local end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ]; do
		[ -z "$(nsx "$NS_D" ipvsadm -Sn 2>/dev/null)" ] && return 0
		sleep 0.2
	done
	return 1
}

RS_PID=()
start_rs() { # I
	local i=$1 ready=$work/ready.$1 j
	rm -f "$ready"
	bg "${NS_RS[i]}" "$SERVER" "rs$i" --port 80 --ipv6 --ready-file "$ready"
	RS_PID[i]=${BG_PIDS[-1]}
	for ((j = 0; j < 300; j++)); do
		[ -e "$ready" ] && return 0
		sleep 0.1
	done
	return 1
}

# check IMPL STEP OK: one result, and the table of the step.
check() {
	local impl=$1 step=$2 ok=$3
	table > "$work/$impl/$step.table" 2>&1
	if [ "$ok" = 1 ]; then
		ktap_pass "$impl $step"
	else
		ktap_diag "$(cat "$work/$impl/$step.table")"
		ktap_fail "$impl $step"
	fi
}

# share IMPL STEP N WANT: N connections to each VIP, answered as WANT
# ("rs1 rs2 errors") for each.
share() {
	local out c c6 ok=0
	out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 "$3" --timeout 5)
	c=$(count_answers "$out" 2)
	out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" 80 "$3" --timeout 5)
	c6=$(count_answers "$out" 2)
	[ "$c" = "$4" ] && [ "$c6" = "$4" ] && ok=1
	[ $ok = 1 ] || ktap_diag "$1: answers $c, IPv6 $c6"
	check "$1" "$2" $ok
}

run_impl() {
	local impl=$1 ok
	mkdir -p "$work/$impl"
	if ! ipvs_use "$impl" || ! topo_nat 2 || ! start_rs 1 || ! start_rs 2; then
		for s in "${STEPS[@]}"; do ktap_fail "$impl $s: setup"; done
		cleanup_ns
		return
	fi
	write_conf "$work/$impl/keepalived.conf"
	# nsenter execs keepalived (no fork for a network namespace), so $! is
	# keepalived's own process, which SIGTERM stops. Its log goes to syslog,
	# which the VM does not have (not to the console, which costs time).
	nsenter --net="/run/netns/$NS_D" keepalived -n -D -C -f "$work/$impl/keepalived.conf" \
		-p "$work/$impl/ka.pid" -c "$work/$impl/ka-checkers.pid" \
		-r "$work/$impl/ka-vrrp.pid" > "$work/$impl/keepalived.log" 2>&1 &
	KA_PID=$!

	ok=0; wait_table 2 && ok=1
	check "$impl" start $ok
	share "$impl" share 6 "3 3 0"

	kill "${RS_PID[2]}" 2>/dev/null
	wait "${RS_PID[2]}" 2>/dev/null
	ok=0; wait_table 1 && ok=1
	check "$impl" fail $ok
	share "$impl" failed-share 4 "4 0 0"

	ok=0; start_rs 2 && wait_table 2 && ok=1
	check "$impl" back $ok
	share "$impl" back-share 6 "3 3 0"

	stop_keepalived
	ok=0; wait_empty && ok=1
	check "$impl" stop $ok
	cleanup_ns
}

for impl in "${impls[@]}"; do
	run_impl "$impl"
done
for s in "${STEPS[@]}"; do
	if [ -s "$work/c/$s.table" ] || [ "$s" = stop ]; then
		if cmp -s "$work/c/$s.table" "$work/rust/$s.table"; then
			ktap_pass "$s: the same table under both"
			continue
		fi
	fi
	ktap_diag "$(diff --label c --label rust "$work/c/$s.table" "$work/rust/$s.table" | head -20)"
	ktap_fail "$s: the same table under both"
done
ktap_exit
