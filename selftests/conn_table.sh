#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 480
# cpus: 2 (races between CPUs: tools/lib/check runs it in its 2-vCPU boot)
#
# The connection table's size policy, as upstream has it since Linux 7.1
# (conn_lfactor, /proc/net/ip_vs_status) and 7.2 (conn_max). The C IPVS of
# this kernel (6.12) has a fixed table and neither, so this runs on ours
# only (IMPL=c: SKIP).
#
#   client -> director (NAT, VIP:80 rr, VIP:81 echo) -> rs1..rs3
#
#  1. /proc/net/ip_vs_status in upstream's format: a new table has 2^8
#     buckets and lfactor -4; `ipvsadm -L` still shows size=2^conn_tab_bits
#     (4096), as C does.
#  2. conn_lfactor: default -4; -9 and 9 are refused (EINVAL); read-only in
#     a namespace an unprivileged user owns.
#  3. With traffic flowing: a held TCP connection echoes a line every
#     100 ms while 3,000 UDP flows go through the service. The table grows
#     (to 4096 buckets, in one or more resizes), every flow is answered, and the
#     held connection never breaks nor waits 2 s for an echo: lookups find
#     its entry while the entries move.
#  4. The flows expire (UDP timeout 3 s) and the table shrinks back to 2^8
#     buckets; conn_lfactor -8 with the held connection alone keeps 2^8
#     (the load is 1 entry), 8 too.
#  5. conn_max: default 2^30; -1 and 2^30+1 refused; at 20 above the
#     entries there, 40 new UDP flows leave exactly 20 new entries (the
#     others are dropped); back at the default, new flows are served again.
#  6. An unprivileged user in its own user and network namespace starts
#     with the initial namespace's conn_max, may lower it, may not raise it
#     above that (EINVAL).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

[ "$IPVS_IMPL" = c ] && ktap_skip_all "conn_lfactor, conn_max and ip_vs_status are not in the C IPVS of 6.12"
ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 11
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

VS=/proc/sys/net/ipv4/vs
work=$(mktemp -d)
rm_work() { save_artifacts "$work" conn_table; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$@"
}

# status FIELD: a value of the director's /proc/net/ip_vs_status.
status() {
	nsx "$NS_D" awk -F'\t' -v f="$1:" '$1 == f { print $2 }' /proc/net/ip_vs_status
}

buckets() {
	status "Conn buckets" | cut -d' ' -f1
}

# wait_for SECS CMD...: until CMD succeeds, at most SECS seconds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
}

setup() {
	topo_nat 3 || return 1
	start_servers 3 80 --echo-port 81 || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr &&
	nsx "$NS_D" ipvsadm -A -t "$VIP:81" -s rr || return 1
	for i in 1 2 3; do
		nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m &&
		nsx "$NS_D" ipvsadm -a -t "$VIP:81" -r "${RIP[i]}:81" -m || return 1
	done
	nsx "$NS_D" ipvsadm --set 0 0 3
}

if ! setup; then
	ktap_skip_all "setup failed"
fi

# 1. The status file and the size ipvsadm shows.
check_status() {
	nsx "$NS_D" cat /proc/net/ip_vs_status > "$work/status0" || return 1
	grep -qxP 'Conns:\t0' "$work/status0" &&
	grep -qxP 'Conn buckets:\t256 \(8 bits, lfactor -4\)' "$work/status0" &&
	grep -qxP 'Services:\t2' "$work/status0" &&
	grep -qP '^Service buckets:\t\d+ \(\d+ bits, lfactor -?\d+\)$' "$work/status0" &&
	grep -qP '^Service buckets empty:\t\d+ \(\d+%\)$' "$work/status0" &&
	[ "$(stat -c %a /proc/net/ip_vs_status)" = 440 ] &&
	nsx "$NS_D" ipvsadm -L -n | head -1 | grep -q 'size=4096'
}
ktap_check "ip_vs_status: 2^8 buckets, lfactor -4; ipvsadm size=4096" check_status

# 2. conn_lfactor's range and who may write it.
check_lfactor() {
	[ "$(nsx "$NS_D" cat $VS/conn_lfactor)" = -4 ] || return 1
	! nsx "$NS_D" sh -c "echo -9 > $VS/conn_lfactor" 2>/dev/null &&
	! nsx "$NS_D" sh -c "echo 9 > $VS/conn_lfactor" 2>/dev/null &&
	[ "$(nsx "$NS_D" cat $VS/conn_lfactor)" = -4 ] &&
	[ "$(as_nobody unshare -Urn stat -c %a $VS/conn_lfactor)" = 444 ]
}
ktap_check "conn_lfactor: -4, -9 and 9 refused, read-only unprivileged" check_lfactor

# 3. Growth under traffic.
HOLD=$work/hold
bg "$NS_C" "$TOOLS/lib/ipvs-hold" "$VIP" 81 --status "$HOLD" --stop-file "$work/stop" --duration 300
wait_for 20 grep -q 'state=open' "$HOLD" 2>/dev/null
nsx "$NS_C" "$TOOLS/lib/ipvs-client" udp "$VIP" 80 3000 --timeout 2 > "$work/udp" 2>&1 &
udp_pid=$!
max=256
sizes=
while kill -0 $udp_pid 2>/dev/null; do
	b=$(buckets)
	case " $sizes " in *" $b "*) ;; *) sizes+=" $b" ;; esac
	[ "${b:-0}" -gt $max ] && max=$b
	sleep 0.3
done
wait $udp_pid
b=$(buckets)
case " $sizes " in *" $b "*) ;; *) sizes+=" $b" ;; esac
[ "$b" -gt $max ] && max=$b
ktap_diag "bucket counts seen:$sizes; conns $(status Conns)"
answered=$(grep -c ' rs[123]$' "$work/udp")
ktap_diag "UDP flows answered: $answered of 3000"
ktap_check "the table grows to 4096 buckets while 3,000 flows pass" [ "$max" = 4096 ]
ktap_check "every flow answered during the resizes" [ "$answered" = 3000 ]
ktap_diag "held connection: $(cat "$HOLD")"
check_hold() {
	grep -q 'state=open' "$HOLD" &&
	[ "$(sed -n 's/.*max_gap_ms=\([0-9]*\).*/\1/p' "$HOLD")" -lt 2000 ]
}
ktap_check "the held connection goes on, no echo waits 2 s" check_hold
nsx "$NS_D" cat /proc/net/ip_vs_status > "$work/status1"

# 4. Shrinking back.
shrunk() { [ "$(buckets)" = 256 ] && [ "$(status Conns)" -le 2 ]; }
ktap_check "flows expired: back to 256 buckets" wait_for 40 shrunk
check_lfactor_change() {
	nsx "$NS_D" sh -c "echo -8 > $VS/conn_lfactor" &&
	wait_for 5 grep -qP '^Conn buckets:\t256 \(8 bits, lfactor -8\)' <(nsx "$NS_D" cat /proc/net/ip_vs_status) &&
	nsx "$NS_D" sh -c "echo 8 > $VS/conn_lfactor" &&
	wait_for 5 grep -qP '^Conn buckets:\t256 \(8 bits, lfactor 8\)' <(nsx "$NS_D" cat /proc/net/ip_vs_status) &&
	nsx "$NS_D" sh -c "echo -4 > $VS/conn_lfactor"
}
ktap_check "conn_lfactor -8 and 8 take effect" check_lfactor_change
touch "$work/stop"
wait_for 10 grep -q 'state=closed' "$HOLD"
ktap_diag "held connection at the end: $(cat "$HOLD")"

# 5. conn_max.
check_conn_max_range() {
	[ "$(nsx "$NS_D" cat $VS/conn_max)" = 1073741824 ] &&
	! nsx "$NS_D" sh -c "echo -1 > $VS/conn_max" 2>/dev/null &&
	! nsx "$NS_D" sh -c "echo 1073741825 > $VS/conn_max" 2>/dev/null
}
ktap_check "conn_max: 2^30, -1 and 2^30+1 refused" check_conn_max_range
# The held connection's entry stays (TIME_WAIT) and counts: the limit is 20
# above what is there. Entries that outlive the round, so that the count
# shows what was admitted.
nsx "$NS_D" ipvsadm --set 0 0 120
base=$(status Conns)
nsx "$NS_D" sh -c "echo $((base + 20)) > $VS/conn_max"
nsx "$NS_C" "$TOOLS/lib/ipvs-client" udp "$VIP" 80 40 --sport-base 50000 --timeout 1 > "$work/udp_max" 2>&1
n_max=$(($(status Conns) - base))
ktap_diag "conn_max $((base + 20)) ($base entries before): $n_max new entries, $(grep -c ' rs[123]$' "$work/udp_max") of 40 flows answered"
nsx "$NS_D" sh -c "echo 1073741824 > $VS/conn_max"
answered=$(nsx "$NS_C" "$TOOLS/lib/ipvs-client" udp "$VIP" 80 20 --sport-base 51000 --timeout 2 | grep -c ' rs[123]$')
ktap_check "conn_max admits 20 more entries; at 2^30 flows pass again" \
	[ "$n_max" = 20 -a "$(grep -c ' rs[123]$' "$work/udp_max")" = 20 -a "$answered" = 20 ]

# 6. The unprivileged owner of a namespace and its soft limit.
nsx "$NS_D" true
echo 5000 > $VS/conn_max
check_unpriv() {
	as_nobody unshare -Urn sh -c "
		[ \$(cat $VS/conn_max) = 5000 ] || exit 1
		echo 300 > $VS/conn_max || exit 2
		[ \$(cat $VS/conn_max) = 300 ] || exit 3
		echo 4000 > $VS/conn_max || exit 4
		! echo 5001 > $VS/conn_max 2>/dev/null || exit 5
		[ \$(cat $VS/conn_max) = 4000 ] || exit 6
	"
}
ktap_check "unprivileged: inherits 5000, may lower it, not exceed it" check_unpriv
echo 1073741824 > $VS/conn_max

ktap_exit
