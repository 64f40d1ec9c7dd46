#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# A short fuzz session (the long one is `make fuzz`, tools/fuzz):
#  - every reproducer in tools/fuzz-corpus/ replays to its end (each is a
#    log of a crash found once: the kernel must survive it now);
#  - tools/ipvs-fuzz-ctl with a fixed seed, as root in a fresh netns and as
#    uid 65534 in its own user and network namespace;
#  - tools/ipvs-fuzz-ctl with only generic netlink requests (and /proc
#    reads), as root;
#  - tools/ipvs-fuzz-pkt with a fixed seed (its own namespaces).
# A result fails if the fuzzer's worker dies (an Oops in its system call)
# or the fuzzer fails; selftests/run fails the script on a kernel splat, and
# a guest crash ends the VM run. The logs go to $VM_OUT/fuzz-selftest/.
# All runs go side by side; about 1.5 minutes under TCG
# (FUZZ_SELFTEST_OPS, default 300, scales the runs; FUZZ_CORPUS_DIR
# replaces tools/fuzz-corpus).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

OPS=${FUZZ_SELFTEST_OPS:-300}
corpus=("${FUZZ_CORPUS_DIR:-$TOOLS/fuzz-corpus}"/*.log)
[ -f "${corpus[0]}" ] || corpus=()
ktap_header $((${#corpus[@]} + 4))

work=$VM_OUT/fuzz-selftest
mkdir -p "$work"
modprobe ip_vs || { ktap_diag "modprobe ip_vs failed"; }

# All runs go side by side (each in its own namespaces): under TCG most of a
# run's time is start-up (Python, the packet fuzzer's topology, adding
# services), which overlaps well on the two CPUs.
names=()
pids=()
starts=()
start() { # NAME CMD...
	local name=$1
	shift
	"$@" > "$work/$name.out" 2>&1 &
	names+=("$name")
	pids+=($!)
}

for f in "${corpus[@]}"; do
	name=$(basename "$f" .log)
	kind=$(head -1 "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("fuzz", ""))')
	start "corpus-$name" timeout -k 10 200 "$TOOLS/ipvs-fuzz-$kind" --replay "$f" --quiet \
		--log "$work/corpus-$name.log"
done
start ctl-root timeout -k 10 200 "$TOOLS/ipvs-fuzz-ctl" --user root --seed 1 \
	--iterations "$OPS" --duration 60 --log "$work/ctl-root.log"
start ctl-nobody timeout -k 10 200 "$TOOLS/ipvs-fuzz-ctl" --user nobody --seed 2 \
	--iterations "$OPS" --duration 60 --log "$work/ctl-nobody.log"
start pkt timeout -k 10 200 "$TOOLS/ipvs-fuzz-pkt" --seed 3 \
	--iterations $((OPS * 2)) --duration 60 --log "$work/pkt.log"
start nl timeout -k 10 200 "$TOOLS/ipvs-fuzz-ctl" --user root --ops nl,proc,sleep --seed 4 \
	--iterations $((OPS * 2)) --duration 60 --log "$work/nl.log"

t0=$(date +%s)
for i in "${!pids[@]}"; do
	wait "${pids[$i]}"
	rc=$?
	name=${names[$i]}
	ktap_diag "$(grep -h -E '^ipvs-fuzz-(ctl|pkt): (user=|worker)' "$work/$name.out")"
	if [ "$rc" = 0 ]; then
		ktap_pass "$name"
	else
		ktap_diag "$(tail -n 15 "$work/$name.out")"
		ktap_fail "$name (exit $rc)"
	fi
done
ktap_diag "all runs done after $(( $(date +%s) - t0 )) s"
ktap_exit
