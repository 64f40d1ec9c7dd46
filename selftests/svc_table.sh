#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# The resizable service table (issue 22: upstream's `svc_lfactor`, Linux
# 7.1). Ours only: this kernel's C IPVS has a fixed table of 2 x 256 buckets
# and no svc_lfactor.
#
#  1. svc_lfactor: default -3; -8 and 8 are taken; -9, 9 and garbage are
#     refused with EINVAL and leave the value alone;
#  2. it is read-only in a namespace an unprivileged user owns;
#  3. a client keeps connecting to VIP:80 (3 real servers, rr) while 2,000
#     more services (TCP, UDP, firewall marks) are restored: the table grows
#     from 16 to 2^14 buckets (2,001 services at 8 buckets each) in ten
#     steps; every answer must come;
#  4. each of the 2,000 services answers a lookup (generic netlink
#     GET_SERVICE), with the table resized every 100 by svc_lfactor writes
#     (8, 0), which resize at once;
#  5. /proc/net/ip_vs lists each of the 2,001 services exactly once when read
#     in pieces of 2048 bytes with svc_lfactor flipped between 8 and 0 (a
#     resize) before each piece: the listing follows the services' hashes,
#     not their buckets, so a resize does not move the reader's place;
#  6. if /proc/net/ip_vs_status is there, the service buckets it shows grew
#     (2,001 services at -3: 16,384) and shrink back once the services are
#     deleted one by one (with the client still connecting), else skipped;
#  7. the 2,000 services deleted one by one (ipvsadm -R of -D lines) with
#     the client still connecting: every answer must come.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=2000
SYS=/proc/sys/net/ipv4/vs
CLIENT=$TOOLS/lib/ipvs-client

if [ "$IPVS_IMPL" != rust ]; then
	ktap_skip_all "svc_lfactor is newer than this kernel's C IPVS"
fi
# all COND...: whether every test expression (one per argument) holds.
all() {
	local c
	for c in "$@"; do
		eval "[ $c ]" || return 1
	done
}
ipvs_use rust || ktap_skip_all "cannot load the Rust IPVS"
ktap_header 9
ktap_diag "implementation: rust ($(ipvs_which))"

work=$(mktemp -d)
rm_work() { rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

if ! topo_nat 3 || ! start_servers 3; then
	ktap_fail "topology setup"
	ktap_exit
fi
D() { nsx "$NS_D" "$@"; }

# 1. Range.
res=$(D python3 - "$SYS/svc_lfactor" <<- 'EOF'
	import errno, os, sys
	p = sys.argv[1]
	def rd():
	    with open(p) as f:
	        return f.read().strip()
	def wr(v):
	    try:
	        fd = os.open(p, os.O_WRONLY)
	        try:
	            os.write(fd, (v + "\n").encode())
	        finally:
	            os.close(fd)
	        return "ok"
	    except OSError as e:
	        return errno.errorcode[e.errno]
	out = ["default=" + rd()]
	for v in ["-8", "8", "0", "-9", "9", "abc", "-2147483649", "-3"]:
	    out.append(f"{v}:{wr(v)}:{rd()}")
	print(" ".join(out))
	EOF
)
want="default=-3 -8:ok:-8 8:ok:8 0:ok:0 -9:EINVAL:0 9:EINVAL:0 abc:EINVAL:0 -2147483649:EINVAL:0 -3:ok:-3"
ktap_diag "svc_lfactor writes: $res"
if [ "$res" = "$want" ]; then
	ktap_pass "svc_lfactor: default -3, -8..8 taken, the rest EINVAL"
else
	ktap_fail "svc_lfactor: default -3, -8..8 taken, the rest EINVAL (want: $want)"
fi

# 2. Unprivileged owner.
mode=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	unshare -Urn bash -c '
		f=/proc/sys/net/ipv4/vs/svc_lfactor
		if v=$(cat "$f" 2>/dev/null) && (echo "$v" > "$f") 2>/dev/null; then
			echo writable
		else
			echo "read-only $(stat -c %a "$f" 2>/dev/null)"
		fi' 2>&1)
if [ "$mode" = "read-only 444" ]; then
	ktap_pass "svc_lfactor read-only (0444) for an unprivileged namespace owner"
elif [ -z "$mode" ] || [[ "$mode" == *unshare* ]]; then
	ktap_skip "svc_lfactor for an unprivileged owner: no user namespaces ($mode)"
else
	ktap_fail "svc_lfactor read-only (0444) for an unprivileged namespace owner: $mode"
fi

status_buckets() { # the service buckets of /proc/net/ip_vs_status, if shown
	D awk -F'[:\t ]+' 'tolower($0) ~ /^service buckets:|^svc buckets:/ { print $3; exit }' \
		/proc/net/ip_vs_status 2>/dev/null
}

# The client: one TCP connection after another to VIP:80 until told to
# stop; lines "<phase> <answer>".
D ipvsadm -A -t "$VIP:80" -s rr
for i in 1 2 3; do D ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m; done
phase_file=$work/phase stop_file=$work/stop log=$work/client.log
echo start > "$phase_file"
nsx "$NS_C" "$CLIENT" loop "$VIP" 80 --phase-file "$phase_file" \
	--stop-file "$stop_file" --timeout 3 --max-seconds 250 >> "$log" 2>&1 &
client_pid=$!
BG_PIDS+=("$client_pid")
sleep 2

# 3. Growth: 2,000 services (a fifth of them firewall marks, a fifth UDP),
# one real server each.
awk -v n="$N" 'BEGIN {
	for (i = 0; i < n; i++) {
		a = "10.30." int(i / 250) "." (i % 250 + 1)
		k = i % 5
		s = (k == 0) ? "-f " (i + 1) : (k == 1) ? "-u " a ":53" : "-t " a ":" (1000 + i % 7)
		print "-A " s " -s rr"
		print "-a " s " -r 10.1.1.2:80 -m"
	}
}' > "$work/restore"
awk '$1 == "-A" { print "-D", $2, $3 }' "$work/restore" > "$work/delete"
echo grow > "$phase_file"
b0=$(status_buckets)
t0=$(date +%s.%N)
D ipvsadm -R < "$work/restore"
rc=$?
t1=$(date +%s.%N)
b1=$(status_buckets)
ktap_diag "restore of $N services: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; buckets ${b0:-?} -> ${b1:-?}"
got=$(D ipvsadm -Ln | grep -c -E '^(TCP|UDP|FWM) ')
ktap_check "restore of $N services with traffic flowing ($got listed)" all '"$rc" = 0' '"$got" = $((N + 1))'

# 4. Lookups of every service (generic netlink GET_SERVICE, one process),
# svc_lfactor flipped between 8 and 0 every 100 (each write resizes).
echo lookups > "$phase_file"
miss=$(D python3 - "$TOOLS/lib" "$N" "$SYS/svc_lfactor" <<- 'EOF'
	import socket, sys
	sys.path.insert(0, sys.argv[1])
	import ipvs_genl as g
	n, lf = int(sys.argv[2]), sys.argv[3]
	nl = g.Nl()
	fam = nl.family_id("IPVS")
	def key(i):
	    a = socket.inet_aton("10.30.%d.%d" % (i // 250, i % 250 + 1)) + bytes(12)
	    k = i % 5
	    if k == 0:
	        inner = g.u16(1, 2) + g.u32(5, i + 1)
	    else:
	        proto, port = (17, 53) if k == 1 else (6, 1000 + i % 7)
	        inner = g.u16(1, 2) + g.u16(2, proto) + g.nla(3, a) + g.be16(4, port)
	    return g.nla(1, inner)
	miss = 0
	for i in range(n):
	    if i % 100 == 0:
	        with open(lf, "w") as f:
	            f.write(("8" if i % 200 == 0 else "0") + "\n")
	    err, data, _ = nl.request(fam, 4, 0, key(i))
	    if err or not data:
	        miss += 1
	        print("miss", i, err, file=sys.stderr)
	with open(lf, "w") as f:
	    f.write("-3\n")
	print(miss)
	EOF
)
ktap_check "GET_SERVICE of each of the $N services while the table resizes: ${miss:-?} missed" [ "$miss" = 0 ]

# 5. /proc/net/ip_vs read in pieces, resized between pieces.
echo proc > "$phase_file"
res=$(D python3 - "$SYS/svc_lfactor" <<- 'EOF'
	import collections, sys
	lf = sys.argv[1]
	def setlf(v):
	    with open(lf, "w") as f:
	        f.write(v + "\n")
	buf = b""
	flip = 0
	with open("/proc/net/ip_vs", "rb", buffering=0) as f:
	    while True:
	        setlf(["8", "0"][flip])
	        flip ^= 1
	        b = f.read(2048)
	        if not b:
	            break
	        buf += b
	setlf("-3")
	svcs = [l for l in buf.decode().splitlines() if l[:4] in ("TCP ", "UDP ", "FWM ")]
	c = collections.Counter(svcs)
	dup = sum(1 for v in c.values() if v > 1)
	print(len(svcs), len(c), dup)
	EOF
)
ktap_diag "/proc/net/ip_vs in 2048-byte reads: lines, distinct, repeated: $res"
ktap_check "/proc/net/ip_vs lists each service once across resizes" [ "$res" = "$((N + 1)) $((N + 1)) 0" ]

# 6. and 7. Shrink: every service deleted, one command each.
echo shrink > "$phase_file"
D ipvsadm -R < "$work/delete"
rc=$?
b2=$(status_buckets)
got=$(D ipvsadm -Ln | grep -c -E '^(TCP|UDP|FWM) ')
ktap_check "$N services deleted one by one with traffic flowing ($got left)" all '"$rc" = 0' '"$got" = 1'
if [ -n "$b1" ] && [ -n "$b2" ]; then
	ktap_diag "ip_vs_status service buckets: ${b0:-?} -> $b1 -> $b2"
	ktap_check "ip_vs_status: the service table grew to 16384 and shrank back" \
		all '"$b1" = 16384' '"$b2" -le 64'
else
	ktap_skip "ip_vs_status: no service buckets shown (yet)"
fi
sleep 2
touch "$stop_file"
wait "$client_pid"

# Every phase's requests answered.
total=$(grep -c . "$log")
errs=$(grep -c ' ERR ' "$log")
for p in grow lookups proc shrink; do
	n=$(grep -c "^$p " "$log")
	e=$(grep -c "^$p .*ERR" "$log")
	ktap_diag "phase $p: $n requests, $e failed"
done
grep ' ERR ' "$log" | head -5 | while read -r l; do ktap_diag "$l"; done
ktap_check "client: $total requests while the table resized, $errs failed" \
	all '"$total" -gt 20' '"$errs" = 0'
ng=$(grep -c '^grow ' "$log") nsh=$(grep -c '^shrink ' "$log")
ktap_check "traffic while growing ($ng requests) and shrinking ($nsh)" all '"$ng" -gt 0' '"$nsh" -gt 0'
ktap_exit
