#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# FTP over IPv6 through a NAT director with ip_vs_ftp, differential: the C
# IPVS with its ip_vs_ftp first, then $IPVS_IMPL, in one boot.
#
#   client fd00::2 -> director -> [fd00:100::1]:21 (-m, rr) -> rs1..rs3 vsftpd
#                                 [fd00:100::2]:21 (-m) -> rs1 port 2121, a
#                                 scripted FTP server (python)
#
# First the scripted server, whose 229 replies name its own address
# (|2|addr|port|), which the helper shortens to |||port|: the IPv6 payload
# length changes, later segments' sequence numbers and the client's
# acknowledgements are adjusted; two passive transfers and a later reply
# must arrive intact. Then raw control lines on the same session: EPRT of
# the other family, port 0 and 65536, other addresses and delimiters,
# malformed addresses, PORT and PASV (IPv4 only), a line split over two
# segments, EPSV 1/ALL/2; and server 229 replies naming the other family,
# port 0, another address. The director's connections (ipvsadm -Lnc, expiry
# masked), taken before the control connection closes, must be what
# upstream's rules give, and the same under both implementations. Then
# vsftpd: an EPSV (passive) and an EPRT (active) download of a 1 MB file
# and an active upload, byte-identical; the client may reach the real
# servers only through IPVS.
# timeout: 300

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=3
FTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
[ -x "$FTPD" ] || ktap_skip_all "vsftpd is not installed"
command -v curl >/dev/null || ktap_skip_all "curl is not installed"
command -v nft >/dev/null || ktap_skip_all "nft is not installed"

VIP6B=fd00:100::2
FAKE_PORT=2121

W=$(mktemp -d /tmp/ipvs-ftp6.XXXXXX)
# What a run leaves (tools/vm-run keeps it when the run fails), without the
# 1 MB files.
rm_work() { find "$W" -type f -size +64k -delete; save_artifacts "$W" ftp6; rm -rf "$W"; }
CLEANUP_HOOKS+=(rm_work)

# One directory and configuration for every vsftpd: anonymous, files in
# $W/ftp (not writable: the chroot), uploads in $W/ftp/pub; active data
# from port 20.
mkdir -p "$W/empty" "$W/ftp/pub"
chmod 755 "$W/empty" "$W/ftp"
chmod 777 "$W/ftp/pub"
head -c 1048576 /dev/urandom > "$W/big"
head -c 1048576 /dev/urandom > "$W/up"
cp "$W/big" "$W/ftp/big"
cat > "$W/vsftpd.conf" <<EOF
listen=NO
listen_ipv6=YES
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=$W/ftp
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

# The scripted server: 220 on connect; EPSV: a listener on the next port
# from 31001 that sends 64 KB and closes, and a 229 reply naming
# |2|RIP|port| (or, once, what "SITE R229 <text>" set); PASV: a 227 reply;
# NOOP, QUIT; anything else "200 ok".
cat > "$W/fake.py" <<'EOF'
import socket, sys, threading
port, rip = int(sys.argv[1]), sys.argv[2]
DATA = bytes(range(251)) * 261 + b"end"
nextp = [31001]

def listener(p):
    d = socket.socket(socket.AF_INET6)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind(("::", p))
    d.listen(1)
    d.settimeout(30)
    def serve():
        try:
            c, _ = d.accept()
            c.sendall(DATA)
            c.close()
        except OSError:
            pass
        d.close()
    threading.Thread(target=serve, daemon=True).start()

def session(c):
    f = c.makefile("rb")
    c.sendall(b"220 fake\r\n")
    r229 = None
    while True:
        line = f.readline()
        if not line:
            break
        u = line.strip().upper()
        if u.startswith(b"EPSV"):
            p = nextp[0]
            nextp[0] += 1
            listener(p)
            inner = r229 if r229 is not None else ("|2|%s|%d|" % (rip, p)).encode()
            r229 = None
            c.sendall(b"229 Entering Extended Passive Mode (" + inner + b")\r\n")
        elif u.startswith(b"PASV"):
            p = nextp[0]
            nextp[0] += 1
            c.sendall(("227 Entering Passive Mode (10,1,1,2,%d,%d)\r\n" % (p >> 8, p & 255)).encode())
        elif u.startswith(b"SITE R229 "):
            r229 = line.strip()[10:]
            c.sendall(b"200 ok\r\n")
        elif u == b"NOOP":
            c.sendall(b"200 NOOP ok\r\n")
        elif u == b"QUIT":
            c.sendall(b"221 bye\r\n")
            break
        else:
            c.sendall(b"200 ok\r\n")
    c.close()

ls = socket.socket(socket.AF_INET6)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("::", port))
ls.listen(8)
while True:
    c, _ = ls.accept()
    threading.Thread(target=session, args=(c,), daemon=True).start()
EOF

# The client of the scripted server, from fd00::2 port 45001: two passive
# transfers (data from ports 45101, 45102) checked against the server's
# data, NOOP; then each argument as a line ("|SPLIT|" splits it into two
# segments), waiting for its replies; then the director's connections, and
# QUIT. Prints "len ok" or what went wrong, "conns" and ipvsadm -Lnc.
cat > "$W/raw.py" <<'EOF'
import re, socket, subprocess, sys, time
vip, nsd = sys.argv[1], sys.argv[2]
DATA = bytes(range(251)) * 261 + b"end"
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("fd00::2", 45001))
s.settimeout(15)
s.connect((vip, 21))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def lines(n):
    global buf
    out = []
    while len(out) < n:
        if b"\n" in buf:
            l, buf = buf.split(b"\n", 1)
            out.append(l + b"\n")
            continue
        d = s.recv(65536)
        if not d:
            raise EOFError("control connection closed")
        buf += d
    return out
def cmd(parts):
    for k, p in enumerate(parts):
        if k:
            time.sleep(0.3)
        s.sendall(p)
    return lines(sum(p.count(b"\n") for p in parts))
lines(1)
bad = []
for k in (1, 2):
    r = cmd([b"EPSV\r\n"])[0]
    m = re.fullmatch(rb"229 Entering Extended Passive Mode \(\|\|\|(3\d{4})\|\)\r\n", r)
    if not m:
        bad.append("reply %r" % r)
        continue
    d = socket.socket(socket.AF_INET6)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind(("fd00::2", 45100 + k))
    d.settimeout(15)
    got = b""
    try:
        d.connect((vip, int(m[1])))
        while True:
            x = d.recv(65536)
            if not x:
                break
            got += x
    except OSError as e:
        bad.append("data %d: %s" % (k, e))
    d.close()
    if got != DATA:
        bad.append("data %d: %d bytes, %s" % (k, len(got), "same" if got == DATA[:len(got)] else "different"))
r = cmd([b"NOOP\r\n"])[0]
if r != b"200 NOOP ok\r\n":
    bad.append("NOOP reply %r" % r)
print("len " + ("ok" if not bad else "; ".join(bad)))
for arg in sys.argv[3:]:
    cmd([p for p in arg.encode().replace(b"\\r\\n", b"\r\n").split(b"|SPLIT|")])
time.sleep(0.5)
print("conns")
sys.stdout.flush()
subprocess.run(["nsenter", "--net=/run/netns/" + nsd, "ipvsadm", "-Lnc"])
sys.stdout.flush()
cmd([b"QUIT\r\n"])
EOF

# The raw lines, in order (see the header).
RAW=(
	'EPRT |2|fd00::2|40001|\r\n'
	'EPRT |2|fd00::99|40002|\r\n'
	'EPRT |1|10.0.0.2|40003|\r\n'
	'EPRT |2|fd00::2|0|\r\n'
	'EPRT |2|fd00::2|65535|\r\n'
	'EPRT |2|fd00::2|65536|\r\n'
	'eprt  !2!::ffff:10.0.0.2!40004!\r\n'
	'EPRT |2|fd00::zz|40005|\r\n'
	'EPRT |2|fd00:::2|40006|\r\n'
	'PORT 10,0,0,2,156,71\r\n'
	'EPRT ||||\r\n'
	'EPRT |2|fd00::2|40008\r\n'
	' EPRT |2|fd00::2|40009|\r\n'
	'NOOP\r\nEPRT |2|fd00::2|40010|\r\n'
	'EPRT |2|fd00::2|400|SPLIT|11|\r\n'
	'EPRT |2|1:2:3:4:5:6:7:8:9|40012|\r\n'
	'EPRT |3|fd00::2|40013|\r\n'
	'EPRT :2:fd00::2:40014:\r\n'
	'EPRT |2|1:2:3:4:5:6:10.0.0.2|40015|\r\n'
	'PASV\r\n'
	'EPSV 1\r\n'
	'EPSV ALL\r\n'
	'EPSV 2\r\n'
	'SITE R229 |1|10.1.1.2|31050|\r\n' 'EPSV\r\n'
	'SITE R229 |||0|\r\n' 'EPSV\r\n'
	'SITE R229 |2|fd00:1:1::99|31051|\r\n' 'EPSV\r\n'
	'SITE R229 !!!31052!\r\n' 'EPSV\r\n'
)
# What upstream's rules give for them (source virtual dest of the expected
# connections, the session's own data connections aside), sorted.
want_expected() {
	local v=$VIP6B r=${RIP6[1]}
	{
		for c in "[fd00::2]:40001" "[fd00::99]:40002" "[fd00::2]:65535" \
			"[::ffff:10.0.0.2]:40004" "[1:2:3:4:5:6:a00:2]:40015"; do
			echo "$c [$v]:20 [$r]:2120"
		done
		# EPSV 2 (31006: after the two transfers, PASV, EPSV 1 and ALL).
		echo "[fd00::2]:0 [$v]:31006 [$r]:31006"
		echo "[fd00::2]:0 [$v]:31051 [fd00:1:1::99]:31051"
		echo "[fd00::2]:0 [$v]:31052 [$r]:31052"
	} | sort
}
# (EPRT :2:fd00::2:...: with ':' as the delimiter the address ends at its
# first colon, too early: nothing.)

# norm: ipvsadm -Lnc lines as "proto state source virtual dest" (no expiry).
norm() { awk 'NR > 2 && NF >= 6 { print $1, $3, $4, $5, $6 }' | sort; }

CHECKS=(
	"vsftpd on $N real servers and the scripted server, NAT services [fd00:100::1]:21 and [$VIP6B]:21"
	"229 replies naming the server's address shortened: two passive transfers and a later reply intact"
	"hostile EPRT/PORT/EPSV lines and 229 replies: the expected connections upstream's rules give"
	"EPSV: 1 MB download byte-identical, 229 reply with the port only"
	"EPRT: 1 MB download byte-identical"
	"EPRT: 1 MB upload byte-identical"
)

# scenario IMPL FILE.txt: everything under IMPL, into the directory FILE
# (ref_cand_run's FILE less .txt): FILE/result.<n> holds "ok" or what failed
# for CHECKS[n], FILE/raw the scripted session's output.
scenario() {
	local impl=$1 o=${2%.txt} i k ok d mode t=$SECONDS
	mkdir -p "$o"
	res() { echo "$2" > "$o/result.$1"; }
	# lap WHAT: the seconds since the last lap, into DIR/times.
	lap() { echo -n "$1 $((SECONDS - t)) s, " >> "$o/times"; t=$SECONDS; }
	ipvs_use "$impl" || return 1
	lap ipvs_use
	modprobe ip_vs_ftp || return 1
	lap modprobe
	echo "$impl: $(ipvs_which), ftp: $(modinfo -n ip_vs_ftp)" > "$o/which"
	topo_nat $N || return 1
	ip -n "$NS_D" addr add "$VIP6B/128" dev lo || return 1
	lap topo
	# The scripted server first: Python starts slowly under emulation.
	bg "${NS_RS[1]}" python3 "$W/fake.py" "$FAKE_PORT" "${RIP6[1]}"
	for ((i = 1; i <= N; i++)); do
		bg "${NS_RS[i]}" "$FTPD" "$W/vsftpd.conf"
	done
	lap servers
	ok=ok
	# The client reaches the real servers only through IPVS.
	nsx "$NS_D" nft -f - <<-EOF || ok="nft"
		table inet ftptest {
			chain fw {
				type filter hook forward priority 0;
				ip6 saddr $CIP6 ip6 daddr fd00:1::/32 drop
			}
		}
	EOF
	{
		echo "-A -t [$VIP6]:21 -s rr"
		for ((i = 1; i <= N; i++)); do
			echo "-a -t [$VIP6]:21 -r [${RIP6[i]}]:21 -m"
		done
		echo "-A -t [$VIP6B]:21 -s rr"
		echo "-a -t [$VIP6B]:21 -r [${RIP6[1]}]:$FAKE_PORT -m"
	} | nsx "$NS_D" ipvsadm -R || ok="ipvsadm -R"
	lap config
	# (ss through nsenter: wait_listen's ip netns exec costs more per call.)
	for i in 0 $(seq $N); do
		for ((k = 0; k < 300; k++)); do
			if [ "$i" = 0 ]; then
				d=$(nsx "${NS_RS[1]}" ss -Htln "sport = :$FAKE_PORT")
			else
				d=$(nsx "${NS_RS[i]}" ss -Htln "sport = :21")
			fi
			[ -n "$d" ] && break
			sleep 0.1
		done
		[ -n "$d" ] || ok="server $i does not listen"
	done
	res 0 "$ok"
	lap listen

	# The scripted session first: the table holds only its connections.
	timeout -k 5 90 nsenter --net="/run/netns/$NS_C" python3 "$W/raw.py" "$VIP6B" "$NS_D" "${RAW[@]}" > "$o/raw" 2>&1
	d=$(sed -n 's/^len //p' "$o/raw")
	res 1 "${d:-no result: $(tail -3 "$o/raw" | tr '\n' ' ')}"
	sed -n '/^conns$/,$p' "$o/raw" | tail -n +2 | norm > "$o/conns"
	# Expected connections: not the control connection, not its data ones.
	awk '$4 != "['$VIP6B']:21" && $3 !~ /:451[0-9][0-9]$/ { print $3, $4, $5 }' "$o/conns" | sort > "$o/expected"
	if diff -u <(want_expected) "$o/expected" > "$o/expected.diff"; then
		res 2 ok
	else
		res 2 "$(tail -n +3 "$o/expected.diff" | tr '\n' ' ')"
	fi
	lap scripted

	# vsftpd: a download each way, an active upload.
	for mode in epsv eprt; do
		rm -f "$W/got"
		if [ $mode = epsv ]; then
			args=() want='229 .*\(\|\|\|30[0-9]{3}\|\)'
		else
			args=(-P -) want='200 EPRT command'
		fi
		if nsx "$NS_C" curl -g -v -sS --max-time 40 "${args[@]}" -o "$W/got" "ftp://[$VIP6]/big" \
			2> "$o/curl-$mode" && cmp -s "$W/big" "$W/got" && grep -qE "^< $want" "$o/curl-$mode"; then
			ok=ok
		else
			ok="$(grep -E '^(< [2-5]|curl)' "$o/curl-$mode" | head -5 | tr '\n' ' ')"
		fi
		if [ $mode = epsv ]; then res 3 "${ok:-failed}"; else res 4 "${ok:-failed}"; fi
		lap "$mode download"
	done
	ok="upload failed: $(nsx "$NS_C" curl -g -sS --max-time 40 -P - -T "$W/up" \
		"ftp://[$VIP6]/pub/up-$impl" 2>&1 | head -2 | tr '\n' ' ')"
	cmp -s "$W/up" "$W/ftp/pub/up-$impl" && ok=ok
	res 5 "$ok"
	lap upload
	return 0
}

ref_cand_run scenario "$W"

ktap_header $((2 * ${#CHECKS[@]} + 1))
ktap_diag "$(cat "$W/ref/which" "$W/cand/which" "$W/notes" 2>/dev/null)"
ktap_diag "$ref: $(cat "$W/ref/times" 2>/dev/null)"
ktap_diag "$cand: $(cat "$W/cand/times" 2>/dev/null)"
for who in ref cand; do
	if [ "$who" = cand ]; then impl=$cand; else impl=$ref; fi
	for ((k = 0; k < ${#CHECKS[@]}; k++)); do
		r=$(cat "$W/$who/result.$k" 2>/dev/null)
		if [ "$r" = ok ]; then
			ktap_pass "$impl: ${CHECKS[k]}"
		else
			ktap_diag "$impl: ${r:-not run}"
			ktap_fail "$impl: ${CHECKS[k]}"
		fi
	done
done

# The scripted session's connections, the same under both.
if [ -s "$W/ref/conns" ] && diff -u --label "$ref" --label "$cand" "$W/ref/conns" "$W/cand/conns" > "$W/conns.diff"; then
	ktap_diag "$(sed 's/^/    /' "$W/ref/conns")"
	ktap_pass "ipvsadm -Lnc of the scripted session identical to $ref's"
else
	ktap_diag "$(tail -n +3 "$W/conns.diff")"
	ktap_fail "ipvsadm -Lnc of the scripted session identical to $ref's"
fi

ktap_exit
