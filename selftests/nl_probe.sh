#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differential test of the generic netlink family IPVS with bad input, the
# netlink counterpart of bad_input.sh.
#
# tools/ipvs-nl-probe sends a fixed battery of requests (a valid sequence,
# then every command with attributes left out, repeated, cut short,
# overlong, broken nests, values at the edges, unknown commands, requests
# as dumps and dumps as requests, broken messages) and prints the errno,
# the extended ACK message and the decoded replies of each. It runs as root,
# as root without CAP_NET_ADMIN, as nobody, and as root of its own user
# namespace (which owns the network namespace: upstream's GENL_ADMIN_PERM
# asks for CAP_NET_ADMIN in the initial user namespace, so every request is
# refused there), each time in a fresh netns in which nothing is configured
# while another netns has a service, first under the C IPVS (the oracle)
# and then, in the same boot, under $IPVS_IMPL. The transcripts must be
# identical. Every group of the probe runs (sync daemons included: started
# on lo, listed and stopped by each caller).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CALLERS=(root root-nocap nobody userns)
ktap_header $((${#CALLERS[@]} + 2))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" nl_probe; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)
probe=$TOOLS/ipvs-nl-probe

# run_probe IMPL DIR
run_probe() {
	local impl=$1 out=$2 ns other
	mkdir -p "$out"
	ipvs_use "$impl" || return 1
	ns_add other "probe-other-$impl" || return 1
	nsx "$other" ipvsadm -A -t 10.9.9.9:80 -s rr || return 1
	nsx "$other" ipvsadm -a -t 10.9.9.9:80 -r 10.9.9.10:80 -m || return 1
	ns_add ns "probe-$impl" || return 1
	nsx "$ns" "$probe" --tag root > "$out/root" 2> "$out/root.err"
	nsx "$ns" setpriv --inh-caps=-net_admin --bounding-set=-net_admin \
		"$probe" --tag root-nocap > "$out/root-nocap" 2> "$out/root-nocap.err"
	nsx "$ns" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=-all "$probe" --tag nobody > "$out/nobody" 2> "$out/nobody.err"
	setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
		unshare -Urn "$probe" --tag userns > "$out/userns" 2> "$out/userns.err"
	# The other namespace still has exactly its service.
	nsx "$other" ipvsadm -Ln > "$out/other" 2>&1
	cleanup_ns
}

ref=c
cand=$IPVS_IMPL
if ! run_probe "$ref" "$work/ref" || ! run_probe "$cand" "$work/cand"; then
	ktap_diag "cannot run the probe under $ref and $cand"
	for c in "${CALLERS[@]}" oracle-valid oracle-eperm; do ktap_fail "$c"; done
	ktap_exit
fi
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which)); $(grep -c -- ' -> ' "$work/ref/root") requests per caller"
ktap_diag "groups: $("$probe" --list-groups | tr '\n' ' ')"

# Sanity of the oracle transcript (so that a broken probe cannot pass).
want=("root valid NEW_SERVICE tcp -> OK"
	"root valid NEW_SERVICE tcp again -> EEXIST"
	"root valid NEW_DEST masq -> OK"
	"root valid DEL_SERVICE udp again -> ESRCH"
	"root initial GET_SERVICE dump -> OK"
	"root bare 99 -> EOPNOTSUPP")
missing=""
for w in "${want[@]}"; do
	grep -qF -- "$w" "$work/ref/root" || missing+="[$w] "
done
if [ -z "$missing" ] && grep -q '^root   < cmd=1 v=1 1n\?{' "$work/ref/root" &&
   ! grep -A1 '^root initial GET_SERVICE dump' "$work/ref/root" | grep -q '  <' &&
   grep -q '10.9.9.9:80' "$work/ref/other"; then
	ktap_pass "oracle-valid: the C IPVS accepts the valid sequence and answers"
else
	ktap_diag "missing in the oracle transcript: $missing"
	ktap_diag "$(head -20 "$work/ref/root")"
	ktap_fail "oracle-valid: the C IPVS accepts the valid sequence and answers"
fi
bad=$(grep -h -- ' -> ' "$work/ref/nobody" "$work/ref/root-nocap" "$work/ref/userns" |
	grep -v -E -- '-> (EPERM|EOPNOTSUPP|EINVAL)')
if [ -z "$bad" ] && grep -q 'valid NEW_SERVICE tcp -> EPERM' "$work/ref/userns"; then
	ktap_pass "oracle-eperm: without CAP_NET_ADMIN in the initial namespace every command fails"
else
	ktap_diag "$(head -5 <<< "$bad")"
	ktap_fail "oracle-eperm: without CAP_NET_ADMIN in the initial namespace every command fails"
fi

for c in "${CALLERS[@]}"; do
	if cmp -s "$work/ref/$c" "$work/cand/$c" && cmp -s "$work/ref/other" "$work/cand/other"; then
		ktap_pass "$c: $cand matches $ref ($(grep -c -- ' -> ' "$work/ref/$c") requests)"
	else
		ktap_diag "$(diff -u --label "$ref" --label "$cand" "$work/ref/$c" "$work/cand/$c" | head -80)"
		ktap_diag "$(diff -u --label "$ref" --label "$cand" "$work/ref/other" "$work/cand/other")"
		ktap_fail "$c: $cand matches $ref"
	fi
done
ktap_exit
