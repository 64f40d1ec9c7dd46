#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differential test of the ipvsadm control path and list output.
#
# A fixed corpus of ipvsadm commands (services TCP and UDP, destinations
# with weights, edits, deletions, error cases, the list formats) runs in a
# fresh network namespace under the C IPVS (the oracle) and then, in the
# same boot, under the implementation under test ($IPVS_IMPL). Every
# command's output (stdout and stderr) and exit status must match byte for
# byte. With --impl c this compares the oracle with itself, which checks
# that the corpus is deterministic (that is why `-L --nosort` is not in it:
# the C service hash mixes in the netns address, so the unsorted order
# differs from one netns to the next). IPVS_LIST_SHOW=1 prints the
# reference transcript.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

V1=10.0.0.1
V2=10.0.0.2
V3=10.0.0.3
R=192.168.1

CORPUS=(
	"-v"
	"-L -n"
	"-A -t $V1:80 -s rr"
	"-A -t $V1:80 -s rr"
	"-A -u $V1:53 -s rr"
	"-A -t $V2:443 -s rr"
	"-A -u $V3:5060 -s rr"
	"-a -t $V1:80 -r $R.1:80 -m"
	"-a -t $V1:80 -r $R.2:8080 -m -w 3"
	"-a -t $V1:80 -r $R.3:80 -m -w 0"
	"-a -t $V1:80 -r $R.1:80 -m"
	"-a -u $V1:53 -r $R.1:53 -m -w 2"
	"-a -u $V1:53 -r $R.2:53 -m -w 100"
	"-a -t $V2:443 -r $R.4:443 -m -w 5"
	"-a -t 10.0.0.9:80 -r $R.1:80 -m"
	"-L -n"
	"-L -n --stats"
	"-L -n --rate"
	"-L -n --stats --exact"
	"-L -n --thresholds"
	"-L -n --persistent-conn"
	"-L -n -t $V1:80"
	"-L -n -u $V1:53"
	"-L -n -t 10.0.0.7:80"
	"-S -n"
	"-E -t $V1:80 -s rr"
	"-E -t 10.0.0.8:80 -s rr"
	"-e -t $V1:80 -r $R.2:8080 -m -w 1"
	"-e -t $V1:80 -r $R.9:80 -m -w 1"
	"-e -u $V1:53 -r $R.1:53 -m -w 0"
	"-L -n"
	"-d -t $V1:80 -r $R.3:80"
	"-d -t $V1:80 -r $R.3:80"
	"-L -n"
	"-Z"
	"-Z -t $V1:80"
	"-L -n --stats"
	"-L --timeout"
	"--set 600 60 200"
	"-L --timeout"
	"-D -u $V3:5060"
	"-D -u $V3:5060"
	"-D -t $V2:443"
	"-L -n"
	"-S -n"
	"-C"
	"-L -n"
	"-L -n --stats"
)

ktap_header ${#CORPUS[@]}

work=$(mktemp -d)
rm_work() { save_artifacts "$work" ipvsadm_list; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# run_corpus IMPL DIR: run every command in a fresh netns, one file each.
run_corpus() {
	local impl=$1 out=$2 i ns
	mkdir -p "$out"
	ipvs_use "$impl" || return 1
	ns_add ns "list-$impl" || return 1
	for ((i = 0; i < ${#CORPUS[@]}; i++)); do
		# Word splitting of the corpus line is intended.
		# shellcheck disable=SC2086
		nsx "$ns" ipvsadm ${CORPUS[i]} > "$out/$i" 2>&1
		echo "[exit $?]" >> "$out/$i"
	done
	cleanup_ns
}

ref=c
cand=$IPVS_IMPL
if ! run_corpus "$ref" "$work/$ref"; then
	ktap_diag "cannot run the corpus under the $ref IPVS"
	for ((i = 0; i < ${#CORPUS[@]}; i++)); do ktap_fail "ipvsadm ${CORPUS[i]}"; done
	ktap_exit
fi
if ! run_corpus "$cand" "$work/cand"; then
	ktap_diag "cannot run the corpus under the $cand IPVS"
	for ((i = 0; i < ${#CORPUS[@]}; i++)); do ktap_fail "ipvsadm ${CORPUS[i]}"; done
	ktap_exit
fi
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
if [ "${IPVS_LIST_SHOW:-0}" = 1 ]; then
	for ((i = 0; i < ${#CORPUS[@]}; i++)); do
		ktap_diag "\$ ipvsadm ${CORPUS[i]}"
		ktap_diag "$(cat "$work/$ref/$i")"
	done
fi

for ((i = 0; i < ${#CORPUS[@]}; i++)); do
	if cmp -s "$work/$ref/$i" "$work/cand/$i"; then
		ktap_pass "ipvsadm ${CORPUS[i]}"
	else
		ktap_diag "$(diff -u --label "$ref" --label "$cand" "$work/$ref/$i" "$work/cand/$i")"
		ktap_fail "ipvsadm ${CORPUS[i]}"
	fi
done
ktap_exit
