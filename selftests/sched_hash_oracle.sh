#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differential test of the hashing and locality schedulers (sh, dh, mh,
# lblc, lblcr): every scenario in selftests/sched_hash/ (*.scn, interpreted
# by tools/lib/ipvs-sched-hash) runs once under the C IPVS (the oracle) and
# once under the implementation under test, in the same boot and topology:
# client -> director -> rs1..rs5 over NAT, with 64 client addresses and 32
# virtual addresses, which an nftables rule on the director marks (with the
# destination port) for firewall-mark services. The real server chosen for
# every new connection must be the same in both runs, and the oracle must
# use at least two.
#
# SCHED_HASH_ONLY="sh mh" limits the run to the scenarios of those
# schedulers.
#
# timeout: 300

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=5
NCIP=64
NVIP=32
RUNNER=$TOOLS/lib/ipvs-sched-hash

command -v nft >/dev/null || ktap_skip_all "nft not installed"

scns=()
for f in "$SELFTESTS_DIR"/sched_hash/*.scn; do
	s=$(awk '$1 == "sched" { print $2; exit }' "$f")
	if [ -n "${SCHED_HASH_ONLY:-}" ]; then
		case " $SCHED_HASH_ONLY " in *" $s "*) ;; *) continue ;; esac
	fi
	scns+=("$f")
done
[ ${#scns[@]} -gt 0 ] || ktap_skip_all "no scenarios"

ipvs_use c || ktap_skip_all "cannot load the C IPVS"
ktap_header ${#scns[@]}

setup() {
	local i
	topo_nat $N || return 1
	CIPS=$CIP
	for ((i = 1; i < NCIP; i++)); do
		CIPS+=,10.0.0.$((i + 9))
	done
	VIPS=$VIP
	for ((i = 2; i <= NVIP; i++)); do
		VIPS+=,10.0.100.$i
	done
	tr , '\n' <<< "${CIPS#*,}" | sed 's|.*|addr add &/24 dev c0|' |
		ip -n "$NS_C" -b - || return 1
	tr , '\n' <<< "${VIPS#*,}" | sed 's|.*|addr add &/32 dev lo|' |
		ip -n "$NS_D" -b - || return 1
	# Firewall mark = destination port (scenario i uses port 9000 + i).
	{
		echo "table ip ipvst {"
		echo "	chain pre {"
		echo "		type filter hook prerouting priority mangle;"
		echo -n "		ip daddr 10.0.100.0/24 meta l4proto { tcp, udp }"
		echo -n " meta mark set th dport map {"
		for ((i = 9000; i < 9064; i++)); do
			echo -n " $i : $i,"
		done
		echo " }"
		echo "	}"
		echo "}"
	} | nsx "$NS_D" nft -f - || return 1
	# Every "no server" answer (ICMP port unreachable) must reach the client.
	nsx "$NS_D" sysctl -qw net.ipv4.icmp_ratemask=0
}

if ! setup; then
	for f in "${scns[@]}"; do
		ktap_fail "$(basename "$f" .scn): topology setup"
	done
	ktap_exit
fi

work=$(mktemp -d)
rm_work() { save_artifacts "$work" sched_hash_oracle; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

rs_ns=$(IFS=,; echo "${NS_RS[*]:1}")
rs_ip=$(IFS=,; echo "${RIP[*]:1}")

# run_all IMPL OUT: the same source ports in both runs (sh-port, mh-port).
run_all() {
	"$RUNNER" run --client "$NS_C" --director "$NS_D" --rs "$rs_ns" \
		--rip "$rs_ip" --cips "$CIPS" --vips "$VIPS" \
		"${scns[@]}" > "$2" 2> "$2.err"
	local rc=$?
	[ $rc = 0 ] || { echo "# runner ($1) exited $rc:"; sed 's/^/#   /' "$2.err" | tail -20; }
}

t0=$(date +%s)
run_all c "$work/c.out"
t1=$(date +%s)
ipvs_use "$IPVS_IMPL" || { ktap_fail "load the $IPVS_IMPL IPVS"; ktap_exit; }
run_all "$IPVS_IMPL" "$work/impl.out"
t2=$(date +%s)
ktap_diag "runs: C $((t1 - t0)) s, $IPVS_IMPL $((t2 - t1)) s"

while IFS= read -r line; do
	case "$line" in
	"PASS "*) ktap_pass "${line#PASS }" ;;
	"FAIL "*) ktap_fail "${line#FAIL }" ;;
	*) echo "$line" ;;
	esac
done < <("$RUNNER" compare "$work/c.out" "$work/impl.out")
ktap_exit
