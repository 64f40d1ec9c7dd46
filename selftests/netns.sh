#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
# cpus: 2 (races between CPUs: tools/lib/check runs it in its 2-vCPU boot)
#
# Network namespace isolation and teardown, under the C IPVS (for
# comparison) and then under $IPVS_IMPL, in one boot.
#
# (a) Isolation: two directors A and B (each topo_nat 1: client, director,
#     one NAT real server) with their own services (A: TCP and UDP, rr; B:
#     TCP wrr and a persistent one), sysctls (conn_reuse_mode 0/2,
#     expire_nodest_conn 1/0) and timeouts (ipvsadm --set). Each
#     `ipvsadm -S -n` shows its own configuration only, the initial
#     namespace none; each namespace reads its own sysctls and timeouts, the
#     initial one its defaults. Traffic through A counts in A only, then
#     traffic through B in B only; `ipvsadm -Z` in A leaves B's counters.
#
# (b) Teardown under load, ROUNDS times: a director (topo_nat 2) with a
#     persistent TCP NAT service (-p, lc, which nothing else uses) holds
#     20 connections from 4 client addresses, each ESTABLISHED and used
#     (one Python process, outside the namespaces, owns both ends and keeps
#     sending on them), and 4 persistence templates (ipvsadm -Lcn). Then the
#     director's namespace is deleted with all of that in its table. Within
#     30 s (the namespace's cleanup is asynchronous) its service must be
#     gone (ip_vs_lc's module reference count back to 0) and, where the
#     kernel has /proc/slabinfo listing ip_vs_conn (the bench config; not
#     the debug one, whose SLUB_TINY has no slabinfo), the ip_vs_conn cache
#     must be back to its count before the round; director B of (a), still
#     alive, keeps its services and counters. No kernel splat may appear
#     (selftests/run and tools/vm-run check the kernel log).
#
# Finally every namespace is deleted and `ipvs_unload` (ipvsadm -C, rmmod
# of the schedulers and ip_vs) must succeed: nothing leaked or pinned.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ROUNDS=${NETNS_ROUNDS:-3}
NCLIENTS=4
NPER=5
VIPB2=10.0.100.9
TEARDOWN_MAX=30

IMPLS=(c)
[ "$IPVS_IMPL" != c ] && IMPLS+=("$IPVS_IMPL")
ktap_header $(( ${#IMPLS[@]} * (6 + ROUNDS * 4 + 1) ))

work=$(mktemp -d)
rm_work() { rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# The holder: NCLIENTS x NPER TCP connections from CNS to VIP:80, answered
# by listeners on port 80 in the real servers' namespaces; both ends belong
# to this one process. It writes "client-address real-server-index" per
# connection to OUT, then keeps sending a byte on every connection (and
# draining the servers' ends) every 0.1 s until killed.
cat > "$work/hold.py" <<'EOF'
import os, select, socket, sys, time
sys.path.insert(0, os.environ["TOOLS_LIB"])
from ipvs_netns import netns

cns, vip, out = sys.argv[1], sys.argv[2], sys.argv[3]
rsns = sys.argv[4].split(",")
cips = sys.argv[5].split(",")
per = int(sys.argv[6])
lst = []
for ns in rsns:
    with netns(ns):
        l = socket.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("0.0.0.0", 80))
        l.listen(128)
    lst.append(l)
clients = []
for ip in cips:
    for _ in range(per):
        with netns(cns):
            c = socket.socket()
        c.bind((ip, 0))
        c.settimeout(20)
        c.connect((vip, 80))
        clients.append(c)
peer = {}
srv = []
deadline = time.time() + 20
while len(srv) < len(clients) and time.time() < deadline:
    r, _, _ = select.select(lst, [], [], 1)
    for l in r:
        s, a = l.accept()
        peer[a] = lst.index(l) + 1
        srv.append(s)
for s in srv:
    s.sendall(b"x")
with open(out + ".tmp", "w") as f:
    for c in clients:
        c.recv(1)
        a = c.getsockname()
        f.write("%s %s\n" % (a[0], peer.get(a, 0)))
os.rename(out + ".tmp", out)
for s in srv:
    s.setblocking(False)
while True:
    for c in clients:
        try:
            c.send(b"p", socket.MSG_DONTWAIT)
        except OSError:
            pass
    for s in srv:
        try:
            s.recv(4096)
        except OSError:
            pass
    time.sleep(0.1)
EOF

# stat_conns NS PROTO VIP:PORT: the service's connection counter.
stat_conns() {
	nsx "$1" ipvsadm -Ln --stats --exact | awk -v p="$2" -v s="$3" '$1 == p && $2 == s { print $3 }'
}

# all_zero NS: every counter of `ipvsadm -Ln --stats` is zero.
all_zero() {
	nsx "$1" ipvsadm -Ln --stats --exact |
		awk 'NR > 3 { for (i = 3; i <= NF; i++) if ($i != 0) bad = 1 } END { exit bad }'
}

# settle CMD...: poll CMD for up to 10 s until it succeeds (the C IPVS
# sums its per-CPU counters into what ipvsadm shows only when its estimator
# runs, every 2 s).
settle() {
	local i
	for ((i = 0; i < 50; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# conns_are NS PROTO VIP:PORT N: the service's connection counter is N.
conns_are() {
	[ "$(stat_conns "$1" "$2" "$3")" = "$4" ]
}

# slab_conn: ip_vs_conn objects in use, empty without /proc/slabinfo. SLUB
# counts the objects of per-CPU slabs as used and keeps freed ones there, so
# the cache is shrunk first (sysfs), which returns those slabs: then the
# count is exact.
slab_conn() {
	[ -w /sys/kernel/slab/ip_vs_conn/shrink ] && echo 1 > /sys/kernel/slab/ip_vs_conn/shrink
	awk '$1 == "ip_vs_conn" { print $2 }' /proc/slabinfo 2>/dev/null
}

modref() {
	cat "/sys/module/$1/refcnt" 2>/dev/null || echo 0
}

SAVE_A="-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.1.1.2:80 -m -w 1
-A -u $VIP:80 -s rr
-a -u $VIP:80 -r 10.1.1.2:80 -m -w 1"
SAVE_B="-A -t $VIP:80 -s wrr
-a -t $VIP:80 -r 10.1.1.2:80 -m -w 2
-A -t $VIPB2:8080 -s wrr -p 100
-a -t $VIPB2:8080 -r 10.1.1.2:80 -m -w 3"

# isolation IMPL: part (a); leaves A and B (NS_A, NS_B) up.
isolation() {
	local k=$1 ok=1 out ca cb
	if topo_nat 1 && start_servers 1; then
		NS_A=$NS_D; NS_AC=$NS_C
	else
		ok=0
	fi
	if [ $ok = 1 ] && topo_nat 1 && start_servers 1; then
		NS_B=$NS_D; NS_BC=$NS_C
		ip -n "$NS_B" addr add "$VIPB2/32" dev lo
	else
		ok=0
	fi
	if [ $ok = 1 ] && nsx "$NS_A" ipvsadm -R <<< "$SAVE_A" && nsx "$NS_B" ipvsadm -R <<< "$SAVE_B" &&
		nsx "$NS_A" sysctl -qw net.ipv4.vs.conn_reuse_mode=0 net.ipv4.vs.expire_nodest_conn=1 &&
		nsx "$NS_B" sysctl -qw net.ipv4.vs.conn_reuse_mode=2 net.ipv4.vs.expire_nodest_conn=0 &&
		nsx "$NS_A" ipvsadm --set 100 20 30 && nsx "$NS_B" ipvsadm --set 200 40 50; then
		ktap_pass "$k: two directors with their own services, sysctls and timeouts"
	else
		ktap_fail "$k: two directors with their own services, sysctls and timeouts"
		ok=0
	fi

	local sa sb s0
	sa=$(nsx "$NS_A" ipvsadm -S -n 2>&1)
	sb=$(nsx "$NS_B" ipvsadm -S -n 2>&1)
	s0=$(ipvsadm -S -n 2>&1)
	if [ "$sa" = "$SAVE_A" ] && [ "$sb" = "$SAVE_B" ] && [ -z "$s0" ]; then
		ktap_pass "$k: each namespace lists only its own services, the initial one none"
	else
		ktap_diag "A: $sa" "B: $sb" "init: $s0"
		ktap_fail "$k: each namespace lists only its own services, the initial one none"
	fi

	local va vb v0
	va=$(nsx "$NS_A" sysctl -n net.ipv4.vs.conn_reuse_mode net.ipv4.vs.expire_nodest_conn | tr '\n' ' ')
	va+=$(nsx "$NS_A" ipvsadm -L --timeout)
	vb=$(nsx "$NS_B" sysctl -n net.ipv4.vs.conn_reuse_mode net.ipv4.vs.expire_nodest_conn | tr '\n' ' ')
	vb+=$(nsx "$NS_B" ipvsadm -L --timeout)
	v0=$(sysctl -n net.ipv4.vs.conn_reuse_mode net.ipv4.vs.expire_nodest_conn | tr '\n' ' ')
	v0+=$(ipvsadm -L --timeout)
	if [ "$va" = "0 1 Timeout (tcp tcpfin udp): 100 20 30" ] &&
		[ "$vb" = "2 0 Timeout (tcp tcpfin udp): 200 40 50" ] &&
		[ "$v0" = "1 0 Timeout (tcp tcpfin udp): 900 120 300" ]; then
		ktap_pass "$k: sysctls and timeouts are per namespace"
	else
		ktap_diag "A: $va; B: $vb; init: $v0"
		ktap_fail "$k: sysctls and timeouts are per namespace"
	fi

	out=$(nsx "$NS_AC" "$CLIENT" tcp "$VIP" 80 5; nsx "$NS_AC" "$CLIENT" udp "$VIP" 80 2 --sport-base 40000)
	settle conns_are "$NS_A" TCP "$VIP:80" 5
	settle conns_are "$NS_A" UDP "$VIP:80" 2
	ca=$(stat_conns "$NS_A" TCP "$VIP:80")/$(stat_conns "$NS_A" UDP "$VIP:80")
	if [ "$(grep -c ' rs1$' <<< "$out")" = 7 ] && [ "$ca" = 5/2 ] && all_zero "$NS_B" &&
		[ -z "$(nsx "$NS_B" ipvsadm -Lcn | sed 1,2d)" ] &&
		[ "$(nsx "$NS_A" ipvsadm -Lcn | sed 1,2d | wc -l)" = 7 ]; then
		ktap_pass "$k: traffic through A counts in A (5 TCP, 2 UDP), B stays at zero"
	else
		ktap_diag "answers: $(tr '\n' ' ' <<< "$out")" "A conns tcp/udp: $ca"
		ktap_diag "$(nsx "$NS_B" ipvsadm -Ln --stats --exact)" "$(nsx "$NS_B" ipvsadm -Lcn)"
		ktap_fail "$k: traffic through A counts in A (5 TCP, 2 UDP), B stays at zero"
	fi

	out=$(nsx "$NS_BC" "$CLIENT" tcp "$VIP" 80 3)
	settle conns_are "$NS_B" TCP "$VIP:80" 3
	ca=$(stat_conns "$NS_A" TCP "$VIP:80")/$(stat_conns "$NS_A" UDP "$VIP:80")
	cb=$(stat_conns "$NS_B" TCP "$VIP:80")/$(stat_conns "$NS_B" TCP "$VIPB2:8080")
	if [ "$(grep -c ' rs1$' <<< "$out")" = 3 ] && [ "$ca" = 5/2 ] && [ "$cb" = 3/0 ]; then
		ktap_pass "$k: traffic through B counts in B (3), A unchanged"
	else
		ktap_diag "answers: $(tr '\n' ' ' <<< "$out")" "A tcp/udp: $ca; B tcp/tcp:8080: $cb"
		ktap_fail "$k: traffic through B counts in B (3), A unchanged"
	fi

	nsx "$NS_A" ipvsadm -Z
	cb=$(stat_conns "$NS_B" TCP "$VIP:80")
	if all_zero "$NS_A" && [ "$cb" = 3 ]; then
		ktap_pass "$k: ipvsadm -Z in A zeroes A only"
	else
		ktap_diag "$(nsx "$NS_A" ipvsadm -Ln --stats --exact)" "B tcp: $cb"
		ktap_fail "$k: ipvsadm -Z in A zeroes A only"
	fi
}

# teardown_round IMPL R: part (b), one round.
teardown_round() {
	local k="$1 round $2" slab0 slab1 n t0 t ok out i cips="" hold nt nc nsd ref slab
	local lc_gone="" slab_back="" hpid=""
	slab0=$(slab_conn)
	ok=1
	if topo_nat 2; then
		for ((i = 2; i <= NCLIENTS + 1; i++)); do
			[ "$i" -gt 2 ] && ip -n "$NS_C" addr add "10.0.0.$i/24" dev c0
			cips+="${cips:+,}10.0.0.$i"
		done
		nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s lc -p 300 &&
			nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m &&
			nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[2]}:80" -m || ok=0
	else
		ok=0
	fi
	hold=$work/hold-$1-$2
	rm -f "$hold"
	if [ $ok = 1 ]; then
		TOOLS_LIB=$TOOLS/lib python3 "$work/hold.py" "$NS_C" "$VIP" "$hold" \
			"${NS_RS[1]},${NS_RS[2]}" "$cips" "$NPER" &
		hpid=$!
		BG_PIDS+=("$hpid")
		for ((i = 0; i < 300; i++)); do
			[ -e "$hold" ] && break
			sleep 0.1
		done
	fi
	out=$(nsx "$NS_D" ipvsadm -Lcn 2>/dev/null)
	nc=$(grep -cE "^TCP .* ESTABLISHED +10\.0\.0\.[0-9]+:[1-9][0-9]* +$VIP:80 " <<< "$out")
	nt=$(grep -cE "^TCP .* 10\.0\.0\.[0-9]+:0 +$VIP:80 " <<< "$out")
	# Persistence: every client address on one real server.
	n=$(sort -u "$hold" 2>/dev/null | awk '$2 != 0 { print $1 }' | sort | uniq -d | wc -l)
	if [ -e "$hold" ] && [ "$(wc -l < "$hold")" = $((NCLIENTS * NPER)) ] && [ "$n" = 0 ] &&
		[ "$(sort -u "$hold" | wc -l)" = "$NCLIENTS" ] &&
		[ "$nc" = $((NCLIENTS * NPER)) ] && [ "$nt" = "$NCLIENTS" ]; then
		ktap_pass "$k: $nc connections held through a persistent service, $nt templates"
	else
		ktap_diag "holder: $(sort "$hold" 2>/dev/null | uniq -c | tr '\n' ';')" "$out"
		ktap_fail "$k: $((NCLIENTS * NPER)) connections held through a persistent service, $NCLIENTS templates"
	fi
	slab1=$(slab_conn)

	# Delete the director with all of that in its table, traffic running.
	nsd=$NS_D
	for i in $(ip netns pids "$nsd" 2>/dev/null); do kill "$i" 2>/dev/null; done
	t0=$(date +%s%N)
	ip netns del "$nsd"
	# Every process costs tens of milliseconds under emulation: poll by time.
	while :; do
		ref=$(modref ip_vs_lc)
		slab=$(slab_conn)
		t=$((($(date +%s%N) - t0) / 1000000))
		[ -z "$lc_gone" ] && [ "$ref" = 0 ] && lc_gone=$t
		[ -z "$slab_back" ] && [ -n "$slab0" ] && [ -n "$slab" ] && [ "$slab" -le "$slab0" ] && slab_back=$t
		[ -n "$lc_gone" ] && { [ -z "$slab0" ] || [ -n "$slab_back" ]; } && break
		[ "$t" -ge $((TEARDOWN_MAX * 1000)) ] && break
		sleep 0.1
	done
	if [ -n "$lc_gone" ]; then
		ktap_diag "$k: service released $lc_gone ms after ip netns del"
		ktap_pass "$k: director netns deleted: its service is released within ${TEARDOWN_MAX} s"
	else
		ktap_diag "ip_vs_lc refcnt still $(modref ip_vs_lc)"
		ktap_fail "$k: director netns deleted: its service is released within ${TEARDOWN_MAX} s"
	fi
	if [ -z "$slab0" ]; then
		ktap_skip "$k: ip_vs_conn slab back to its count before the round" \
			"no ip_vs_conn in /proc/slabinfo in this kernel"
	elif [ -n "$slab_back" ]; then
		ktap_diag "$k: ip_vs_conn objects: $slab0 before, $slab1 with the connections, back after $slab_back ms"
		ktap_pass "$k: ip_vs_conn slab back to its count before the round"
	else
		ktap_diag "ip_vs_conn objects: $slab0 before, $slab1 with the connections, $(slab_conn) now"
		ktap_fail "$k: ip_vs_conn slab back to its count before the round"
	fi

	out=$(nsx "$NS_B" ipvsadm -S -n 2>&1)
	n=$(stat_conns "$NS_B" TCP "$VIP:80")
	if [ "$out" = "$SAVE_B" ] && [ "$n" = 3 ]; then
		ktap_pass "$k: director B keeps its services and counters"
	else
		ktap_diag "B: $out; conns $n"
		ktap_fail "$k: director B keeps its services and counters"
	fi

	# The rest of the round: the holder, the client and real servers.
	if [ -n "$hpid" ]; then
		kill "$hpid" 2>/dev/null
		wait "$hpid" 2>/dev/null
	fi
	for i in "$NS_C" "${NS_RS[1]}" "${NS_RS[2]}"; do
		ip netns del "$i"
	done
}

for impl in "${IMPLS[@]}"; do
	if ! ipvs_use "$impl"; then
		for ((i = 0; i < 6 + ROUNDS * 4 + 1; i++)); do ktap_fail "$impl: cannot load it"; done
		continue
	fi
	ktap_diag "$impl: $(ipvs_which)"
	isolation "$impl"
	for ((r = 1; r <= ROUNDS; r++)); do
		teardown_round "$impl" "$r"
	done
	cleanup_ns
	t0=$(date +%s%N)
	if ipvs_unload; then
		ktap_diag "$impl: all namespaces deleted, modules unloaded after $((($(date +%s%N) - t0) / 1000000)) ms"
		ktap_pass "$impl: ipvs_unload (rmmod of the schedulers and ip_vs) succeeds"
	else
		ktap_diag "$(grep ip_vs /proc/modules)"
		ktap_fail "$impl: ipvs_unload (rmmod of the schedulers and ip_vs) succeeds"
	fi
done
ktap_exit
