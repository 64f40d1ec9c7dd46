#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 240
#
# Firewall-mark services (ipvsadm -A -f MARK) with real traffic, NAT, rr.
# An nftables rule on the director marks packets in PREROUTING:
#   mark 1: TCP and UDP to VIP:80, VIP2:80 and VIP2:8080 (one service for
#           several addresses, ports and both protocols);
#   mark 2: TCP to VIP3:80, a persistent fwmark service (-p).
# Checked:
#  - mark 1 spreads TCP and UDP requests to all its addresses and ports over
#    its three real servers, exactly evenly (rr), with none unanswered;
#  - unmarked traffic to another port of the VIP is not taken by it;
#  - mark 2 (persistent): a client's TCP and UDP connections, to several
#    ports, all go to one real server (the fwmark template has protocol IP
#    and no port), a second client's to another; ipvsadm -Lcn shows the
#    templates as "IP" entries of the mark.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

command -v nft >/dev/null || ktap_skip_all "nft not installed"

VIP2=10.0.100.2
VIP3=10.0.100.3
CIP2=10.0.0.3
N=3

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 5
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	local i
	topo_nat $N || return 1
	start_servers $N 80 --port 8080 --port 81 || return 1
	ip -n "$NS_D" addr add "$VIP2/32" dev lo || return 1
	ip -n "$NS_D" addr add "$VIP3/32" dev lo || return 1
	ip -n "$NS_C" addr add "$CIP2/24" dev c0 || return 1
	nsx "$NS_D" nft -f - <<- EOF || return 1
	table ip ipvst {
		chain pre {
			type filter hook prerouting priority mangle;
			ip daddr { $VIP, $VIP2 } meta l4proto { tcp, udp } th dport 80 meta mark set 1
			ip daddr $VIP2 meta l4proto { tcp, udp } th dport 8080 meta mark set 1
			ip daddr $VIP3 meta l4proto { tcp, udp } meta mark set 2
		}
	}
	EOF
	nsx "$NS_D" ipvsadm -A -f 1 -s rr || return 1
	nsx "$NS_D" ipvsadm -A -f 2 -s rr -p 120 || return 1
	for ((i = 1; i <= N; i++)); do
		nsx "$NS_D" ipvsadm -a -f 1 -r "${RIP[i]}:0" -m || return 1
		nsx "$NS_D" ipvsadm -a -f 2 -r "${RIP[i]}:0" -m || return 1
	done
}

if setup; then
	ktap_pass "setup: fwmark services 1 (two VIPs, two ports, TCP+UDP) and 2 (persistent)"
else
	ktap_fail "setup: fwmark services 1 (two VIPs, two ports, TCP+UDP) and 2 (persistent)"
	ktap_exit
fi

# --- mark 1: 4 x 6 requests over 3 servers, rr: 8 each
all=$( {
	nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 6
	nsx "$NS_C" "$CLIENT" udp "$VIP2" 80 6 --sport-base 30000
	nsx "$NS_C" "$CLIENT" tcp "$VIP2" 8080 6
	nsx "$NS_C" "$CLIENT" udp "$VIP" 80 6 --sport-base 30100
} )
counts=$(count_answers "$all" $N)
if [ "$counts" = "8 8 8 0" ]; then
	ktap_pass "mark 1: 24 TCP/UDP requests to 2 VIPs and 2 ports spread 8/8/8"
else
	ktap_diag "per-server counts (rs1..rs3, errors): $counts"
	ktap_fail "mark 1: 24 TCP/UDP requests to 2 VIPs and 2 ports spread 8/8/8"
fi

# --- unmarked: port 81 of the VIP is not a service; the director answers
# itself (nothing listens there: refused).
r=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 81 1 | awk '{ $1 = ""; print substr($0, 2) }')
if [ "$r" = "ERR ECONNREFUSED" ]; then
	ktap_pass "unmarked traffic to VIP:81 is not balanced"
else
	ktap_diag "VIP:81 answered: $r"
	ktap_fail "unmarked traffic to VIP:81 is not balanced"
fi

# --- mark 2, persistent: TCP and UDP, ports 80 and 8080, one server per client
servers() {
	awk '{ $1 = ""; print substr($0, 2) }' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
a=$( {
	nsx "$NS_C" "$CLIENT" tcp "$VIP3" 80 3 --source "$CIP"
	nsx "$NS_C" "$CLIENT" udp "$VIP3" 80 3 --source "$CIP" --sport-base 31000
	nsx "$NS_C" "$CLIENT" tcp "$VIP3" 8080 3 --source "$CIP"
} | servers)
b=$( {
	nsx "$NS_C" "$CLIENT" udp "$VIP3" 8080 3 --source "$CIP2" --sport-base 31100
	nsx "$NS_C" "$CLIENT" tcp "$VIP3" 80 3 --source "$CIP2"
} | servers)
ktap_diag "client $CIP: $a; client $CIP2: $b"
if [[ "$a" =~ ^rs[0-9]$ ]] && [[ "$b" =~ ^rs[0-9]$ ]] && [ "$a" != "$b" ]; then
	ktap_pass "mark 2 (persistent): each client's TCP and UDP, all ports, on one server"
else
	ktap_fail "mark 2 (persistent): each client's TCP and UDP, all ports, on one server"
fi

conns=$(nsx "$NS_D" ipvsadm -Lcn 2>&1)
tmpl=$(grep -cE "^IP +[0-9:]+ +[A-Z]+ +10\.0\.0\.[23]:0 +0\.0\.0\.2:0 " <<< "$conns")
if [ "$tmpl" = 2 ]; then
	ktap_pass "ipvsadm -Lcn: one template <client:0, mark 2, server:0> of protocol IP per client"
else
	ktap_diag "$conns"
	ktap_fail "ipvsadm -Lcn: one template <client:0, mark 2, server:0> of protocol IP per client"
fi

ktap_exit
