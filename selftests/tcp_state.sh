#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# Differential test of the TCP connection states and their timeouts.
#
#   client -> director (VIP 10.0.100.1) -> rs1 NAT (-m)
#                                       -> rs2 direct routing (-g), own
#                                          return path to the client
#
# tools/lib/ipvs-tcp-lifecycle scripts TCP connections step by step, for
# the NAT service VIP:80 (rs1) and the DR service VIP:81 (rs2, where the
# director sees only the client's half): open (SYN, SYN-ACK, ACK), data
# both ways, client half-close (shutdown SHUT_WR), data after it, server
# close (the client ends in TIME_WAIT), a second connection reset by the
# client (SO_LINGER 0), a SYN to the real server once it no longer listens.
# After each step it reads the director's `ipvsadm -Lcn` (the state, with
# the expiry column masked) and the ActiveConn/InActConn columns of
# `ipvsadm -Ln`, for the service of the step.
#
# Then `ipvsadm --set 30 30 30` (tcp tcpfin udp) and new entries: an idle
# ESTABLISHED NAT connection (VIP:90), a closed DR connection (FIN_WAIT,
# VIP:91) and a UDP NAT datagram (VIP:92); one more snapshot each, then
# every entry must be gone (from -Lcn and from the counters) within 30 s
# plus 10 s of slack: our slow timer sweeps the table in batches, so it
# may expire entries up to a few seconds after the C IPVS's per-connection
# timers.
#
# All of it runs under the C IPVS (the reference) and then under
# $IPVS_IMPL in the same boot, each in fresh namespaces; every snapshot
# must be identical. With --impl c this compares the oracle with itself.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

LIFE=$TOOLS/lib/ipvs-tcp-lifecycle
EXPIRE_MAX=40

work=$(mktemp -d)
rm_work() { save_artifacts "$work" tcp_state; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# scenario IMPL FILE: the whole scenario under IMPL, transcript into FILE.
scenario() {
	local impl=$1 out=$2
	ipvs_use "$impl" || return 1
	topo_nat 2 || return 1
	rs_direct 2 dr "$VIP" || return 1
	timeout -k 5 180 "$LIFE" --client-ns "$NS_C" --director-ns "$NS_D" \
		--nat-ns "${NS_RS[1]}" --nat-rip "${RIP[1]}" \
		--dr-ns "${NS_RS[2]}" --dr-rip "${RIP[2]}" \
		--cip "$CIP" --vip "$VIP" --wait $((EXPIRE_MAX + 5)) > "$out" 2>&1
}

ref_cand_run scenario "$work"

split_transcript "$work/ref.txt" "$work/r" 'expire|error'
split_transcript "$work/cand.txt" "$work/c" 'expire|error'
mapfile -t steps < "$work/r/steps"
mapfile -t csteps < "$work/c/steps"
mapfile -t rother < "$work/r/other"
mapfile -t cother < "$work/c/other"

ktap_header $((2 + 2 * ${#steps[@]} + 6))
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
ktap_diag "$(cat "$work/notes")"

# completed WHO FILE NSTEPS OTHER...: the driver took every step of the
# reference and printed three expire lines, no error.
completed() {
	local who=$1 f=$2 n=$3 l nexp=0 err=0
	shift 3
	for l in "$@"; do
		case $l in
		"expire "*) nexp=$((nexp + 1)) ;;
		"error "*) err=1 ;;
		esac
	done
	if [ "$n" -gt 0 ] && [ "$n" = "${#steps[@]}" ] && [ $err = 0 ] && [ $nexp = 3 ]; then
		ktap_pass "$who: every step of the scenario ran"
	else
		ktap_diag "$who transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$who: every step of the scenario ran"
	fi
}
completed "$ref" "$work/ref.txt" "${#steps[@]}" "${rother[@]}"
completed "$cand" "$work/cand.txt" "${#csteps[@]}" "${cother[@]}"

compare_steps "$work"

# Entries expire after ipvsadm --set 30 30 30.
for who in ref cand; do
	if [ $who = ref ]; then impl=$ref; other=("${rother[@]}")
	else impl=$cand; other=("${cother[@]}"); fi
	for c in nat dr udp; do
		case $c in
		nat) what="idle ESTABLISHED NAT connection" ;;
		dr) what="closed DR connection (FIN_WAIT)" ;;
		udp) what="UDP NAT entry" ;;
		esac
		t=
		for l in "${other[@]}"; do
			case $l in "expire $c "*) t=${l#"expire $c "} ;; esac
		done
		ktap_diag "$impl: $c entry gone after ${t:-?} s"
		if [ -n "$t" ] && [ "$t" != never ] && [ "${t%%.*}" -lt $EXPIRE_MAX ]; then
			ktap_pass "$impl: $what expires within $EXPIRE_MAX s of a 30 s timeout"
		else
			ktap_fail "$impl: $what expires within $EXPIRE_MAX s of a 30 s timeout"
		fi
	done
done

ktap_exit
