# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared helpers for the Rust IPVS selftests; source it from a test script.
#
#  - KTAP output: ktap_header, ktap_pass, ktap_fail, ktap_skip, ktap_check,
#    ktap_diag, ktap_skip_all, ktap_exit
#  - network namespaces: ns_add, nsx, veth_add, bg, cleanup (trap it)
#  - topologies: topo_nat (client -> director -> N real servers over NAT),
#    rs_direct (turn a real server into a direct routing or tunnel one, with
#    a return path to the client), start_servers
#  - IPVS implementation switching inside one VM boot: ipvs_use c|rust,
#    ipvs_unload, ipvs_available
#
# Tests run as root inside the VM started by tools/vm-run, which exports
# IPVS_IMPL (the implementation under test: rust or c), IPVS_MODROOT_C,
# IPVS_MODROOT_RUST, RUST_IPVS_REPO and VM_OUT. They refuse to run outside
# it, since they load and unload kernel modules.

# Variables defined here are used by the tests that source this file.
# shellcheck disable=SC2034

set -u

SELFTESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${RUST_IPVS_REPO:-$(cd "$SELFTESTS_DIR/.." && pwd)}
TOOLS=$REPO/tools
CLIENT=$TOOLS/lib/ipvs-client
IPVS_IMPL=${IPVS_IMPL:-rust}
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

# ---------------------------------------------------------------------------
# KTAP

ktap_n=0
ktap_npass=0
ktap_nfail=0
ktap_nskip=0

ktap_header() {
	echo "TAP version 13"
	echo "1..$1"
}

# Print text (several lines allowed) as KTAP diagnostics.
ktap_diag() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<< "$*"
}

ktap_pass() {
	ktap_n=$((ktap_n + 1)); ktap_npass=$((ktap_npass + 1))
	echo "ok $ktap_n $1"
}

ktap_fail() {
	ktap_n=$((ktap_n + 1)); ktap_nfail=$((ktap_nfail + 1))
	echo "not ok $ktap_n $1"
}

# ktap_skip NAME REASON
ktap_skip() {
	ktap_n=$((ktap_n + 1)); ktap_nskip=$((ktap_nskip + 1))
	echo "ok $ktap_n $1 # SKIP ${2:-}"
}

# ktap_check NAME CMD...: pass if CMD succeeds.
ktap_check() {
	local name=$1
	shift
	if "$@"; then ktap_pass "$name"; else ktap_fail "$name"; fi
}

# Whole test skipped before any result was printed.
ktap_skip_all() {
	echo "TAP version 13"
	echo "1..0 # SKIP $*"
	exit $KSFT_SKIP
}

ktap_exit() {
	if [ "$ktap_nfail" -gt 0 ]; then
		exit $KSFT_FAIL
	elif [ "$ktap_npass" = 0 ] && [ "$ktap_nskip" -gt 0 ]; then
		exit $KSFT_SKIP
	fi
	exit $KSFT_PASS
}

# ---------------------------------------------------------------------------
# Safety: only inside the test VM.

require_vm() {
	if [ -z "${VM_OUT:-}" ] || [ "$(id -u)" != 0 ]; then
		ktap_skip_all "run inside the test VM as root (tools/vm-run selftests/run)"
	fi
	local t
	for t in ip ipvsadm socat python3 modprobe rmmod nsenter setpriv; do
		command -v "$t" >/dev/null || ktap_skip_all "$t not installed"
	done
}

# ---------------------------------------------------------------------------
# Network namespaces

NS_LIST=()
BG_PIDS=()

# ns_add VAR NAME: create a netns with a unique name, store it in VAR.
ns_add() {
	local _ns_name="ipvst-$2-$$-$RANDOM"
	ip netns add "$_ns_name" || return 1
	ip -n "$_ns_name" link set lo up
	NS_LIST+=("$_ns_name")
	printf -v "$1" '%s' "$_ns_name"
}

# nsx NS CMD...: run CMD in NS. nsenter only switches the network
# namespace; `ip netns exec` also builds a mount namespace with a fresh
# /sys, which costs ~0.7 s per call under TCG. /proc/sys/net follows the
# caller's netns, so sysctl works either way.
nsx() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# veth_add NS1 IF1 NS2 IF2
veth_add() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" || return 1
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# bg NS CMD...: run CMD in NS in the background; killed by cleanup.
bg() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@" &
	BG_PIDS+=($!)
}

cleanup_ns() {
	local ns pid
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for ns in "${NS_LIST[@]}"; do
		# socat's forked children live on in the netns: kill everything.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null
		done
	done
	for pid in "${BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	for ns in "${NS_LIST[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NS_LIST=()
	BG_PIDS=()
}

# ns_del NS: kill the processes in NS and delete it (before cleanup_ns,
# which deletes the rest).
ns_del() {
	local ns=$1 pid i keep=()
	for pid in $(ip netns pids "$ns" 2>/dev/null); do
		kill "$pid" 2>/dev/null
	done
	ip netns del "$ns" 2>/dev/null
	for i in "${NS_LIST[@]}"; do
		[ "$i" = "$ns" ] || keep+=("$i")
	done
	NS_LIST=("${keep[@]}")
}

# part_teardown P START COUNT WHAT NS_VAR...: the end of one implementation's
# part of a test that runs the C IPVS and ours in one boot. Deletes the
# namespaces the variables NS_VAR name (and empties them): their services
# and connections go, releasing the modules of helpers and engines; then
# IPVS must unload ("P: WHAT unload"); a result of the part's COUNT since
# START that is missing fails as "not run".
part_teardown() {
	local p=$1 start=$2 count=$3 what=$4 v
	shift 4
	for v in "$@"; do
		[ -n "${!v}" ] && ns_del "${!v}"
		printf -v "$v" '%s' ''
	done
	if ipvs_unload 60; then
		ktap_pass "$p: $what unload"
	else
		ktap_fail "$p: $what unload"
	fi
	while [ "$ktap_n" -lt $((start + count)) ]; do
		ktap_fail "$p: not run"
	done
}

# Tests add their own cleanup to CLEANUP_HOOKS (run first).
CLEANUP_HOOKS=()
cleanup() {
	local h
	for h in "${CLEANUP_HOOKS[@]}"; do
		"$h"
	done
	cleanup_ns
}

# ---------------------------------------------------------------------------
# Topology: client -- director -- rs1..rsN (NAT), dual-stack.
#
#   client  c0 10.0.0.2/24, default via 10.0.0.1
#              fd00::2/64, default via fd00::1
#   director d0 10.0.0.1/24, fd00::1/64
#            VIP 10.0.100.1/32 and VIP6 fd00:100::1/128 on lo,
#            ip_forward=1, IPv6 forwarding=1
#            r<i> 10.1.<i>.1/24, fd00:1:<i>::1/64
#   rs<i>   eth0 10.1.<i>.2/24, default via 10.1.<i>.1
#                fd00:1:<i>::2/64, default via fd00:1:<i>::1
#
# The IPv6 addresses skip duplicate address detection (nodad): they are
# usable at once. Sets NS_C, NS_D, NS_RS[1..N], CIP, DIP, VIP, RIP[1..N]
# and their IPv6 counterparts CIP6, DIP6, VIP6, RIP6[1..N].

VIP=10.0.100.1
CIP=10.0.0.2
DIP=10.0.0.1
VIP6=fd00:100::1
CIP6=fd00::2
DIP6=fd00::1
NS_C=
NS_D=
NS_RS=()
RIP=()
RIP6=()

topo_nat() {
	topo_ends "$1" || return 1
	topo_director
}

# topo_ends N: the client and rs1..rsN namespaces of topo_nat without the
# director and its links (topo_director adds them).
topo_ends() {
	local n=$1 i rs_ns
	ns_add NS_C client || return 1
	NS_RS=("")
	RIP=("")
	RIP6=("")
	for ((i = 1; i <= n; i++)); do
		ns_add rs_ns "rs$i" || return 1
		NS_RS[i]=$rs_ns
		RIP[i]=10.1.$i.2
		RIP6[i]=fd00:1:$i::2
	done
}

# topo_director: a director for the namespaces of topo_ends, linked and
# addressed as topo_nat says. A test that runs twice (one IPVS
# implementation after the other) may delete it (ns_del "$NS_D": its links
# and the client's and real servers' addresses on them go too, their
# processes stay) and make a fresh one.
topo_director() {
	local i links dcmds
	ns_add NS_D director || return 1
	# One ip process per namespace (and one for the links): every
	# process counts under emulation.
	links="link add d0 netns $NS_D type veth peer name c0 netns $NS_C"$'\n'
	dcmds="link set d0 up
addr add $DIP/24 dev d0
addr add $VIP/32 dev lo
addr add $DIP6/64 dev d0 nodad
addr add $VIP6/128 dev lo
"
	for ((i = 1; i < ${#NS_RS[@]}; i++)); do
		links+="link add r$i netns $NS_D type veth peer name eth0 netns ${NS_RS[i]}"$'\n'
		dcmds+="link set r$i up
addr add 10.1.$i.1/24 dev r$i
addr add fd00:1:$i::1/64 dev r$i nodad
"
	done
	ip -b - <<< "$links" || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		link set c0 up
		addr add $CIP/24 dev c0
		route add default via $DIP
		addr add $CIP6/64 dev c0 nodad
		route add default via $DIP6
	EOF
	for ((i = 1; i < ${#NS_RS[@]}; i++)); do
		ip -n "${NS_RS[i]}" -b - <<-EOF || return 1
			link set eth0 up
			addr add ${RIP[i]}/24 dev eth0
			route add default via 10.1.$i.1
			addr add ${RIP6[i]}/64 dev eth0 nodad
			route add default via fd00:1:$i::1
		EOF
	done
	ip -n "$NS_D" -b - <<< "$dcmds" || return 1
	nsx "$NS_D" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

# wait_listen NS PROTO(t|u) PORT: wait until something listens.
wait_listen() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -n "$(nsx "$1" ss -Hn"$2"l "sport = :$3" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	echo "# nothing listens on $2 port $3 in $1" >&2
	return 1
}

SERVER=$TOOLS/lib/ipvs-server

# start_servers N [PORT [ARGS...]]: rs<i> answers "rs<i>" on TCP and UDP
# PORT (80) (tools/lib/ipvs-server: one process per real server, no
# forking); ARGS go to every ipvs-server (e.g. --udp-pktinfo, more --port).
start_servers() {
	local n=$1 port=${2:-80} i j ready
	shift
	[ $# -gt 0 ] && shift
	ready=$(mktemp -d)
	for ((i = 1; i <= n; i++)); do
		bg "${NS_RS[i]}" "$SERVER" "rs$i" --port "$port" --ready-file "$ready/rs$i" "$@"
	done
	for ((i = 1; i <= n; i++)); do
		for ((j = 0; j < 300; j++)); do
			[ -e "$ready/rs$i" ] && break
			sleep 0.1
		done
		if [ ! -e "$ready/rs$i" ]; then
			echo "# real server rs$i did not start" >&2
			rm -rf "$ready"
			return 1
		fi
	done
	rm -rf "$ready"
}

# ---------------------------------------------------------------------------
# Real servers that answer the client directly: direct routing (-g) and
# IP-in-IP tunnel (-i), as in the kernel's net/netfilter/ipvs.sh.
#
#   client x<i> 10.2.<i>.1/24 -- rs<i> ret0 10.2.<i>.2/24, route to CIP
#          fd00:2:<i>::1/64          fd00:2:<i>::2/64, route to CIP6
#
# The replies leave rs<i> from the virtual address and must not pass the
# director (whose IPVS would see half a connection), so they take this
# link back; the client accepts them there (rp_filter off: its route to
# the VIP points at the director; IPv6 has no reverse path filter). Only
# CIP and CIP6 are routed back this way: the client's other addresses get
# their answers through the director, as NAT needs.

# rs_return_path I: the link above for rs<I> of topo_nat (one batch of ip
# commands per namespace: every process counts under emulation).
rs_return_path() {
	local i=$1 ns=${NS_RS[$1]}
	ip link add "x$i" netns "$NS_C" type veth peer name ret0 netns "$ns" || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		link set x$i up
		addr add 10.2.$i.1/24 dev x$i
		addr add fd00:2:$i::1/64 dev x$i nodad
	EOF
	ip -n "$ns" -b - <<-EOF || return 1
		link set ret0 up
		addr add 10.2.$i.2/24 dev ret0
		route add $CIP/32 via 10.2.$i.1 dev ret0
		addr add fd00:2:$i::2/64 dev ret0 nodad
		route add $CIP6/128 via fd00:2:$i::1 dev ret0
	EOF
	nsx "$NS_C" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
		"net.ipv4.conf.x$i.rp_filter=0"
}

# rs_direct I dr|tun VIP...: make rs<I> of topo_nat a direct routing or
# tunnel real server for the virtual addresses VIP... (IPv4 or IPv6, on its
# lo, never answered by ARP: arp_ignore=1, arp_announce=2; neighbour
# discovery only answers for addresses of the link it came in on), with
# rs_return_path; for tun, the ipip module and its fallback device tunl0
# decapsulate. Reverse path filtering is off, since the client's packets
# come in on another link than the replies leave by.
rs_direct() {
	local i=$1 mode=$2 ns=${NS_RS[$1]} v sysctls cmds=""
	shift 2
	rs_return_path "$i" || return 1
	for v in "$@"; do
		case $v in
		*:*) cmds+="addr add $v/128 dev lo"$'\n' ;;
		*) cmds+="addr add $v/32 dev lo"$'\n' ;;
		esac
	done
	sysctls=(net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.ret0.rp_filter=0)
	if [ "$mode" = tun ]; then
		[ -d /sys/module/ipip ] || modprobe -q ipip || return 1
		cmds+="link set tunl0 up"$'\n'"link set ip6tnl0 up"$'\n'
		sysctls+=(net.ipv4.conf.tunl0.rp_filter=0)
	fi
	if [ -n "$cmds" ]; then
		ip -n "$ns" -b - <<< "$cmds" || return 1
	fi
	nsx "$ns" sysctl -qw "${sysctls[@]}"
}

# count_answers OUTPUT N: "c1 c2 ... cN errors" from ipvs-client output.
count_answers() {
	local out=$1 n=$2 i res=""
	for ((i = 1; i <= n; i++)); do
		res+="$(grep -c -E "^[^ ]+ rs$i\$" <<< "$out") "
	done
	res+="$(grep -c -v -E '^[^ ]+ rs[0-9]+$' <<< "$out")"
	echo "$res"
}

# ---------------------------------------------------------------------------
# IPVS implementations.

ipvs_root() {
	case "$1" in
	c) echo "${IPVS_MODROOT_C:-}" ;;
	rust) echo "${IPVS_MODROOT_RUST:-}" ;;
	esac
}

ipvs_available() {
	local root
	root=$(ipvs_root "$1")
	[ -n "$root" ] && [ -d "$root/lib/modules/$(uname -r)" ]
}

# ipvs_loaded: the loaded IPVS modules in IPVS_MODS, schedulers and other
# users first, the core last (read by bash itself: every process counts
# under emulation).
IPVS_MODS=()
ipvs_loaded() {
	local m rest core=()
	IPVS_MODS=()
	while read -r m rest; do
		case $m in
		ip_vs) core=(ip_vs) ;;
		ip_vs_*|xt_ipvs) IPVS_MODS+=("$m") ;;
		esac
	done < /proc/modules
	IPVS_MODS+=("${core[@]}")
}

# ipvs_unload [SECONDS]: remove every IPVS module (the services and
# connections of deleted netns go away asynchronously, and until then hold
# the modules of their helpers and engines: retry, SECONDS x 10 times
# 0.1 s apart, 10 by default).
ipvs_unload() {
	local i tries=$(( ${1:-10} * 10 ))
	ipvs_loaded
	[ ${#IPVS_MODS[@]} = 0 ] && return 0
	if [[ " ${IPVS_MODS[*]} " == *" ip_vs "* ]]; then
		ipvsadm -C >/dev/null 2>&1
	fi
	for ((i = 0; i < tries; i++)); do
		rmmod "${IPVS_MODS[@]}" 2>/dev/null
		ipvs_loaded
		[ ${#IPVS_MODS[@]} = 0 ] && return 0
		sleep 0.1
	done
	echo "# cannot unload IPVS modules: ${IPVS_MODS[*]}" >&2
	return 1
}

IPVS_CURRENT=

# ipvs_use IMPL: unload any IPVS, make IMPL's module root the one plain
# modprobe (and the kernel's request_module) use, and load its ip_vs.
ipvs_use() {
	local impl=$1 root kver
	kver=$(uname -r)
	root=$(ipvs_root "$impl")
	if ! ipvs_available "$impl"; then
		echo "# IPVS implementation '$impl' not available" >&2
		return 1
	fi
	ipvs_unload || return 1
	ln -sfn "$root/lib/modules/$kver" "/lib/modules/$kver" || return 1
	if ! modprobe ip_vs; then
		echo "# modprobe ip_vs failed for '$impl'" >&2
		return 1
	fi
	IPVS_CURRENT=$impl
}

# The module file of the loaded ip_vs, to show which one runs.
ipvs_which() {
	modinfo -n ip_vs 2>/dev/null
}

# save_artifacts DIR NAME: keep DIR as $VM_OUT/artifacts/NAME (the shared
# directory tools/vm-run keeps when a run fails, or that --out names).
save_artifacts() {
	[ -n "${VM_OUT:-}" ] || return 0
	mkdir -p "$VM_OUT/artifacts" && rm -rf "$VM_OUT/artifacts/$2" &&
		cp -r "$1" "$VM_OUT/artifacts/$2"
}

# Scenario transcripts, for tests that drive the same scenario under the C
# IPVS (the reference) and ours (the candidate) and compare snapshots taken
# at its steps. A transcript has "step NAME" lines, each followed by the
# step's "conn ..." (ipvsadm -Lcn) and "dest ..." (ipvsadm -Ln) lines, and
# other lines of the test's own.

# require_ref_cand: skip the test unless both the C IPVS (the reference,
# REF) and $IPVS_IMPL (the candidate, CAND) can be loaded.
require_ref_cand() {
	ipvs_available c || ktap_skip_all "the C IPVS is not available"
	ipvs_available "$IPVS_IMPL" || ktap_skip_all "the $IPVS_IMPL IPVS is not available"
	REF=c
	CAND=$IPVS_IMPL
}

# ref_cand_parts: "part REF ref", then "part CAND cand" (the test's own
# function: one implementation's checks), with their times as a diagnostic.
ref_cand_parts() {
	local t0=$SECONDS t1
	part "$REF" ref
	t1=$SECONDS
	part "$CAND" cand
	ktap_diag "times: $REF $((t1 - t0)) s, $CAND $((SECONDS - t1)) s"
}

# ref_cand_same DIR WHAT NAME: DIR/ref.NAME and DIR/cand.NAME (what the
# parts kept) are equal and not empty: "REF and CAND: WHAT".
ref_cand_same() {
	local a=$1/ref.$3 b=$1/cand.$3
	if [ -s "$a" ] && cmp -s "$a" "$b"; then
		ktap_pass "$REF and $CAND: $2"
	else
		ktap_diag "$(diff -u --label "$REF" --label "$CAND" "$a" "$b" 2>&1 | tail -n +3)"
		ktap_fail "$REF and $CAND: $2"
	fi
}

# ref_cand_run FN WORK: FN IMPL FILE runs the scenario under IMPL into FILE;
# run for c into WORK/ref.txt, then for $IPVS_IMPL into WORK/cand.txt, each
# in fresh namespaces; problems and times go to WORK/notes. Sets ref, cand.
ref_cand_run() {
	local fn=$1 work=$2 t0 t1
	ref=c
	cand=$IPVS_IMPL
	t0=$SECONDS
	"$fn" "$ref" "$work/ref.txt" || echo "the $ref scenario could not be set up" >> "$work/notes"
	cleanup_ns
	t1=$SECONDS
	"$fn" "$cand" "$work/cand.txt" || echo "the $cand scenario could not be set up" >> "$work/notes"
	cleanup_ns
	echo "scenario times: $ref $((t1 - t0)) s, $cand $((SECONDS - t1)) s" >> "$work/notes"
}

# split_transcript FILE DIR OTHER: DIR/steps the step names in order,
# DIR/<n>.conn and DIR/<n>.dest the lines of the n-th step, DIR/other the
# lines whose first word matches the regular expression OTHER (one awk for
# all: every process counts under emulation).
split_transcript() {
	mkdir -p "$2"
	: > "$2/steps"
	: > "$2/other"
	awk -v dir="$2" -v other="^($3)\$" '
		/^step / { f = dir "/" (++n); print substr($0, 6) > (dir "/steps"); next }
		$1 ~ other { f = ""; print > (dir "/other"); next }
		f != "" && ($1 == "conn" || $1 == "dest") { print > (f "." $1) }
	' "$1" 2>/dev/null
}

# read_lines FILE: the file's lines in $lines (no process).
lines=
read_lines() {
	local l=()
	[ -f "$1" ] && mapfile -t l < "$1"
	printf -v lines '%s\n' "${l[@]}"
}

# compare_steps WORK [PATTERN]: one result per step and kind (conn, dest):
# the reference's snapshot (WORK/r) must equal the candidate's (WORK/c); on
# success the conn lines matching the grep PATTERN are shown. Uses $steps,
# $csteps, $ref and $cand.
compare_steps() {
	local work=$1 pat=${2:-} i step kind what a b
	for ((i = 0; i < ${#steps[@]}; i++)); do
		step=${steps[i]}
		for kind in conn dest; do
			if [ $kind = conn ]; then
				what="$step: ipvsadm -Lcn states"
			else
				what="$step: ipvsadm -Ln ActiveConn/InActConn"
			fi
			read_lines "$work/r/$((i + 1)).$kind"
			a=$lines
			b=
			if [ "${csteps[i]:-}" = "$step" ]; then
				read_lines "$work/c/$((i + 1)).$kind"
				b=$lines
			fi
			if [ "$a" != $'\n' ] && [ "$a" = "$b" ]; then
				ktap_pass "$what"
				if [ $kind = conn ] && [ -n "$pat" ]; then
					ktap_diag "$(grep -- "$pat" <<< "$a" | sed 's/^/    /')"
				fi
			else
				ktap_diag "$(diff -u --label "$ref" --label "$cand" <(echo -n "$a") <(echo -n "$b") | tail -n +3)"
				ktap_fail "$what"
			fi
		done
	done
}
