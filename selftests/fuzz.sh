#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 420
#
# A short fuzz session (the long one is `make fuzz`, tools/fuzz):
#  - every reproducer in tools/fuzz-corpus/ replays to its end (each is a
#    log of a crash found once: the kernel must survive it now);
#  - tools/ipvs-fuzz-ctl with a fixed seed, as root in a fresh netns and as
#    uid 65534 in its own user and network namespace;
#  - tools/ipvs-fuzz-pkt with a fixed seed (its own namespaces).
# A result fails if the fuzzer's worker dies (an Oops in its system call)
# or the fuzzer fails; selftests/run fails the script on a kernel splat, and
# a guest crash ends the VM run. The logs go to $VM_OUT/fuzz-selftest/.
# About 2 minutes under TCG (FUZZ_SELFTEST_OPS scales the runs).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

OPS=${FUZZ_SELFTEST_OPS:-300}
corpus=("$TOOLS"/fuzz-corpus/*.log)
[ -f "${corpus[0]}" ] || corpus=()
ktap_header $((${#corpus[@]} + 3))

work=$VM_OUT/fuzz-selftest
mkdir -p "$work"
modprobe ip_vs || { ktap_diag "modprobe ip_vs failed"; }

# run NAME CMD...: one result; the output goes to the diagnostics on failure.
run() {
	local name=$1 rc start
	shift
	start=$(date +%s)
	"$@" > "$work/$name.out" 2>&1
	rc=$?
	ktap_diag "$(grep -h -E '^ipvs-fuzz-(ctl|pkt): (user=|worker)' "$work/$name.out")"
	if [ "$rc" = 0 ]; then
		ktap_pass "$name ($(( $(date +%s) - start )) s)"
	else
		ktap_diag "$(tail -n 15 "$work/$name.out")"
		ktap_fail "$name (exit $rc)"
	fi
}

for f in "${corpus[@]}"; do
	name=$(basename "$f" .log)
	kind=$(head -1 "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("fuzz", ""))')
	run "corpus-$name" timeout -k 10 300 "$TOOLS/ipvs-fuzz-$kind" --replay "$f" --quiet \
		--log "$work/corpus-$name.log"
done

run ctl-root timeout -k 10 200 "$TOOLS/ipvs-fuzz-ctl" --user root --seed 1 \
	--iterations "$OPS" --duration 60 --log "$work/ctl-root.log"
run ctl-nobody timeout -k 10 200 "$TOOLS/ipvs-fuzz-ctl" --user nobody --seed 2 \
	--iterations "$OPS" --duration 60 --log "$work/ctl-nobody.log"
run pkt timeout -k 10 200 "$TOOLS/ipvs-fuzz-pkt" --seed 3 \
	--iterations $((OPS * 2)) --duration 60 --log "$work/pkt.log"
ktap_exit
