#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# All three forwarding methods in one virtual service, TCP and UDP, IPv4 and
# IPv6.
#
#   client -> director (VIP 10.0.100.1, VIP6 fd00:100::1)
#             -> rs1 NAT (-m), default via director
#             -> rs2 direct routing (-g), VIP and VIP6 on lo
#             -> rs3 tunnel (-i: IP in IP, IPv6 in IPv6), VIP and VIP6 on lo
#   rs2, rs3 -> client over their own links (rs_direct in lib.sh)
#
# The TCP and UDP services VIP:80 and [VIP6]:80 each have the three real
# servers (of their family) with the rr scheduler. `ipvsadm -Ln` must show
# them as Masq, Route and Tunnel; per service 9 TCP connections and 9 UDP
# datagrams (distinct source ports) must all be answered, 3 by each real
# server, so each method carries both protocols of both families. The DR and
# tunnel real servers answer UDP from the VIP (ipvs-server --udp-pktinfo),
# as the client's connected socket needs.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3
REQ=9
PER=$((REQ / N))
METHOD=("" NAT "direct routing" tunnel)
FWD=("" Masq Route Tunnel)
FLAG=("" -m -g -i)

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 18
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

if ! topo_nat $N || ! rs_direct 2 dr "$VIP" "$VIP6" || ! rs_direct 3 tun "$VIP" "$VIP6" ||
	! start_servers $N 80 --udp-pktinfo --ipv6; then
	ktap_fail "topology setup"
	ktap_exit
fi

ok=1
for p in -t -u; do
	nsx "$NS_D" ipvsadm -A "$p" "$VIP:80" -s rr || ok=0
	nsx "$NS_D" ipvsadm -A "$p" "[$VIP6]:80" -s rr || ok=0
	for ((i = 1; i <= N; i++)); do
		nsx "$NS_D" ipvsadm -a "$p" "$VIP:80" -r "${RIP[i]}:80" "${FLAG[i]}" || ok=0
		nsx "$NS_D" ipvsadm -a "$p" "[$VIP6]:80" -r "[${RIP6[i]}]:80" "${FLAG[i]}" || ok=0
	done
done
if [ $ok = 1 ]; then
	ktap_pass "TCP and UDP services of both families with a NAT, a DR and a tunnel real server added"
else
	ktap_fail "TCP and UDP services of both families with a NAT, a DR and a tunnel real server added"
fi

# The forwarding column of each real server, per service.
list=$(nsx "$NS_D" ipvsadm -Ln 2>&1)
fwd=$(awk '$1 == "TCP" || $1 == "UDP" { svc = $1 } $1 == "->" && svc { print svc, $2, $3 }' <<< "$list")
want=""
for s in TCP UDP; do
	for ((i = 1; i <= N; i++)); do
		want+="$s ${RIP[i]}:80 ${FWD[i]}"$'\n'
		want+="$s [${RIP6[i]}]:80 ${FWD[i]}"$'\n'
	done
done
if [ "$(sort <<< "$fwd")" = "$(sort <<< "${want%$'\n'}")" ]; then
	ktap_pass "ipvsadm -Ln shows Masq, Route and Tunnel for all four services"
else
	ktap_diag "$list"
	ktap_fail "ipvsadm -Ln shows Masq, Route and Tunnel for all four services"
fi

# check_proto PROTO OUTPUT: all answered, PER per real server (method).
check_proto() {
	local proto=$1 out=$2 counts c errs
	read -r -a counts <<< "$(count_answers "$out" $N)"
	for ((i = 1; i <= N; i++)); do
		c=${counts[i - 1]}
		if [ "$c" = "$PER" ]; then
			ktap_pass "$proto via ${METHOD[i]}: $PER of $REQ answered by rs$i"
		else
			ktap_diag "$proto: rs$i (${METHOD[i]}) answered $c, want $PER"
			ktap_fail "$proto via ${METHOD[i]}: $PER of $REQ answered by rs$i"
		fi
	done
	if [ "${counts[N]}" = 0 ]; then
		ktap_pass "$proto: all $REQ requests answered"
	else
		errs=$(grep -v -E '^[^ ]+ rs[0-9]+$' <<< "$out" | head -9)
		ktap_diag "$proto: ${counts[N]} unanswered or wrong:"$'\n'"$errs"
		ktap_fail "$proto: all $REQ requests answered"
	fi
}

out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 $REQ --timeout 3)
check_proto tcp "$out"
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 40000 --timeout 3)
check_proto udp "$out"
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" 80 $REQ --source "$CIP6" --timeout 3)
check_proto tcp6 "$out"
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP6" 80 $REQ --source "$CIP6" --sport-base 41000 --timeout 3)
check_proto udp6 "$out"

ktap_exit
