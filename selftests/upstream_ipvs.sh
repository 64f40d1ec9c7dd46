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
# The upstream script starts its TCP server in the background and gives it
# 0.2 s before the client connects; under emulation on a busy machine the
# server is often not listening yet ("Connection refused"), whatever the
# IPVS. So the per-case runs replace its server_listen with one that waits
# until the server listens (same server, with a 10 s instead of 5 s guard
# timeout; same client, same checks), and
# each per-case run gets up to UPSTREAM_ATTEMPTS (3) attempts, the whole
# script one (UPSTREAM_ATTEMPTS with UPSTREAM_WHOLE_REQUIRED=1).
#
# Every per-case result of the C IPVS is required. For ours only the cases
# listed in UPSTREAM_REQUIRED_RUST are; the others are reported as
# "# SKIP xfail" when they fail. All three cases work and are required;
# the whole unmodified script keeps the race, so
# its failure is reported as a SKIP (with its output) unless
# UPSTREAM_WHOLE_REQUIRED=1.
UPSTREAM_REQUIRED_RUST=${UPSTREAM_REQUIRED_RUST:-dr nat tun}
UPSTREAM_WHOLE_REQUIRED=${UPSTREAM_WHOLE_REQUIRED:-0}

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
# server_listen as upstream's, but waiting until the server listens.
cat > "$work/net/netfilter/wait_listen.sh" <<'EOF'
if declare -F server_listen >/dev/null; then
	server_listen() {
		local i
		ip netns exec "$ns2" timeout 10 socat -u -4 TCP-LISTEN:8080,reuseaddr STDOUT > "${outfile}" &
		server_pid=$!
		for ((i = 0; i < 50; i++)); do
			[ -n "$(ip netns exec "$ns2" ss -Hltn 'sport = :8080' 2>/dev/null)" ] && break
			sleep 0.1
		done
	}
fi
EOF
ktap_diag "upstream test from $src/netfilter/ipvs.sh"

required() {
	local impl=$1 what=$2 c
	if [ "$what" = all ]; then
		[ "$UPSTREAM_WHOLE_REQUIRED" = 1 ] || return 1
		[ "$impl" = c ] && return 0
		for c in "${CASES[@]}"; do
			case " $UPSTREAM_REQUIRED_RUST " in *" $c "*) ;; *) return 1 ;; esac
		done
		return 0
	fi
	[ "$impl" = c ] && return 0
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
	elif [ "$what" = all ]; then
		ktap_diag "$(tail -8 <<< "$out")"
		ktap_skip "$name" "the unmodified script failed (exit $rc); the per-case results count"
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
			"source ./ipvs_funcs.sh; source ./wait_listen.sh; cleanup; setup; test_$c; rc=\$?; cleanup; exit \$rc"
		report "$impl" "$c" "$impl: ${CASE_NAME[$c]}" "$rc" "$out"
	done
	# The whole unmodified script only informs unless required: one try.
	whole_attempts=1
	[ "$UPSTREAM_WHOLE_REQUIRED" = 1 ] && whole_attempts=$ATTEMPTS
	ATTEMPTS=$whole_attempts attempt "$impl: whole ipvs.sh" 300 "bash ./ipvs.sh"
	report "$impl" all "$impl: whole ipvs.sh" "$rc" "$out"
done
ktap_exit
