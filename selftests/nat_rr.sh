#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# NAT forwarding with the rr scheduler, TCP and UDP.
#
#   client -> director (VIP 10.0.100.1, ip_forward=1) -> rs1..rs3 (NAT, -m)
#
# 30 TCP connections must be spread exactly 10/10/10 over the three real
# servers, and 30 UDP datagrams from 30 distinct source ports likewise; the
# per-destination connection counters of `ipvsadm -Ln --stats` must agree.
# Then a client on the director itself (its requests pass the LOCAL_OUT
# hook, the real servers' replies come in at LOCAL_IN): 6 TCP connections
# and 6 UDP datagrams, 2 per real server. Ours skips the reply lookup at
# LOCAL_IN until a connection has a client on the director: this is the
# first one.
# Between the two, the LOCAL_OUT hooks of the packets IPVS forwards: an
# nftables output chain on the director counts every forwarded UDP request
# (ours skips the LOCAL_OUT hooks only while its own is the only one), and
# with the chain gone the requests are still answered.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3
REQ=30
PER=$((REQ / N))

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 10
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

if ! topo_nat $N || ! start_servers $N; then
	ktap_fail "topology setup"
	ktap_exit
fi

# check_spread PROTO OUTPUT
check_spread() {
	local proto=$1 out=$2 counts want="" i errs
	for ((i = 1; i <= N; i++)); do want+="$PER "; done
	want+="0"
	counts=$(count_answers "$out" $N)
	if [ "$counts" = "$want" ]; then
		ktap_pass "$proto: $REQ requests spread $PER each over $N real servers"
	else
		ktap_diag "per-server counts (rs1..rs$N, errors): $counts, want $want"
		errs=$(grep -v -E '^[^ ]+ rs[0-9]+$' <<< "$out" | head -5)
		[ -z "$errs" ] || ktap_diag "$errs"
		ktap_fail "$proto: $REQ requests spread $PER each over $N real servers"
	fi
}

# stats_ok FLAG: ipvsadm -Ln --stats shows REQ conns for the service and
# PER for each real server (prints the listing).
stats_ok() {
	local stats c i bad=0
	stats=$(nsx "$NS_D" ipvsadm -Ln --stats "$1" "$VIP:80" 2>&1)
	echo "$stats"
	c=$(awk -v s="$VIP:80" '$2 == s { print $3 }' <<< "$stats")
	[ "$c" = "$REQ" ] || bad=1
	for ((i = 1; i <= N; i++)); do
		c=$(awk -v d="${RIP[i]}:80" '$1 == "->" && $2 == d { print $3 }' <<< "$stats")
		[ "$c" = "$PER" ] || bad=1
	done
	return $bad
}

# check_stats FLAG NAME: the C IPVS folds its per-CPU counters into what
# ipvsadm reads from the estimator kthread, every 2 s (later under load),
# so allow the counters some time to settle.
check_stats() {
	local flag=$1 name=$2 stats i
	for ((i = 0; i < 30; i++)); do
		stats=$(stats_ok "$flag") && break
		sleep 1
	done
	if [ "$i" -lt 30 ]; then
		ktap_pass "$name: ipvsadm --stats counts $REQ connections, $PER per real server"
	else
		ktap_diag "$stats"
		ktap_fail "$name: ipvsadm --stats counts $REQ connections, $PER per real server"
	fi
}

# --- TCP
ok=1
nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || ok=0
for ((i = 1; i <= N; i++)); do
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m || ok=0
done
if [ $ok = 1 ]; then ktap_pass "tcp: service and $N NAT destinations added"
else ktap_fail "tcp: service and $N NAT destinations added"; fi
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 $REQ --timeout 5)
check_spread tcp "$out"
check_stats -t tcp

# --- UDP
ok=1
nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr || ok=0
for ((i = 1; i <= N; i++)); do
	nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || ok=0
done
if [ $ok = 1 ]; then ktap_pass "udp: service and $N NAT destinations added"
else ktap_fail "udp: service and $N NAT destinations added"; fi
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 40000 --timeout 5)
check_spread udp "$out"
check_stats -u udp

# --- The LOCAL_OUT hooks see what IPVS forwards
nsx "$NS_D" nft -f - <<EOF
table ip ipvs_out {
	chain out {
		type filter hook output priority 0;
		ip daddr { ${RIP[1]}, ${RIP[2]}, ${RIP[3]} } udp dport 80 counter
	}
}
EOF
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 42000 --timeout 5)
seen=$(nsx "$NS_D" nft list chain ip ipvs_out out | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
if [ "$(count_answers "$out" $N)" = "$PER $PER $PER 0" ] && [ "${seen:-0}" -ge "$REQ" ]; then
	ktap_pass "udp: $REQ forwarded requests pass an nftables output chain"
else
	ktap_diag "answers $(count_answers "$out" $N), output chain counted '$seen'"
	ktap_fail "udp: $REQ forwarded requests pass an nftables output chain"
fi
nsx "$NS_D" nft delete table ip ipvs_out
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 43000 --timeout 5)
check_spread "udp, output chain gone" "$out"

# --- A client on the director
REQ=6 PER=2
out=$(nsx "$NS_D" "$CLIENT" tcp "$VIP" 80 $REQ --timeout 5)
check_spread "tcp from the director" "$out"
out=$(nsx "$NS_D" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 41000 --timeout 5)
check_spread "udp from the director" "$out"

ktap_exit
