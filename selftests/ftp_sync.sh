#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 600
#
# FTP survives a director failover in the middle of a control session: the
# sequence adjustment of ip_vs_ftp travels with connection sync
# (IPVS_OPT_SEQ_DATA in version 1, the options after a version 0 record).
# The C IPVS and $IPVS_IMPL in one boot, one after the other, each in fresh
# namespaces (only the C one with --impl c; FTP_SYNC_IMPLS="rust" runs the
# implementations named instead).
#
#   client 10.0.0.2 (br0) --- A 10.0.0.11 (master)   B 10.0.0.12 (backup)
#                               s0 10.9.0.1 ------ s1 10.9.0.2 (sync link)
#   rs 10.1.0.21, 10.1.0.210 (br1) --- A 10.1.0.11, B 10.1.0.12
#
# Both directors have the VIPs on lo, the NAT services VIP1 10.0.100.1:21
# -> 10.1.0.21:21 and VIP2 10.0.100.2:21 -> 10.1.0.210:21 (B the second
# only from step 4), ip_vs_ftp, and run ipvsadm's sync daemons (A master,
# B backup, syncid 7, sync_version 1). The client reaches the VIPs through
# A (a route), the real servers (two vsftpd, one per address, in one
# namespace) route back through A; the client has no route to them. Passive replies of
# 10.1.0.21 grow by one byte when the helper puts VIP1 in ("10,1,0,21" ->
# "10,0,100,1"), so later sequence numbers of that control connection
# differ by one between client and server; those of 10.1.0.210 keep their
# length ("10,1,0,210" -> "10,0,100,2"): nothing to adjust.
# tools/lib/ipvs-sync-watch on B's sync link prints every record A sends.
# Sessions are tools/lib/ipvs-ftp-session: one control connection each,
# left open and idle between its two halves. Per implementation:
#
#  1. Setup.
#  2. Sessions X (VIP1) and Z (VIP2) each log in and download a 64 KB file
#     passively through A, byte-identical, the 227 reply naming the VIP.
#  3. A's (version 1) records of X's control connection carry its sequence
#     data: OUT_SEQ (not IN_SEQ), in_seq 0/0/0, out_seq +1 (previous 0);
#     Z's carry none.
#  4. B has learned Z's control connection without a service for it
#     (unbound); then B gets the VIP2 service and Z downloads once more
#     through A: the new records bind B's entry to its real server
#     (ip_vs_try_bind_dest), which binds the helper too.
#  5. sync_version 0 on A; session Y (VIP1) likewise; A's records of Y are
#     all of version 0, with the same data after them.
#  6. B has learned the three control connections (ESTABLISHED, their real
#     servers) and forwarded nothing.
#  7. Failover: the client's route and the real servers' default route
#     move to B, A's links go down. On their control connections, Z, X and Y
#     each download the file passively again, NOOP, PWD, download it a
#     third time (B rewrote the second 227 reply: +2 from then on) and QUIT:
#     byte-identical, their 227 replies naming the VIP (Z's only if B's
#     helper is bound to it, see 4).
#  8. B forwarded them (its counters).
#
# The C IPVS: upstream's ip_vs_ftp rewrites through conntrack
# (nf_nat_mangle_tcp_packet: conntrack's seqadj adjusts the numbers on A)
# and leaves ip_vs's in_seq/out_seq alone ("Not setting 'diff' is
# intentional"), so its records carry no sequence data, B's conntrack
# entry, made mid-stream, knows of no adjustment, and X and Y break after
# the failover (the client's acknowledgements run a byte ahead of what the
# real server sent, which drops its segments; the client times out). Z survives with
# either. For the C IPVS, steps 3 and 5 (the sequence data) and X and Y in
# 7 report SKIP when they show exactly that; anything else counts.
#
# Every wait is on a condition. Few processes: each costs under emulation.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

FTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
[ -x "$FTPD" ] || ktap_skip_all "vsftpd is not installed"
python3 -c 'import ftplib' 2>/dev/null || ktap_skip_all "python3 has no ftplib"

impls=(c)
[ "$IPVS_IMPL" != c ] && impls+=("$IPVS_IMPL")
[ -n "${FTP_SYNC_IMPLS:-}" ] && read -r -a impls <<< "$FTP_SYNC_IMPLS"
NSTEPS=10
ktap_header $(( ${#impls[@]} * NSTEPS ))

VIP1=10.0.100.1
VIP2=10.0.100.2
RS1=10.1.0.21
RS2=10.1.0.210
SYNCID=7
SESSION=$TOOLS/lib/ipvs-ftp-session
WATCH=$TOOLS/lib/ipvs-sync-watch
UPSTREAM="upstream's ip_vs_ftp adjusts sequence numbers through conntrack, which sync does not carry"

work=$(mktemp -d /tmp/ipvs-ftp-sync.XXXXXX)
chmod 755 "$work"
rm_work() { save_artifacts "$work" ftp_sync; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

head -c 65536 /dev/urandom > "$work/big"
mkdir -p "$work/empty"

NS_A= NS_B= NS_R=

# wait_for SECONDS CMD...: until CMD succeeds (every 0.2 s).
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# vsftpd_conf ADDR DIR PORTS: anonymous vsftpd on ADDR serving DIR, passive
# ports PORTS (first-last).
vsftpd_conf() {
	cat <<-EOF
		listen=YES
		listen_ipv6=NO
		listen_address=$1
		background=NO
		anonymous_enable=YES
		no_anon_password=YES
		anon_root=$2
		local_enable=NO
		write_enable=NO
		secure_chroot_dir=$work/empty
		pasv_enable=YES
		pasv_min_port=${3%-*}
		pasv_max_port=${3#*-}
		seccomp_sandbox=NO
		isolate=NO
		isolate_network=NO
		xferlog_enable=NO
		dirmessage_enable=NO
		max_per_ip=0
		max_clients=0
	EOF
}

# port NS IF HOST-NS BRIDGE: a veth from NS's IF to BRIDGE in HOST-NS.
port() {
	local p=p$RANDOM
	ip link add "$2" netns "$1" type veth peer name "$p" netns "$3" || return 1
	ip -n "$3" link set "$p" master "$4" up || return 1
	ip -n "$1" link set "$2" up
}

# vip2_service NS: the VIP2 service in NS.
vip2_service() {
	nsx "$1" ipvsadm -A -t $VIP2:21 -s rr && nsx "$1" ipvsadm -a -t $VIP2:21 -r $RS2:21 -m
}

# listening: both vsftpd listen.
listening() {
	local l
	l=$(nsx "$NS_R" ss -Htln 2>/dev/null)
	[[ $l == *"$RS1:21 "* && $l == *"$RS2:21 "* ]]
}

setup() {
	local d=$work/$IMPL ns v n i
	mkdir -p "$d"
	# The client's and the real servers' namespaces hold the bridges.
	ns_add NS_C client || return 1
	ns_add NS_R rs || return 1
	ns_add NS_A dirA || return 1
	ns_add NS_B dirB || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		link add br0 type bridge
		link set br0 up
		addr add 10.0.0.2/24 dev br0
	EOF
	ip -n "$NS_R" -b - <<-EOF || return 1
		link add br1 type bridge
		link set br1 up
		addr add $RS1/24 dev br1
		addr add $RS2/24 dev br1
	EOF
	veth_add "$NS_A" s0 "$NS_B" s1 || return 1
	for v in A B; do
		ns=NS_$v
		ns=${!ns}
		n=11 i=1
		[ $v = B ] && n=12 i=2
		port "$ns" lan0 "$NS_C" br0 && port "$ns" srv0 "$NS_R" br1 || return 1
		ip -n "$ns" -b - <<-EOF || return 1
			addr add 10.0.0.$n/24 dev lan0
			addr add 10.1.0.$n/24 dev srv0
			addr add 10.9.0.$i/24 dev s$((i - 1))
			addr add $VIP1/32 dev lo
			addr add $VIP2/32 dev lo
		EOF
		nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 || return 1
		nsx "$ns" ipvsadm -A -t $VIP1:21 -s rr || return 1
		nsx "$ns" ipvsadm -a -t $VIP1:21 -r $RS1:21 -m || return 1
	done
	vip2_service "$NS_A" || return 1
	# Routes through A, now that the bridges have ports.
	ip -n "$NS_C" route add 10.0.100.0/24 via 10.0.0.11 || return 1
	ip -n "$NS_R" route add default via 10.1.0.11 || return 1
	mkdir -p "$d/rs1" "$d/rs2"
	cp "$work/big" "$d/rs1/big"
	cp "$work/big" "$d/rs2/big"
	vsftpd_conf $RS1 "$d/rs1" 30000-30499 > "$d/vsftpd1.conf"
	vsftpd_conf $RS2 "$d/rs2" 30500-30999 > "$d/vsftpd2.conf"
	bg "$NS_R" "$FTPD" "$d/vsftpd1.conf"
	bg "$NS_R" "$FTPD" "$d/vsftpd2.conf"
	bg "$NS_B" "$WATCH" --dev s1 --out "$d/records" --ready "$d/watch.ready"
	nsx "$NS_A" ipvsadm --start-daemon master --mcast-interface s0 --syncid $SYNCID || return 1
	nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid $SYNCID || return 1
	wait_for 30 listening && wait_for 30 test -e "$d/watch.ready"
}

# session NAME VIP: a kept-open FTP session from the client.
session() {
	bg "$NS_C" "$SESSION" "$2" --file big --ref "$work/big" \
		--status "$work/$IMPL/$1.status" --go "$work/$IMPL/go" --poke "$work/$IMPL/poke.$1" \
		--timeout 15
}

# half NAME H: HALF is the session's result of half H (a or b), "" while
# it has none.
HALF=
half() {
	local l
	HALF=
	[ -f "$work/$IMPL/$1.status" ] || return 0
	while IFS= read -r l; do
		[[ $l == "$2 "* ]] && HALF=${l#"$2 "}
	done < "$work/$IMPL/$1.status"
}

# halves H NAME...: every session named has its result of half H.
halves() {
	local h=$1 n
	shift
	for n in "$@"; do
		half "$n" "$h"
		[ -n "$HALF" ] || return 1
	done
}

# The sessions' client ports and virtual addresses.
declare -A CPORT VIPOF=([X]=$VIP1 [Y]=$VIP1 [Z]=$VIP2)

# summary: A's records of the sessions' control connections so far, in one
# awk: REC[NAME.VER] records of version VER (v0, v1), SEQ[NAME.VER] of them
# with sequence data, ONE[NAME.VER] with exactly the data of one rewrite
# of a reply: OUT_SEQ and not IN_SEQ, in_seq 0/0/0, out_seq +1, previous 0.
declare -A REC SEQ ONE
summary() {
	local name ver n s o keys=
	REC=() SEQ=() ONE=()
	for name in "${!CPORT[@]}"; do
		keys+="$name=10.0.0.2:${CPORT[$name]}/${VIPOF[$name]}:21 "
	done
	while read -r name ver n s o; do
		REC[$name.$ver]=$n SEQ[$name.$ver]=$s ONE[$name.$ver]=$o
	done < <(awk -v keys="$keys" '
		BEGIN {
			n = split(keys, k, " ")
			for (i = 1; i <= n; i++) { split(k[i], p, "="); sub("/", " ", p[2]); who[p[2]] = p[1] }
		}
		($3 " " $4) in who {
			w = who[$3 " " $4] " " $1
			rec[w]++
			if ($NF != "seq=-") seq[w]++
			f = $6; sub(/flags=0x/, "", f)
			x = 0
			for (i = 1; i <= length(f); i++) x = x * 16 + index("0123456789abcdef", substr(f, i, 1)) - 1
			if ($NF ~ /^seq=0\/0\/0,[0-9]+\/1\/0$/ && int(x / 512) % 2 == 1 && int(x / 1024) % 2 == 0)
				one[w]++
		}
		END { for (w in rec) print w, rec[w], seq[w] + 0, one[w] + 0 }
	' "$work/$IMPL/records" 2>/dev/null)
}

# after_download NAME...: A has sent two records of each session's control
# connection (the first at its third packet, then more once the data
# connection's records bring their controller's) and, for ours, one with
# sequence data for a session to 10.1.0.21.
after_download() {
	local n
	summary
	for n in "$@"; do
		[ $(( ${REC[$n.v1]:-0} + ${REC[$n.v0]:-0} )) -ge 2 ] || return 1
		[ "$IMPL" = c ] || [ "${VIPOF[$n]}" = "$VIP2" ] ||
			[ $(( ${SEQ[$n.v1]:-0} + ${SEQ[$n.v0]:-0} )) -ge 1 ] || return 1
	done
}

# show NAME...: the sessions' record counts, as a diagnostic.
show() {
	local n v out=
	for n in "$@"; do
		for v in v1 v0; do
			out+="$n $v: ${REC[$n.$v]:-0} records, ${SEQ[$n.$v]:-0} with sequence data, ${ONE[$n.$v]:-0} of one rewrite; "
		done
	done
	ktap_diag "$IMPL: A's records: $out"
}

# result NAME OK(1|0|skip) [DIAG]: one result of this implementation, the
# time since its start as a diagnostic.
result() {
	ktap_diag "$IMPL: at $((SECONDS - t0)) s"
	case $2 in
	1) ktap_pass "$IMPL: $1" ;;
	skip) ktap_skip "$IMPL: $1" "$UPSTREAM" ;;
	*)
		[ -n "${3:-}" ] && ktap_diag "$3"
		ktap_fail "$IMPL: $1"
		;;
	esac
}

# z_listed: B's table has Z's control connection (ESTABLISHED).
z_listed() {
	local t
	t=$(nsx "$NS_B" ipvsadm -Lnc 2>/dev/null) || return 1
	[[ $t =~ ESTABLISHED\ +10\.0\.0\.2:${CPORT[Z]}\ +$VIP2:21\ +$RS2:21 ]]
}

# z_bound: B's real server of VIP2 counts one active connection (Z's).
z_bound() {
	local l
	while read -r -a l; do
		[ "${l[0]:-}" = "->" ] && [ "${l[1]}" = "$RS2:21" ] && [ "${l[4]}" = 1 ] && return 0
	done < <(nsx "$NS_B" ipvsadm -Ln -t $VIP2:21 2>/dev/null)
	return 1
}

# learned: B's table has the three control connections, ESTABLISHED, to
# their real servers.
learned() {
	local t n want ok=1
	t=$(nsx "$NS_B" ipvsadm -Lnc 2>/dev/null) || return 1
	for n in X Y Z; do
		want=$RS1
		[ $n = Z ] && want=$RS2
		[[ $t =~ ESTABLISHED\ +10\.0\.0\.2:${CPORT[$n]}\ +${VIPOF[$n]}:21\ +$want:21 ]] || ok=0
	done
	[ $ok = 1 ]
}

# inpkts NS: "VIP1-INPKTS VIP2-INPKTS" of NS's services.
inpkts() {
	local l a=? b=?
	while read -r -a l; do
		[ "${l[0]:-}" = TCP ] || continue
		[ "${l[1]}" = "$VIP1:21" ] && a=${l[3]}
		[ "${l[1]}" = "$VIP2:21" ] && b=${l[3]}
	done < <(nsx "$1" ipvsadm -Ln --stats --exact 2>/dev/null)
	echo "$a $b"
}

run_impl() {
	IMPL=$1
	local ok st n want what cnt t0=$SECONDS i
	CPORT=()
	if ! ipvs_use "$IMPL" || ! modprobe ip_vs_ftp || ! setup; then
		for ((i = 0; i < NSTEPS; i++)); do ktap_fail "$IMPL: setup"; done
		cleanup_ns
		return
	fi
	result "two directors with the FTP services, ip_vs_ftp and sync daemons ($(modinfo -n ip_vs_ftp))" 1

	# 2. X and Z.
	session X "$VIP1"
	session Z "$VIP2"
	wait_for 60 halves a X Z
	ok=1
	for n in X Z; do
		half $n a
		[[ $HALF =~ ^ok\ cport=([0-9]+)\ pasv=${VIPOF[$n]}, ]] || ok=0
		CPORT[$n]=${BASH_REMATCH[1]:-0}
	done
	half X a
	want="X: $HALF"
	half Z a
	result "sessions X and Z: a passive download each through A, byte-identical, 227 naming the VIP" $ok \
		"$want; Z: $HALF"

	# 3. Their records.
	wait_for 20 after_download X Z
	show X Z
	st=0
	if [ "${REC[X.v1]:-0}" -ge 2 ] && [ "${REC[Z.v1]:-0}" -ge 2 ] && [ -z "${REC[X.v0]:-}${REC[Z.v0]:-}" ] &&
		[ "${SEQ[Z.v1]:-0}" = 0 ]; then
		if [ "${ONE[X.v1]:-0}" -ge 1 ]; then
			st=1
		elif [ "$IMPL" = c ] && [ "${SEQ[X.v1]:-0}" = 0 ]; then
			st=skip
		fi
	fi
	result "version 1: X's records carry its sequence data (OUT_SEQ, out_seq +1), Z's none" $st

	# 4. B: Z's entry, unbound; the service; a download; bound.
	ok=0
	if wait_for 20 z_listed && vip2_service "$NS_B"; then
		touch "$work/$IMPL/poke.Z"
		wait_for 60 halves p Z
		half Z p
		[[ $HALF == "ok pasv=$VIP2,"* ]] && wait_for 20 z_bound && ok=1
	fi
	result "B learns Z's connection before it has the service; later records bind it (ActiveConn 1)" $ok \
		"Z: $HALF; B: $(nsx "$NS_B" ipvsadm -Ln; nsx "$NS_B" ipvsadm -Lnc)"

	# 5. Version 0 from now on; Y.
	nsx "$NS_A" sysctl -qw net.ipv4.vs.sync_version=0
	session Y "$VIP1"
	wait_for 60 halves a Y
	half Y a
	st=0
	if [[ $HALF =~ ^ok\ cport=([0-9]+)\ pasv=$VIP1, ]]; then
		CPORT[Y]=${BASH_REMATCH[1]}
		wait_for 20 after_download Y
		show Y
		if [ "${REC[Y.v0]:-0}" -ge 2 ] && [ -z "${REC[Y.v1]:-}" ]; then
			if [ "${ONE[Y.v0]:-0}" -ge 1 ]; then
				st=1
			elif [ "$IMPL" = c ] && [ "${SEQ[Y.v0]:-0}" = 0 ]; then
				st=skip
			fi
		fi
	fi
	result "version 0: session Y through A likewise; its records carry the same sequence data" $st "Y: $HALF"

	# 6. B knows the three control connections and has forwarded nothing.
	ok=0
	wait_for 20 learned && [ "$(inpkts "$NS_B")" = "0 0" ] && ok=1
	result "B has learned the three control connections, forwarded nothing" $ok \
		"$(nsx "$NS_B" ipvsadm -Lnc)"

	# 7. Failover, then the second halves.
	ip -n "$NS_C" route replace 10.0.100.0/24 via 10.0.0.12
	ip -n "$NS_R" route replace default via 10.1.0.12
	ip -n "$NS_A" link set lan0 down
	ip -n "$NS_A" link set srv0 down
	touch "$work/$IMPL/go"
	wait_for 90 halves b X Y Z
	for n in Z X Y; do
		half $n b
		ktap_diag "$IMPL: $n: $HALF"
		st=0
		if [[ $HALF == "ok pasv=${VIPOF[$n]},"*" ${VIPOF[$n]},"* ]]; then
			st=1
		elif [ "$IMPL" = c ] && [ $n != Z ] && [[ $HALF == "fail "* ]] &&
			[ $(( ${SEQ[$n.v1]:-0} + ${SEQ[$n.v0]:-0} )) = 0 ]; then
			st=skip
		fi
		case $n in
		Z) what="Z (nothing to adjust)" ;;
		X) what="X (sequence data of version 1)" ;;
		Y) what="Y (sequence data of version 0)" ;;
		esac
		result "after the failover, $what goes on through B: two downloads, NOOP, PWD, QUIT" $st
	done

	# 8. Through B.
	cnt=$(inpkts "$NS_B")
	ok=0
	[[ $cnt =~ ^[1-9][0-9]*\ [1-9][0-9]*$ ]] && ok=1
	result "B forwarded the sessions after the failover (InPkts $cnt)" $ok "$(nsx "$NS_B" ipvsadm -Lnc)"
	cleanup_ns
}

for impl in "${impls[@]}"; do
	run_impl "$impl"
done
ktap_exit
