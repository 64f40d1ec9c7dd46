#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# Connection synchronisation between the C IPVS and ours, on the wire, both
# directions, sync_version 1 and 0, in one boot (the script switches the
# implementations itself: it does not depend on $IPVS_IMPL).
#
#   client -> director A (master) -> rs1, rs2 (NAT)
#             A s0 10.9.0.1 ---- s1 10.9.0.2 B (backup, same services)
#
# Capture (per implementation X): A and B run X. Per version, a round of
# traffic from a client address of its own (v1: 10.0.0.2 and fd00::2, v0:
# 10.0.0.3), from one process: TCP connections that complete, TCP
# connections held open (ESTABLISHED), UDP flows of 3 datagrams (the sync
# threshold), a persistent service (templates), a persistent firewall-mark
# service (mark 5, set by nftables; templates of protocol IP), a persistent
# UDP service with the SIP persistence engine (--pe sip: two Call-IDs of 3
# datagrams each; their templates carry the Call-ID in version 1's engine
# options, which version 0 lacks) and, for v1, IPv6. tcpdump on B's s1 records the sync datagrams until B's table has
# come to A's (and tcpdump has every datagram B received). Recorded per
# version: A's and B's `ipvsadm -Lnc` (protocol, state, client, virtual
# address, real server; no timers).
#
# Replay: the other implementation Y builds B again with the same services,
# linked to a sender namespace R, and starts a backup; tools/lib/
# ipvs-sync-send replays the captures' datagrams from R. B's table must
# come to what X's own backup learned from the same datagrams (which is
# X's master's table: the script says where they differ), and B's
# /proc/net/ip_vs_conn_sync must mark every entry SYNC. Version 0 carries
# no timeouts (the backup takes its own per state, 3 minutes for
# templates) and no firewall marks. The firewall-mark NAT templates have
# port 0, which no real server has: a backup keeps them without a real
# server ("unbound"), as upstream does.
#
# Hostile datagrams, at the same backup afterwards: `ipvs-sync-send
# hostile` (see its usage; B's link has a 65535-byte MTU so that its
# 65507-byte datagrams count). Its last message is valid: its connection
# must appear (the daemon survived and took everything before it); the
# entries the corpus's deterministic cases created must be exactly those
# upstream's receiver creates (`ipvs-sync-send hostile --expect`); no
# socket buffer overrun; no splat (selftests/run); and the C IPVS and ours
# must end with the same table, random cases included (but for entries
# due within 30 s, whose presence depends on the time of reading).
#
# Order: C captures; ours replays the C capture, takes the hostile corpus
# and captures; C replays ours and takes the corpus.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

command -v tcpdump >/dev/null || ktap_skip_all "tcpdump not installed"
command -v nft >/dev/null || ktap_skip_all "nft not installed"
ipvs_available c || ktap_skip_all "the C IPVS is not available"
ipvs_available rust || ktap_skip_all "our IPVS is not built"

SEND=$TOOLS/lib/ipvs-sync-send
SYNCID=7
VERSIONS=(1 0)
# Client addresses of each round.
declare -A CADDRS=([1]="10.0.0.2 fd00::2" [0]="10.0.0.3")
declare -A SPORT=([1]=41000 [0]=42000)
HELD=4
# Real servers (the hostile corpus also names a third one, unknown here).
NRS=2

ktap_header 15

work=$(mktemp -d)
rm_work() { save_artifacts "$work" sync_interop; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

NS_B=
NS_R=

# both CMD...: run CMD in A and in B.
both() {
	nsx "$NS_D" "$@" && nsx "$NS_B" "$@"
}

# services NS: the services of A and B (one ipvsadm, restoring).
services() {
	local i rules="-A -t $VIP:80 -s rr
-A -u $VIP:80 -s rr
-A -t $VIP:81 -s rr -p 300
-A -t $VIP:84 -s rr
-A -t [$VIP6]:80 -s rr
-A -f 5 -s rr -p 300
-A -u $VIP:5060 -s rr -p 300 --pe sip
"
	for ((i = 1; i <= NRS; i++)); do
		rules+="-a -t $VIP:80 -r 10.1.$i.2:80 -m
-a -u $VIP:80 -r 10.1.$i.2:80 -m
-a -t $VIP:81 -r 10.1.$i.2:81 -m
-a -t $VIP:84 -r 10.1.$i.2:84 -m
-a -t [$VIP6]:80 -r [fd00:1:$i::2]:80 -m
-a -f 5 -r 10.1.$i.2:80 -m
-a -u $VIP:5060 -r 10.1.$i.2:5060 -m
"
	done
	nsx "$1" ipvsadm -R <<< "$rules"
}

# backup_ns MTU: B with the services, linked to a fresh namespace R (the
# sender of replays and hostile datagrams) by R's r0 and B's s1, with the
# backup daemon on s1.
backup_ns() {
	ns_add NS_B backup || return 1
	ns_add NS_R sender || return 1
	veth_add "$NS_R" r0 "$NS_B" s1 || return 1
	ip -n "$NS_R" link set r0 mtu "$1" || return 1
	ip -n "$NS_B" link set s1 mtu "$1" || return 1
	ip -n "$NS_R" addr add 10.9.0.1/24 dev r0 || return 1
	ip -n "$NS_B" addr add 10.9.0.2/24 dev s1 || return 1
	services "$NS_B" || return 1
	nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid $SYNCID
}

# conns NS: the connection entries of NS without their timers, one per line:
# protocol, state, client, virtual address, real server and, for a SIP
# template, the engine and its Call-ID (sorted).
conns() {
	nsx "$1" ipvsadm -Lnc --persistent-conn | awk 'NR > 2 { print $1, $3, $4, $5, $6, $7, $8 }' | sort
}

# round_conns NS VER: the entries of round VER's clients.
round_conns() {
	local re="" a
	for a in ${CADDRS[$2]}; do
		[[ $a == *:* ]] && a="\\[$a\\]"
		re+="${re:+|}${a//./\\.}"
	done
	conns "$1" | awk -v re="^($re):" '$3 ~ re'
}

# wait_table NS VER FILE OUT [SECONDS]: until round VER's entries in NS are
# FILE's (default 20 s), then writes them to OUT; prints the difference
# when they stay apart.
wait_table() {
	local end=$((SECONDS + ${5:-20})) cur want
	want=$(cat "$3")
	while :; do
		cur=$(round_conns "$1" "$2")
		[ -n "$cur" ] && [ "$cur" = "$want" ] && break
		[ $SECONDS -ge $end ] && break
		sleep 0.3
	done
	echo "$cur" > "$4"
	[ -n "$cur" ] && [ "$cur" = "$want" ] && return 0
	ktap_diag "differs from $(basename "$3") (-want +got):"
	diff <(cat "$3") <(echo "$cur") | grep '^[<>]' | sed 's/^/  /' | head -40 >&2
	return 1
}

# udp_stats NS: UDP datagrams received and receive buffer overruns in NS.
udp_stats() {
	nsx "$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2, $6 }' /proc/net/snmp
}

# sync_origins NS: "N SYNC" if every entry of NS is marked SYNC.
sync_origins() {
	nsx "$1" awk 'NR > 1 { print $(NF - 1) }' /proc/net/ip_vs_conn_sync | sort | uniq -c |
		tr -s ' ' | sed 's/^ //' | paste -sd ' '
}

# ---------------------------------------------------------------------------
# Capture.

# One round of traffic through A, from one process (every process start
# costs under emulation), sys.argv: IPv4 client, IPv6 client or "-", UDP
# source port base, held connections, report file. It holds its
# connections to VIP:84 open (the real servers' listeners there never
# accept: the kernel completes the handshake), each having sent a byte
# (its third packet: the sync threshold, before which an established
# connection is not synced);
# TCP connections to VIP:80, :81 (persistent) and :82 (firewall mark 5,
# persistent) and, given an IPv6 client, [VIP6]:80, read their answer to
# the end; UDP flows send 3 datagrams each (the sync threshold), to VIP:80
# and, with a Call-ID each, to VIP:5060. Writes
# "ok" or the error to the report file, then sleeps until killed.
TRAFFIC_PY='
import socket, sys, time
c4, c6, report = sys.argv[1], sys.argv[2], sys.argv[5]
sport, held = int(sys.argv[3]), int(sys.argv[4])
VIP, VIP6 = "10.0.100.1", "fd00:100::1"
def tcp(src, dst, port, n):
    for _ in range(n):
        with socket.create_connection((dst, port), timeout=10, source_address=(src, 0)) as s:
            while s.recv(256):
                pass
keep = []
try:
    for _ in range(held):
        s = socket.create_connection((VIP, 84), timeout=10, source_address=(c4, 0))
        s.send(b"x")
        keep.append(s)
    tcp(c4, VIP, 80, 6)
    for i in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((c4, sport + i))
            u.settimeout(10)
            for _ in range(3):
                u.sendto(b"x", (VIP, 80))
                u.recv(256)
    tcp(c4, VIP, 81, 3)
    tcp(c4, VIP, 82, 3)
    for i in range(2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((c4, sport + 10 + i))
            u.settimeout(10)
            m = ("OPTIONS sip:rs SIP/2.0\r\nCall-ID: interop-%s-%d\r\n"
                 "Content-Length: 0\r\n\r\n" % (c4, i)).encode()
            for _ in range(3):
                u.sendto(m, (VIP, 5060))
                u.recv(256)
    if c6 != "-":
        tcp(c6, VIP6, 80, 3)
    msg = "ok"
except OSError as e:
    msg = repr(e)
with open(report, "w") as f:
    f.write(msg + "\n")
time.sleep(3600)
'

# traffic VER: round VER's connections through A; true once they are made.
traffic() {
	local ver=$1 c4 c6 i report=$work/traffic.$1
	read -r c4 c6 <<< "${CADDRS[$ver]}"
	rm -f "$report"
	bg "$NS_C" python3 -c "$TRAFFIC_PY" "$c4" "${c6:--}" "${SPORT[$ver]}" $HELD "$report"
	for ((i = 0; i < 600; i++)); do
		if [ -s "$report" ]; then
			[ "$(cat "$report")" = ok ] && return 0
			ktap_diag "traffic: $(cat "$report")"
			return 1
		fi
		sleep 0.1
	done
	ktap_diag "traffic: no report"
	return 1
}

capture_setup() {
	topo_nat $NRS || return 1
	start_servers $NRS 80 --port 81 --port 82 --port 5060 --ipv6 --hold-port 84 || return 1
	ip -n "$NS_C" addr add 10.0.0.3/24 dev c0 || return 1
	nsx "$NS_D" nft -f - <<- EOF || return 1
	table ip ipvst {
		chain pre {
			type filter hook prerouting priority mangle;
			ip daddr $VIP tcp dport 82 meta mark set 5
		}
	}
	EOF
	ns_add NS_B backup || return 1
	veth_add "$NS_D" s0 "$NS_B" s1 || return 1
	ip -n "$NS_D" addr add 10.9.0.1/24 dev s0 || return 1
	ip -n "$NS_B" addr add 10.9.0.2/24 dev s1 || return 1
	services "$NS_D" || return 1
	services "$NS_B" || return 1
	nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 --syncid $SYNCID &&
		nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid $SYNCID
}

# start_tcpdump FILE: record the sync datagrams reaching B's s1.
TCPDUMP_PID=
start_tcpdump() {
	local i
	nsenter --net="/run/netns/$NS_B" tcpdump -i s1 -n -U --immediate-mode -s 0 -Z root \
		-w "$1" udp dst port 8848 2> "$1.log" &
	TCPDUMP_PID=$!
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# stop_tcpdump [FILE N]: stop it, once FILE holds N packets (up to 10 s).
stop_tcpdump() {
	local i
	[ -n "$TCPDUMP_PID" ] || return 0
	for ((i = 0; $# == 2 && i < 50; i++)); do
		[ "$(tcpdump -r "$1" 2>/dev/null | wc -l)" -ge "$2" ] && break
		sleep 0.2
	done
	kill -INT "$TCPDUMP_PID" 2>/dev/null
	wait "$TCPDUMP_PID" 2>/dev/null
	TCPDUMP_PID=
}
CLEANUP_HOOKS+=(stop_tcpdump)

# stable_round_conns NS VER: round_conns, read until two reads agree (a
# table read in several pieces while entries come and go may show one
# twice or miss one).
stable_round_conns() {
	local a b i
	a=$(round_conns "$1" "$2")
	for ((i = 0; i < 10; i++)); do
		b=$(round_conns "$1" "$2")
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$a"
}

# capture X: results "X master to X backup" per version; files
# $work/X.{master,backup}.VER and $work/X.VER.pcap.
capture() {
	local x=$1 ver ok in0 in1
	if ! capture_setup; then
		for ver in "${VERSIONS[@]}"; do ktap_fail "$x capture v$ver: setup"; done
		cleanup_ns
		return
	fi
	tdiag "$x capture: set up"
	for ver in "${VERSIONS[@]}"; do
		both sysctl -qw net.ipv4.vs.sync_version="$ver"
		ok=1
		read -r in0 _ <<< "$(udp_stats "$NS_B")"
		start_tcpdump "$work/$x.$ver.pcap" || ok=0
		traffic "$ver" || ok=0
		tdiag "$x v$ver: traffic sent"
		stable_round_conns "$NS_D" "$ver" > "$work/$x.master.$ver"
		# B learns everything (the master sends partial messages after
		# 2 s); the capture then holds every datagram.
		wait_table "$NS_B" "$ver" "$work/$x.master.$ver" "$work/$x.backup.$ver" 30 || ok=0
		# ... and tcpdump every datagram B received.
		read -r in1 _ <<< "$(udp_stats "$NS_B")"
		stop_tcpdump "$work/$x.$ver.pcap" $((in1 - in0))
		tdiag "$x v$ver: captured $((in1 - in0)) datagrams," \
			"$(wc -l < "$work/$x.master.$ver") entries"
		ktap_check "$x master -> $x backup, sync_version $ver: B learns A's table" [ $ok = 1 ]
	done
	nsx "$NS_D" ipvsadm --stop-daemon master
	nsx "$NS_B" ipvsadm --stop-daemon backup
	cleanup_ns
}

# replay X: the current implementation (Y) as backup B (already set up),
# fed X's captures.
replay() {
	local x=$1 y=$IPVS_CURRENT ver ok sent=1 n origins
	n=$(nsx "$NS_R" "$SEND" replay "$work/$x.1.pcap" "$work/$x.0.pcap" --dev r0) || sent=0
	ktap_diag "$n"
	for ver in "${VERSIONS[@]}"; do
		ok=$sent
		wait_table "$NS_B" "$ver" "$work/$x.backup.$ver" "$work/$y.from-$x.$ver" || ok=0
		if ! cmp -s "$work/$x.backup.$ver" "$work/$x.master.$ver"; then
			ktap_diag "($x's own backup differs from its master:"
			diff "$work/$x.master.$ver" "$work/$x.backup.$ver" | grep '^[<>]' |
				sed 's/^/  /' >&2
			ktap_diag ")"
		fi
		ktap_check "$x master -> $y backup, sync_version $ver: the table $x's backup learned" \
			[ $ok = 1 ]
	done
	tdiag "$x -> $y: replayed"
	origins=$(sync_origins "$NS_B")
	ktap_diag "$y backup's origins: $origins"
	[[ "$origins" =~ ^[0-9]+\ SYNC$ ]]
	ktap_check "$y backup marks the entries SYNC in /proc/net/ip_vs_conn_sync" [ $? = 0 ]
}

# ---------------------------------------------------------------------------
# Hostile datagrams.

# hostile Y: on the backup B (already set up), results "survives" and
# "creates what upstream creates"; file $work/Y.hostile (B's table but for
# the replayed entries).
hostile() {
	local y=$IPVS_CURRENT ok=0 errs0 errs1 out got i
	read -r _ errs0 <<< "$(udp_stats "$NS_B")"
	out=$(nsx "$NS_R" "$SEND" hostile --dev r0 --syncid $SYNCID \
		--expect-out "$work/hostile.expect" 2>&1)
	tdiag "$y: $out"
	# The corpus ends with a valid message from 10.0.78.1:4242, looked for
	# in /proc/net/ip_vs_conn (cheaper than ipvsadm).
	for ((i = 0; i < 100; i++)); do
		if nsx "$NS_B" grep -q '^TCP 0A004E01 1092 ' /proc/net/ip_vs_conn; then
			ok=1
			break
		fi
		sleep 0.2
	done
	read -r _ errs1 <<< "$(udp_stats "$NS_B")"
	# Entries due within 30 s (of a state with a short timeout: 2 s for
	# TCP NONE, 10 s for CLOSE) are left out: whether they are still
	# there depends on the time of reading.
	nsx "$NS_B" ipvsadm -Lnc | awk 'NR > 2 && $4 !~ /^(10\.0\.0\.[23]|\[fd00::2\]|10\.0\.78\.1):/ {
		split($2, t, ":"); if (t[1] * 60 + t[2] >= 30) print $1, $3, $4, $5, $6 }' |
		sort > "$work/$y.hostile"
	ktap_diag "$y: $(wc -l < "$work/$y.hostile") entries; receive buffer errors: $((errs1 - errs0))"
	[ "$errs0" = "$errs1" ] || ok=0
	ktap_check "$y backup survives the hostile corpus (a valid message after it is applied)" \
		[ $ok = 1 ]
	got=$(awk '$3 ~ /^(10\.0\.77\.1|\[fd00:77::1\]):/ { print $3 }' "$work/$y.hostile" | sort -u)
	if [ "$got" = "$(cat "$work/hostile.expect")" ]; then
		ktap_pass "$y backup creates what upstream creates from the corpus"
	else
		ktap_diag "$y: created (-expected +got):"
		diff "$work/hostile.expect" <(echo "$got") | grep '^[<>]' | sed 's/^/  /' |
			head -40 >&2
		ktap_fail "$y backup creates what upstream creates from the corpus"
	fi
	tdiag "$y hostile: checked"
}

# as_backup X: the current implementation as backup: replay X's captures,
# then the hostile corpus (5 results).
as_backup() {
	local y=$IPVS_CURRENT n
	if ! backup_ns 65535; then
		for n in 1 2 3 4 5; do ktap_fail "$y backup: setup"; done
		cleanup_ns
		return
	fi
	tdiag "$y backup: set up"
	replay "$1"
	hostile
	nsx "$NS_B" ipvsadm --stop-daemon backup
	cleanup_ns
}

# ---------------------------------------------------------------------------

# tdiag WHAT: elapsed time.
T0=$SECONDS
tdiag() { ktap_diag "[$((SECONDS - T0)) s] $*"; }

if ipvs_use c; then
	capture c
else
	for ver in "${VERSIONS[@]}"; do ktap_fail "c capture v$ver: cannot load the C IPVS"; done
fi

if ipvs_use rust; then
	as_backup c
	capture rust
else
	for ((n = 0; n < 7; n++)); do ktap_fail "cannot load our IPVS"; done
fi

if ipvs_use c; then
	as_backup rust
else
	for ((n = 0; n < 5; n++)); do ktap_fail "cannot load the C IPVS"; done
fi

if [ -s "$work/c.hostile" ] && cmp -s "$work/c.hostile" "$work/rust.hostile"; then
	ktap_pass "hostile corpus: the same table under both"
else
	ktap_diag "hostile tables (-c +rust):"
	diff "$work/c.hostile" "$work/rust.hostile" 2>&1 | grep '^[<>]' | sed 's/^/  /' |
		head -60 >&2
	ktap_fail "hostile corpus: the same table under both"
fi
ipvs_unload
tdiag "done"
ktap_exit
