#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 120
#
# KCOV coverage of our modules (the kasan kernel variant: KCOV on, only
# our modules instrumented; skipped elsewhere): reading the IPVS version,
# info and timeouts through getsockopt under KCOV (tools/lib/ipvs_kcov.py)
# must record PCs inside ip_vs.ko, which is what a coverage-guided fuzzer
# of the control interface needs.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

[ -e /sys/kernel/debug/kcov ] || ktap_skip_all "no KCOV in this kernel (VARIANT=kasan has it)"
ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 1
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"
out=$(python3 "$TOOLS/lib/ipvs_kcov.py" 2>&1)
ktap_diag "$out"
module=$(sed -n 's/.*module=\([0-9]*\).*/\1/p' <<< "$out")
if [ "$IPVS_IMPL" = c ]; then
	# The kernel's own code is not instrumented in this variant.
	ktap_skip "coverage of ip_vs.ko through getsockopt" "the C IPVS is not instrumented"
elif [ "${module:-0}" -gt 0 ]; then
	ktap_pass "coverage of ip_vs.ko through getsockopt ($module PCs)"
else
	ktap_fail "coverage of ip_vs.ko through getsockopt"
fi
ktap_exit
