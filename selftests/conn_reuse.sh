#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# Fast reconnects from the same client ports (conn_reuse_mode 1, default).
#
#   client -> director (VIP 10.0.100.1) -> rs1, rs2 (NAT, -m, rr)
#
# tools/lib/ipvs-reconnect opens 200 TCP connections one after the other
# from five fixed source ports (45000-45004), so every SYN after the first
# five arrives while the director still has the previous connection of
# that client port in TIME_WAIT (100 closed normally) or CLOSE (100 closed
# by a reset, SO_LINGER 0). With conn_reuse_mode 1 the director must expire
# that entry and schedule the SYN anew, at once: upstream kernels that
# dropped it made the client retry a second later (kubernetes issue
# 70747). So, per close mode:
#  - every connection is answered;
#  - no connect() takes longer than 500 ms (a dropped SYN costs 1 s);
#  - the answers are spread 50/50 over rs1 and rs2: every SYN was
#    scheduled by rr (a SYN sent along the old entry would keep each port
#    on one real server: 60/40).
# Maximum and median connect times are reported.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

RECONNECT=$TOOLS/lib/ipvs-reconnect
REQ=100
MAX_MS=500

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 7
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	topo_nat 2 || return 1
	start_servers 2 || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || return 1
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m || return 1
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[2]}:80" -m || return 1
	mode=$(nsx "$NS_D" cat /proc/sys/net/ipv4/vs/conn_reuse_mode 2>&1)
	[ "$mode" = 1 ]
}

mode=
if setup; then
	ktap_pass "setup: NAT service with two real servers, conn_reuse_mode 1"
else
	ktap_diag "conn_reuse_mode: $mode"
	ktap_fail "setup: NAT service with two real servers, conn_reuse_mode 1"
	ktap_exit
fi

# round NAME ARGS...: REQ reconnects, three results.
round() {
	local name=$1 out summary answered max n1 n2 slow
	shift
	out=$(nsx "$NS_C" timeout -k 5 240 "$RECONNECT" "$VIP" 80 $REQ --ports 45000-45004 --timeout 5 "$@")
	summary=$(grep '^summary ' <<< "$out")
	ktap_diag "$name: ${summary:-no summary (client failed)}"
	answered=$(sed -n 's/.* answered=\([0-9]*\).*/\1/p' <<< "$summary")
	max=$(sed -n 's/.* max_ms=\([0-9]*\).*/\1/p' <<< "$summary")
	if [ "$answered" = $REQ ]; then
		ktap_pass "$name: all $REQ connections answered"
	else
		ktap_diag "$(grep ' ERR' <<< "$out" | head -5)"
		ktap_fail "$name: all $REQ connections answered"
	fi
	if [ -n "$max" ] && [ "$max" -lt $MAX_MS ]; then
		ktap_pass "$name: every connect() took less than $MAX_MS ms"
	else
		slow=$(awk -v m=$MAX_MS 'NF >= 4 && $3 + 0 >= m' <<< "$out" | head -5)
		ktap_diag "slow connections (i, port, ms, answer):"$'\n'"$slow"
		ktap_fail "$name: every connect() took less than $MAX_MS ms"
	fi
	n1=$(grep -c -E '^[0-9]+ [0-9]+ [0-9.]+ rs1$' <<< "$out")
	n2=$(grep -c -E '^[0-9]+ [0-9]+ [0-9.]+ rs2$' <<< "$out")
	if [ "$n1" = $((REQ / 2)) ] && [ "$n2" = $((REQ / 2)) ]; then
		ktap_pass "$name: every SYN scheduled anew (50/50 over rs1 and rs2)"
	else
		ktap_diag "$name: rs1 $n1, rs2 $n2, want $((REQ / 2)) each"
		ktap_fail "$name: every SYN scheduled anew (50/50 over rs1 and rs2)"
	fi
}

round "normal close (TIME_WAIT)"
round "reset (CLOSE)" --linger0

ktap_exit
