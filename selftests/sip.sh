#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 480
#
# The SIP persistence engine (ipvsadm --pe sip, ip_vs_pe_sip) on a persistent
# UDP service, NAT, rr, 3 real servers, under the C IPVS (with its
# ip_vs_pe_sip) and then under $IPVS_IMPL in one boot; every check is
# reported for both, prefixed with the implementation:
#  - --pe sip loads ip_vs_pe_sip; ipvsadm -Ln reports "pe sip"; the engine
#    module cannot be unloaded while a service uses it;
#  - datagrams of one Call-ID go to one real server whatever their source
#    port; different Call-IDs of one client are spread by rr (one template
#    per Call-ID, shown with "sip CALLID" by ipvsadm -Lnc --persistent-conn
#    and /proc/net/ip_vs_conn);
#  - hostile payloads (no Call-ID, one over 255 bytes, truncated, empty)
#    are dropped without a template, as upstream;
#  - sync: a backup director (sync daemon over a link of its own, sync
#    threshold 1) gets the templates with their Call-IDs;
#  - with the services gone, the templates still hold ip_vs_pe_sip (as
#    upstream: rmmod fails until they expire);
#  - sipp: calls of sipp -sn uac (a socket per call) through the service to
#    3 sipp -sn uas responders all complete, and every responder takes some;
#  - once the directors' namespaces are deleted, every IPVS module unloads.
# Compared: the servers of the Call-IDs, the directors' connections and
# templates (/proc/net/ip_vs_conn and ipvsadm -Lnc --persistent-conn,
# expiry masked) and the backup's. The client and real servers (with their
# ipvs-server and sipp responders) are set up once; each implementation
# gets a fresh director and backup, deleted afterwards.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

require_ref_cand
PART=11
ktap_header $((2 * PART + 3))

SIPP=$(command -v sipp || true)
W=$(mktemp -d /tmp/ipvs-sip.XXXXXX)
rm_w() { cd / && save_artifacts "$W" sip; rm -rf "$W"; }
CLEANUP_HOOKS+=(rm_w)
# sipp writes its files into the working directory.
cd "$W" || exit 1

# director: a director and a backup B on a link of its own, with the
# services and the sync daemons.
director() {
	local i d="" b=""
	topo_director || return 1
	d="-A -u $VIP:5060 -s rr -p 60 --pe sip"$'\n'"-A -u $VIP:5062 -s rr -p 60 --pe sip"$'\n'
	b="-A -u $VIP:5060 -s rr -p 60 --pe sip"$'\n'
	for ((i = 1; i <= 3; i++)); do
		d+="-a -u $VIP:5060 -r ${RIP[i]}:5060 -m"$'\n'"-a -u $VIP:5062 -r ${RIP[i]}:5062 -m"$'\n'
		b+="-a -u $VIP:5060 -r ${RIP[i]}:5060 -m"$'\n'
	done
	nsx "$NS_D" ipvsadm -R <<< "$d" || return 1
	ns_add NS_B backup || return 1
	ip link add s0 netns "$NS_D" type veth peer name s1 netns "$NS_B" || return 1
	ip -n "$NS_D" -b - <<-EOF || return 1
		link set s0 up
		addr add 10.9.0.1/24 dev s0
	EOF
	ip -n "$NS_B" -b - <<-EOF || return 1
		link set s1 up
		addr add 10.9.0.2/24 dev s1
	EOF
	nsx "$NS_B" ipvsadm -R <<< "$b" || return 1
	nsx "$NS_D" sysctl -qw net.ipv4.vs.sync_threshold="1 50" || return 1
	nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 --syncid 9 || return 1
	nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid 9 || return 1
}

# send [seq|drop] CALLID:SPORT...: one SIP-like datagram per CALLID:SPORT
# from $CIP:SPORT to $VIP:5060 with that Call-ID (names for hostile
# payloads, see msg); prints "CALLID SPORT ANSWER" per datagram (ANSWER "-"
# when none came). After seq (the default) each answer is awaited (3 s at
# most) before the next goes; after drop the datagrams go without waiting,
# and at the end their answers are awaited for 1 s.
send() {
	nsx "$NS_C" python3 - "$CIP" "$VIP" "$@" <<-'PY'
	import select, socket, sys, time
	cip, vip, mode = sys.argv[1], sys.argv[2], "seq"
	def msg(cid):
	    head = b"OPTIONS sip:service@" + vip.encode() + b":5060 SIP/2.0\r\n"
	    head += b"Via: SIP/2.0/UDP " + cip.encode() + b";branch=z9hG4bK1\r\n"
	    if cid == "none":
	        return head + b"CSeq: 1 OPTIONS\r\n\r\n"
	    if cid == "long":
	        return head + b"Call-ID: " + b"x" * 256 + b"\r\n\r\n"
	    if cid == "max":
	        return head + b"Call-ID: " + b"m" * 255 + b"\r\n\r\n"
	    if cid == "trunc":
	        return head + b"Call-ID: abc"
	    if cid == "empty":
	        return b""
	    if cid == "short":
	        return b"x\r\ni"
	    return head + b"i:  " + cid.encode() + b"\r\nCSeq: 1 OPTIONS\r\n\r\n"
	socks, wait = [], {}
	for arg in sys.argv[3:]:
	    if arg in ("seq", "drop"):
	        mode = arg
	        continue
	    cid, sport = arg.rsplit(":", 1)
	    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	    s.bind((cip, int(sport)))
	    s.sendto(msg(cid), (vip, 5060))
	    socks.append([s, cid, sport, "-"])
	    if mode == "seq":
	        if select.select([s], [], [], 3)[0]:
	            socks[-1][3] = s.recv(100).decode().strip()
	    else:
	        wait[s] = socks[-1]
	end = time.monotonic() + 1
	while wait and time.monotonic() < end:
	    for s in select.select(list(wait), [], [], max(0, end - time.monotonic()))[0]:
	        wait.pop(s)[3] = s.recv(100).decode().strip()
	for s, cid, sport, ans in socks:
	    s.close()
	    print(cid, sport, ans)
	PY
}

# conns NS: the namespace's connections and templates, expiry masked.
conns() {
	nsx "$1" cat /proc/net/ip_vs_conn | awk 'NR > 1 { $9 = "-"; print }' | sort
}

# part IMPL TAG: every check under IMPL, in a fresh director and backup.
part() {
	local p=$1 tag=$2 start=$ktap_n
	if ! ipvs_use "$p"; then
		ktap_fail "$p: load the IPVS"
	elif ! director; then
		ktap_fail "$p: setup: UDP services -p 60 --pe sip, 3 NAT real servers, backup"
	else
		ktap_pass "$p: setup: UDP services -p 60 --pe sip, 3 NAT real servers, backup"
		ktap_diag "$p: $(ipvs_which)"
		part_checks "$p" "$tag"
	fi
	# The next part and test must be able to unload IPVS: deleting the
	# namespaces frees their templates, and with them the engine's module
	# (namespace teardown runs in the background, a while under emulation).
	part_teardown "$p" "$start" "$PART" "director and backup deleted: ip_vs_pe_sip, ip_vs and the schedulers" NS_B NS_D
}

# part_checks P TAG: checks 2-10 of a part.
part_checks() {
	local p=$1 tag=$2 i c args out per_call ncalls nrows counts lnc proc ntpl nproc
	local bproc nb dtpl btpl ans plain list rc tpl per_rs ncid
	list=$(nsx "$NS_D" ipvsadm -Ln 2>&1)
	ktap_diag "$(grep "$VIP:5060" <<< "$list")"
	if grep -qE "^UDP +$VIP:5060 rr persistent 60 pe sip" <<< "$list" &&
		grep -q '^ip_vs_pe_sip ' /proc/modules && ! rmmod ip_vs_pe_sip 2>/dev/null; then
		ktap_pass "$p: ipvsadm -Ln shows 'pe sip'; ip_vs_pe_sip is loaded and in use"
	else
		ktap_fail "$p: ipvsadm -Ln shows 'pe sip'; ip_vs_pe_sip is loaded and in use"
	fi

	# --- one Call-ID, one server; Call-IDs spread by rr
	args=()
	for c in 1 2 3 4 5 6; do
		for i in 1 2 3; do
			args+=("call$c-a1b2@10.0.0.2:$((20000 + c * 10 + i))")
		done
	done
	out=$(send "${args[@]}")
	per_call=$(awk '{ split($1, a, "-"); print a[1], $3 }' <<< "$out" | sort -u)
	echo "$per_call" > "$W/$tag.servers"
	ktap_diag "$(tr '\n' ' ' <<< "$per_call")"
	ncalls=$(awk '{ print $1 }' <<< "$per_call" | sort -u | wc -l)
	nrows=$(wc -l <<< "$per_call")
	counts=$(awk '{ print $2 }' <<< "$per_call" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')
	if [ "$ncalls" = 6 ] && [ "$nrows" = 6 ] && ! grep -q ' -$' <<< "$out" &&
		[ "$counts" = "2 2 2 " ]; then
		ktap_pass "$p: 18 datagrams of 6 Call-IDs from 18 ports: each Call-ID on one server, 2 Call-IDs per server (rr)"
	else
		ktap_fail "$p: 18 datagrams of 6 Call-IDs from 18 ports: each Call-ID on one server, 2 Call-IDs per server (rr)"
		ktap_diag "$out"
	fi

	lnc=$(nsx "$NS_D" ipvsadm -Lnc --persistent-conn 2>&1)
	proc=$(nsx "$NS_D" cat /proc/net/ip_vs_conn)
	{
		conns "$NS_D"
		awk 'NR > 2 { $2 = "-"; print }' <<< "$lnc" | sort
	} > "$W/$tag.conns"
	ntpl=$(grep -cE "^UDP .* $CIP:0 +$VIP:5060 +10\.1\.[123]\.2:5060 .*sip +call[1-6]-a1b2@10\.0\.0\.2 *$" <<< "$lnc")
	nproc=$(grep -cE "^UDP 0A000002 0000 0A006401 13C4 0A010[123]02 13C4 (NONE|ASSURED) +[0-9]+ sip call[1-6]-a1b2@10\.0\.0\.2$" <<< "$proc")
	if [ "$ntpl" = 6 ] && [ "$nproc" = 6 ]; then
		ktap_pass "$p: 6 templates <client:0, VIP:5060, server> with their Call-IDs (ipvsadm -Lnc --persistent-conn, /proc/net/ip_vs_conn)"
	else
		ktap_fail "$p: 6 templates <client:0, VIP:5060, server> with their Call-IDs (ipvsadm -Lnc --persistent-conn, /proc/net/ip_vs_conn)"
		ktap_diag "$ntpl $nproc"
		ktap_diag "$lnc"
		ktap_diag "$proc"
	fi

	# --- sync: B gets the templates with their Call-IDs
	for ((i = 0; i < 50; i++)); do
		bproc=$(nsx "$NS_B" cat /proc/net/ip_vs_conn)
		nb=$(grep -cE "^UDP 0A000002 0000 0A006401 13C4 0A010[123]02 13C4 [A-Z]+ +[0-9]+ sip call[1-6]-a1b2@10\.0\.0\.2$" <<< "$bproc")
		[ "$nb" = 6 ] && break
		sleep 0.2
	done
	dtpl=$(grep " sip " <<< "$proc" | awk '{ print $6, $11 }' | sort)
	btpl=$(grep " sip " <<< "$bproc" | awk '{ print $6, $11 }' | sort)
	echo "$btpl" > "$W/$tag.backup"
	if [ "$nb" = 6 ] && [ "$dtpl" = "$btpl" ]; then
		ktap_pass "$p: sync: the backup has the 6 templates, same Call-IDs on the same servers"
	else
		ktap_fail "$p: sync: the backup has the 6 templates, same Call-IDs on the same servers"
		ktap_diag "$nb"
		ktap_diag "$bproc"
	fi

	# --- a 255-byte Call-ID is kept; hostile payloads are dropped
	out=$(send max:21001 max:21002 drop long:22001 none:22002 trunc:22003 short:22004 empty:22005)
	proc=$(nsx "$NS_D" cat /proc/net/ip_vs_conn)
	if [ "$(awk '$1 == "max" { print $3 }' <<< "$out" | sort -u | grep -c '^rs')" = 1 ] &&
		grep -qE " sip m{255}$" <<< "$proc"; then
		ktap_pass "$p: a 255-byte Call-ID is a template's data"
	else
		ktap_fail "$p: a 255-byte Call-ID is a template's data"
		ktap_diag "$out"
	fi

	ans=$(awk '$1 != "max" && $3 != "-"' <<< "$out")
	plain=$(grep -cE "^UDP 0A000002 0000 0A006401 13C4 [0-9A-F]{8} 13C4 [A-Z]+ +[0-9]+ *$" <<< "$proc")
	if [ -z "$ans" ] && [ "$plain" = 0 ]; then
		ktap_pass "$p: no Call-ID, an overlong one, truncated headers, an empty datagram: dropped, no template (as upstream)"
	else
		ktap_fail "$p: no Call-ID, an overlong one, truncated headers, an empty datagram: dropped, no template (as upstream)"
		ktap_diag "$out"
		ktap_diag "plain templates: $plain"
	fi

	# The service without its engine (ipvsadm -E without --pe): a plain
	# template for the client.
	nsx "$NS_D" ipvsadm -E -u "$VIP:5060" -s rr -p 60
	out=$(send none:22101 long:22102)
	list=$(nsx "$NS_D" ipvsadm -Ln)
	plain=$(nsx "$NS_D" cat /proc/net/ip_vs_conn | grep -cE "^UDP 0A000002 0000 0A006401 13C4 [0-9A-F]{8} 13C4 [A-Z]+ +[0-9]+ *$")
	if ! grep -q "$VIP:5060 .*pe sip" <<< "$list" && [ "$plain" = 1 ] &&
		[ "$(awk '{ print $3 }' <<< "$out" | sort -u | grep -c '^rs')" = 1 ]; then
		ktap_pass "$p: ipvsadm -E without --pe removes the engine: one plain template for the client"
	else
		ktap_fail "$p: ipvsadm -E without --pe removes the engine: one plain template for the client"
		ktap_diag "$out"
		ktap_diag "plain templates: $plain"
	fi

	# --- sipp (through /proc only from here: ipvsadm -Lnc --persistent-conn
	# overflows a buffer on a 255-byte Call-ID). The responders (bound to
	# the real servers' addresses, which come back with each director)
	# serve both implementations.
	if [ -z "$SIPP" ]; then
		ktap_skip "$p: sipp: 9 calls through the service complete, one template per Call-ID, 3 per responder (rr)" "sipp not installed"
	else
		if [ -z "$SIPP_UAS" ]; then
			for ((i = 1; i <= 3; i++)); do
				bg "${NS_RS[i]}" "$SIPP" -sn uas -i "${RIP[i]}" -p 5062 -nostdin -max_socket 100 \
					>/dev/null 2>&1
			done
			for ((i = 1; i <= 3; i++)); do
				wait_listen "${NS_RS[i]}" u 5062 || break
			done
			SIPP_UAS=1
		fi
		nsx "$NS_C" timeout 100 "$SIPP" -sn uac "$VIP:5062" -i "$CIP" -t un -max_socket 100 -m 9 \
			-r 3 -l 3 -d 100 -nostdin -timeout 80 -timeout_error -trace_screen \
			-screen_file "$W/$tag.uac.screen" >/dev/null 2>&1
		rc=$?
		# One template per call (a Call-ID sipp made), each on one responder.
		tpl=$(nsx "$NS_D" cat /proc/net/ip_vs_conn |
			awk '$1 == "UDP" && $4 == "0A006401" && $5 == "13C6" && $10 == "sip" { print $6, $11 }')
		per_rs=$(awk '{ print $1 }' <<< "$tpl" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')
		ncid=$(awk '{ print $2 }' <<< "$tpl" | sort -u | grep -c .)
		ktap_diag "$p: sipp uac exit $rc; $ncid sip templates, per responder: $per_rs"
		if [ "$rc" = 0 ] && [ "$ncid" = 9 ] && [ "$(wc -l <<< "$tpl")" = 9 ] && [ "$per_rs" = "3 3 3 " ]; then
			ktap_pass "$p: sipp: 9 calls through the service complete, one template per Call-ID, 3 per responder (rr)"
		else
			ktap_fail "$p: sipp: 9 calls through the service complete, one template per Call-ID, 3 per responder (rr)"
			ktap_diag "$(grep -E 'Successful call|Failed call' "$W/$tag.uac.screen" 2>/dev/null)"
			ktap_diag "$tpl"
		fi
	fi

	# --- the templates hold the engine's module, as upstream's do
	nsx "$NS_D" ipvsadm -C
	nsx "$NS_B" ipvsadm -C
	if ! rmmod ip_vs_pe_sip 2>/dev/null && grep -q '^ip_vs_pe_sip ' /proc/modules &&
		nsx "$NS_D" grep -q ' sip call1-a1b2@' /proc/net/ip_vs_conn; then
		ktap_pass "$p: with the services gone, the templates keep their Call-IDs and hold ip_vs_pe_sip"
	else
		ktap_fail "$p: with the services gone, the templates keep their Call-IDs and hold ip_vs_pe_sip"
		ktap_diag "$(grep ip_vs /proc/modules)"
	fi
}

SIPP_UAS=
t0=$SECONDS
if ! topo_ends 3 || ! start_servers 3 5060; then
	ktap_fail "client and real servers set-up"
	ktap_exit
fi
ktap_diag "set-up: $((SECONDS - t0)) s"
ref_cand_parts

ref_cand_same "$W" "the same server for each Call-ID" servers
ref_cand_same "$W" "the same connections and templates (/proc/net/ip_vs_conn, ipvsadm -Lnc --persistent-conn)" conns
ref_cand_same "$W" "the backup's templates alike" backup

ktap_exit
