#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
# cpus: 2 (races between CPUs: tools/lib/check runs it in its 2-vCPU boot)
#
# Configuration changes under traffic.
#
# A client keeps opening TCP connections to VIP:80 while the director's
# configuration changes: destinations are added (-a), deleted (-d),
# quiesced and re-weighted (-e -w), other services come and go (-A/-D),
# the service itself is deleted (-D) and everything cleared (-C).
#
# Before each request the client reads the current "phase" from a file and
# logs it with the answer; the phase is bumped only after ipvsadm returned.
# So every request of a phase started after its change, and:
#  - it must have been answered (except in the gap phases with no service),
#  - only by a real server the phase allows,
#  - real servers a phase brings in must actually get traffic.
# A splat in the kernel log fails the test too (selftests/run, vm-run).

# The phase commands are eval'ed later, in single quotes on purpose.
# shellcheck disable=SC2016

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=4
MIN_PER_PHASE=8
PHASE_TIMEOUT=90

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 11
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

if ! topo_nat $N || ! start_servers $N; then
	ktap_fail "topology setup"
	ktap_exit
fi

work=$(mktemp -d)
phase_file=$work/phase
stop_file=$work/stop
log=$work/client.log
stop_client() { [ -d "$work" ] && touch "$stop_file"; }
CLEANUP_HOOKS+=(stop_client)

adm() { nsx "$NS_D" ipvsadm "$@"; }
S=(-t "$VIP:80")

# Number of answered-or-failed requests logged for PHASE.
phase_count() { awk -v p="$1" '$1 == p' "$log" | wc -l; }

# wait_phase PHASE: until MIN_PER_PHASE requests of PHASE were logged.
wait_phase() {
	local i
	for ((i = 0; i < PHASE_TIMEOUT * 10; i++)); do
		[ "$(phase_count "$1")" -ge $MIN_PER_PHASE ] && return 0
		kill -0 "$client_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# run_phase NAME "ALLOWED..." "REQUIRED..." CMD...: apply the change, then
# start phase NAME and check its requests.
phase_no=0
run_phase() {
	local name=$1 allowed=$2 required=$3 cmds=$4 answers bad r
	phase_no=$((phase_no + 1))
	local p="p$phase_no"
	if ! (eval "$cmds"); then
		ktap_fail "$name: ipvsadm commands"
		return
	fi
	echo "$p" > "$phase_file"
	if ! wait_phase "$p"; then
		ktap_diag "only $(phase_count "$p") requests in ${PHASE_TIMEOUT}s"
		ktap_fail "$name"
		return
	fi
	answers=$(awk -v p="$p" '$1 == p { $1 = ""; sub(/^ /, ""); print }' "$log")
	bad=""
	while IFS= read -r r; do
		case " $allowed " in
		*" $r "*) ;;
		*) bad+="[$r] " ;;
		esac
	done <<< "$answers"
	for r in $required; do
		grep -qx "$r" <<< "$answers" || bad+="(no traffic to $r) "
	done
	if [ -z "$bad" ]; then
		ktap_pass "$name: $(wc -l <<< "$answers") requests, all answered by {$allowed}"
	else
		ktap_diag "unexpected: $bad"
		ktap_diag "answers: $(sort <<< "$answers" | uniq -c | tr '\n' ' ')"
		ktap_fail "$name: all requests answered by {$allowed}"
	fi
}

# gap_phase NAME CMD: a change after which the service does not exist;
# requests may fail. Just make sure the client goes on.
gap_phase() {
	local name=$1 cmds=$2
	phase_no=$((phase_no + 1))
	local p="p$phase_no"
	if ! (eval "$cmds"); then
		ktap_fail "$name: ipvsadm commands"
		return
	fi
	echo "$p" > "$phase_file"
	if wait_phase "$p"; then
		ktap_pass "$name: client keeps running ($(awk -v p="$p" '$1 == p && $2 == "ERR"' "$log" | wc -l) refused)"
	else
		ktap_fail "$name: client keeps running"
	fi
}

# Phase 0 config: rs1..rs3.
if ! { adm -A "${S[@]}" -s rr &&
	adm -a "${S[@]}" -r "${RIP[1]}:80" -m &&
	adm -a "${S[@]}" -r "${RIP[2]}:80" -m &&
	adm -a "${S[@]}" -r "${RIP[3]}:80" -m; }; then
	ktap_diag "initial configuration failed"
fi
echo p0 > "$phase_file"
: > "$log"
nsx "$NS_C" "$CLIENT" loop "$VIP" 80 --phase-file "$phase_file" \
	--stop-file "$stop_file" --timeout 3 --max-seconds 800 >> "$log" 2>&1 &
client_pid=$!
BG_PIDS+=("$client_pid")

run_phase "initial rs1 rs2 rs3" "rs1 rs2 rs3" "rs1 rs2 rs3" ":"
run_phase "-a rs4" "rs1 rs2 rs3 rs4" "rs4" \
	'adm -a "${S[@]}" -r "${RIP[4]}:80" -m -w 1'
run_phase "-d rs1" "rs2 rs3 rs4" "rs2 rs3 rs4" \
	'adm -d "${S[@]}" -r "${RIP[1]}:80"'
run_phase "-e -w 0 rs2 (quiesce)" "rs3 rs4" "rs3 rs4" \
	'adm -e "${S[@]}" -r "${RIP[2]}:80" -m -w 0'
run_phase "-e -w 3 rs2" "rs2 rs3 rs4" "rs2" \
	'adm -e "${S[@]}" -r "${RIP[2]}:80" -m -w 3'
run_phase "other services added and deleted" "rs2 rs3 rs4" "" \
	'adm -A -u "$VIP:80" -s rr && adm -a -u "$VIP:80" -r "${RIP[1]}:80" -m &&
	 adm -A -t "$VIP:81" -s rr && adm -a -t "$VIP:81" -r "${RIP[1]}:80" -m &&
	 adm -D -u "$VIP:80" && adm -d -t "$VIP:81" -r "${RIP[1]}:80" &&
	 adm -D -t "$VIP:81"'
gap_phase "-D service" 'adm -D "${S[@]}"'
run_phase "service re-added with rs3 rs4" "rs3 rs4" "rs3 rs4" \
	'adm -A "${S[@]}" -s rr && adm -a "${S[@]}" -r "${RIP[3]}:80" -m &&
	 adm -a "${S[@]}" -r "${RIP[4]}:80" -m'
gap_phase "-C" 'adm -C'
run_phase "service re-added with rs1 only" "rs1" "rs1" \
	'adm -A "${S[@]}" -s rr && adm -a "${S[@]}" -r "${RIP[1]}:80" -m'

stop_client
wait "$client_pid" 2>/dev/null
ktap_diag "$(wc -l < "$log") requests in total"
if [ "$(nsx "$NS_D" ipvsadm -Ln | grep -c -- '->.*Masq')" = 1 ]; then
	ktap_pass "final configuration lists exactly one destination"
else
	ktap_diag "$(nsx "$NS_D" ipvsadm -Ln)"
	ktap_fail "final configuration lists exactly one destination"
fi
rm -rf "$work"
ktap_exit
