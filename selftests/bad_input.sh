#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differential test of the raw sockopt interface with bad input.
#
# tools/ipvs-sockopt-probe (compiled here, at test time) sends every
# IP_VS_SO_SET_* and IP_VS_SO_GET_* command id, plus unknown ids around the
# range, with short, long, exact, NULL and garbage arguments, and records
# return value, errno, returned length and a hash of the returned bytes. It
# runs as root over a raw and over a UDP socket, as root without
# CAP_NET_ADMIN and as nobody, each time in a fresh netns, first under the
# C IPVS (the oracle) and then, in the same boot, under $IPVS_IMPL. The
# transcripts must be identical. A few sanity checks on the oracle's
# transcript make sure the probe itself works.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CALLERS=(root-raw root-udp root-nocap nobody)
ktap_header $((${#CALLERS[@]} + 2))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" bad_input; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

cc=$(command -v cc || command -v gcc || command -v clang)
probe=$work/ipvs-sockopt-probe
if [ -z "$cc" ] || ! "$cc" -O2 -Wall -o "$probe" "$TOOLS/ipvs-sockopt-probe.c"; then
	ktap_fail "compile tools/ipvs-sockopt-probe.c"
	ktap_exit
fi

# run_probe IMPL DIR
run_probe() {
	local impl=$1 out=$2 ns
	mkdir -p "$out"
	ipvs_use "$impl" || return 1
	ns_add ns "probe-$impl" || return 1
	nsx "$ns" "$probe" --sock raw --tag root-raw > "$out/root-raw" 2>&1
	nsx "$ns" "$probe" --sock udp --tag root-udp > "$out/root-udp" 2>&1
	nsx "$ns" setpriv --inh-caps=-net_admin --bounding-set=-net_admin \
		"$probe" --sock udp --tag root-nocap > "$out/root-nocap" 2>&1
	nsx "$ns" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=-all "$probe" --sock udp --tag nobody > "$out/nobody" 2>&1
	cleanup_ns
}

ref=c
cand=$IPVS_IMPL
if ! run_probe "$ref" "$work/ref" || ! run_probe "$cand" "$work/cand"; then
	ktap_diag "cannot run the probe under $ref and $cand"
	for c in "${CALLERS[@]}" oracle-valid oracle-eperm; do ktap_fail "$c"; done
	ktap_exit
fi
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which)); $(wc -l < "$work/ref/root-raw") calls per caller"

# Sanity of the oracle transcript (so that a broken probe cannot pass).
want_ok=("set SET_ADD valid-tcp len=44 -> 0 OK"
	"set SET_ADD duplicate len=44 -> -1 EEXIST"
	"set SET_ADDDEST masq len=68 -> 0 OK"
	"set SET_ADD bad-proto len=44 -> -1 EFAULT"
	"get GET_VERSION valid len=64 -> 0 OK"
	"set SET_FLUSH valid len=0 -> 0 OK")
missing=""
for w in "${want_ok[@]}"; do
	grep -qF "root-raw $w" "$work/ref/root-raw" || missing+="[$w] "
done
if [ -z "$missing" ]; then
	ktap_pass "oracle-valid: the C IPVS accepts the valid sequence"
else
	ktap_diag "missing in the oracle transcript: $missing"
	ktap_diag "$(head -20 "$work/ref/root-raw")"
	ktap_fail "oracle-valid: the C IPVS accepts the valid sequence"
fi
bad=$(grep -h -v -E -- '-> -1 (EPERM|ENOPROTOOPT|EINVAL|EFAULT)$' "$work/ref/nobody" "$work/ref/root-nocap")
if [ -z "$bad" ] && [ -s "$work/ref/nobody" ] &&
   grep -q 'SET_ADD valid-tcp len=44 -> -1 EPERM' "$work/ref/nobody"; then
	ktap_pass "oracle-eperm: without CAP_NET_ADMIN every IPVS command fails"
else
	ktap_diag "$(head -5 <<< "$bad")"
	ktap_fail "oracle-eperm: without CAP_NET_ADMIN every IPVS command fails"
fi

for c in "${CALLERS[@]}"; do
	if cmp -s "$work/ref/$c" "$work/cand/$c"; then
		ktap_pass "$c: $cand matches $ref ($(wc -l < "$work/ref/$c") calls)"
	else
		ktap_diag "$(diff -u --label "$ref" --label "$cand" "$work/ref/$c" "$work/cand/$c" | head -60)"
		ktap_fail "$c: $cand matches $ref"
	fi
done
ktap_exit
