#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
#
# Connection synchronisation between two directors of one implementation
# ($IPVS_IMPL), over multicast on a link of their own:
#
#   client -> director A (master) -> rs1..rs3 (NAT)
#             A s0 10.9.0.1 ---- s1 10.9.0.2 B (backup, same services)
#
#  1. ipvsadm --start-daemon master / backup (syncid 7), and
#     `ipvsadm -L --daemon` on both (ipvsadm uses netlink; nl_probe.sh
#     covers the daemon commands of both transports against C); a second
#     master is refused.
#  2. sync_version 1: over 1,000 entries made through A: TCP, UDP (3
#     datagrams per flow, the sync threshold), a persistent service (its
#     template), a persistent firewall-mark service (mark 1 set by
#     nftables on A; B finds its service by the mark the v1 records carry)
#     and IPv6 TCP. B's table (`ipvsadm -Lnc`) must come
#     to A's: same protocol, client, virtual address and real server, same
#     state (TCP connections end closed: the states they went through were
#     synced as they changed), each marked SYNC in /proc/net/ip_vs_conn_sync.
#     UDP entries carry their 20 s timeout: when they expire on A, B's go
#     too. Then sync_version 0 (IPv4 records, no timeouts: B uses its
#     own) with more TCP, UDP and persistent connections. (Hostile
#     datagrams and the C IPVS on the other end: sync_interop.sh.)
#  3. With backup_only set, B (running a backup daemon) does not balance
#     its own connection to the VIP; without, it does.
#  4. Stopping both daemons (`--stop-daemon`), then a second stop: ESRCH
#     ("No daemon is running").
#  5. Daemons on an IPv6 group and port 8900, two threads each
#     (sync_ports 2), carry IPv4 and IPv6 connections.
#  6. Deleting the namespaces with the daemons running stops them.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 13
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

NS_B=
SYNCID=7
SAME=

# both CMD...: run CMD in A and in B.
both() {
	nsx "$NS_D" "$@" && nsx "$NS_B" "$@"
}

setup() {
	topo_nat 3 || return 1
	start_servers 3 80 --port 81 --port 82 --ipv6 || return 1
	nsx "$NS_D" nft -f - <<- EOF || return 1
		table ip sync_mark {
			chain pre {
				type filter hook prerouting priority -150;
				ip daddr $VIP tcp dport 82 meta mark set 1
			}
		}
	EOF
	ns_add NS_B backup || return 1
	# The sync link's IPv6 link-local addresses are usable at once.
	both sysctl -qw net.ipv6.conf.default.accept_dad=0 || return 1
	veth_add "$NS_D" s0 "$NS_B" s1 || return 1
	ip -n "$NS_D" addr add 10.9.0.1/24 dev s0 || return 1
	ip -n "$NS_B" addr add 10.9.0.2/24 dev s1 || return 1
	local i
	for ns in "$NS_D" "$NS_B"; do
		nsx "$ns" ipvsadm -A -t "$VIP:80" -s rr || return 1
		nsx "$ns" ipvsadm -A -u "$VIP:80" -s rr || return 1
		nsx "$ns" ipvsadm -A -t "$VIP:81" -s rr -p 300 || return 1
		nsx "$ns" ipvsadm -A -t "[$VIP6]:80" -s rr || return 1
		nsx "$ns" ipvsadm -A -f 1 -s rr -p 120 || return 1
		nsx "$ns" ipvsadm --set 0 0 20 || return 1
		for ((i = 1; i <= 3; i++)); do
			nsx "$ns" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m || return 1
			nsx "$ns" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || return 1
			nsx "$ns" ipvsadm -a -t "$VIP:81" -r "${RIP[i]}:81" -m || return 1
			nsx "$ns" ipvsadm -a -t "[$VIP6]:80" -r "[${RIP6[i]}]:80" -m || return 1
			nsx "$ns" ipvsadm -a -f 1 -r "${RIP[i]}:82" -m || return 1
		done
	done
}

# conns NS: the connection entries of NS without their timers, one per line:
# protocol, state, client, virtual address, real server (sorted); B's own
# (from 10.9.0.2, see backup_only) left out.
conns() {
	nsx "$1" ipvsadm -Lnc | awk 'NR > 2 && $4 !~ /^10\.9\.0\.2:/ { print $1, $3, $4, $5, $6 }' | sort
}

# wait_same: until B lists every entry A lists (up to 30 s); prints the
# difference when they stay apart.
wait_same() {
	local i a b
	for ((i = 0; i < 150; i++)); do
		a=$(conns "$NS_D")
		b=$(conns "$NS_B")
		if [ -n "$a" ] && [ "$a" = "$b" ]; then
			SAME=$a
			return 0
		fi
		sleep 0.2
	done
	ktap_diag "A and B differ:"
	diff <(echo "$a") <(echo "$b") | sed 's/^/#   /' >&2
	return 1
}

if ! setup; then
	for ((n = 1; n <= 13; n++)); do ktap_fail "setup"; done
	ktap_exit
fi

# 1. Daemons.
nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 --syncid $SYNCID
r1=$?
nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid $SYNCID
r2=$?
la=$(nsx "$NS_D" ipvsadm -L --daemon)
lb=$(nsx "$NS_B" ipvsadm -L --daemon)
ktap_diag "A: $la"
ktap_diag "B: $lb"
[ $r1 = 0 ] && [ $r2 = 0 ] &&
	[[ "$la" == *"master sync daemon (mcast=s0, syncid=$SYNCID"* ]] &&
	[[ "$lb" == *"backup sync daemon (mcast=s1, syncid=$SYNCID"* ]]
ktap_check "daemons start and are listed" [ $? = 0 ]

nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 2>/dev/null
r=$?
ps=$(ps -eo comm | grep -c '^ipvs-[mb]:')
ktap_diag "second master start: $r; sync threads: $ps"
[ $r != 0 ] && [ "$ps" -ge 2 ]
ktap_check "a second master is refused (EEXIST); kernel threads run" [ $? = 0 ]

# 2. Connections through A, learned by B. UDP flows send 3 datagrams each
# (the sync threshold); TCP connections carry a request and close.
udp_flows() {
	local n=$1 base=$2
	local e=0
	for _ in 1 2 3; do
		e=$((e + $(requests udp "$VIP" 80 "$n" --sport-base "$base")))
	done
	echo $e
}

# requests ARGS...: ipvs-client ARGS; the number of requests that failed.
requests() {
	nsx "$NS_C" "$CLIENT" "$@" | grep -c ERR
}

# Batches of at most 100 connections, each followed by the comparison (a
# closed TCP connection lingers only 2 minutes in TIME_WAIT, less than a
# thousand connections take under a loaded emulator); the entries both
# tables held at each comparison add up.
both sysctl -qw net.ipv4.vs.sync_version=1
seen=$(mktemp)
errs=0
same=0
batch() {
	local e
	if [ "$1" = udp ]; then
		e=$(udp_flows "$2" "$3")
	else
		e=$(requests "$@")
	fi
	errs=$((errs + e))
	if wait_same; then
		echo "$SAME" | awk '{ print $1, $2 == "ASSURED" || $2 == "NONE" ? "tpl" : "conn", $3, $4, $5 }' >> "$seen"
	else
		same=1
	fi
}
for _ in 1 2 3 4; do batch tcp "$VIP" 80 90; done
batch tcp "$VIP" 81 100
batch tcp "$VIP" 82 100
for _ in 1 2 3; do batch tcp "$VIP6" 80 100; done
batch udp 100 40000
batch udp 100 40100
ktap_diag "failed requests: $errs"
ktap_check "sync_version 1: B learns A's connections and templates" [ $same = 0 ]
n=$(sort -u "$seen" | wc -l)
kinds=$(sort -u "$seen" | awk '{ k = $1 " " $2; if ($4 ~ /^\[/) k = k " IPv6"; print k }' | sort | uniq -c |
	tr -s ' ' | tr '\n' ',')
ktap_diag "distinct entries B matched: $n ($kinds)"
ktap_diag "per virtual address: $(sort -u "$seen" | awk '{ print $1, $4 }' | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
rm -f "$seen"
[ "$n" -ge 1000 ] && [ $errs = 0 ]
ktap_check "over 1,000 entries of every kind" [ $? = 0 ]

# UDP entries expire on A after 20 s, and B's with them (the record's timeout).
gone=1
for ((i = 0; i < 200; i++)); do
	ua=$(conns "$NS_D" | grep -c '^UDP')
	ub=$(conns "$NS_B" | grep -c '^UDP')
	if [ "$ua" = 0 ] && [ "$ub" = 0 ]; then gone=0; break; fi
	sleep 0.2
done
ktap_diag "UDP entries left: A $ua, B $ub"
ktap_check "entries expire on B with the timeout A sent" [ $gone = 0 ]

both sysctl -qw net.ipv4.vs.sync_version=0
nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 100 >/dev/null
udp_flows 50 41000 >/dev/null
nsx "$NS_C" "$CLIENT" tcp "$VIP" 81 50 >/dev/null
wait_same
ktap_check "sync_version 0: B learns A's new connections" [ $? = 0 ]
ktap_diag "B's entries: $(conns "$NS_B" | wc -l)"

origins=$(nsx "$NS_B" awk 'NR > 1 { print $(NF - 1) }' /proc/net/ip_vs_conn_sync | sort | uniq -c | tr -s ' ')
ktap_diag "B's origins:$origins"
[[ "$origins" =~ ^\ [0-9]+\ SYNC$ ]]
ktap_check "B marks every learned entry SYNC in /proc/net/ip_vs_conn_sync" [ $? = 0 ]
origins=$(nsx "$NS_D" awk 'NR > 1 { print $(NF - 1) }' /proc/net/ip_vs_conn_sync | sort -u)
[ "$origins" = LOCAL ]
ktap_check "A's entries are LOCAL" [ $? = 0 ]

# backup_only: a director whose backup daemon runs leaves packets alone. B
# connects to the VIP itself (its requests pass the LOCAL_OUT hook).
ip -n "$NS_B" route add "$VIP/32" dev s1
local_entries() {
	nsx "$NS_B" awk 'NR > 1 && $(NF - 1) == "LOCAL"' /proc/net/ip_vs_conn_sync | wc -l
}
nsx "$NS_B" sysctl -qw net.ipv4.vs.backup_only=1
nsx "$NS_B" timeout 2 bash -c "echo > /dev/tcp/$VIP/80" 2>/dev/null
with=$(local_entries)
nsx "$NS_B" sysctl -qw net.ipv4.vs.backup_only=0
nsx "$NS_B" timeout 2 bash -c "echo > /dev/tcp/$VIP/80" 2>/dev/null
without=$(local_entries)
ktap_diag "B's own entries: $with with backup_only, $without without"
[ "$with" = 0 ] && [ "$without" -ge 1 ]
ktap_check "backup_only: a backup director does not balance" [ $? = 0 ]

# 4. Stop.
nsx "$NS_D" ipvsadm --stop-daemon master && nsx "$NS_B" ipvsadm --stop-daemon backup
r=$?
la=$(nsx "$NS_D" ipvsadm -L --daemon)
ps=$(ps -eo comm | grep -c '^ipvs-[mb]:')
ktap_diag "stop: $r; listed after: '$la'; threads: $ps"
[ $r = 0 ] && [ -z "$la" ] && [ "$ps" = 0 ]
ktap_check "both daemons stop; their threads are gone" [ $? = 0 ]
err=$(nsx "$NS_B" ipvsadm --stop-daemon backup 2>&1)
ktap_diag "second stop: $err"
[[ "$err" == *"No daemon is running"* ]]
ktap_check "a second stop finds no daemon (ESRCH)" [ $? = 0 ]

# 5. An IPv6 group on another port, two threads each (sync_ports 2: ports
# 8900 and 8901).
both sysctl -qw net.ipv4.vs.sync_ports=2 net.ipv4.vs.sync_version=1
nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 --syncid $SYNCID \
	--mcast-group ff02::8:81 --mcast-port 8900 &&
	nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid $SYNCID \
		--mcast-group ff02::8:81 --mcast-port 8900
r=$?
ps=$(ps -eo comm | grep -c '^ipvs-[mb]:')
lb=$(nsx "$NS_B" ipvsadm -L --daemon)
ktap_diag "IPv6 group: $r, threads: $ps; B: $lb"
errs=$(requests tcp "$VIP" 80 40)
errs+=" $(requests tcp "$VIP6" 80 40)"
ktap_diag "failed requests: $errs"
[ $r = 0 ] && [ "$ps" = 4 ] && wait_same
ktap_check "an IPv6 group with two threads per daemon carries the connections" [ $? = 0 ]

# 6. The namespaces go with their daemons running: the threads stop.
cleanup
gone=1
for ((i = 0; i < 100; i++)); do
	if [ "$(ps -eo comm | grep -c '^ipvs-[mb]:')" = 0 ]; then gone=0; break; fi
	sleep 0.2
done
ktap_check "deleting the namespaces stops their daemons" [ $gone = 0 ]

ktap_exit
