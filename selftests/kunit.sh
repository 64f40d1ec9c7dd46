#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# KUnit tests of the Rust connection table (insert, lookup, expiry by the slow
# timer, TCP state accounting), of round robin and of the scheduler interface
# (registration, binding, calls through the table): ipvs/ip_vs_test.ko runs its
# suite when it is loaded; its KTAP result lines are taken from the kernel log
# and reported here, one result per KUnit case.
# timeout: 300

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ko=$RUST_IPVS_REPO/ipvs/ip_vs_test.ko
[ -f "$ko" ] || ktap_skip_all "ipvs/ip_vs_test.ko not built (CONFIG_KUNIT)"
ipvs_use rust || ktap_skip_all "cannot load the Rust IPVS"

marker="kunit.sh: start $$-$RANDOM"
echo "$marker" > /dev/kmsg
if ! insmod "$ko"; then
	ktap_header 1
	ktap_fail "insmod ip_vs_test.ko"
	ktap_exit
fi
rmmod ip_vs_test

# The suite's lines after our marker: "    ok N case" / "    not ok N case".
log=$(dmesg | sed -n "\\|$marker|,\$p" | sed -n '/# Subtest: ip_vs_rust/,/^\[[^]]*\] \(not \)\{0,1\}ok [0-9]* ip_vs_rust/p' |
	sed 's/^\[[^]]*\] //')
plan=$(sed -n 's/^ *1\.\.\([0-9]*\)$/\1/p' <<< "$log" | head -1)
if [ -z "$plan" ]; then
	ktap_header 1
	ktap_diag "$(dmesg | tail -20)"
	ktap_fail "KUnit suite ip_vs_rust ran"
	ktap_exit
fi
ktap_header "$plan"
while IFS= read -r line; do
	case "$line" in
	*"# "*) ktap_diag "${line#*# }" ;;
	"    ok "*) ktap_pass "$(sed 's/^ *ok [0-9]* //' <<< "$line")" ;;
	"    not ok "*) ktap_fail "$(sed 's/^ *not ok [0-9]* //' <<< "$line")" ;;
	esac
done <<< "$(grep -E '^    (not )?ok |^    # ' <<< "$log")"
[ "$ktap_n" = "$plan" ] || ktap_fail "all $plan KUnit cases reported (saw $ktap_n)"
ktap_exit
