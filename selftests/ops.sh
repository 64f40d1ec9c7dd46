#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# One-packet scheduling (ipvsadm -o, --ops), differential.
#
#   client -> director (VIP 10.0.100.1) -> rs1..rs3 (NAT, -m), rr:
#             UDP VIP:80 -o, UDP VIP:81 -o -p 60
#
# One client socket (one source port) sends N datagrams to each service.
# Every datagram of a one-packet service is scheduled on its own, so the
# real servers of VIP:80 each get N/3 of them; the connection of each
# datagram goes as soon as it is sent, so `ipvsadm -Lnc` shows none, the
# real servers count no connection afterwards and the service counts N
# connections. Persistence still holds on VIP:81: its template sends all N
# to one real server and is the only entry listed.
#
# The real servers count the datagrams they receive (Udp InDatagrams of
# their namespace): their answers are not translated back (no connection
# knows them), as upstream.
#
# The scenario runs under the C IPVS (the reference) and then under
# $IPVS_IMPL in the same boot, in fresh namespaces; the transcripts must be
# identical. With --impl c this compares the oracle with itself.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=30
PER=$((N / 3))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" ops; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# rx: the datagrams each real server received so far ("a b c").
rx() {
	local i out=""
	for ((i = 1; i <= 3; i++)); do
		out+="$(nsx "${NS_RS[i]}" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2 }' /proc/net/snmp) "
	done
	echo "${out% }"
}

# send PORT SPORT: N datagrams from one socket, CIP:SPORT -> VIP:PORT.
send() {
	nsx "$NS_C" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
for _ in range(int(sys.argv[4])):
    s.sendto(b"hello\n", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.02)
' "$VIP" "$1" "$2" "$N"
}

# delta BEFORE AFTER: per-server differences.
delta() {
	local -a b a
	read -r -a b <<< "$1"
	read -r -a a <<< "$2"
	echo "$((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2]))"
}

# phase PORT SPORT: send, wait for the real servers to have all N (or 5 s),
# print what they got, the connection entries of the service (expiry
# masked), the servers' ActiveConn/InActConn and the service's Conns,
# InPkts and OutPkts (once the C estimator has folded its counters).
phase() {
	local port=$1 sport=$2 before after d i s
	before=$(rx)
	send "$port" "$sport"
	for ((i = 0; i < 50; i++)); do
		d=$(delta "$before" "$(rx)")
		[ $(( ${d// /+} )) -ge "$N" ] && break
		sleep 0.1
	done
	echo "rx$port $d"
	nsx "$NS_D" ipvsadm -Lnc | awk -v v="$VIP:$port" '$5 == v { $2 = "-"; print "lnc" substr(v, index(v, ":") + 1), $0 }'
	nsx "$NS_D" ipvsadm -Ln -u "$VIP:$port" | awk -v p="$port" '$1 == "->" && $2 ~ /^10\./ { print "dest" p, $2, $5, $6 }'
	for ((i = 0; i < 30; i++)); do
		s=$(nsx "$NS_D" ipvsadm -Ln --stats -u "$VIP:$port" | awk -v v="$VIP:$port" '$2 == v { print $3, $4, $5 }')
		[ "${s%% *}" = "$N" ] && break
		sleep 1
	done
	echo "stats$port $s"
}

# scenario IMPL FILE: the whole scenario under IMPL, transcript into FILE.
scenario() {
	local impl=$1 out=$2 i
	ipvs_use "$impl" || return 1
	topo_nat 3 || return 1
	start_servers 3 80 --port 81 || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr -o || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:81" -s rr -o -p 60 || return 1
	for ((i = 1; i <= 3; i++)); do
		nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || return 1
		nsx "$NS_D" ipvsadm -a -u "$VIP:81" -r "${RIP[i]}:81" -m || return 1
	done
	{
		nsx "$NS_D" ipvsadm -Ln -u "$VIP:80" | awk '$1 == "UDP" { print "svc80", $0 }'
		phase 80 40000
		phase 81 40001
	} > "$out" 2>&1
}

ref=c
cand=$IPVS_IMPL
: > "$work/notes"
scenario "$ref" "$work/ref.txt" || echo "the $ref scenario could not be set up" >> "$work/notes"
cleanup_ns
scenario "$cand" "$work/cand.txt" || echo "the $cand scenario could not be set up" >> "$work/notes"
cleanup_ns

ktap_header 9
ktap_diag "reference: $ref, candidate: $cand ($(ipvs_which))"
[ -s "$work/notes" ] && ktap_diag "$(cat "$work/notes")"

# Checks on each transcript, then the comparison.
for who in ref cand; do
	if [ $who = ref ]; then impl=$ref; else impl=$cand; fi
	f=$work/$who.txt
	touch "$f"
	# -o, rr: every datagram of the one flow scheduled anew.
	if grep -qx "rx80 $PER $PER $PER" "$f" && grep -q '^svc80 .* ops' "$f"; then
		ktap_pass "$impl: -o: $N datagrams of one client port spread $PER each over rs1..rs3"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$impl: -o: $N datagrams of one client port spread $PER each over rs1..rs3"
	fi
	# No lingering entry, no connection left on the servers, N counted.
	if ! grep -q '^lnc80 ' "$f" && [ "$(grep -c '^dest80 .* 0 0$' "$f")" = 3 ] &&
		grep -qx "stats80 $N $N 0" "$f"; then
		ktap_pass "$impl: -o: no connection entry left, $N connections counted"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$impl: -o: no connection entry left, $N connections counted"
	fi
	# -o -p: one server, one template, nothing else.
	r=$(sed -n 's/^rx81 //p' "$f")
	if [[ " $r " =~ ^(\ 0)*\ $N(\ 0)*\ $ ]] &&
		[ "$(grep -c '^lnc81 ' "$f")" = 1 ] &&
		grep -q "^lnc81 UDP - NONE $CIP:0 $VIP:81 10\.1\.[123]\.2:81\$" "$f" &&
		[ "$(grep -c '^dest81 .* 0 0$' "$f")" = 3 ]; then
		ktap_pass "$impl: -o -p: all $N to one real server, only the template listed"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$impl: -o -p: all $N to one real server, only the template listed"
	fi
	# The datagrams to VIP:81 count as connections too.
	if grep -qx "stats81 $N $N 0" "$f"; then
		ktap_pass "$impl: -o -p: $N connections counted"
	else
		ktap_diag "$impl transcript:"$'\n'"$(cat "$f")"
		ktap_fail "$impl: -o -p: $N connections counted"
	fi
done

if [ -s "$work/ref.txt" ] && cmp -s "$work/ref.txt" "$work/cand.txt"; then
	ktap_pass "$cand gives the same transcript as $ref"
else
	ktap_diag "$(diff "$work/ref.txt" "$work/cand.txt")"
	ktap_fail "$cand gives the same transcript as $ref"
fi

ktap_exit
