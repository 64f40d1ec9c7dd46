#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# Persistent services (ipvsadm -p, -M) with real traffic, NAT, rr:
#  - a client keeps its real server across connections; a second client
#    gets a template of its own (rr moves on), shown by ipvsadm -Lcn;
#  - -M 255.255.255.0 groups the clients of a /24 on one server (UDP);
#  - a port-zero service sends every port of a client to one server;
#  - a quiesced server (weight 0) keeps its persistent clients unless
#    expire_quiescent_template is set; a removed server loses them;
#  - a template outlives its last connection by the -p timeout, then goes;
#  - templates show as ASSURED once a connection they control is answered.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

VIP2=10.0.100.2
CIP2=10.0.0.3
CIP3=10.0.5.2

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 10
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

setup() {
	topo_nat 3 || return 1
	start_servers 3 80 --port 81 || return 1
	ip -n "$NS_C" addr add "$CIP2/24" dev c0 || return 1
	ip -n "$NS_C" addr add "$CIP3/32" dev c0 || return 1
	ip -n "$NS_D" route add 10.0.5.0/24 dev d0 || return 1
	ip -n "$NS_D" addr add "$VIP2/32" dev lo || return 1
	local i
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr -p 120 || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr -p 120 -M 255.255.255.0 || return 1
	nsx "$NS_D" ipvsadm -A -t "$VIP2:0" -s rr -p 120 || return 1
	for ((i = 1; i <= 3; i++)); do
		nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m || return 1
		nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || return 1
		nsx "$NS_D" ipvsadm -a -t "$VIP2:0" -r "${RIP[i]}:0" -m || return 1
	done
}

# servers ARGS...: the distinct answers of ipvs-client ARGS (sorted).
servers() {
	nsx "$NS_C" "$CLIENT" "$@" | awk '{ $1 = ""; print substr($0, 2) }' | sort -u | tr '\n' ' ' |
		sed 's/ $//'
}

# one_server NAME ANSWERS: ANSWERS is exactly one real server.
one_server() {
	[[ "$2" =~ ^rs[0-9]$ ]]
}

rip_of() {
	echo "${RIP[${1#rs}]}"
}

if setup; then
	ktap_pass "setup: persistent TCP, UDP (-M /24) and port-zero services, 3 NAT real servers"
else
	ktap_fail "setup: persistent TCP, UDP (-M /24) and port-zero services, 3 NAT real servers"
	ktap_exit
fi

# --- one client, one server
a=$(servers tcp "$VIP" 80 6 --source "$CIP")
b=$(servers tcp "$VIP" 80 6 --source "$CIP2")
ktap_diag "client $CIP: $a; client $CIP2: $b"
if one_server x "$a" && one_server x "$b" && [ "$a" != "$b" ]; then
	ktap_pass "each client stays on its server over 6 connections; a second client gets another (rr)"
else
	ktap_fail "each client stays on its server over 6 connections; a second client gets another (rr)"
fi

conns=$(nsx "$NS_D" ipvsadm -Lcn 2>&1)
tmpl=$(grep -cE "^TCP .* ASSURED +10\.0\.0\.[23]:0 +$VIP:80 " <<< "$conns")
if [ "$tmpl" = 2 ]; then
	ktap_pass "ipvsadm -Lcn shows one assured template <client:0, VIP:80, server:80> per client"
else
	ktap_diag "$conns"
	ktap_fail "ipvsadm -Lcn shows one assured template <client:0, VIP:80, server:80> per client"
fi

# --- -M 255.255.255.0: one /24, one server
u1=$(servers udp "$VIP" 80 3 --source "$CIP" --sport-base 41000)
u2=$(servers udp "$VIP" 80 3 --source "$CIP2" --sport-base 41100)
u3=$(servers udp "$VIP" 80 3 --source "$CIP3" --sport-base 41200)
ktap_diag "udp: $CIP: $u1; $CIP2: $u2; $CIP3: $u3"
if one_server x "$u1" && [ "$u1" = "$u2" ] && one_server x "$u3" && [ "$u3" != "$u1" ]; then
	ktap_pass "-M 255.255.255.0: clients of one /24 share a server, another /24 gets another"
else
	ktap_fail "-M 255.255.255.0: clients of one /24 share a server, another /24 gets another"
fi

# --- port zero: all ports of a client to one server
p80=$(servers tcp "$VIP2" 80 3 --source "$CIP")
p81=$(servers tcp "$VIP2" 81 3 --source "$CIP")
ktap_diag "port-zero service: port 80: $p80; port 81: $p81"
if one_server x "$p80" && [ "$p80" = "$p81" ]; then
	ktap_pass "port-zero service: ports 80 and 81 of a client go to one server"
else
	ktap_fail "port-zero service: ports 80 and 81 of a client go to one server"
fi

# --- quiesced server: persistence wins unless expire_quiescent_template
nsx "$NS_D" ipvsadm -e -t "$VIP:80" -r "$(rip_of "$a"):80" -m -w 0
q=$(servers tcp "$VIP" 80 2 --source "$CIP")
if [ "$q" = "$a" ]; then
	ktap_pass "weight 0: the persistent client stays on its quiesced server"
else
	ktap_diag "client $CIP now: $q (was $a)"
	ktap_fail "weight 0: the persistent client stays on its quiesced server"
fi
nsx "$NS_D" sysctl -qw net.ipv4.vs.expire_quiescent_template=1
q=$(servers tcp "$VIP" 80 2 --source "$CIP")
if one_server x "$q" && [ "$q" != "$a" ]; then
	ktap_pass "expire_quiescent_template=1: the client moves off the quiesced server"
else
	ktap_diag "client $CIP now: $q (quiesced: $a)"
	ktap_fail "expire_quiescent_template=1: the client moves off the quiesced server"
fi

# --- removed server
nsx "$NS_D" ipvsadm -d -t "$VIP:80" -r "$(rip_of "$b"):80"
r=$(servers tcp "$VIP" 80 2 --source "$CIP2")
if one_server x "$r" && [ "$r" != "$b" ]; then
	ktap_pass "removed server: its persistent client is scheduled anew and answered"
else
	ktap_diag "client $CIP2 now: $r (removed: $b)"
	ktap_fail "removed server: its persistent client is scheduled anew and answered"
fi

# --- template expiry: a 5 s UDP timeout and -p 5 (answered: assured)
nsx "$NS_D" ipvsadm -A -u "$VIP2:82" -s rr -p 5
nsx "$NS_D" ipvsadm -a -u "$VIP2:82" -r "${RIP[1]}:81" -m
nsx "$NS_D" ipvsadm --set 0 0 5
x=$(servers udp "$VIP2" 82 1 --source "$CIP" --sport-base 42000)
seen=$(nsx "$NS_D" ipvsadm -Lcn | grep -cE "^UDP .* ASSURED +$CIP:0 +$VIP2:82 ")
gone=
for ((i = 0; i < 40; i++)); do
	if ! nsx "$NS_D" ipvsadm -Lcn | grep -qE "$VIP2:82 "; then
		gone=$i
		break
	fi
	sleep 1
done
ktap_diag "answer $x; template listed: $seen; connection and template gone after ${gone:-more than 40} s"
if [ "$x" = rs1 ] && [ "$seen" = 1 ] && [ -n "$gone" ]; then
	ktap_pass "a template outlives its connection by -p, then expires"
else
	ktap_fail "a template outlives its connection by -p, then expires"
fi

# Counters: nothing negative or stuck after all this (InActConn/ActiveConn).
list=$(nsx "$NS_D" ipvsadm -Ln 2>&1)
if ! grep -qE -- "-[0-9]|4294967" <<< "$list"; then
	ktap_pass "connection counters stay sane"
else
	ktap_diag "$list"
	ktap_fail "connection counters stay sane"
fi

ktap_exit
