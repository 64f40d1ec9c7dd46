#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 400
#
# Deleting and flushing services (ipvsadm -D, -C) as upstream does them,
# under the C IPVS (the oracle) and then under $IPVS_IMPL, in one boot.
# Ours flushes without waiting or freeing (issue 22: a flush of 50,000
# services within C's time): it unlinks every service and its real servers
# at once and keeps the emptied table until the real servers are next needed.
# What users see must not change:
#
#  1. after `ipvsadm -C`, the scheduler (wrr) and persistence engine (sip)
#     modules the flushed services used can be unloaded at once, without a
#     retry: upstream unbinds them in the flush;
#  2. the same for a service deleted with `ipvsadm -D` (sh);
#  3. the service and its real servers added again after the flush are the
#     real servers of before, from the trash, with their connection counters
#     (6 connections through them: 3 each);
#  4. 1,000 services with 2 real servers each restored, flushed, restored
#     again into the same namespace (the real servers come back from the
#     trash): all 1,000 and 2,000 listed, in a listing the same as the first;
#  5. 3,000 services restored and flushed;
#  6. then their namespace deleted with the flushed services not yet freed,
#     and every IPVS module unloaded.
# No kernel splat may appear (selftests/run checks the kernel log).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

IMPLS=(c)
[ "$IPVS_IMPL" != c ] && IMPLS+=("$IPVS_IMPL")
PART=6
ktap_header $(( ${#IMPLS[@]} * PART ))

work=$(mktemp -d)
rm_work() { rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# restore_input N: ipvsadm -R input of N TCP services with 2 real servers.
restore_input() {
	awk -v n="$1" 'BEGIN {
		for (i = 0; i < n; i++) {
			v = "-t 10.40." int(i / 250) "." (i % 250 + 1) ":80"
			print "-A " v " -s rr"
			print "-a " v " -r 10.41." int(i / 250) "." (i % 250 + 1) ":80 -m -w 1"
			print "-a " v " -r 10.42." int(i / 250) "." (i % 250 + 1) ":80 -m -w 1"
		}
	}'
}
# loaded MODULE: whether MODULE is loaded.
loaded() { grep -q "^$1 " /proc/modules; }
# conns: "RIP:connections ..." (active and inactive) of VIP:80's real
# servers in the director.
conns() {
	nsx "$NS_D" ipvsadm -Ln -t "$VIP:80" |
		awk '$1 == "->" && $2 ~ /:80$/ { printf "%s:%s ", $2, $5 + $6 }'
}

for impl in "${IMPLS[@]}"; do
	start=$ktap_n
	teardown() { part_teardown "$impl" "$start" "$PART" "director deleted: ip_vs and the schedulers" NS_D NS_C "NS_RS[1]" "NS_RS[2]"; }
	if ! ipvs_use "$impl"; then
		ktap_fail "$impl: load"
		teardown
		continue
	fi
	ktap_diag "implementation: $impl ($(ipvs_which))"
	if ! topo_nat 2 || ! start_servers 2; then
		ktap_fail "$impl: topology setup"
		teardown
		continue
	fi
	D() { nsx "$NS_D" "$@"; }

	# 1. Flush, then unload the scheduler and the engine at once.
	D ipvsadm -A -t "$VIP:80" -s wrr
	for i in 1 2; do D ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m; done
	D ipvsadm -A -u "$VIP:5060" -s rr -p 60 --pe sip
	D ipvsadm -a -u "$VIP:5060" -r "${RIP[1]}:5060" -m
	answers=$(nsx "$NS_C" "$TOOLS/lib/ipvs-client" tcp "$VIP" 80 6 --timeout 5 | awk '{ print $2 }' | sort | uniq -c | tr -s ' \n' ' ')
	ktap_diag "$impl: answers: $answers"
	before=$(conns)
	ktap_diag "$impl: connections before the flush: $before"
	if loaded ip_vs_wrr && loaded ip_vs_pe_sip && D ipvsadm -C; then
		err=$(rmmod ip_vs_wrr ip_vs_pe_sip 2>&1)
		if ! loaded ip_vs_wrr && ! loaded ip_vs_pe_sip; then
			ktap_pass "$impl: ip_vs_wrr and ip_vs_pe_sip unload right after ipvsadm -C"
		else
			ktap_fail "$impl: ip_vs_wrr and ip_vs_pe_sip unload right after ipvsadm -C ($err)"
		fi
	else
		ktap_fail "$impl: ip_vs_wrr and ip_vs_pe_sip unload right after ipvsadm -C (set-up)"
	fi

	# 2. Delete, then unload the scheduler at once.
	if D ipvsadm -A -t "$VIP:81" -s sh && D ipvsadm -a -t "$VIP:81" -r "${RIP[1]}:81" -m &&
		loaded ip_vs_sh && D ipvsadm -D -t "$VIP:81"; then
		err=$(rmmod ip_vs_sh 2>&1)
		if ! loaded ip_vs_sh; then
			ktap_pass "$impl: ip_vs_sh unloads right after ipvsadm -D"
		else
			ktap_fail "$impl: ip_vs_sh unloads right after ipvsadm -D ($err)"
		fi
	else
		ktap_fail "$impl: ip_vs_sh unloads right after ipvsadm -D (set-up)"
	fi

	# 3. The real servers come back from the trash with their counters.
	D ipvsadm -A -t "$VIP:80" -s rr
	for i in 1 2; do D ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m; done
	after=$(conns)
	want="${RIP[1]}:80:3 ${RIP[2]}:80:3 "
	if [ "$before" = "$want" ] && [ "$after" = "$before" ]; then
		ktap_pass "$impl: real servers added back after ipvsadm -C keep their connections ($after)"
	else
		ktap_fail "$impl: real servers added back after ipvsadm -C keep their connections (before: $before, after: $after, want: $want)"
	fi
	D ipvsadm -C

	# 4. Restore, flush, restore again from the trash.
	restore_input 1000 > "$work/in"
	if D ipvsadm -R < "$work/in" && D ipvsadm -Sn > "$work/first" && D ipvsadm -C &&
		D ipvsadm -R < "$work/in" && D ipvsadm -Sn > "$work/second"; then
		svcs=$(grep -c '^-A' "$work/second") rss=$(grep -c '^-a' "$work/second")
		if [ "$svcs" = 1000 ] && [ "$rss" = 2000 ] && cmp -s "$work/first" "$work/second"; then
			ktap_pass "$impl: 1,000 services restored again after a flush: $svcs services, $rss real servers, as before"
		else
			ktap_fail "$impl: 1,000 services restored again after a flush: $svcs services, $rss real servers"
		fi
	else
		ktap_fail "$impl: 1,000 services restored again after a flush (an ipvsadm command failed)"
	fi
	D ipvsadm -C

	# 5. A flush, then the namespace and the modules go (6).
	restore_input 3000 > "$work/in"
	if D ipvsadm -R < "$work/in" && [ "$(D ipvsadm -Ln | grep -c '^TCP')" = 3000 ] && D ipvsadm -C &&
		[ -z "$(D ipvsadm -Ln | grep '^TCP')" ]; then
		ktap_pass "$impl: 3,000 services restored and flushed"
	else
		ktap_fail "$impl: 3,000 services restored and flushed"
	fi
	teardown
done
ktap_exit
