#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# /proc/sys/net/ipv4/vs sysctls, under the C IPVS and ours in one boot:
#  - the same set of sysctls with the same defaults (but those in NOT_OURS,
#    and sync_qlen_max whose default depends on free memory);
#  - writing each of a set of values (valid, out of range, negative,
#    garbage, vectors) to each sysctl gives the same result (errno) and the
#    same value read back, but for those in REJECTED, where ours refuses
#    every write that would change the value;
# and, for each implementation:
#  - sloppy_tcp: a bare ACK to a virtual service (no SYN seen) creates a
#    connection only when sloppy_tcp is 1;
#  - pmtu_disc=0: a tunnel service no longer answers "fragmentation needed"
#    for DF packets too big for the tunnel, it fragments the outer packet;
#    so a DF upload of full-sized segments gets through while the client
#    learns no smaller path MTU;
#  - defense modes: with amemthresh above free memory, drop_entry,
#    drop_packet and secure_tcp written 1 read back 2 (activated), and 1
#    again a second after amemthresh is 0;
#  - drop_packet=3 with am_droprate=1 drops every new connection;
#  - secure_tcp=3: a client's ACK leaves a connection in SYNACK instead of
#    establishing it;
#  - run_estimation=0: the rates stay 0 under traffic (the C IPVS also
#    stops updating the counters it shows, which its estimator sums);
#  - ignore_tunneled: a SYN to the virtual service inside an IP-in-IP packet
#    to the director, decapsulated there, makes a connection with 0 and
#    with 1 alike: the outer packet is marked, but decapsulation
#    (skb_scrub_packet) clears the mark in this kernel;
#  - nat_icmp_send=1: a UDP datagram from a NAT real server's service port
#    without a connection gets "port unreachable" from the director.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

SYS=/proc/sys/net/ipv4/vs
BULK=$TOOLS/lib/ipvs-bulk
impls=(c rust)
# Upstream sysctls ours does not offer, with the reason.
NOT_OURS="est_cpulist"	# a CPU list for estimator kthreads; ours estimates from a timer
# Ours only: from a newer upstream than this kernel's C IPVS (Linux 7.1 and
# 7.2), checked by svc_table.sh and conn_table.sh.
NEWER="svc_lfactor conn_lfactor conn_max"
# Ours offers these with upstream's default but refuses writes that change them:
# conntrack, cache_bypass, schedule_icmp (only 0: the behaviour of 1 is not
# implemented), est_nice (no estimator kthreads).
REJECTED="conntrack cache_bypass schedule_icmp est_nice"

ktap_header 19

# defaults IMPL: "name=value" for each sysctl of a fresh namespace.
defaults() {
	local ns f
	ns_add ns sysctl || return 1
	nsx "$ns" ipvsadm -A -t 10.9.9.9:1 >/dev/null 2>&1
	# One process for all of them: "name=value".
	nsx "$ns" grep -H . "$SYS"/* 2>/dev/null | sed "s|^$SYS/||; s|:|=|" | tr -s '\t ' ' '
	nsx "$ns" ipvsadm -C
	ip netns del "$ns"
}

# writes: for each sysctl and value, one line "name 'value' result readback"
# (result: ok or the errno; readback "orig" when unchanged), restoring the
# original value after each write.
writes() {
	local ns
	ns_add ns sysctlw || return 1
	nsx "$ns" ipvsadm -A -t 10.9.9.9:1 >/dev/null 2>&1
	nsx "$ns" python3 - "$SYS" $NOT_OURS <<- 'EOF'
	import errno, os, sys
	d, skip = sys.argv[1], set(sys.argv[2:])
	vals = ["0", "1", "2", "3", "4", "5", "8", "64", "100", "-1", "-5", "2147483647",
	        "2147483648", "-2147483649", "0x10", "abc", "", "1 2", "3 10", "10 3", "0 0",
	        "-1 5", "20 0", "-20", "19", "20"]
	def rd(n):
	    try:
	        with open(f"{d}/{n}") as f:
	            return " ".join(f.read().split())
	    except OSError as e:
	        return "E" + errno.errorcode[e.errno]
	def wr(n, v):
	    try:
	        fd = os.open(f"{d}/{n}", os.O_WRONLY)
	    except OSError as e:
	        return "open:" + errno.errorcode[e.errno]
	    try:
	        os.write(fd, (v + "\n").encode())
	        return "ok"
	    except OSError as e:
	        return errno.errorcode[e.errno]
	    finally:
	        os.close(fd)
	for n in sorted(os.listdir(d)):
	    if n in skip:
	        continue
	    orig = rd(n)
	    for v in vals:
	        r = wr(n, v)
	        now = rd(n)
	        print(n, repr(v), r, "orig" if now == orig else now)
	        wr(n, orig)
	EOF
	nsx "$ns" ipvsadm -C
	ip netns del "$ns"
}

norm() {
	sed -E 's/^sync_qlen_max=.*/sync_qlen_max=N/' | grep -v -E "^($(tr ' ' '|' <<< "$NOT_OURS $NEWER"))=" | sort
}

ipvs_use c || ktap_skip_all "cannot load the C IPVS"
cdef=$(defaults)
cwr=$(writes)
ipvs_use rust || ktap_skip_all "cannot load the Rust IPVS"
rdef=$(defaults)
rwr=$(writes)
diff=$(diff <(norm <<< "$cdef") <(norm <<< "$rdef"))
if [ -n "$rdef" ] && [ -z "$diff" ]; then
	ktap_pass "$(wc -l <<< "$rdef") sysctls, as in C (but $NOT_OURS), same defaults"
else
	ktap_diag "C (<) and ours (>) differ: $diff"
	ktap_fail "the same sysctls as in C (but $NOT_OURS), same defaults"
fi
rej="^($(tr ' ' '|' <<< "$REJECTED")) "
apart="^($(tr ' ' '|' <<< "$REJECTED $NEWER")) "
diff=$(diff <(grep -v -E "$apart" <<< "$cwr") <(grep -v -E "$apart" <<< "$rwr") | head -40)
if [ -n "$rwr" ] && [ -z "$diff" ]; then
	ktap_pass "$(grep -c -v -E "$apart" <<< "$rwr") writes: same result and value as in C"
else
	ktap_diag "C (<) and ours (>) differ: $diff"
	ktap_fail "writes: same result and value as in C"
fi
changed=$(grep -E "$rej" <<< "$rwr" | grep -v ' orig$')
accepted=$(grep -E "$rej" <<< "$rwr" | grep -E " '1' ok ")
if [ -n "$(grep -E "$rej" <<< "$rwr")" ] && [ -z "$changed$accepted" ]; then
	ktap_pass "ours refuses writes to $REJECTED"
else
	ktap_diag "$changed $accepted"
	ktap_fail "ours refuses writes to $REJECTED"
fi

# A bare ACK from the client to VIP:80 (raw socket): does it make a connection?
# raw_tcp FLAGS SPORT [OUTER]: a TCP segment with FLAGS from the client to
# VIP:80, inside an IP-in-IP packet to OUTER if given; prints how many
# connections of SPORT the director has then.
raw_tcp() {
	nsx "$NS_C" python3 - "$CIP" "$VIP" "$@" <<- 'EOF'
	import socket, struct, sys
	src, dst, flags, sport = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4])
	outer = sys.argv[5] if len(sys.argv) > 5 else None
	dport = 80
	def csum(b):
	    if len(b) % 2:
	        b += b"\0"
	    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
	    while s >> 16:
	        s = (s & 0xffff) + (s >> 16)
	    return ~s & 0xffff
	tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0)
	pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
	tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
	if outer:
	    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
	                     socket.inet_aton(src), socket.inet_aton(dst))
	    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
	    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
	    s.sendto(ip + tcp, (outer, 0))
	else:
	    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
	    s.sendto(tcp, (dst, 0))
	EOF
	sleep 0.5
	nsx "$NS_D" ipvsadm -Lcn | grep -c ":$2 "
}

bare_ack() {
	raw_tcp 0x10 45678
}

# udp_from_rs I PORT: rs<I> sends a UDP datagram from PORT to the client
# (port 5555, where nothing answers: the client has a socket that ignores
# it); prints the source of the ICMP error it gets, or "none".
udp_from_rs() {
	nsx "${NS_RS[$1]}" python3 - "$CIP" "$2" <<- 'EOF'
	import socket, struct, sys, time
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.setsockopt(socket.SOL_IP, 11, 1)  # IP_RECVERR
	s.bind(("", int(sys.argv[2])))
	s.connect((sys.argv[1], 5555))
	s.send(b"x")
	time.sleep(1)
	try:
	    _, anc, _, _ = s.recvmsg(64, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
	    for lvl, typ, data in anc:
	        if lvl == socket.SOL_IP and len(data) >= 24:
	            print(socket.inet_ntoa(data[20:24]))
	            break
	    else:
	        print("none")
	except BlockingIOError:
	    print("none")
	EOF
}

# A TCP listener on rs1 port 82 that keeps connections open.
hold_server() {
	bg "${NS_RS[1]}" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 82)); s.listen(8); c = []
while True:
    c.append(s.accept()[0])'
}

# conn_state PORT SPORT: the state of the director's connection to VIP:PORT
# from client port SPORT, half a second after the client's connect()
# returned (its ACK sent); the client holds the connection for 8 s. Waiting
# for connect() rather than a fixed time keeps a slow VM's Python start-up
# out of the result.
conn_state() {
	local mark i
	mark=$(mktemp -u)
	bg "$NS_C" python3 -c "
import socket, time
s = socket.create_connection(('$VIP', $1), timeout=5, source_address=('', $2))
open('$mark', 'w').close(); time.sleep(8)"
	for ((i = 0; i < 100; i++)); do
		[ -e "$mark" ] && break
		sleep 0.1
	done
	rm -f "$mark"
	sleep 0.5
	nsx "$NS_D" ipvsadm -Lcn | awk -v c="$CIP:$2" '$4 == c { print $3 }' | head -1
}

defense_vals() {
	local n out=""
	for n in drop_entry drop_packet secure_tcp; do
		out+="$(nsx "$NS_D" cat "$SYS/$n")"
	done
	echo "$out"
}

for impl in "${impls[@]}"; do
	cleanup_ns
	ipvs_use "$impl" || { ktap_fail "$impl: load"; continue; }
	if ! topo_nat 2 || ! start_servers 1; then
		ktap_fail "$impl: setup"
		continue
	fi
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m
	off=$(bare_ack)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.sloppy_tcp=1
	on=$(bare_ack)
	if [ "$off" = 0 ] && [ "$on" = 1 ]; then
		ktap_pass "$impl: sloppy_tcp=1 lets a bare ACK start a connection, 0 does not"
	else
		ktap_diag "connections made by a bare ACK: sloppy_tcp=0: $off, =1: $on"
		ktap_fail "$impl: sloppy_tcp=1 lets a bare ACK start a connection, 0 does not"
	fi

	# pmtu_disc=0 on a tunnel real server: rs2, 1500-byte links.
	ready=$(mktemp -d)
	if ! rs_direct 2 tun "$VIP"; then
		ktap_fail "$impl: tunnel setup"
		continue
	fi
	bg "${NS_RS[2]}" "$BULK" server --port 8080 --ready-file "$ready/rs2"
	for ((j = 0; j < 300; j++)); do [ -e "$ready/rs2" ] && break; sleep 0.1; done
	rm -rf "$ready"
	ip -n "$NS_C" link set c0 gso_max_segs 1
	nsx "$NS_D" ipvsadm -A -t "$VIP:8080" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:8080" -r "${RIP[2]}:8080" -i
	nsx "$NS_D" sysctl -qw net.ipv4.vs.pmtu_disc=0
	out=$(nsx "$NS_C" timeout -k 5 90 "$BULK" client "$VIP" 8080 up 524288 --timeout 30 2>&1)
	route=$(ip -n "$NS_C" route get "$VIP" 2>&1)
	ktap_diag "$impl: $out"
	if [[ "$out" == "up ok "*" mtu=1500" ]] && ! grep -q "cache.* mtu " <<< "$route"; then
		ktap_pass "$impl: pmtu_disc=0: tunnel fragments, no fragmentation needed to the client"
	else
		ktap_diag "client: ip route get $VIP: $route"
		ktap_fail "$impl: pmtu_disc=0: tunnel fragments, no fragmentation needed to the client"
	fi
	nsx "$NS_D" sysctl -qw net.ipv4.vs.pmtu_disc=1 net.ipv4.vs.sloppy_tcp=0

	# Defense modes, driven by amemthresh (pages) against free memory.
	nsx "$NS_D" sysctl -qw net.ipv4.vs.amemthresh=2147483647
	nsx "$NS_D" sysctl -qw net.ipv4.vs.drop_entry=1 net.ipv4.vs.drop_packet=1 \
		net.ipv4.vs.secure_tcp=1
	on=$(defense_vals)
	sleep 1.2
	on2=$(defense_vals)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.amemthresh=0
	sleep 2.2
	off=$(defense_vals)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.drop_entry=0 net.ipv4.vs.drop_packet=0 \
		net.ipv4.vs.secure_tcp=0 net.ipv4.vs.amemthresh=1024
	if [ "$on" = 222 ] && [ "$on2" = 222 ] && [ "$off" = 111 ]; then
		ktap_pass "$impl: drop_entry, drop_packet, secure_tcp: 1 -> 2 short of memory, back to 1"
	else
		ktap_diag "drop_entry drop_packet secure_tcp: short of memory: $on, 1 s later $on2, then $off"
		ktap_fail "$impl: drop_entry, drop_packet, secure_tcp: 1 -> 2 short of memory, back to 1"
	fi

	# drop_packet=3, am_droprate=1: every new connection dropped.
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr
	nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[1]}:80" -m
	nsx "$NS_D" sysctl -qw net.ipv4.vs.am_droprate=1 net.ipv4.vs.drop_packet=3
	dropped=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 3 --sport-base 30000 --timeout 1 | grep -c ' rs1$')
	nsx "$NS_D" sysctl -qw net.ipv4.vs.drop_packet=0 net.ipv4.vs.am_droprate=10
	passed=$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 3 --sport-base 30100 --timeout 2 | grep -c ' rs1$')
	if [ "$dropped" = 0 ] && [ "$passed" = 3 ]; then
		ktap_pass "$impl: drop_packet=3, am_droprate=1 drops every new connection"
	else
		ktap_diag "answered: drop_packet=3: $dropped of 3, drop_packet=0: $passed of 3"
		ktap_fail "$impl: drop_packet=3, am_droprate=1 drops every new connection"
	fi

	# secure_tcp=3: SYN, SYN+ACK, ACK ends in SYNACK, not ESTABLISHED.
	hold_server
	wait_listen "${NS_RS[1]}" t 82
	nsx "$NS_D" ipvsadm -A -t "$VIP:82" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:82" -r "${RIP[1]}:82" -m
	normal=$(conn_state 82 41000)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.secure_tcp=3
	secure=$(conn_state 82 41001)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.secure_tcp=0
	if [ "$normal" = ESTABLISHED ] && [ "$secure" = SYNACK ]; then
		ktap_pass "$impl: secure_tcp=3 keeps an answered handshake in SYNACK"
	else
		ktap_diag "connection state: secure_tcp=0: $normal, =3: $secure"
		ktap_fail "$impl: secure_tcp=3 keeps an answered handshake in SYNACK"
	fi

	# run_estimation=0: counted, no rates.
	nsx "$NS_D" ipvsadm -C
	nsx "$NS_D" sysctl -qw net.ipv4.vs.run_estimation=0
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr
	nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[1]}:80" -m
	nsx "$NS_C" "$CLIENT" udp "$VIP" 80 40 --sport-base 31000 --timeout 2 >/dev/null
	sleep 4.5
	rates=$(nsx "$NS_D" ipvsadm -Ln --rate -u "$VIP:80" | awk -v s="$VIP:80" '$2 == s { print $3, $4, $5 }')
	conns=$(nsx "$NS_D" ipvsadm -Ln --stats -u "$VIP:80" | awk -v s="$VIP:80" '$2 == s { print $3 }')
	nsx "$NS_D" sysctl -qw net.ipv4.vs.run_estimation=1
	ktap_diag "$impl: run_estimation=0: connections shown: $conns"
	if [ "$rates" = "0 0 0" ]; then
		ktap_pass "$impl: run_estimation=0: rates stay 0 under traffic"
	else
		ktap_diag "CPS InPPS OutPPS: $rates"
		ktap_fail "$impl: run_estimation=0: rates stay 0 under traffic"
	fi

	# ignore_tunneled: a SYN for VIP:80 in IP-in-IP to the director.
	[ -d /sys/module/ipip ] || modprobe -q ipip
	ip -n "$NS_D" link set tunl0 up
	nsx "$NS_D" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.tunl0.rp_filter=0
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr
	nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[1]}:80" -m
	taken=$(raw_tcp 0x02 45680 "$DIP")
	nsx "$NS_D" sysctl -qw net.ipv4.vs.ignore_tunneled=1
	ignored=$(raw_tcp 0x02 45681 "$DIP")
	nsx "$NS_D" sysctl -qw net.ipv4.vs.ignore_tunneled=0
	if [ "$taken" = 1 ] && [ "$ignored" = 1 ]; then
		ktap_pass "$impl: ignore_tunneled=0 and 1: a SYN decapsulated on the director is taken"
	else
		ktap_diag "connections made: ignore_tunneled=0: $taken, =1: $ignored"
		ktap_fail "$impl: ignore_tunneled=0 and 1: a SYN decapsulated on the director is taken"
	fi

	# nat_icmp_send: rs1 sends from port 81 of a UDP NAT service, no connection.
	nsx "$NS_D" ipvsadm -A -u "$VIP:81" -s rr
	nsx "$NS_D" ipvsadm -a -u "$VIP:81" -r "${RIP[1]}:81" -m
	bg "$NS_C" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 5555)); time.sleep(30)'
	# The client must listen before the datagrams go (else it answers "port
	# unreachable" itself): wait for it rather than for a fixed time.
	wait_listen "$NS_C" u 5555
	off=$(udp_from_rs 1 81)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.nat_icmp_send=1
	on=$(udp_from_rs 1 81)
	nsx "$NS_D" sysctl -qw net.ipv4.vs.nat_icmp_send=0
	if [ "$off" = none ] && [ "$on" = 10.1.1.1 ]; then
		ktap_pass "$impl: nat_icmp_send=1: a NAT server's datagram without connection is refused"
	else
		ktap_diag "ICMP error from: nat_icmp_send=0: $off, =1: $on"
		ktap_fail "$impl: nat_icmp_send=1: a NAT server's datagram without connection is refused"
	fi
done

ktap_exit
