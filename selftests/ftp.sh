#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# FTP through a NAT director with ip_vs_ftp (the C one with --impl c).
#
#   client -> director (VIP 10.0.100.1:21, -m) -> rs1..rs3 running vsftpd
#
# Passive (PASV, EPSV) and active (PORT, EPRT) downloads and uploads of a
# 1 MB file with curl, byte-identical; several clients at once; rr spreads
# control connections, persistence (-p) keeps a client on one server. The
# 227 reply's address changes length (10,1,i,2 -> 10,0,100,1), so the helper
# resizes the packet and later sequence numbers are adjusted. Then raw
# control lines (python): PORT naming another address, ports 0 and 65535, a
# command split across two segments, overlong and malformed lines; the
# expected connections they create (or not) are checked against upstream's
# rules, and nothing may splat.
# timeout: 300

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3
FTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
[ -x "$FTPD" ] || ktap_skip_all "vsftpd is not installed"
command -v curl >/dev/null || ktap_skip_all "curl is not installed"

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
modprobe ip_vs_ftp || ktap_skip_all "cannot load ip_vs_ftp"
ktap_header 15
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which), ftp: $(modinfo -n ip_vs_ftp))"

# result OK(0|1) DESC
result() {
	if [ "$1" = 1 ]; then ktap_pass "$2"; else ktap_fail "$2"; fi
}

W=$(mktemp -d /tmp/ipvs-ftp.XXXXXX)
cleanup_ftp() {
	cleanup
	rm -rf "$W"
}
trap cleanup_ftp EXIT

if ! topo_nat $N; then
	ktap_fail "topology setup"
	ktap_exit
fi

# The client may reach the real servers only through IPVS: without the
# helper's rewriting of passive replies it would connect to them directly.
nsx "$NS_D" nft -f - <<EOF || { ktap_fail "nft rule"; ktap_exit; }
table inet ftptest {
	chain fw {
		type filter hook forward priority 0;
		ip saddr $CIP ip daddr 10.1.0.0/16 drop
	}
}
EOF

# The file every server offers, and the client's upload.
head -c 1048576 /dev/urandom > "$W/big"
head -c 1048576 /dev/urandom > "$W/up"
mkdir -p "$W/empty"
chmod 755 "$W/empty"

# vsftpd as root in rs<i>: anonymous, files in $W/rs<i> (not writable: the
# chroot), uploads in $W/rs<i>/pub; active data from port 20.
for ((i = 1; i <= N; i++)); do
	d=$W/rs$i
	mkdir -p "$d/pub"
	cp "$W/big" "$d/big"
	echo "rs$i" > "$d/id"
	chmod 755 "$d"
	chmod 777 "$d/pub"
	cat > "$W/vsftpd$i.conf" <<-EOF
		listen=YES
		listen_ipv6=NO
		background=NO
		anonymous_enable=YES
		no_anon_password=YES
		anon_root=$d
		write_enable=YES
		anon_upload_enable=YES
		anon_umask=022
		local_enable=NO
		secure_chroot_dir=$W/empty
		pasv_enable=YES
		pasv_min_port=30000
		pasv_max_port=30999
		port_enable=YES
		connect_from_port_20=YES
		seccomp_sandbox=NO
		isolate=NO
		isolate_network=NO
		xferlog_enable=NO
		dirmessage_enable=NO
		max_per_ip=0
		max_clients=0
	EOF
	bg "${NS_RS[i]}" "$FTPD" "$W/vsftpd$i.conf"
done
ok=1
for ((i = 1; i <= N; i++)); do wait_listen "${NS_RS[i]}" t 21 || ok=0; done

nsx "$NS_D" ipvsadm -A -t "$VIP:21" -s rr || ok=0
for ((i = 1; i <= N; i++)); do
	nsx "$NS_D" ipvsadm -a -t "$VIP:21" -r "${RIP[i]}:21" -m || ok=0
done
result $ok "vsftpd on $N real servers, NAT service $VIP:21"

# fetch MODE OUT [curl args]: download big in MODE (pasv, epsv, port, eprt).
mode_args() {
	case "$1" in
	pasv) echo "--disable-epsv" ;;
	epsv) echo "" ;;
	port) echo "-P $CIP --disable-eprt" ;;
	eprt) echo "-P $CIP" ;;
	esac
}
fetch() {
	local mode=$1 out=$2
	# shellcheck disable=SC2046
	nsx "$NS_C" curl -sS --max-time 30 $(mode_args "$mode") -o "$out" "ftp://$VIP/big"
}
put() {
	local mode=$1 name=$2
	# shellcheck disable=SC2046
	nsx "$NS_C" curl -sS --max-time 30 $(mode_args "$mode") -T "$W/up" "ftp://$VIP/pub/$name"
}

# 2-5: each mode, one download each, byte-identical; passive replies name
# the virtual address (PASV) or only the port (EPSV).
for mode in pasv epsv port eprt; do
	rm -f "$W/got" "$W/got2"
	case $mode in
	pasv) want="227 .*\(10,0,100,1,[0-9]+,[0-9]+\)" ;;
	epsv) want="229 .*\(\|\|\|3[0-9]{4}\|\)" ;;
	port) want="200 PORT command" ;;
	eprt) want="200 EPRT command" ;;
	esac
	# shellcheck disable=SC2046
	# Two transfers in one control session: the second passive reply comes
	# after the first one changed the length (sequence numbers adjusted).
	if nsx "$NS_C" curl -v -sS --max-time 30 $(mode_args "$mode") -o "$W/got" "ftp://$VIP/big" \
		-o "$W/got2" "ftp://$VIP/big" 2>"$W/err" &&
	   cmp -s "$W/big" "$W/got" && cmp -s "$W/big" "$W/got2" &&
	   [ "$(grep -cE "^< $want" "$W/err")" = 2 ]; then
		ktap_pass "$mode: two 1 MB downloads in one session byte-identical"
	else
		ktap_diag "$(grep -E '^< (2|5)' "$W/err" | head -5)"
		ktap_fail "$mode: two 1 MB downloads in one session byte-identical"
	fi
done

# 6-7: uploads, passive and active: the file arrives whole on one server.
for mode in pasv port; do
	ok=0
	if put $mode "up-$mode" 2>"$W/err"; then
		for ((i = 1; i <= N; i++)); do
			cmp -s "$W/up" "$W/rs$i/pub/up-$mode" && ok=1
		done
	fi
	[ $ok = 1 ] || ktap_diag "$(head -3 "$W/err")"
	result $ok "$mode: 1 MB upload byte-identical on a real server"
done

# 8: six clients at once, all four modes.
pids=()
k=0
for mode in pasv epsv port eprt pasv port; do
	k=$((k + 1))
	fetch $mode "$W/par$k" 2>"$W/perr$k" &
	pids+=($!)
done
ok=1
for p in "${pids[@]}"; do wait "$p" || ok=0; done
for ((j = 1; j <= k; j++)); do cmp -s "$W/big" "$W/par$j" || ok=0; done
[ $ok = 1 ] || ktap_diag "$(cat "$W"/perr* | head -5)"
result $ok "$k concurrent downloads (all modes) byte-identical"

# ids: which server answers 3 passive and 3 active requests in a row.
ids() {
	local m
	for m in pasv port pasv port pasv port; do
		# One retry: a session failed once in a CI run on a loaded machine
		# (persistent phase, not reproduced; see the stop note of
		# 2026-12-05); a retry is reported, a second failure counts.
		# shellcheck disable=SC2046
		nsx "$NS_C" curl -sS --max-time 30 $(mode_args "$m") "ftp://$VIP/id" 2>>"$W/ids-err" ||
			{ echo "retry $m" >> "$W/ids-retry"; nsx "$NS_C" curl -sS --max-time 30 $(mode_args "$m") \
				"ftp://$VIP/id" 2>>"$W/ids-err"; } || echo err
	done | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
	if [ -s "$W/ids-retry" ]; then
		ktap_diag "ids: retried: $(tr '\n' ' ' < "$W/ids-retry"); errors: $(tail -3 "$W/ids-err" | tr '\n' ' ')" >&2
		rm -f "$W/ids-retry"
	fi
}
# 9: rr spreads control connections.
got=$(ids)
ktap_diag "rr: $got"
if [ "$got" = "rs1:2 rs2:2 rs3:2 " ]; then ktap_pass "rr: 6 sessions spread 2 per server"
else ktap_fail "rr: 6 sessions spread 2 per server"; fi

# 10: persistence: one server for every session of the client.
nsx "$NS_D" ipvsadm -E -t "$VIP:21" -s rr -p 60
got=$(ids)
ktap_diag "persistent: $got"
if [[ "$got" =~ ^rs[123]:6\ $ ]] && fetch pasv "$W/pgot" && cmp -s "$W/big" "$W/pgot" &&
   fetch port "$W/pgot2" && cmp -s "$W/big" "$W/pgot2"; then
	ktap_pass "persistence: 6 sessions on one server, transfers intact"
else
	ktap_fail "persistence: 6 sessions on one server, transfers intact"
fi
nsx "$NS_D" ipvsadm -E -t "$VIP:21" -s rr

# Raw control connection: login, then the given lines, each sent as its own
# segment (a short pause between), "|" splitting one line into two segments.
cat > "$W/raw.py" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 21), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def rd():
    time.sleep(0.3)
    try:
        s.settimeout(1)
        return s.recv(65536)
    except Exception:
        return b""
rd()
for l in (b"USER anonymous\r\n", b"PASS x\r\n"):
    s.sendall(l); rd()
for arg in sys.argv[2:]:
    for part in arg.encode().replace(b"\\r\\n", b"\r\n").split(b"|SPLIT|"):
        s.sendall(part)
        time.sleep(0.3)
    rd()
time.sleep(0.5)
print("ok")
EOF
# conns_to P: the director's connections to VIP port P, as "client->dest".
conns_to() {
	nsx "$NS_D" ipvsadm -Lnc | awk -v v="$VIP:$1" '$5 == v { print $4 "->" $6 }' | sort
}
raw() { nsx "$NS_C" python3 "$W/raw.py" "$VIP" "$@" 2>&1; }
nsx "$NS_D" ipvsadm -C
nsx "$NS_D" ipvsadm -A -t "$VIP:21" -s rr
nsx "$NS_D" ipvsadm -a -t "$VIP:21" -r "${RIP[1]}:21" -m

# 11: PORT with another address, port 0 and 65535: upstream creates the
# expected connection for whatever the line names (vsftpd refuses them).
out=$(raw 'PORT 10,9,9,9,4,1\r\n' 'PORT 10,0,0,2,0,0\r\n' 'PORT 10,0,0,2,255,255\r\n' \
	'EPRT |1|10.0.0.2|65535|\r\n' 'EPRT |1|10.0.0.2|65536|\r\n' 'EPRT |1|10.0.0.2|0|\r\n')
# (Earlier tests' data connections are still listed: look at these only.)
got=$(conns_to 20 | grep -E '^(10\.9\.9\.9:1025|10\.0\.0\.2:0|10\.0\.0\.2:65535)->' | tr '\n' ' ')
want="10.0.0.2:0->${RIP[1]}:20 10.0.0.2:65535->${RIP[1]}:20 10.9.9.9:1025->${RIP[1]}:20 "
ktap_diag "active expectations: $got ($out)"
if [ "$got" = "$want" ]; then ktap_pass "PORT/EPRT: other address, ports 0/65535 as upstream"
else ktap_diag "want: $want"; ktap_fail "PORT/EPRT: other address, ports 0/65535 as upstream"; fi

# 12: a PORT split across two segments is not seen (upstream parses each
# segment's start), a PORT not at the segment's start neither, a malformed
# one (octet 256, five fields) neither.
out=$(raw 'PORT 10,0,0,2,|SPLIT|7,1\r\n' 'NOOP\r\nPORT 10,0,0,2,7,2\r\n' \
	'PORT 10,0,0,256,7,3\r\n' 'PORT 10,0,0,2,7\r\n' 'PORT 10,0,0,2,7,4\r\n')
# Only 7,4 (port 1796) is a well-formed PORT at the start of a segment.
c1796=$(conns_to 20 | grep -c ':1796->' || true)
ktap_diag "split/embedded/malformed: $(conns_to 20 | tr '\n' ' ') ($out)"
if [ "$c1796" = 1 ] && [ "$(conns_to 20 | grep -cE ':(1793|1794|1795)->' || true)" = 0 ]; then
	ktap_pass "split, embedded and malformed PORT lines create nothing"
else
	ktap_fail "split, embedded and malformed PORT lines create nothing"
fi

# 13: overlong lines and binary junk, then the session still works.
long=$(head -c 3000 /dev/zero | tr '\0' '9')
out=$(raw "PORT $long\\r\\n" "PORT 1,$long\\r\\n" "EPRT |1|$long|1|\\r\\n" "$(printf 'PASV\\r\\n')" \
	"227 (1,2,3,4,5,6)\\r\\n" 'EPRT ||||\r\n' 'EPRT |3|1.2.3.4|5|\r\n' 'EPSV 2\r\n' 'EPSV ALL\r\n')
rm -f "$W/got"
if [ "$out" = ok ] && fetch pasv "$W/got" && cmp -s "$W/big" "$W/got"; then
	ktap_pass "overlong and malformed lines: no harm, service works"
else
	ktap_diag "$out"
	ktap_fail "overlong and malformed lines: no harm, service works"
fi

# 14: connections bound to the helper pin its module (ip_vs_app_inc_get).
if rmmod ip_vs_ftp 2>/dev/null; then
	ktap_fail "rmmod ip_vs_ftp refused while connections use it"
	modprobe ip_vs_ftp
else
	ktap_pass "rmmod ip_vs_ftp refused while connections use it"
fi

# 15: the kernel log is clean (selftests/run checks for splats too).
if dmesg | grep -qE 'BUG:|WARNING:|Oops|panicked'; then
	ktap_fail "no splat in the kernel log"
else
	ktap_pass "no splat in the kernel log"
fi

ktap_exit
