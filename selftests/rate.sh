#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 180
#
# Statistics and rates under load, NAT and rr:
#  - while a client keeps opening UDP "connections" (one datagram and its
#    answer from a new source port each), `ipvsadm -Ln --rate` shows a
#    non-zero connection rate and packet and byte rates in both directions
#    for the service, and /proc/net/ip_vs_stats non-zero rates;
#  - the counters of `ipvsadm -Ln --stats` add up: the service's
#    connections equal the sum over its real servers and the number of
#    answered requests;
#  - after the load stops the rates decay, and `ipvsadm -Z` zeroes counters
#    and rates.
# Besides the service under load, 2,000 TCP services with 2 real servers each
# are configured, so that the estimator walks 6,000 sets of counters in
# several chunks (ours: 512 per RCU read section) wherever in the table the
# loaded service sits.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 5
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	local i
	topo_nat $N || return 1
	start_servers $N || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr || return 1
	for ((i = 1; i <= N; i++)); do
		nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || return 1
	done
	"$REPO/tools/lib/ipvs-svc-scale" --restore-input 2000 | nsx "$NS_D" ipvsadm -R || return 1
	[ "$(nsx "$NS_D" ipvsadm -Ln | grep -c '^TCP')" = 2000 ]
}

if setup; then
	ktap_pass "setup: UDP service, $N NAT real servers, 2000 other services"
else
	ktap_fail "setup: UDP service, $N NAT real servers, 2000 other services"
	ktap_exit
fi

# The service line of `ipvsadm -Ln --rate`: CPS InPPS OutPPS InBPS OutBPS.
svc_rates() {
	nsx "$NS_D" ipvsadm -Ln --rate -u "$VIP:80" | awk -v s="$VIP:80" '$2 == s { print $3, $4, $5, $6, $7 }'
}

out=$(mktemp)
# bg: nsenter execs the client, so this is the client's pid.
bg "$NS_C" "$CLIENT" udp "$VIP" 80 100000 --sport-base 20000 --timeout 2 > "$out"
load=${BG_PIDS[-1]}
# The estimator samples every 2 s and smooths: give it a few samples.
rates=
for ((i = 0; i < 20; i++)); do
	sleep 1
	rates=$(svc_rates)
	read -r cps inpps outpps inbps outbps <<< "$rates"
	[ "${cps:-0}" -gt 0 ] && [ "${inpps:-0}" -gt 0 ] && [ "${outpps:-0}" -gt 0 ] &&
		[ "${inbps:-0}" -gt 0 ] && [ "${outbps:-0}" -gt 0 ] && [ "$i" -ge 5 ] && break
done
proc=$(nsx "$NS_D" cat /proc/net/ip_vs_stats)
kill "$load" 2>/dev/null
wait "$load" 2>/dev/null
answered=$(grep -cE '^[0-9]+ rs[0-9]+$' "$out")
rm -f "$out"
ktap_diag "under load: CPS InPPS OutPPS InBPS OutBPS = $rates; answered $answered"

if [ "${cps:-0}" -gt 0 ] && [ "${inpps:-0}" -gt 0 ] && [ "${outpps:-0}" -gt 0 ] &&
   [ "${inbps:-0}" -gt 0 ] && [ "${outbps:-0}" -gt 0 ]; then
	ktap_pass "ipvsadm -Ln --rate shows non-zero rates under load"
else
	ktap_fail "ipvsadm -Ln --rate shows non-zero rates under load"
fi

# /proc/net/ip_vs_stats: line 6 holds the rates (hexadecimal).
prates=$(sed -n 6p <<< "$proc")
if [ -n "$prates" ] && awk '{ for (i = 1; i <= 3; i++) if ($i == "0") exit 1 }' <<< "$prates"; then
	ktap_pass "/proc/net/ip_vs_stats shows non-zero rates under load"
else
	ktap_diag "$proc"
	ktap_fail "/proc/net/ip_vs_stats shows non-zero rates under load"
fi

# Counters add up (the request in flight when the load stopped may count
# as a connection without an answer).
stats=$(nsx "$NS_D" ipvsadm -Ln --stats -u "$VIP:80")
svc=$(awk -v s="$VIP:80" '$2 == s { print $3 }' <<< "$stats")
sum=$(awk '$1 == "->" && $2 ~ /:80$/ { s += $3 } END { print s + 0 }' <<< "$stats")
if [ -n "$svc" ] && [ "$svc" = "$sum" ] && [ "$svc" -ge "$answered" ] &&
   [ "$svc" -le $((answered + 1)) ]; then
	ktap_pass "service connections ($svc) = sum over real servers = answered requests ($answered)"
else
	ktap_diag "$stats"
	ktap_fail "service connections ($svc) = sum over real servers ($sum) = answered requests ($answered)"
fi

# The C IPVS folds per-CPU counters into what ipvsadm reads every 2 s: let
# the last packets of the load be folded before zeroing.
sleep 3
nsx "$NS_D" ipvsadm -Z
zeroed=$(nsx "$NS_D" ipvsadm -Ln --stats -u "$VIP:80" | awk -v s="$VIP:80" '$2 == s { print $3, $4, $5, $6, $7 }')
zrates=$(svc_rates)
if [ "$zeroed" = "0 0 0 0 0" ] && [ "$zrates" = "0 0 0 0 0" ]; then
	ktap_pass "ipvsadm -Z zeroes counters and rates"
else
	ktap_diag "after -Z: stats $zeroed, rates $zrates"
	ktap_fail "ipvsadm -Z zeroes counters and rates"
fi

ktap_exit
