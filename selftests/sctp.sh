#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# SCTP services, differential: NAT, direct routing and IP-in-IP tunnel.
#
#   client -> director (VIP 10.0.100.1) -> rs1..rs3: SCTP VIP:80 NAT (-m,
#             to port 8080), VIP:81 DR (-g), VIP:82 tunnel (-i), all rr;
#             [VIP6]:80 NAT to rs1 port 8080 over IPv6
#
# tools/lib/ipvs-sctp-lifecycle (one Python process, sockets in every
# namespace) opens 3 associations per IPv4 service one after the other,
# each echoing a message of its own size: the answers must be right, the
# real servers taken in turn (three different ones). Then it takes one
# association of each service step by step -- up (INIT ... COOKIE ACK),
# data both ways, client close (SHUTDOWN ... SHUTDOWN COMPLETE), a second
# one aborted by the client, and an INIT to a real server that no longer
# listens -- and after each step reads the director's `ipvsadm -Lcn`
# states (expiry masked) and ActiveConn/InActConn.
#
# NAT clients use 10.0.0.3 and fd00::3: CIP 10.0.0.2 is routed back from
# the real servers directly, for DR and tunnel. NAT rewrites the ports
# both ways (80 <-> 8080), so the CRC32c is recomputed on every packet: a
# wrong one shows as associations that never come up.
#
# The whole scenario runs under the C IPVS (the reference) and then under
# $IPVS_IMPL in the same boot, each in fresh namespaces; every snapshot
# must be identical. With --impl c this compares the oracle with itself.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

LIFE=$TOOLS/lib/ipvs-sctp-lifecycle
NAT_CIP=10.0.0.3
NAT_CIP6=fd00::3

work=$(mktemp -d)
rm_work() { save_artifacts "$work" sctp; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# scenario IMPL FILE: the whole scenario under IMPL, transcript into FILE.
scenario() {
	local impl=$1 out=$2 i
	ipvs_use "$impl" || return 1
	topo_nat 3 || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		addr add $NAT_CIP/24 dev c0
		addr add $NAT_CIP6/64 dev c0 nodad
	EOF
	for ((i = 1; i <= 3; i++)); do
		rs_direct "$i" tun "$VIP" || return 1
	done
	timeout -k 5 150 "$LIFE" --client-ns "$NS_C" --director-ns "$NS_D" \
		--rs-ns "${NS_RS[1]}" --rs-ns "${NS_RS[2]}" --rs-ns "${NS_RS[3]}" \
		--rip "${RIP[1]}" --rip "${RIP[2]}" --rip "${RIP[3]}" --rip6 "${RIP6[1]}" \
		--cip "$CIP" --nat-cip "$NAT_CIP" --nat-cip6 "$NAT_CIP6" \
		--vip "$VIP" --vip6 "$VIP6" > "$out" 2>&1
}

ref_cand_run scenario "$work"

split_transcript "$work/ref.txt" "$work/r" 'balance|echo|error'
split_transcript "$work/cand.txt" "$work/c" 'balance|echo|error'
mapfile -t steps < "$work/r/steps"
mapfile -t csteps < "$work/c/steps"

SVCS=(nat dr tun)
ktap_header $((2 + 2 * ${#SVCS[@]} * 2 + 2 * ${#steps[@]}))
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
ktap_diag "$(cat "$work/notes")"

# Every step taken, no error.
for who in ref cand; do
	if [ $who = ref ]; then impl=$ref; d=r; n=${#steps[@]}; else impl=$cand; d=c; n=${#csteps[@]}; fi
	if [ "$n" -gt 0 ] && [ "$n" = "${#steps[@]}" ] && ! grep -q '^error ' "$work/$d/other"; then
		ktap_pass "$impl: every step of the scenario ran"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$work/$who.txt")"
		ktap_fail "$impl: every step of the scenario ran"
	fi
done

# Balanced and echoed, for each implementation and service.
for who in ref cand; do
	if [ $who = ref ]; then impl=$ref; d=r; else impl=$cand; d=c; fi
	for s in "${SVCS[@]}"; do
		b=$(awk -v s="$s" '$1 == "balance" && $2 == s { $1 = ""; $2 = ""; print substr($0, 3) }' "$work/$d/other")
		read -ra o <<< "$b"
		# rr: three different real servers.
		if [ ${#o[@]} = 3 ] && [ "${o[0]}" != "${o[1]}" ] && [ "${o[1]}" != "${o[2]}" ] &&
			[ "${o[0]}" != "${o[2]}" ]; then
			ktap_pass "$impl: $s: 3 associations taken in turn by rs1..rs3"
		else
			ktap_diag "$impl: $s: real servers in order: ${b:-none}"
			ktap_fail "$impl: $s: 3 associations taken in turn by rs1..rs3"
		fi
		good=$(grep -c "^echo $s ok " "$work/$d/other")
		bad=$(grep -c "^echo $s bad " "$work/$d/other")
		if [ "$good" = 3 ] && [ "$bad" = 0 ]; then
			ktap_pass "$impl: $s: 3 messages echoed intact"
		else
			ktap_diag "$impl: $s: $good echoed intact, $bad wrong"
			ktap_fail "$impl: $s: 3 messages echoed intact"
		fi
	done
done

compare_steps "$work" ':47[0-9][0-9][0-9] '

ktap_exit
