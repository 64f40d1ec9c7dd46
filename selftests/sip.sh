#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# The SIP persistence engine (ipvsadm --pe sip, ip_vs_pe_sip) on a persistent
# UDP service, NAT, rr, 3 real servers:
#  - --pe sip loads ip_vs_pe_sip; ipvsadm -Ln reports "pe sip"; the engine
#    module cannot be unloaded while a service uses it;
#  - datagrams of one Call-ID go to one real server whatever their source
#    port; different Call-IDs of one client are spread by rr (one template
#    per Call-ID, shown with "sip CALLID" by ipvsadm -Lnc --persistent-conn
#    and /proc/net/ip_vs_conn);
#  - hostile payloads (no Call-ID, one over 255 bytes, truncated, empty)
#    fall back to the client's usual template, as upstream;
#  - sync: a backup director (sync daemon over a link of its own, sync
#    threshold 1) gets the templates with their Call-IDs;
#  - with the services gone, the templates still hold ip_vs_pe_sip (as
#    upstream: rmmod fails until they expire);
#  - sipp: calls of sipp -sn uac (a socket per call) through the service to
#    3 sipp -sn uas responders all complete, and every responder takes some.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 10
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

SIPP=$(command -v sipp || true)

setup() {
	topo_nat 3 || return 1
	start_servers 3 5060 || return 1
	local i
	nsx "$NS_D" ipvsadm -A -u "$VIP:5060" -s rr -p 60 --pe sip || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:5062" -s rr -p 60 --pe sip || return 1
	for ((i = 1; i <= 3; i++)); do
		nsx "$NS_D" ipvsadm -a -u "$VIP:5060" -r "${RIP[i]}:5060" -m || return 1
		nsx "$NS_D" ipvsadm -a -u "$VIP:5062" -r "${RIP[i]}:5062" -m || return 1
	done
	# A backup director B on a link of its own, with the same service.
	ns_add NS_B backup || return 1
	veth_add "$NS_D" s0 "$NS_B" s1 || return 1
	ip -n "$NS_D" addr add 10.9.0.1/24 dev s0 || return 1
	ip -n "$NS_B" addr add 10.9.0.2/24 dev s1 || return 1
	nsx "$NS_B" ipvsadm -A -u "$VIP:5060" -s rr -p 60 --pe sip || return 1
	for ((i = 1; i <= 3; i++)); do
		nsx "$NS_B" ipvsadm -a -u "$VIP:5060" -r "${RIP[i]}:5060" -m || return 1
	done
	nsx "$NS_D" sysctl -qw net.ipv4.vs.sync_threshold="1 50" || return 1
	nsx "$NS_D" ipvsadm --start-daemon master --mcast-interface s0 --syncid 9 || return 1
	nsx "$NS_B" ipvsadm --start-daemon backup --mcast-interface s1 --syncid 9 || return 1
}

if setup; then
	ktap_pass "setup: UDP services -p 60 --pe sip, 3 NAT real servers"
else
	ktap_fail "setup: UDP services -p 60 --pe sip, 3 NAT real servers"
	ktap_exit
fi

list=$(nsx "$NS_D" ipvsadm -Ln 2>&1)
ktap_diag "$(grep "$VIP:5060" <<< "$list")"
if grep -qE "^UDP +$VIP:5060 rr persistent 60 pe sip" <<< "$list" &&
	grep -q '^ip_vs_pe_sip ' /proc/modules && ! rmmod ip_vs_pe_sip 2>/dev/null; then
	ktap_pass "ipvsadm -Ln shows 'pe sip'; ip_vs_pe_sip is loaded and in use"
else
	ktap_fail "ipvsadm -Ln shows 'pe sip'; ip_vs_pe_sip is loaded and in use"
fi

# send CALLID:SPORT...: one SIP-like datagram per argument from $CIP:SPORT to
# $VIP:5060 with that Call-ID ("-" for hostile payloads by name); prints
# "CALLID SPORT ANSWER" per datagram (ANSWER "-" when none came).
send() {
	nsx "$NS_C" python3 - "$CIP" "$VIP" "$@" <<-'PY'
	import socket, sys
	cip, vip = sys.argv[1], sys.argv[2]
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
	for arg in sys.argv[3:]:
	    cid, sport = arg.rsplit(":", 1)
	    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	    s.bind((cip, int(sport)))
	    # Hostile payloads are dropped: do not wait long for them.
	    s.settimeout(3 if cid not in ("none", "long", "trunc", "short", "empty") else 1)
	    s.sendto(msg(cid), (vip, 5060))
	    try:
	        ans = s.recv(100).decode().strip()
	    except OSError:
	        ans = "-"
	    s.close()
	    print(cid, sport, ans)
	PY
}

# --- one Call-ID, one server; Call-IDs spread by rr
args=()
for c in 1 2 3 4 5 6; do
	for p in 1 2 3; do
		args+=("call$c-a1b2@10.0.0.2:$((20000 + c * 10 + p))")
	done
done
out=$(send "${args[@]}")
per_call=$(awk '{ split($1, a, "-"); print a[1], $3 }' <<< "$out" | sort -u)
ktap_diag "$(tr '\n' ' ' <<< "$per_call")"
ncalls=$(awk '{ print $1 }' <<< "$per_call" | sort -u | wc -l)
nrows=$(wc -l <<< "$per_call")
counts=$(awk '{ print $2 }' <<< "$per_call" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')
if [ "$ncalls" = 6 ] && [ "$nrows" = 6 ] && ! grep -q ' -$' <<< "$out" &&
	[ "$counts" = "2 2 2 " ]; then
	ktap_pass "18 datagrams of 6 Call-IDs from 18 ports: each Call-ID on one server, 2 Call-IDs per server (rr)"
else
	ktap_fail "18 datagrams of 6 Call-IDs from 18 ports: each Call-ID on one server, 2 Call-IDs per server (rr)"
	ktap_diag "$out"
fi

lnc=$(nsx "$NS_D" ipvsadm -Lnc --persistent-conn 2>&1)
proc=$(nsx "$NS_D" cat /proc/net/ip_vs_conn)
ntpl=$(grep -cE "^UDP .* $CIP:0 +$VIP:5060 +10\.1\.[123]\.2:5060 .*sip +call[1-6]-a1b2@10\.0\.0\.2 *$" <<< "$lnc")
nproc=$(grep -cE "^UDP 0A000002 0000 0A006401 13C4 0A010[123]02 13C4 (NONE|ASSURED) +[0-9]+ sip call[1-6]-a1b2@10\.0\.0\.2$" <<< "$proc")
if [ "$ntpl" = 6 ] && [ "$nproc" = 6 ]; then
	ktap_pass "6 templates <client:0, VIP:5060, server> with their Call-IDs (ipvsadm -Lnc --persistent-conn, /proc/net/ip_vs_conn)"
else
	ktap_fail "6 templates <client:0, VIP:5060, server> with their Call-IDs (ipvsadm -Lnc --persistent-conn, /proc/net/ip_vs_conn)"
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
if [ "$nb" = 6 ] && [ "$dtpl" = "$btpl" ]; then
	ktap_pass "sync: the backup has the 6 templates, same Call-IDs on the same servers"
else
	ktap_fail "sync: the backup has the 6 templates, same Call-IDs on the same servers"
	ktap_diag "$nb"
	ktap_diag "$bproc"
fi

# --- a 255-byte Call-ID is kept; hostile payloads fall back to the client's template
out=$(send max:21001 max:21002)
if [ "$(awk '{ print $3 }' <<< "$out" | sort -u | wc -l)" = 1 ] &&
	nsx "$NS_D" cat /proc/net/ip_vs_conn | grep -qE " sip m{255}$"; then
	ktap_pass "a 255-byte Call-ID is a template's data"
else
	ktap_fail "a 255-byte Call-ID is a template's data"
	ktap_diag "$out"
fi

out=$(send long:22001 none:22002 trunc:22003 short:22004 empty:22005)
ans=$(awk '$3 != "-"' <<< "$out")
plain=$(nsx "$NS_D" cat /proc/net/ip_vs_conn | grep -cE "^UDP 0A000002 0000 0A006401 13C4 [0-9A-F]{8} 13C4 [A-Z]+ +[0-9]+ *$")
if [ -z "$ans" ] && [ "$plain" = 0 ]; then
	ktap_pass "no Call-ID, an overlong one, truncated headers, an empty datagram: dropped, no template (as upstream)"
else
	ktap_fail "no Call-ID, an overlong one, truncated headers, an empty datagram: dropped, no template (as upstream)"
	ktap_diag "$out"
	ktap_diag "plain templates: $plain"
fi

# The service without its engine (ipvsadm -E without --pe): a plain template for the client.
nsx "$NS_D" ipvsadm -E -u "$VIP:5060" -s rr -p 60
out=$(send none:22101 long:22102)
list=$(nsx "$NS_D" ipvsadm -Ln)
plain=$(nsx "$NS_D" cat /proc/net/ip_vs_conn | grep -cE "^UDP 0A000002 0000 0A006401 13C4 [0-9A-F]{8} 13C4 [A-Z]+ +[0-9]+ *$")
if ! grep -q "$VIP:5060 .*pe sip" <<< "$list" && [ "$plain" = 1 ] &&
	[ "$(awk '{ print $3 }' <<< "$out" | sort -u | grep -c '^rs')" = 1 ]; then
	ktap_pass "ipvsadm -E without --pe removes the engine: one plain template for the client"
else
	ktap_fail "ipvsadm -E without --pe removes the engine: one plain template for the client"
	ktap_diag "$out"
	ktap_diag "plain templates: $plain"
fi

# --- sipp (through /proc only from here: ipvsadm -Lnc --persistent-conn
# overflows a buffer on a 255-byte Call-ID)
if [ -z "$SIPP" ]; then
	ktap_skip "sipp: 9 calls through the service complete, one template per Call-ID, spread over 3 responders (sipp not installed)"
else
	tmp=$(mktemp -d)
	cd "$tmp" || exit 1
	for ((i = 1; i <= 3; i++)); do
		bg "${NS_RS[i]}" "$SIPP" -sn uas -i "${RIP[i]}" -p 5062 -nostdin -max_socket 100 \
			>/dev/null 2>&1
	done
	for ((i = 1; i <= 3; i++)); do
		wait_listen "${NS_RS[i]}" u 5062 || break
	done
	nsx "$NS_C" timeout 100 "$SIPP" -sn uac "$VIP:5062" -i "$CIP" -t un -max_socket 100 -m 9 \
		-r 3 -l 3 -d 100 -nostdin -timeout 80 -timeout_error -trace_screen \
		-screen_file "$tmp/uac.screen" >/dev/null 2>&1
	rc=$?
	# One template per call (a Call-ID sipp made), each on one responder.
	tpl=$(nsx "$NS_D" cat /proc/net/ip_vs_conn |
		awk '$1 == "UDP" && $4 == "0A006401" && $5 == "13C6" && $10 == "sip" { print $6, $11 }')
	per_rs=$(awk '{ print $1 }' <<< "$tpl" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')
	ncid=$(awk '{ print $2 }' <<< "$tpl" | sort -u | grep -c .)
	ktap_diag "sipp uac exit $rc; $ncid sip templates, per responder: $per_rs"
	if [ "$rc" = 0 ] && [ "$ncid" = 9 ] && [ "$(wc -l <<< "$tpl")" = 9 ] && [ "$per_rs" = "3 3 3 " ]; then
		ktap_pass "sipp: 9 calls through the service complete, one template per Call-ID, 3 per responder (rr)"
	else
		ktap_fail "sipp: 9 calls through the service complete, one template per Call-ID, 3 per responder (rr)"
		ktap_diag "$(grep -E 'Successful call|Failed call' "$tmp/uac.screen" 2>/dev/null)"
		ktap_diag "$tpl"
	fi
	cd / && rm -rf "$tmp"
fi

# --- the templates hold the engine's module, as upstream's do
nsx "$NS_D" ipvsadm -C
nsx "$NS_B" ipvsadm -C
if ! rmmod ip_vs_pe_sip 2>/dev/null && grep -q '^ip_vs_pe_sip ' /proc/modules &&
	nsx "$NS_D" grep -q ' sip call1-a1b2@' /proc/net/ip_vs_conn; then
	ktap_pass "with the services gone, the templates keep their Call-IDs and hold ip_vs_pe_sip"
else
	ktap_fail "with the services gone, the templates keep their Call-IDs and hold ip_vs_pe_sip"
	ktap_diag "$(grep ip_vs /proc/modules)"
fi

# The next test must be able to unload IPVS: deleting the namespaces frees
# their templates, and with them the engine's module (namespace teardown
# runs in the background, a while under emulation).
cleanup_ns
for ((i = 0; i < 600; i++)); do
	rmmod ip_vs_pe_sip 2>/dev/null
	grep -q '^ip_vs_pe_sip ' /proc/modules || break
	sleep 0.1
done

ktap_exit
