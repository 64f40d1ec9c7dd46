#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differential test of the schedulers: every scenario in selftests/sched/
# (*.scn, interpreted by tools/lib/ipvs-sched-scenario) runs twice under the
# C IPVS (the oracle) and once under the implementation under test, in the
# same boot and topology (client -> director -> rs1..rs5 over NAT). The two
# C runs must agree (the harness is deterministic: it waits on the
# director's counters, not on time); then the real server chosen for every
# new connection must be the same in ours as in C's first run (for
# scenarios marked "random": spread within binomial tolerance of each
# other). A scenario whose C runs disagree fails as such. Then, for every scheduler the scenarios use, under the
# implementation under test: its module loads on demand, rmmod fails with
# "in use" while a service uses it and succeeds once the service is gone.
#
# A scheduler whose module the implementation under test does not have is
# reported as skipped. SCHED_ORACLE_ONLY="wrr lc" limits the run to the
# scenarios of those schedulers.
#
# timeout: 800

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=5
RUNNER=$TOOLS/lib/ipvs-sched-scenario

scns=()
scheds=()
for f in "$SELFTESTS_DIR"/sched/*.scn; do
	s=$(awk '$1 == "sched" { print $2; exit }' "$f")
	if [ -n "${SCHED_ORACLE_ONLY:-}" ]; then
		case " $SCHED_ORACLE_ONLY " in *" $s "*) ;; *) continue ;; esac
	fi
	scns+=("$f")
	case " ${scheds[*]} " in *" $s "*) ;; *) scheds+=("$s") ;; esac
done
[ ${#scns[@]} -gt 0 ] || ktap_skip_all "no scenarios"

ipvs_use c || ktap_skip_all "cannot load the C IPVS"
ktap_header $(( 2 * ${#scns[@]} + ${#scheds[@]} ))
if ! topo_nat $N; then
	ktap_fail "topology setup"
	ktap_exit
fi

work=$(mktemp -d)
rm_work() { save_artifacts "$work" sched_oracle; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

rs_ns=$(IFS=,; echo "${NS_RS[*]:1}")
rs_ip=$(IFS=,; echo "${RIP[*]:1}")

# run_all IMPL OUT SPORT_BASE [INDEX_BASE]: the second C run takes other
# virtual ports (INDEX_BASE), so that the first run's connections, still in
# the table, do not count on its real servers (a real server added again
# comes back from the trash with the connections that still use it).
run_all() {
	"$RUNNER" run --client "$NS_C" --director "$NS_D" --rs "$rs_ns" \
		--rip "$rs_ip" --vip "$VIP" --cip "$CIP" --sport-base "$3" \
		--index-base "${4:-0}" "${scns[@]}" > "$2" 2> "$2.err"
	local rc=$?
	[ $rc = 0 ] || { echo "# runner ($1) exited $rc:"; sed 's/^/#   /' "$2.err" | tail -20; }
}

t0=$(date +%s)
run_all c "$work/c.out" 20000
run_all c "$work/c2.out" 30000 100
t1=$(date +%s)

# Schedulers the implementation under test lacks are skipped, not failed.
missing=()
ipvs_use "$IPVS_IMPL" || { ktap_fail "load the $IPVS_IMPL IPVS"; ktap_exit; }
for s in "${scheds[@]}"; do
	modinfo -n "ip_vs_$s" >/dev/null 2>&1 || missing+=("$s")
done
run_all "$IPVS_IMPL" "$work/impl.out" 40000
t2=$(date +%s)
ktap_diag "runs: C twice $((t1 - t0)) s, $IPVS_IMPL $((t2 - t1)) s"

# ktap_from_lines: "PASS name..." / "FAIL name..." / "# diag" to KTAP.
ktap_from_lines() {
	local line sched
	while IFS= read -r line; do
		case "$line" in
		"PASS "*|"FAIL "*)
			name=${line#* }
			[ -n "${2:-}" ] && name="$2: $name"
			sched=$(sed -n 's/.*(\([a-z0-9]*\),.*/\1/p;s/^loadcheck \(.*\)/\1/p' <<< "$name")
			if [ "${line%% *}" = PASS ]; then
				ktap_pass "$name"
			elif case " ${missing[*]} " in *" $sched "*) true ;; *) false ;; esac; then
				ktap_skip "$name" "no ip_vs_$sched in the $IPVS_IMPL IPVS"
			else
				ktap_fail "$name"
			fi ;;
		"#"*) echo "$line" ;;
		esac
	done
}

# C against C first: a difference there is the harness's, not ours.
"$RUNNER" compare "$work/c.out" "$work/c2.out" | sed 's/\bours\b/C again/g' > "$work/compare-c"
ktap_from_lines "C against C" < "$work/compare-c"
"$RUNNER" compare "$work/c.out" "$work/impl.out" > "$work/compare"
ktap_from_lines < "$work/compare"
"$RUNNER" loadcheck --director "$NS_D" "${scheds[@]}" > "$work/loadcheck"
ktap_from_lines < "$work/loadcheck"
ktap_exit
