#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# AH and ESP, differential: IPsec packets follow their client's IKE (UDP
# port 500) connection (upstream's ip_vs_proto_ah_esp.c).
#
#   clients -> director -> rs1..rs3: UDP VIP:500 NAT (-m) and VIP_DR:500
#              direct routing (-g), both rr, persistent (-p 60)
#
# tools/lib/ipvs-ah-esp (one Python process, sockets in every namespace):
# three NAT clients (10.0.0.3-5) and three DR clients (CIP, 10.0.0.7-8)
# send ESP (IP protocol 50) and AH (51) to the virtual addresses before any
# IKE exchange (not forwarded: no connection to follow, nothing is
# scheduled for AH/ESP), then exchange one UDP datagram from port 500 with
# port 500 of the VIP (the real server answers with its name), then send
# ESP and AH again: each must reach the real server of its client's IKE
# connection (NAT: rewritten to its address; DR: unchanged), and a client
# without IKE connection (10.0.0.6) still gets nothing forwarded. NAT real
# servers send ESP back (the client must see it come from the VIP) and
# "protocol unreachable" errors about the ESP they got (the client must see
# the VIP in the outer source and the quoted destination); a client's error
# about ESP "from the VIP" must reach the real server rewritten. Hostile
# short AH/ESP (0 to 3 bytes) follow, then ESP and AH once more, forwarded
# as before. AH/ESP never create connection entries.
#
# Real servers record ESP/AH on raw sockets (which also keeps their stack
# from answering "protocol unreachable" itself).
#
# The scenario runs under the C IPVS (the reference) and then under
# $IPVS_IMPL in the same boot, each in fresh namespaces: every step's
# transcript (what each real server and client received, ipvsadm -Lcn with
# expiry masked, ipvsadm -Ln) must be identical, and both must show the
# behaviour above. With --impl c this compares the oracle with itself.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

DRIVER=$TOOLS/lib/ipvs-ah-esp
VIP_DR=10.0.100.2
NAT_CIPS=(10.0.0.3 10.0.0.4 10.0.0.5)
NOIKE_CIP=10.0.0.6
DR_CIPS=("$CIP" 10.0.0.7 10.0.0.8)
STEPS=(noike ike ipsec reply icmp_out icmp_in short after)

work=$(mktemp -d)
rm_work() { save_artifacts "$work" ah_esp; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# scenario IMPL FILE: the whole scenario under IMPL, transcript into FILE.
scenario() {
	local impl=$1 out=$2 i c cmds="" args=()
	ipvs_use "$impl" || return 1
	topo_nat 3 || return 1
	for c in "${NAT_CIPS[@]}" "$NOIKE_CIP" "${DR_CIPS[@]:1}"; do
		cmds+="addr add $c/24 dev c0"$'\n'
	done
	ip -n "$NS_C" -b - <<< "$cmds" || return 1
	for ((i = 1; i <= 3; i++)); do
		rs_direct "$i" dr "$VIP_DR" || return 1
		# The other DR clients are answered over the return path too.
		ip -n "${NS_RS[i]}" -b - <<-EOF || return 1
			route add ${DR_CIPS[1]}/32 via 10.2.$i.1 dev ret0
			route add ${DR_CIPS[2]}/32 via 10.2.$i.1 dev ret0
		EOF
		args+=(--rs-ns "${NS_RS[i]}" --rip "${RIP[i]}")
	done
	ip -n "$NS_D" addr add "$VIP_DR/32" dev lo || return 1
	# The director's own "protocol unreachable" answers (AH/ESP left to its stack)
	# are part of the transcript: no rate limit to make them depend on timing.
	nsx "$NS_D" sysctl -qw net.ipv4.icmp_ratelimit=0 || return 1
	for c in "${NAT_CIPS[@]}"; do args+=(--nat-cip "$c"); done
	for c in "${DR_CIPS[@]}"; do args+=(--dr-cip "$c"); done
	timeout -k 5 240 "$DRIVER" --client-ns "$NS_C" --director-ns "$NS_D" "${args[@]}" \
		--vip "$VIP" --vip-dr "$VIP_DR" --noike-cip "$NOIKE_CIP" > "$out" 2>&1
}

ref_cand_run scenario "$work"

# block FILE STEP: the lines of STEP in a transcript.
block() {
	awk -v s="$2" '$1 == "step" { on = ($2 == s); next } on' "$1"
}

# ike_rs FILE CIP: the real server that answered CIP's IKE request.
ike_rs() {
	block "$1" ike | awk -v c="$2" '$1 == "ike" && $2 == c && $3 == "answered" { print $4 }'
}

# forwarded FILE STEP CIP RS DST TAG: CIP's ESP and AH of STEP reached RS
# (only), addressed to DST, with payload TAG.
forwarded() {
	local f=$1 s=$2 c=$3 rs=$4 dst=$5 tag=$6 b
	b=$(block "$f" "$s" | grep "^rs [^ ]* [A-Z]* from $c ")
	[ "$b" = "rs $rs AH from $c to $dst len $((15 + ${#tag})) ah-$tag
rs $rs ESP from $c to $dst len $((12 + ${#tag})) esp-$tag" ]
}

rip_of() { echo "10.1.${1#rs}.2"; }

# check_impl WHO IMPL: the expected behaviour in WHO's transcript.
check_impl() {
	local f=$work/$1.txt impl=$2 c rs ok seen n
	if [ "$(grep -c '^step ' "$f")" = ${#STEPS[@]} ] && ! grep -q '^error\|Traceback' "$f"; then
		ktap_pass "$impl: every step of the scenario ran"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$impl: every step of the scenario ran"
	fi
	ktap_check "$impl: AH/ESP before any IKE exchange: nothing forwarded" \
		test -z "$(block "$f" noike | grep '^rs ')"
	for kind in nat dr; do
		if [ $kind = nat ]; then set -- "${NAT_CIPS[@]}"; else set -- "${DR_CIPS[@]}"; fi
		seen=
		for c; do seen+="$(ike_rs "$f" "$c") "; done
		n=$(tr ' ' '\n' <<< "$seen" | grep -c '^rs[123]$')
		if [ "$n" = 3 ] && [ "$(tr ' ' '\n' <<< "$seen" | sort -u | grep -c .)" = 3 ]; then
			ktap_pass "$impl: $kind: IKE of 3 clients answered by rs1..rs3 in turn"
		else
			ktap_diag "$impl: $kind: IKE answered by: $seen"
			ktap_fail "$impl: $kind: IKE of 3 clients answered by rs1..rs3 in turn"
		fi
		for s in ipsec after; do
			ok=1
			for c; do
				rs=$(ike_rs "$f" "$c")
				if [ $kind = nat ]; then dst=$(rip_of "$rs"); else dst=$VIP_DR; fi
				tag=$c
				[ $s = after ] && tag=after-$c
				forwarded "$f" "$s" "$c" "$rs" "$dst" "$tag" || ok=0
			done
			if [ $ok = 1 ]; then
				ktap_pass "$impl: $kind: $s: ESP and AH of each client at its IKE real server"
			else
				ktap_diag "$impl: $s:"$'\n'"$(block "$f" "$s" | grep '^rs ')"
				ktap_fail "$impl: $kind: $s: ESP and AH of each client at its IKE real server"
			fi
		done
	done
	ktap_check "$impl: a client without IKE connection: its AH/ESP not forwarded" \
		test -z "$(grep "^rs [^ ]* [A-Z]* from $NOIKE_CIP " "$f")"
	ok=1
	for c in "${NAT_CIPS[@]}"; do
		rs=$(ike_rs "$f" "$c")
		block "$f" reply | grep -qx "client $c ESP from $VIP to $c back-$rs" || ok=0
		block "$f" icmp_out | grep -qx "client $c icmp 3/2 from $VIP to $c quoting proto 50 $c -> $VIP" || ok=0
	done
	if [ $ok = 1 ]; then
		ktap_pass "$impl: nat: ESP replies and ICMP errors about ESP come from the VIP"
	else
		ktap_diag "$impl: reply/icmp_out:"$'\n'"$(block "$f" reply; block "$f" icmp_out)"
		ktap_fail "$impl: nat: ESP replies and ICMP errors about ESP come from the VIP"
	fi
	ok=1
	for c in "${NAT_CIPS[@]}"; do
		rs=$(ike_rs "$f" "$c")
		rip=$(rip_of "$rs")
		block "$f" icmp_in | grep -qx "rs $rs icmp 3/2 from $c to $rip quoting proto 50 $rip -> $c" || ok=0
	done
	if [ $ok = 1 ]; then
		ktap_pass "$impl: nat: a client's ICMP error about ESP reaches the real server rewritten"
	else
		ktap_diag "$impl: icmp_in:"$'\n'"$(block "$f" icmp_in)"
		ktap_fail "$impl: nat: a client's ICMP error about ESP reaches the real server rewritten"
	fi
	ktap_check "$impl: no connection entries but the IKE ones (UDP)" \
		test -z "$(grep '^conn ' "$f" | grep -v '^conn UDP ')"
}

ktap_header $((2 * 12 + ${#STEPS[@]}))
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
ktap_diag "$(cat "$work/notes")"
check_impl ref "$ref"
check_impl cand "$cand"
for s in "${STEPS[@]}"; do
	a=$(block "$work/ref.txt" "$s")
	b=$(block "$work/cand.txt" "$s")
	if [ "$a" = "$b" ]; then
		ktap_pass "$s: $cand as $ref"
	else
		ktap_diag "$s: $ref:"$'\n'"$a"
		ktap_diag "$s: $cand:"$'\n'"$b"
		ktap_fail "$s: $cand as $ref"
	fi
done

ktap_exit
