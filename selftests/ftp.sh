#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# FTP through a director, under the C IPVS (with its ip_vs_ftp) and then
# under $IPVS_IMPL (with ours), in one boot; every check is reported for
# both, prefixed with the implementation, and the two are compared.
#
#   client -> director (VIP 10.0.100.1) -> rs1..rs3 running vsftpd
#
# NAT with ip_vs_ftp (VIP:21, -m): passive (PASV, EPSV) and active (PORT,
# EPRT) downloads and uploads of a 1 MB file with curl, byte-identical;
# several clients at once; rr spreads control connections, persistence
# (-p) keeps a client on one server. The 227 reply's address changes
# length (10,1,i,2 -> 10,0,100,1), so the helper resizes the packet and
# later sequence numbers are adjusted. Then raw control lines (python):
# PORT naming another address, ports 0 and 65535, a command split across
# two segments, overlong and malformed lines; the expected connections they
# create (or not) are checked against upstream's rules. And 1,100 forged
# half-open control connections (tools/lib/ipvs-synflood), each with helper
# state, before a passive session whose 227 must still be rewritten.
#
# Direct routing and IP-in-IP tunnel (the LVS papers' way, no helper): the
# director sees only the client's half of each connection, so a persistent
# port-zero service (-t VIP:0 -p) takes every connection of a client --
# control, passive data to the port the server named, the client's half of
# an active data connection (its SYN+ACK is scheduled) -- to the server of
# its template <client:0, VIP:0, server:0>. The real servers hold the VIP on
# lo (arp_ignore/arp_announce, tunl0 for the tunnel) and a second vsftpd on
# it that names the VIP in its passive replies (pasv_address); they answer
# the client over their own links (rs_direct). Three clients (addresses of
# their own) each download the file passively and actively.
#
# Compared between the implementations: the director's connections after
# the four NAT modes, the connections the hostile lines create, and the
# connections of the DR and tunnel services (ports masked where they are
# the client's or vsftpd's choice). The client and real server namespaces,
# their links and the vsftpd instances are set up once; each implementation
# gets a fresh director, which is deleted afterwards, and its modules must
# then unload (connections bound to ip_vs_ftp pin it until their namespace
# is gone).
# timeout: 600

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3
FTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
[ -x "$FTPD" ] || ktap_skip_all "vsftpd is not installed"
command -v curl >/dev/null || ktap_skip_all "curl is not installed"
command -v nft >/dev/null || ktap_skip_all "nft is not installed"
require_ref_cand
# Checks per implementation, and the comparisons and the last one.
PART=26
ktap_header $((2 * PART + 5))

# result OK(0|1) DESC
result() {
	if [ "$1" = 1 ]; then ktap_pass "$2"; else ktap_fail "$2"; fi
}

W=$(mktemp -d /tmp/ipvs-ftp.XXXXXX)
# (keep: the files compared between the implementations, ref.* and cand.*)
cleanup_ftp() {
	save_artifacts "$W/keep" ftp
	rm -rf "$W"
}
CLEANUP_HOOKS+=(cleanup_ftp)

# Client addresses of the DR and tunnel parts (CIP is NAT's).
DR_CL=(10.0.0.3 10.0.0.4 10.0.0.5)
TUN_CL=(10.0.0.6 10.0.0.7 10.0.0.8)

# --- Set up once: client, real servers, return links, vsftpd.

# vsftpd as root in rs<i>, two instances: NAT ones on RIP, DR/tunnel ones on
# the VIP naming it in passive replies. Anonymous, files in $W/rs<i> (not
# writable: the chroot), uploads in $W/rs<i>/pub; active data from port 20.
# listen_address is bound before the director gives RIP (ip_nonlocal_bind);
# the listening socket outlives the director's links.
#
# The real servers' return links to the client are rs_direct's (eth0 comes
# with each director, with the default rp_filter), but they carry only the
# DR/tunnel clients' addresses (CIP is NAT's, answered through the
# director). One process per namespace where it can be (every process
# counts under emulation).
setup_ends() {
	local i c d links="" ccmds="" routes bigs=() roots=() xs=()
	topo_ends $N || return 1
	for ((i = 1; i <= N; i++)); do roots+=("$W/rs$i"); done
	mkdir -p "$W/keep" "$W/empty" "${roots[@]}" || return 1
	mkdir -m 777 "${roots[@]/%//pub}" || return 1
	[ -d /sys/module/ipip ] || modprobe -q ipip || return 1
	for ((i = 1; i <= N; i++)); do
		links+="link add x$i netns $NS_C type veth peer name ret0 netns ${NS_RS[i]}"$'\n'
		ccmds+="link set x$i up"$'\n'"addr add 10.2.$i.1/24 dev x$i"$'\n'
		xs+=("net.ipv4.conf.x$i.rp_filter=0")
	done
	ip -b - <<< "$links" || return 1
	ip -n "$NS_C" -b - <<< "$ccmds" || return 1
	nsx "$NS_C" sysctl -qw net.ipv4.conf.all.rp_filter=0 "${xs[@]}" || return 1
	for ((i = 1; i <= N; i++)); do
		routes=""
		for c in "${DR_CL[@]}" "${TUN_CL[@]}"; do
			routes+="route add $c/32 via 10.2.$i.1 dev ret0"$'\n'
		done
		ip -n "${NS_RS[i]}" -b - <<-EOF || return 1
			link set ret0 up
			addr add 10.2.$i.2/24 dev ret0
			addr add $VIP/32 dev lo
			link set tunl0 up
			$routes
		EOF
		nsx "${NS_RS[i]}" sysctl -qw net.ipv4.conf.all.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.ret0.rp_filter=0 \
			net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.ip_nonlocal_bind=1 || return 1
		d=$W/rs$i
		bigs+=("$d/big")
		echo "rs$i" > "$d/id"
		vsftpd_conf "$d" "${RIP[i]}" "" > "$W/vsftpd$i.conf"
		vsftpd_conf "$d" "$VIP" "pasv_address=$VIP" > "$W/vsftpd$i-vip.conf"
	done
	# The file every server offers, and the client's upload.
	head -c 1048576 /dev/urandom | tee "$W/big" "${bigs[@]}" > /dev/null || return 1
	head -c 1048576 /dev/urandom > "$W/up" || return 1
	for ((i = 1; i <= N; i++)); do
		bg "${NS_RS[i]}" "$FTPD" "$W/vsftpd$i.conf"
		bg "${NS_RS[i]}" "$FTPD" "$W/vsftpd$i-vip.conf"
	done
}

# vsftpd_conf ROOT LISTEN_ADDRESS [EXTRA]
vsftpd_conf() {
	printf '%s\n' listen=YES listen_ipv6=NO "listen_address=$2" background=NO \
		anonymous_enable=YES no_anon_password=YES "anon_root=$1" write_enable=YES \
		anon_upload_enable=YES anon_umask=022 local_enable=NO "secure_chroot_dir=$W/empty" \
		pasv_enable=YES pasv_min_port=30000 pasv_max_port=30999 port_enable=YES \
		connect_from_port_20=YES seccomp_sandbox=NO isolate=NO isolate_network=NO \
		xferlog_enable=NO dirmessage_enable=NO max_per_ip=0 max_clients=0 "$3"
}

# Both instances of every real server listen.
ftpd_listening() {
	local t i n
	for ((t = 0; t < 100; t++)); do
		n=0
		for ((i = 1; i <= N; i++)); do
			n=$((n + $(nsx "${NS_RS[i]}" ss -Htnl 'sport = :21' | wc -l)))
		done
		[ $n = $((2 * N)) ] && return 0
		sleep 0.1
	done
	echo "# $n of $((2 * N)) vsftpd instances listen" >&2
	return 1
}

# Raw control connections: each logs in, then sends the given lines,
# "|SPLIT|" splitting one into segments (each one acknowledged before the
# next is sent), each line answered before the next goes; an argument NEXT
# closes the connection and opens the next one. Prints per connection "ok",
# or which lines were not answered.
cat > "$W/raw.py" <<'EOF'
import fcntl, socket, struct, sys, termios, time
def replies(s, buf, n):
    """Wait for n final reply lines ("ddd text"), at most 5 s."""
    end = time.monotonic() + 5
    while True:
        while n > 0 and b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line[:3].isdigit() and line[3:4] == b" ":
                n -= 1
        if n <= 0:
            return buf, True
        left = end - time.monotonic()
        if left <= 0:
            return buf, False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except OSError:
            return buf, False
        if not d:
            return buf, False
        buf += d
def acked(s):
    """Wait until all sent data is acknowledged (SIOCOUTQ 0), at most 5 s."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        q = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        if q == 0:
            return
        time.sleep(0.005)
def session(lines):
    s = socket.create_connection((sys.argv[1], 21), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf, _ = replies(s, b"", 1)
    for l in (b"USER anonymous\r\n", b"PASS x\r\n"):
        s.sendall(l)
        buf, _ = replies(s, buf, 1)
    bad = []
    for i, arg in enumerate(lines):
        data = arg.encode().replace(b"\\r\\n", b"\r\n")
        parts = data.split(b"|SPLIT|")
        for part in parts[:-1]:
            s.sendall(part)
            acked(s)
        s.sendall(parts[-1])
        buf, ok = replies(s, buf, data.count(b"\r\n"))
        if not ok:
            bad.append(str(i + 1))
    s.close()
    return "ok" if not bad else "unanswered:" + ",".join(bad)
out, cur = [], []
for arg in sys.argv[2:] + ["NEXT"]:
    if arg == "NEXT":
        out.append(session(cur))
        cur = []
    else:
        cur.append(arg)
print(" ".join(out))
EOF

# --- helpers

# Every process counts under emulation: one curl runs many transfers. Each
# group of transfers (G, see grp) has a control connection of its own, which
# curl reuses only for the same credentials: the groups differ in their
# (anonymous) password, which vsftpd does not ask for.
G=()
GN=0
# grp "CURL OPTIONS" FILE OUT [FILE OUT...]: a group downloading FILE to OUT
# ("<FILE" uploads FILE as OUT); the options are word-split.
grp() {
	local opts=$1 url
	shift
	GN=$((GN + 1))
	[ ${#G[@]} = 0 ] || G+=(--next)
	# shellcheck disable=SC2206
	G+=(-v -sS --max-time 30 $opts)
	while [ $# -ge 2 ]; do
		url="ftp://anonymous:g$GN@$VIP"
		if [[ $1 == "<"* ]]; then
			G+=(-T "${1#<}" "$url/$2")
		else
			G+=(-o "$2" "$url/$1")
		fi
		shift 2
	done
}
# run_groups [-Z] ERRFILE: run the groups of G (at once with -Z) from the
# client, verbose output into ERRFILE; G is emptied.
run_groups() {
	local par=()
	if [ "$1" = -Z ]; then
		par=(-Z --parallel-immediate)
		shift
	fi
	nsx "$NS_C" curl "${par[@]}" "${G[@]}" 2> "$1"
	G=()
}
mode_args() {
	case "$1" in
	pasv) echo "--disable-epsv" ;;
	epsv) echo "" ;;
	port) echo "-P $CIP --disable-eprt" ;;
	eprt) echo "-P $CIP" ;;
	esac
}
# fetch MODE OUT: download big in MODE (pasv, epsv, port, eprt).
fetch() {
	# shellcheck disable=SC2046
	nsx "$NS_C" curl -sS --max-time 30 $(mode_args "$1") -o "$2" "ftp://$VIP/big"
}
# served: which servers answered the $W/id.* files, as "rsN:COUNT ...".
served() {
	cat "$W"/id.* | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
}
# conns_to P: the director's connections to VIP port P, as "client->dest".
conns_to() {
	nsx "$NS_D" ipvsadm -Lnc | awk -v v="$VIP:$1" '$5 == v { print $4 "->" $6 }' | sort
}
raw() { nsx "$NS_C" python3 "$W/raw.py" "$VIP" "$@" 2>&1; }

# shape [CLIENT...]: the director's connections (of these clients), one
# "count protocol state source virtual destination" line per kind, with
# ports from 1024 up (the client's and vsftpd's choice) as "*" and, when
# clients are given, a destination that is the client's template server
# (the rr pick, which differs between runs of parallel clients) as "=".
shape() {
	nsx "$NS_D" ipvsadm -Lnc | awk -v cl="$*" '
		function mask(a,   i, p) {
			i = index(a, ":"); p = substr(a, i + 1) + 0
			return p >= 1024 ? substr(a, 1, i) "*" : a
		}
		function ip(a) { return substr(a, 1, index(a, ":") - 1) }
		BEGIN { n = split(cl, c, " "); for (i = 1; i <= n; i++) want[c[i]] = 1 }
		NR > 2 && (n == 0 || ip($4) in want) {
			l[NR] = $0
			if ($4 ~ /:0$/ && $5 ~ /:0$/) tpl[ip($4)] = ip($6)
		}
		END {
			for (k in l) {
				split(l[k], f, " ")
				d = f[6]
				if (n > 0 && tpl[ip(f[4])] == ip(d)) d = "=" substr(d, index(d, ":"))
				print f[1], f[3], mask(f[4]), mask(f[5]), mask(d)
			}
		}' | sort | uniq -c
}

# --- one implementation: NAT with the helper, then DR and tunnel.

# nat_part P TAG: the NAT checks (16), P the name prefix, TAG for files.
nat_part() {
	local p=$1 tag=$2 ok mode want i k got out1 out2 out3 conns long pids rules
	nsx "$NS_D" nft -f - <<-EOF || { ktap_fail "$p: nft rule"; return 1; }
		table inet ftptest {
			chain fw {
				type filter hook forward priority 0;
				ip saddr $CIP ip daddr 10.1.0.0/16 drop
			}
		}
	EOF
	rules="-A -t $VIP:21 -s rr"$'\n'
	for ((i = 1; i <= N; i++)); do
		rules+="-a -t $VIP:21 -r ${RIP[i]}:21 -m"$'\n'
	done
	ok=1
	nsx "$NS_D" ipvsadm -R <<< "$rules" || ok=0
	result $ok "$p: NAT service $VIP:21 to vsftpd on $N real servers"

	# Each mode, two downloads in one control session, byte-identical;
	# passive replies name the virtual address (PASV) or only the port
	# (EPSV). The second passive reply comes after the first one changed
	# the length (sequence numbers adjusted). The four sessions one after
	# the other (rr: the same servers for both implementations).
	rm -f "$W"/got.*
	for mode in pasv epsv port eprt; do
		grp "$(mode_args $mode)" big "$W/got.$mode.1" big "$W/got.$mode.2"
	done
	run_groups "$W/err"
	for mode in pasv epsv port eprt; do
		case $mode in
		pasv) want="227 .*\(10,0,100,1,[0-9]+,[0-9]+\)" ;;
		epsv) want="229 .*\(\|\|\|3[0-9]{4}\|\)" ;;
		port) want="200 PORT command" ;;
		eprt) want="200 EPRT command" ;;
		esac
		if cmp -s "$W/big" "$W/got.$mode.1" && cmp -s "$W/big" "$W/got.$mode.2" &&
		   [ "$(grep -cE "^< $want" "$W/err")" = 2 ]; then
			ktap_pass "$p: $mode: two 1 MB downloads in one session byte-identical"
		else
			ktap_diag "$(grep -E '^(< (2|5)|curl)' "$W/err" | head -20)"
			ktap_fail "$p: $mode: two 1 MB downloads in one session byte-identical"
		fi
	done
	# The connections of these four sessions: 4 control ones, 4 passive
	# and 4 active data ones (compared with the other implementation).
	shape > "$W/keep/$tag.nat-shape"
	got=$(awk '$5 ~ /:21$/ { c += $1; next } $5 ~ /:\*$/ { ps += $1; next }
		$5 ~ /:20$/ { a += $1; next } { o += $1 }
		END { printf "%d %d %d %d", c, ps, a, o }' "$W/keep/$tag.nat-shape")
	if [ "$got" = "4 4 4 0" ]; then
		ktap_pass "$p: ipvsadm -Lnc: 4 control, 4 passive and 4 active data connections"
	else
		ktap_diag "control, passive, active, other: $got"$'\n'"$(cat "$W/keep/$tag.nat-shape")"
		ktap_fail "$p: ipvsadm -Lnc: 4 control, 4 passive and 4 active data connections"
	fi

	# Uploads, passive and active (a session each): the file arrives whole
	# on a server.
	for mode in pasv port; do
		grp "$(mode_args $mode)" "<$W/up" "pub/up-$tag-$mode"
	done
	run_groups "$W/err"
	for mode in pasv port; do
		ok=0
		for ((i = 1; i <= N; i++)); do
			cmp -s "$W/up" "$W/rs$i/pub/up-$tag-$mode" && ok=1
		done
		[ $ok = 1 ] || ktap_diag "$(grep -E '^(< [25]|curl)' "$W/err" | head -10)"
		result $ok "$p: $mode: 1 MB upload byte-identical on a real server"
	done

	# Six clients at once, all four modes.
	k=0
	rm -f "$W"/par.*
	for mode in pasv epsv port eprt pasv port; do
		k=$((k + 1))
		grp "$(mode_args $mode)" big "$W/par.$k"
	done
	run_groups -Z "$W/err"
	ok=1
	for ((i = 1; i <= k; i++)); do cmp -s "$W/big" "$W/par.$i" || ok=0; done
	[ $ok = 1 ] || ktap_diag "$(grep -E '^(< [25]|curl)' "$W/err" | head -10)"
	result $ok "$p: $k concurrent downloads (all modes) byte-identical"

	# rr spreads control connections: 3 passive and 3 active sessions at
	# once (whatever their order).
	rm -f "$W"/id.*
	for k in 1 2 3 4 5 6; do
		mode=pasv
		[ $((k % 2)) = 0 ] && mode=port
		grp "$(mode_args $mode)" id "$W/id.$k"
	done
	run_groups -Z "$W/err"
	got=$(served)
	ktap_diag "$p: rr: $got"
	if [ "$got" = "rs1:2 rs2:2 rs3:2 " ]; then ktap_pass "$p: rr: 6 sessions spread 2 per server"
	else ktap_fail "$p: rr: 6 sessions spread 2 per server"; fi

	# Persistence: one server for every session of the client (the first
	# one makes the template, 5 others and two downloads follow at once).
	# One retry, reported: a session failed once in a CI run on a loaded
	# machine (2026-12-05, not reproduced since); a second failure counts.
	nsx "$NS_D" ipvsadm -E -t "$VIP:21" -s rr -p 60
	for i in 1 2; do
		rm -f "$W"/id.* "$W/pgot" "$W/pgot2"
		grp "$(mode_args pasv)" id "$W/id.1"
		run_groups "$W/err"
		for k in 2 3 4 5 6; do
			mode=pasv
			[ $((k % 2)) = 0 ] && mode=port
			grp "$(mode_args $mode)" id "$W/id.$k"
		done
		grp "$(mode_args pasv)" big "$W/pgot"
		grp "$(mode_args port)" big "$W/pgot2"
		run_groups -Z "$W/err2"
		got=$(served)
		ktap_diag "$p: persistent: $got"
		[[ "$got" =~ ^rs[123]:6\ $ ]] && cmp -s "$W/big" "$W/pgot" && cmp -s "$W/big" "$W/pgot2" && break
		ktap_diag "$p: persistence attempt $i failed: $(grep -hE '^(< [45]|curl)' "$W/err" "$W/err2" | head -10 | tr '\n' ' ')"
		ktap_diag "$(nsx "$NS_D" ipvsadm -Lnc | head -30)"
	done
	if [[ "$got" =~ ^rs[123]:6\ $ ]] && cmp -s "$W/big" "$W/pgot" && cmp -s "$W/big" "$W/pgot2"; then
		ktap_pass "$p: persistence: 6 sessions on one server, transfers intact"
	else
		ktap_fail "$p: persistence: 6 sessions on one server, transfers intact"
	fi

	nsx "$NS_D" ipvsadm -R <<-EOF
		-C
		-A -t $VIP:21 -s rr
		-a -t $VIP:21 -r ${RIP[1]}:21 -m
	EOF

	# Three raw control connections:
	# 1. PORT with another address, port 0 and 65535: upstream creates the
	#    expected connection for whatever the line names (vsftpd refuses
	#    them).
	# 2. A PORT split across two segments is not seen (upstream parses each
	#    segment's start), a PORT not at the segment's start neither, a
	#    malformed one (octet 256, five fields) neither; only 7,4 (port
	#    1796) is a well-formed PORT at the start of a segment.
	# 3. Overlong lines and binary junk; then the service still works.
	long=$(head -c 3000 /dev/zero | tr '\0' '9')
	read -r out1 out2 out3 < <(raw 'PORT 10,9,9,9,4,1\r\n' 'PORT 10,0,0,2,0,0\r\n' \
		'PORT 10,0,0,2,255,255\r\n' 'EPRT |1|10.0.0.2|65535|\r\n' 'EPRT |1|10.0.0.2|65536|\r\n' \
		'EPRT |1|10.0.0.2|0|\r\n' NEXT \
		'PORT 10,0,0,2,|SPLIT|7,1\r\n' 'NOOP\r\nPORT 10,0,0,2,7,2\r\n' \
		'PORT 10,0,0,256,7,3\r\n' 'PORT 10,0,0,2,7\r\n' 'PORT 10,0,0,2,7,4\r\n' NEXT \
		"PORT $long\\r\\n" "PORT 1,$long\\r\\n" "EPRT |1|$long|1|\\r\\n" 'PASV\r\n' \
		"227 (1,2,3,4,5,6)\\r\\n" 'EPRT ||||\r\n' 'EPRT |3|1.2.3.4|5|\r\n' 'EPSV 2\r\n' 'EPSV ALL\r\n')
	# (Earlier tests' data connections are still listed: look at these only.)
	conns=$(conns_to 20)
	got=$(grep -E '^(10\.9\.9\.9:1025|10\.0\.0\.2:0|10\.0\.0\.2:65535)->' <<< "$conns" | tr '\n' ' ')
	want="10.0.0.2:0->${RIP[1]}:20 10.0.0.2:65535->${RIP[1]}:20 10.9.9.9:1025->${RIP[1]}:20 "
	ktap_diag "$p: active expectations: $got (${out1:-})"
	echo "$got" > "$W/keep/$tag.hostile"
	if [ "$got" = "$want" ]; then ktap_pass "$p: PORT/EPRT: other address, ports 0/65535 as upstream"
	else ktap_diag "want: $want"; ktap_fail "$p: PORT/EPRT: other address, ports 0/65535 as upstream"; fi

	got=$(grep -E ':(1793|1794|1795|1796)->' <<< "$conns" | tr '\n' ' ')
	echo "$got" >> "$W/keep/$tag.hostile"
	ktap_diag "$p: split/embedded/malformed: $got (${out2:-})"
	if [ "$got" = "10.0.0.2:1796->${RIP[1]}:20 " ]; then
		ktap_pass "$p: split, embedded and malformed PORT lines create nothing"
	else
		ktap_fail "$p: split, embedded and malformed PORT lines create nothing"
	fi

	rm -f "$W/got"
	if [ "${out3:-}" = ok ] && fetch pasv "$W/got" && cmp -s "$W/big" "$W/got"; then
		ktap_pass "$p: overlong and malformed lines: no harm, service works"
	else
		ktap_diag "${out3:-}"
		ktap_fail "$p: overlong and malformed lines: no harm, service works"
	fi

	# More control connections than the 1,024 helper slots ours once had:
	# 1,100 half-open ones from forged clients (their real server's
	# SYN+ACK is routed back towards the client namespace, which drops
	# it), each bound to the helper, then a real passive session: its 227
	# must still be rewritten (the client cannot reach 10.1.0.0/16).
	nsx "$NS_D" ip route add 10.9.0.0/16 via "$CIP"
	out1=$(nsx "$NS_C" "$TOOLS/lib/ipvs-synflood" flood "$VIP" 21 1100 --src-net 10.9.0.0 2>&1)
	k=$(nsx "$NS_D" ipvsadm -Lnc | awk -v v="$VIP:21" '$5 == v && $4 ~ /^10\.9\./' | wc -l)
	ktap_diag "$p: flood: $out1; $k control connections from 10.9.0.0/16"
	rm -f "$W/got"
	if [ "$k" -ge 1100 ] && fetch pasv "$W/got" && cmp -s "$W/big" "$W/got"; then
		ktap_pass "$p: 1,100 more control connections: a passive download still has its 227 rewritten"
	else
		ktap_fail "$p: 1,100 more control connections: a passive download still has its 227 rewritten"
	fi

	# Connections bound to the helper pin its module (ip_vs_app_inc_get).
	if rmmod ip_vs_ftp 2>/dev/null; then
		ktap_fail "$p: rmmod ip_vs_ftp refused while connections use it"
		modprobe ip_vs_ftp
	else
		ktap_pass "$p: rmmod ip_vs_ftp refused while connections use it"
	fi
}

# direct_part P TAG M CLIENT...: the DR (M dr) or tunnel (M tun) checks (4).
direct_part() {
	local p=$1 tag=$2 m=$3 flag=-g ok i c k ids want sh rules a b seen pids
	shift 3
	[ "$m" = tun ] && flag=-i
	rules="-C"$'\n'"-A -t $VIP:0 -s rr -p"$'\n'
	for ((i = 1; i <= N; i++)); do
		rules+="-a -t $VIP:0 -r ${RIP[i]} $flag"$'\n'
	done
	ok=1
	nsx "$NS_D" ipvsadm -R <<< "$rules" || ok=0
	[ $ok = 1 ] || ktap_diag "$p: $m: setting up the service failed"
	# The clients at once (one curl each), each a passive session (big,
	# id), then an active one (big, id). (Not curl -Z: a client's
	# transfers would go at once, on connections racing to make its
	# template.)
	pids=()
	for c in "$@"; do
		grp "--interface $c --disable-epsv" big "$W/$m-$c-pbig" id "$W/$m-$c-pid"
		grp "--interface $c -P $c --disable-eprt" big "$W/$m-$c-abig" id "$W/$m-$c-aid"
		run_groups "$W/$m-$c-err" &
		pids+=($!)
		G=()
	done
	wait "${pids[@]}"
	want="227 .*\(10,0,100,1,[0-9]+,[0-9]+\)"
	for k in p a; do
		ok=1
		for c in "$@"; do
			if ! cmp -s "$W/big" "$W/$m-$c-${k}big" ||
				{ [ $k = p ] && [ "$(grep -cE "^< $want" "$W/$m-$c-err")" != 2 ]; }; then
				ok=0
				ktap_diag "$p: $m: $c: $(grep -E '^(< [25]|curl)' "$W/$m-$c-err" | head -10)"
			fi
		done
		if [ $k = p ]; then
			result $ok "$p: $m: passive (PASV) 1 MB downloads of $# clients byte-identical, the replies name the VIP"
		else
			result $ok "$p: $m: active (PORT) 1 MB downloads of $# clients byte-identical"
		fi
	done
	# A client's two sessions on one server, the clients on different ones.
	ids=""
	ok=1
	seen=" "
	for c in "$@"; do
		a=- b=-
		read -r a < "$W/$m-$c-pid"
		read -r b < "$W/$m-$c-aid"
		ids+="$a/$b "
		# Each client's own server, one no other client has.
		if [[ $a != rs[0-9] || $a != "$b" || $seen == *" $a "* ]]; then ok=0; fi
		seen+="$a "
	done 2>/dev/null
	ktap_diag "$p: $m: servers of the passive/active sessions per client: $ids"
	result $ok "$p: $m: each client's sessions on one server, the $# clients on $# servers"
	# Per client: its template, and its 2 control, 2 passive data and 2
	# active data connections (the client's SYN+ACK scheduled), all to
	# the template's server.
	shape "$@" > "$W/keep/$tag.$m-shape"
	sh=$(awk '{ split($4, s, ":"); k = $5 ~ /:0$/ ? "t" : $5 ~ /:21$/ ? "c" : $5 ~ /:20$/ ? "a" : "p"
		if ($6 !~ /^=/) k = k "!"; n[s[1] " " k] += $1 }
		END { for (x in n) print x, n[x] }' "$W/keep/$tag.$m-shape" | sort)
	want=""
	for c in "$@"; do want+="$c a 2"$'\n'"$c c 2"$'\n'"$c p 2"$'\n'"$c t 1"$'\n'; done
	if [ "$sh" = "${want%$'\n'}" ]; then
		ktap_pass "$p: $m: ipvsadm -Lnc: per client a template <client:0, VIP:0, server:0>, control, passive and active data connections to its server"
	else
		ktap_diag "$sh"$'\n'"$(cat "$W/keep/$tag.$m-shape")"
		ktap_fail "$p: $m: ipvsadm -Lnc: per client a template <client:0, VIP:0, server:0>, control, passive and active data connections to its server"
	fi
}

# part IMPL TAG: every check under IMPL in a fresh director; PART results.
part() {
	local impl=$1 tag=$2 p=$1 start=$ktap_n before after
	if ! ipvs_use "$impl" || ! modprobe ip_vs_ftp; then
		ktap_fail "$p: load the IPVS and ip_vs_ftp"
	elif ! topo_director || ! ip -n "$NS_C" -b - < <(for c in "${DR_CL[@]}" "${TUN_CL[@]}"; do
			echo "addr add $c/24 dev c0"; done); then
		ktap_fail "$p: director set-up"
	else
		ktap_diag "$p: $(ipvs_which), ftp: $(modinfo -n ip_vs_ftp)"
		nat_part "$p" "$tag"
		before=$(cat /sys/module/ip_vs_ftp/refcnt)
		direct_part "$p" "$tag" dr "${DR_CL[@]}"
		direct_part "$p" "$tag" tun "${TUN_CL[@]}"
		after=$(cat /sys/module/ip_vs_ftp/refcnt)
		ktap_diag "$p: ip_vs_ftp use count before DR/tunnel $before, after $after"
		if [ "$after" -le "$before" ]; then
			ktap_pass "$p: DR and tunnel connections are not bound to ip_vs_ftp (its use count does not grow)"
		else
			ktap_fail "$p: DR and tunnel connections are not bound to ip_vs_ftp (its use count does not grow)"
		fi
	fi
	# Gone with the director, its connections release the modules.
	part_teardown "$p" "$start" "$PART" "director deleted: ip_vs_ftp, ip_vs and the schedulers" NS_D
}

t0=$SECONDS
if ! setup_ends || ! ftpd_listening; then
	ktap_fail "client, real servers and vsftpd set-up"
	ktap_exit
fi
ktap_diag "set-up: $((SECONDS - t0)) s"
ref_cand_parts

ref_cand_same "$W/keep" "the same connections after the four NAT modes" nat-shape
ref_cand_same "$W/keep" "the hostile lines create the same connections" hostile
ref_cand_same "$W/keep" "the same DR connections" dr-shape
ref_cand_same "$W/keep" "the same tunnel connections" tun-shape

# The kernel log is clean (selftests/run checks for splats too).
if dmesg | grep -qE 'BUG:|WARNING:|Oops|panicked'; then
	ktap_fail "no splat in the kernel log"
else
	ktap_pass "no splat in the kernel log"
fi

ktap_exit
