#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Module unload with services configured and traffic flowing.
#
#   1. While a client keeps opening NAT connections, `modprobe -r ip_vs` must
#      fail: every service holds a reference on the module, as upstream.
#   2. `ipvsadm -C` under traffic, then rmmod of ip_vs_rr and ip_vs succeeds
#      with live connections still in the table.
#   3. Reloaded, services and live connections inside a namespace that is
#      then deleted: the namespace's teardown frees everything and rmmod
#      succeeds.
# The runner fails the test on any kernel splat meanwhile.
# timeout: 300
# cpus: 2 (races between CPUs: tools/lib/check runs it in its 2-vCPU boot)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 6
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

tmp=$(mktemp -d)
CLEANUP_HOOKS+=(stop_client)
client_pid=

start_client() {
	rm -f "$tmp/stop"
	echo 1 > "$tmp/phase"
	nsx "$NS_C" "$CLIENT" loop "$VIP" 80 --phase-file "$tmp/phase" \
		--stop-file "$tmp/stop" --timeout 2 > "$tmp/out" 2>&1 &
	client_pid=$!
}

stop_client() {
	[ -n "$client_pid" ] || return 0
	touch "$tmp/stop"
	wait "$client_pid" 2>/dev/null
	client_pid=
}

answers() {
	grep -c -E '^[0-9]+ rs[0-9]+$' "$tmp/out"
}

# wait_answers MORE_THAN: wait (up to 60 s) until more answers arrived.
wait_answers() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(answers)" -gt "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

setup_service() {
	topo_nat 3 && start_servers 3 || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr || return 1
	local i
	for ((i = 1; i <= 3; i++)); do
		nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m || return 1
	done
}

if ! setup_service; then
	ktap_fail "setup"
	ktap_exit
fi
start_client
wait_answers 0
n0=$(answers)
if modprobe -r ip_vs 2>/dev/null; then
	ktap_fail "rmmod ip_vs refused while a service exists"
else
	ktap_pass "rmmod ip_vs refused while a service exists"
fi
wait_answers "$n0"
n1=$(answers)
if [ "$n1" -gt "$n0" ] && [ "$n0" -gt 0 ]; then
	ktap_pass "traffic flows before and after the refused unload ($n0, $n1 answers)"
else
	ktap_fail "traffic flows before and after the refused unload ($n0, $n1 answers)"
fi

nsx "$NS_D" ipvsadm -C
if ipvs_unload; then
	ktap_pass "ipvsadm -C then rmmod under traffic"
else
	ktap_fail "ipvsadm -C then rmmod under traffic"
fi
stop_client
cleanup_ns

# 3. Services and connections in a namespace that goes away.
modprobe ip_vs
if ! setup_service; then
	ktap_fail "setup (second round)"
	ktap_exit
fi
start_client
wait_answers 0
stop_client
n=$(answers)
if [ "$n" -gt 0 ]; then
	ktap_pass "second round: traffic through the reloaded module ($n answers)"
else
	ktap_fail "second round: traffic through the reloaded module"
fi
cleanup_ns
if ipvs_unload; then
	ktap_pass "rmmod after deleting a namespace with services and connections"
else
	ktap_fail "rmmod after deleting a namespace with services and connections"
fi
if ! grep -q '^ip_vs ' /proc/modules; then
	ktap_pass "ip_vs is gone"
else
	ktap_fail "ip_vs is gone"
fi
rm -rf "$tmp"
ktap_exit
