#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
#
# The kernel's own IPVS selftest, unmodified, against both implementations.
#
# tools/testing/selftests/net/netfilter/ipvs.sh and the lib.sh files it
# sources are copied from the kernel tree ($KDIR) at run time (they are not
# part of this repository). For each implementation (the C oracle, then
# $IPVS_IMPL if it is not c):
#  - each case (DR, NAT, tunnel) runs on its own: the script's functions are
#    sourced with its trailing run lines cut off (sed '/^trap cleanup EXIT/,$d')
#    and cleanup; setup; test_<case>; cleanup are called here;
#  - then the whole unmodified script runs.
#
# Every result of the C IPVS is required. For ours only the cases listed in
# UPSTREAM_REQUIRED_RUST are (the whole script counts as required when all
# three are); the others are reported as "# SKIP xfail" when they fail.
# Set UPSTREAM_REQUIRED_RUST="dr nat tun" once DR and tunnel work.
UPSTREAM_REQUIRED_RUST=${UPSTREAM_REQUIRED_RUST:-nat}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CASES=(dr nat tun)
declare -A CASE_NAME=([dr]=DR [nat]=NAT [tun]=tunnel)

impls=(c)
[ "$IPVS_IMPL" != c ] && impls+=("$IPVS_IMPL")

src=${KDIR:-}/tools/testing/selftests/net
if [ -z "${KDIR:-}" ] || [ ! -f "$src/netfilter/ipvs.sh" ]; then
	ktap_skip_all "no kernel tree with tools/testing/selftests/net/netfilter/ipvs.sh (KDIR=${KDIR:-})"
fi

ktap_header $(( ${#impls[@]} * (${#CASES[@]} + 1) ))

work=$(mktemp -d)
rm_work() { rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)
mkdir -p "$work/net/netfilter"
cp "$src/lib.sh" "$work/net/lib.sh"
cp "$src/netfilter/lib.sh" "$src/netfilter/ipvs.sh" "$work/net/netfilter/"
sed '/^trap cleanup EXIT/,$d' "$src/netfilter/ipvs.sh" > "$work/net/netfilter/ipvs_funcs.sh"
ktap_diag "upstream test from $src/netfilter/ipvs.sh"

required() {
	local impl=$1 what=$2 c
	[ "$impl" = c ] && return 0
	if [ "$what" = all ]; then
		for c in "${CASES[@]}"; do
			case " $UPSTREAM_REQUIRED_RUST " in *" $c "*) ;; *) return 1 ;; esac
		done
		return 0
	fi
	case " $UPSTREAM_REQUIRED_RUST " in *" $what "*) return 0 ;; esac
	return 1
}

# report IMPL WHAT NAME RC OUTPUT
report() {
	local impl=$1 what=$2 name=$3 rc=$4 out=$5
	if [ "$rc" = 0 ]; then
		ktap_pass "$name"
	elif [ "$rc" = "$KSFT_SKIP" ]; then
		ktap_diag "$out"
		ktap_skip "$name" "skipped by the upstream test"
	elif required "$impl" "$what"; then
		ktap_diag "$out"
		ktap_fail "$name"
	else
		ktap_diag "$(tail -5 <<< "$out")"
		ktap_skip "$name" "xfail: not required for $impl yet (exit $rc)"
	fi
}

# attempt NAME LIMIT SCRIPT: run SCRIPT (bash) in the copied test directory,
# up to ATTEMPTS times until it passes; sets rc and out. The upstream test
# starts its server and gives it 0.2 s before the client connects, which is
# not always enough under emulation on a busy machine ("Connection refused"):
# a retry tells that apart from a real failure, which fails every attempt.
ATTEMPTS=${UPSTREAM_ATTEMPTS:-3}
attempt() {
	local name=$1 limit=$2 script=$3 i
	for ((i = 1; i <= ATTEMPTS; i++)); do
		out=$(cd "$work/net/netfilter" && timeout -k 5 "$limit" bash -c "$script" 2>&1)
		rc=$?
		[ "$rc" = 0 ] || [ "$rc" = "$KSFT_SKIP" ] && break
		ktap_diag "$name: attempt $i failed (exit $rc): $(tail -2 <<< "$out")"
	done
}

for impl in "${impls[@]}"; do
	if ! ipvs_use "$impl"; then
		for c in "${CASES[@]}"; do ktap_fail "$impl: ${CASE_NAME[$c]} (cannot load IPVS)"; done
		ktap_fail "$impl: whole ipvs.sh (cannot load IPVS)"
		continue
	fi
	for c in "${CASES[@]}"; do
		attempt "$impl: ${CASE_NAME[$c]}" 180 \
			"source ./ipvs_funcs.sh; cleanup; setup; test_$c; rc=\$?; cleanup; exit \$rc"
		report "$impl" "$c" "$impl: ${CASE_NAME[$c]}" "$rc" "$out"
	done
	attempt "$impl: whole ipvs.sh" 300 "bash ./ipvs.sh"
	report "$impl" all "$impl: whole ipvs.sh" "$rc" "$out"
done
ktap_exit
