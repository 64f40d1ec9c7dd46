#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 420
#
# ipvsadm -S / ipvsadm -R round trip of a large configuration.
#
# An awk generator writes, in ipvsadm's save format, 1,000 services (TCP,
# UDP and firewall marks; rr, wrr, lc, wlc, sh with -b flags, sed, nq, dh,
# mh, lblc, lblcr, fo, ovf; a third persistent, some of those with -M) with
# 3 or 4 destinations each (masquerading, gatewaying, IP-in-IP, weights
# 0..50, some with -x/-y thresholds). Under the C IPVS (the oracle) and then
# under $IPVS_IMPL, each in a fresh network namespace:
#
#  - one `ipvsadm -R` loads it; `ipvsadm -S -n` must equal the input once
#    both are normalised: -x/-y removed (ipvsadm's save format has no
#    thresholds, so they cannot survive a round trip) and the lines sorted
#    (the generator's order is not ipvsadm's; every line names its service,
#    so sorting loses nothing);
#  - /proc/net/ip_vs has one line per service and destination (plus the
#    3 header lines);
#  - `ipvsadm -C` empties it; restoring the saved output gives a table whose
#    `ipvsadm -S -n` is byte for byte the first save.
#
# Between the implementations: the saved output of ours must be byte for
# byte the oracle's, unsorted: ipvsadm sorts what it saves itself (services
# by protocol, address and port, firewall marks by mark, destinations by
# address and port), so the C hash order, which mixes in the namespace's
# address, never shows. `ipvsadm -Ln --thresholds` after the first restore
# must match too (it shows the thresholds the save format drops).
#
# The run times of -R and -S are reported as diagnostics; ours fails only
# when more than 10 times slower than the C IPVS (at least 100 ms).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

NSVC=${SAVE_RESTORE_SERVICES:-1000}

work=$(mktemp -d)
rm_work() { save_artifacts "$work" save_restore; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# gen_config N: the configuration, in `ipvsadm -S -n` syntax (thresholds
# appended to some destination lines).
gen_config() {
	awk -v n="$1" 'BEGIN {
		split("rr wrr lc wlc sh sed nq dh mh lblc lblcr fo ovf wrr wlc sh", sch, " ")
		nsch = 16
		split("sh-fallback sh-port sh-fallback,sh-port", shb, " ")
		for (i = 0; i < n; i++) {
			vip = "10.20." int(i / 200) "." (i % 200 + 1)
			kind = i % 5
			if (kind < 2) {
				svc = "-t " vip ":" (80 + i % 7)
			} else if (kind < 4) {
				svc = "-u " vip ":" (53 + i % 5)
			} else {
				svc = "-f " (i + 1)
			}
			s = sch[i % nsch + 1]
			line = "-A " svc " -s " s
			if (i % 3 == 0) {
				line = line " -p " (60 + (i % 11) * 30)
				if (i % 6 == 0)
					line = line " -M " ((i % 12 == 0) ? "255.255.255.0" : "255.255.0.0")
			}
			if (s == "sh" && i % 2 == 0)
				line = line " -b " shb[int(i / 2) % 3 + 1]
			print line
			nd = 3 + i % 2
			for (j = 0; j < nd; j++) {
				rip = "192.168." (i % 250) "." (j * 50 + int(i / 250) + 1)
				fwd = (i + j) % 3
				if (kind == 4)
					rport = 0
				else if (fwd == 0)
					rport = 8000 + (i + j) % 100
				else
					rport = (kind < 2) ? 80 + i % 7 : 53 + i % 5
				w = (i * 7 + j * 13) % 51
				d = "-a " svc " -r " rip ":" rport
				if (fwd == 0)
					d = d " -m -w " w
				else if (fwd == 1)
					d = d " -g -w " w
				else
					d = d " -i -w " w " --tun-type ipip"
				if ((i + j) % 10 == 0)
					d = d " -x " (100 + j) " -y " (50 + j)
				else if ((i + j) % 10 == 5)
					d = d " -x 1000"
				print d
			}
		}
	}'
}

# normalise FILE: what a save of FILE's configuration shows, sorted.
normalise() {
	sed -E 's/ -[xy] [0-9]+//g' "$1" | LC_ALL=C sort
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

proc_lines() {
	nsx "$1" cat /proc/net/ip_vs | wc -l
}

gen_config "$NSVC" > "$work/input"
NDEST=$(grep -c '^-a ' "$work/input")
NTHR=$(grep -c ' -x ' "$work/input")
NLINES=$((3 + NSVC + NDEST))
normalise "$work/input" > "$work/input.norm"

IMPLS=(c "$IPVS_IMPL")
NT=$(( ${#IMPLS[@]} * 6 + 3 ))
ktap_header "$NT"
ktap_diag "$NSVC services, $NDEST destinations ($NTHR with thresholds), $(wc -l < "$work/input") lines"

# run_impl KEY IMPL: the round trip under IMPL, files in $work/KEY.
run_impl() {
	local key=$1 impl=$2 d=$work/$1 ns t0 t1 t2 rc n
	mkdir -p "$d"
	if ! ipvs_use "$impl" || ! ns_add ns "sr-$key"; then
		for n in 1 2 3 4 5 6; do ktap_fail "$key: cannot load $impl or create a namespace"; done
		return 1
	fi
	# Load the schedulers first. Otherwise the C IPVS loads them on demand
	# from within -R, holding its control mutex, and module init
	# (register_pernet_subsys) then waits for the cleanup of namespaces
	# earlier tests deleted, which needs that mutex: seen to stall -R for
	# minutes. It also keeps module loading out of the timings.
	for n in rr wrr lc wlc sh sed nq dh mh lblc lblcr fo ovf; do
		modprobe "ip_vs_$n" || ktap_diag "$impl: modprobe ip_vs_$n failed"
	done
	t0=$(now_ms)
	nsx "$ns" ipvsadm -R < "$work/input" > "$d/restore.err" 2>&1
	rc=$?
	t1=$(now_ms)
	nsx "$ns" ipvsadm -S -n > "$d/save1" 2> "$d/save1.err"
	t2=$(now_ms)
	echo $((t1 - t0)) > "$d/t_restore"
	echo $((t2 - t1)) > "$d/t_save"
	ktap_diag "$key ($(ipvs_which)): ipvsadm -R $((t1 - t0)) ms, ipvsadm -S -n $((t2 - t1)) ms"
	nsx "$ns" ipvsadm -Ln --thresholds > "$d/thresholds" 2>&1
	n=$(grep -c '^-A ' "$d/save1")
	if [ "$rc" = 0 ] && [ ! -s "$d/restore.err" ] && [ "$n" = "$NSVC" ]; then
		ktap_pass "$key: ipvsadm -R loads $NSVC services with $NDEST destinations"
	else
		ktap_diag "ipvsadm -R exit $rc, $n services saved; $(head -5 "$d/restore.err")"
		ktap_fail "$key: ipvsadm -R loads $NSVC services with $NDEST destinations"
	fi
	LC_ALL=C sort "$d/save1" > "$d/save1.sorted"
	if cmp -s "$work/input.norm" "$d/save1.sorted"; then
		ktap_pass "$key: ipvsadm -S -n shows the input (thresholds aside, sorted)"
	else
		ktap_diag "$(diff -u --label input --label saved "$work/input.norm" "$d/save1.sorted" | head -30)"
		ktap_fail "$key: ipvsadm -S -n shows the input (thresholds aside, sorted)"
	fi
	n=$(proc_lines "$ns")
	if [ "$n" = "$NLINES" ]; then
		ktap_pass "$key: /proc/net/ip_vs has $NLINES lines"
	else
		ktap_diag "/proc/net/ip_vs: $n lines"
		ktap_fail "$key: /proc/net/ip_vs has $NLINES lines"
	fi
	echo "$n" > "$d/proc1"
	nsx "$ns" ipvsadm -C
	n=$(proc_lines "$ns")
	if [ "$n" = 3 ] && [ -z "$(nsx "$ns" ipvsadm -S -n)" ]; then
		ktap_pass "$key: ipvsadm -C empties the table"
	else
		ktap_diag "/proc/net/ip_vs: $n lines after -C"
		ktap_fail "$key: ipvsadm -C empties the table"
	fi
	nsx "$ns" ipvsadm -R < "$d/save1" > "$d/restore2.err" 2>&1
	rc=$?
	nsx "$ns" ipvsadm -S -n > "$d/save2" 2>&1
	if [ "$rc" = 0 ] && cmp -s "$d/save1" "$d/save2"; then
		ktap_pass "$key: restoring the saved output saves the same bytes again"
	else
		ktap_diag "ipvsadm -R exit $rc; $(head -3 "$d/restore2.err")"
		ktap_diag "$(diff -u --label save1 --label save2 "$d/save1" "$d/save2" | head -30)"
		ktap_fail "$key: restoring the saved output saves the same bytes again"
	fi
	n=$(proc_lines "$ns")
	if [ "$n" = "$NLINES" ]; then
		ktap_pass "$key: /proc/net/ip_vs has $NLINES lines again"
	else
		ktap_diag "/proc/net/ip_vs: $n lines"
		ktap_fail "$key: /proc/net/ip_vs has $NLINES lines again"
	fi
	nsx "$ns" ipvsadm -C
	cleanup_ns
}

run_impl c c
run_impl cand "$IPVS_IMPL"

if [ -s "$work/c/save1" ] && cmp -s "$work/c/save1" "$work/cand/save1"; then
	ktap_pass "$IPVS_IMPL: the saved output is byte for byte the C IPVS's"
else
	ktap_diag "$(diff -u --label c --label "$IPVS_IMPL" "$work/c/save1" "$work/cand/save1" | head -30)"
	ktap_fail "$IPVS_IMPL: the saved output is byte for byte the C IPVS's"
fi

if [ -s "$work/c/thresholds" ] && cmp -s "$work/c/thresholds" "$work/cand/thresholds" &&
	[ "$(grep -cE '^  -> [^ ]+ +[1-9]' "$work/c/thresholds")" = "$NTHR" ]; then
	ktap_pass "$IPVS_IMPL: ipvsadm -Ln --thresholds after -R is the C IPVS's"
else
	ktap_diag "$(diff -u --label c --label "$IPVS_IMPL" "$work/c/thresholds" "$work/cand/thresholds" | head -30)"
	ktap_fail "$IPVS_IMPL: ipvsadm -Ln --thresholds after -R is the C IPVS's"
fi

# within10 OURS C: OURS <= 10 * max(C, 100) (milliseconds).
within10() {
	local c=$2
	[ "$c" -lt 100 ] && c=100
	[ "$1" -le $((10 * c)) ]
}
cr=$(cat "$work/c/t_restore" 2>/dev/null || echo 0)
cs=$(cat "$work/c/t_save" 2>/dev/null || echo 0)
or=$(cat "$work/cand/t_restore" 2>/dev/null || echo 999999)
os=$(cat "$work/cand/t_save" 2>/dev/null || echo 999999)
ktap_diag "times (ms): -R c $cr, $IPVS_IMPL $or; -S c $cs, $IPVS_IMPL $os"
if within10 "$or" "$cr" && within10 "$os" "$cs"; then
	ktap_pass "$IPVS_IMPL: -R and -S take at most 10 times the C IPVS's time"
else
	ktap_fail "$IPVS_IMPL: -R and -S take at most 10 times the C IPVS's time"
fi

ktap_exit
