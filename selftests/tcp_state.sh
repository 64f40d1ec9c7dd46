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
# Then `ipvsadm --set 5 5 5` (tcp tcpfin udp) and new entries: an idle
# ESTABLISHED NAT connection (VIP:90), a closed DR connection (FIN_WAIT,
# VIP:91) and a UDP NAT datagram (VIP:92); one more snapshot each, then
# every entry must be gone (from -Lcn and from the counters) within 5 s
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
EXPIRE_MAX=15

work=$(mktemp -d)
rm_work() { save_artifacts "$work" tcp_state; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

adm() { nsx "$NS_D" ipvsadm "$@"; }

# scenario IMPL DIR: run both parts under IMPL, transcripts into DIR.
scenario() {
	local impl=$1 out=$2 args
	mkdir -p "$out"
	ipvs_use "$impl" || return 1
	topo_nat 2 || return 1
	rs_direct 2 dr "$VIP" || return 1
	adm -R <<-EOF || return 1
		-A -t $VIP:80 -s rr
		-a -t $VIP:80 -r ${RIP[1]}:80 -m
		-A -t $VIP:81 -s rr
		-a -t $VIP:81 -r ${RIP[2]}:81 -g
	EOF
	args=(--client-ns "$NS_C" --director-ns "$NS_D" --nat-ns "${NS_RS[1]}"
		--dr-ns "${NS_RS[2]}" --cip "$CIP" --vip "$VIP")
	timeout -k 5 120 "$LIFE" lifecycle "${args[@]}" > "$out/lifecycle" 2>&1
	adm --set 5 5 5 || return 1
	adm -R <<-EOF || return 1
		-A -t $VIP:90 -s rr
		-a -t $VIP:90 -r ${RIP[1]}:90 -m
		-A -t $VIP:91 -s rr
		-a -t $VIP:91 -r ${RIP[2]}:91 -g
		-A -u $VIP:92 -s rr
		-a -u $VIP:92 -r ${RIP[1]}:92 -m
	EOF
	timeout -k 5 120 "$LIFE" expiry "${args[@]}" --wait $((EXPIRE_MAX + 5)) > "$out/expiry" 2>&1
	cleanup_ns
}

ref=c
cand=$IPVS_IMPL
t0=$SECONDS
scenario "$ref" "$work/ref" || echo "the $ref scenario could not be set up" >> "$work/notes"
cleanup_ns
t1=$SECONDS
scenario "$cand" "$work/cand" || echo "the $cand scenario could not be set up" >> "$work/notes"
cleanup_ns
echo "scenario times: $ref $((t1 - t0)) s, $cand $((SECONDS - t1)) s" >> "$work/notes"
cat "$work/ref/lifecycle" "$work/ref/expiry" > "$work/ref/all" 2>/dev/null
cat "$work/cand/lifecycle" "$work/cand/expiry" > "$work/cand/all" 2>/dev/null

mapfile -t steps < <(sed -n 's/^step //p' "$work/ref/all")
ktap_header $((2 + 2 * ${#steps[@]} + 6))
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
ktap_diag "$(cat "$work/notes")"

# completed WHO FILE: the driver ran every step without an error.
completed() {
	local who=$1 f=$2 n
	n=$(grep -c '^step ' "$f")
	if [ "$n" -gt 0 ] && [ "$n" = "${#steps[@]}" ] && ! grep -q '^error ' "$f" &&
		[ "$(grep -c '^expire ' "$f")" = 3 ]; then
		ktap_pass "$who: every step of the scenario ran"
	else
		ktap_diag "$who transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$who: every step of the scenario ran"
	fi
}
completed "$ref" "$work/ref/all"
completed "$cand" "$work/cand/all"

# block FILE STEP KIND: the KIND lines of STEP.
block() {
	awk -v s="$2" -v k="$3" '
		/^(step|expire|error) / { in_step = ($0 == "step " s) ; next }
		in_step && $1 == k { print }' "$1"
}

for step in "${steps[@]}"; do
	for kind in conn dest; do
		if [ $kind = conn ]; then
			what="$step: ipvsadm -Lcn states"
		else
			what="$step: ipvsadm -Ln ActiveConn/InActConn"
		fi
		a=$(block "$work/ref/all" "$step" $kind)
		b=$(block "$work/cand/all" "$step" $kind)
		if [ -n "$a" ] && [ "$a" = "$b" ]; then
			ktap_pass "$what"
		else
			ktap_diag "$(diff -u --label "$ref" --label "$cand" <(echo "$a") <(echo "$b") | tail -n +3)"
			ktap_fail "$what"
		fi
	done
done

# Entries expire after ipvsadm --set 5 5 5.
for who in ref cand; do
	impl=$ref
	[ $who = cand ] && impl=$cand
	for c in nat dr udp; do
		case $c in
		nat) what="idle ESTABLISHED NAT connection" ;;
		dr) what="closed DR connection (FIN_WAIT)" ;;
		udp) what="UDP NAT entry" ;;
		esac
		t=$(awk -v c=$c '$1 == "expire" && $2 == c { print $3 }' "$work/$who/all")
		ktap_diag "$impl: $c entry gone after ${t:-?} s"
		if [ -n "$t" ] && [ "$t" != never ] && awk -v t="$t" -v m=$EXPIRE_MAX 'BEGIN { exit !(t <= m) }'; then
			ktap_pass "$impl: $what expires within $EXPIRE_MAX s of a 5 s timeout"
		else
			ktap_fail "$impl: $what expires within $EXPIRE_MAX s of a 5 s timeout"
		fi
	done
done

ktap_exit
