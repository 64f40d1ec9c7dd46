#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 300
#
# IPv6 virtual services with real TCP and UDP traffic (topo_nat 2, dual
# stack; rs1 and rs2 hold VIP6 on lo and answer CIP6 over their own links,
# so each is a direct routing and a NAT real server at once: DR traffic
# comes from CIP6, NAT traffic from CIP6B and CIP6C, whose answers go
# back through the director).
#
#   listings  before any traffic, /proc/net/ip_vs and ipvsadm -Ln must be
#             the text computed here (full-form [%pI6]:%04X addresses, the
#             persistence netmask as the prefix length in network order,
#             timeout in jiffies);
#   conns     one UDP DR, one TCP NAT (port 91 -> 81), one persistent UDP
#             (-M 64) and one persistent fwmark (-6) connection from fixed
#             ports; /proc/net/ip_vs_conn, ip_vs_conn_sync and ipvsadm -Lnc
#             must be the computed text, expiry times masked, including the
#             templates (client fd00:: for the /64, the mark as the virtual
#             address 0:2:: for the fwmark);
#   DR        TCP and UDP to [VIP6]:80, rr over rs1 and rs2 (-g): 2 and 2;
#   NAT       TCP and UDP to [VIP6]:81 (-m): 2 and 2, answered from the VIP
#             (the client's sockets are connected to it);
#   local     [VIP6]:83 -> [::1]:83 -g, [VIP6]:84 -> [DIP6]:84 -g,
#             [VIP6]:85 -> [DIP6]:8080 -m, each with rs1 (-m), rr: TCP and
#             UDP, half answered by the director's own server;
#   persist   -p 60 -M 64: two clients of one /64 share a server and one
#             template <fd00::, 0>; -M 128: rr sends them apart, one
#             template each;
#   fwmark    mark 1 set by one nft inet rule for VIP:88 and [VIP6]:88;
#             services -f 1 (IPv4) and -f 1 -6 with their own real servers:
#             each family reaches its own service (rr 2/2, Conns 4 each).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

command -v nft >/dev/null || ktap_skip_all "nft not installed"

CIP6B=fd00::3
CIP6C=fd00::4
CNET6=fd00::
CIP4B=10.0.0.3
VIP6B=fd00:100::2
HZ=$(sed -n 's/^CONFIG_HZ=//p' "${KDIR:-/nonexistent}/.config" 2>/dev/null)
HZ=${HZ:-250}
REQ=4
PER=$((REQ / 2))

ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 24
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

# v6full ADDR: ADDR in the full form of %pI6 (8 groups of 4 hex digits).
v6full() {
	local a=$1 g out="" n i
	local -a h t
	if [[ $a == *::* ]]; then
		IFS=: read -ra h <<< "${a%%::*}"
		IFS=: read -ra t <<< "${a#*::}"
	else
		IFS=: read -ra h <<< "$a"
		t=()
	fi
	n=$((8 - ${#h[@]} - ${#t[@]}))
	for g in "${h[@]}"; do out+=$(printf '%04x:' "0x$g"); done
	for ((i = 0; i < n; i++)); do out+="0000:"; done
	for g in "${t[@]}"; do out+=$(printf '%04x:' "0x$g"); done
	echo "${out%:}"
}

# be32 N: N as ntohl() of a host-order u32 shows it (the kernel prints the
# IPv6 prefix length, kept in the netmask field, that way).
be32() {
	printf '%08X' $(( (($1 & 0xff) << 24) | ((($1 >> 8) & 0xff) << 16) |
		((($1 >> 16) & 0xff) << 8) | (($1 >> 24) & 0xff) ))
}

# v4hex ADDR: 10.1.1.2 -> 0A010102
v4hex() {
	local -a o
	IFS=. read -ra o <<< "$1"
	printf '%02X%02X%02X%02X' "${o[@]}"
}

# ---------------------------------------------------------------------------
# The services, from one table: svc ID KIND ADDR PORT [TIMEOUT [PLEN]]
# (KIND tcp, udp, fwm (IPv4 mark, ADDR = mark) or fwm6) and dest ID ADDR
# PORT -g|-m. From it: the ipvsadm -R input and the expected listings.

SVC_IDS=()
declare -A S_KIND S_ADDR S_PORT S_TMO S_PLEN S_DESTS

svc() {
	SVC_IDS+=("$1")
	S_KIND[$1]=$2 S_ADDR[$1]=$3 S_PORT[$1]=${4:-0} S_TMO[$1]=${5:-} S_PLEN[$1]=${6:-}
	S_DESTS[$1]=""
}

dest() {
	S_DESTS[$1]+="$2 $3 $4"$'\n'
}

# svc_arg ID: the ipvsadm service argument.
svc_arg() {
	case ${S_KIND[$1]} in
	tcp) echo "-t [${S_ADDR[$1]}]:${S_PORT[$1]}" ;;
	udp) echo "-u [${S_ADDR[$1]}]:${S_PORT[$1]}" ;;
	fwm) echo "-f ${S_ADDR[$1]}" ;;
	fwm6) echo "-f ${S_ADDR[$1]} -6" ;;
	esac
}

# addr_port ADDR PORT: [ADDR]:PORT for IPv6, ADDR:PORT for IPv4.
addr_port() {
	case $1 in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac
}

restore_input() {
	local id a p f opt
	for id in "${SVC_IDS[@]}"; do
		opt=""
		[ -n "${S_TMO[$id]}" ] && opt+=" -p ${S_TMO[$id]}"
		[ -n "${S_PLEN[$id]}" ] && opt+=" -M ${S_PLEN[$id]}"
		echo "-A $(svc_arg "$id") -s rr$opt"
		while read -r a p f; do
			[ -n "$a" ] && echo "-a $(svc_arg "$id") -r $(addr_port "$a" "$p") $f"
		done <<< "${S_DESTS[$id]}"
	done
}

# The forwarding method as listed: a real server on the director shows as
# Route or Masq too ("Local" is only decided per packet, when the route to
# it turns out to be local).
fwd_name() {
	case $2 in -g) echo Route ;; -m) echo Masq ;; -i) echo Tunnel ;; esac
}

# The real servers of a service in /proc/net/ip_vs order: newest first.
dests_newest_first() {
	tac <<< "${S_DESTS[$1]%$'\n'}"
}

# glue_blocks HDR [sort]: HDR header lines as they are, then the blocks (a
# service line and its real servers) sorted: the C IPVS lists services in
# hash order, ipvsadm in its own. With "sort", the real servers within a
# block too: ipvsadm sorts them by the first 32 bits of their address (an
# int difference that overflows), which is not worth modelling here.
glue_blocks() {
	awk -v hdr="$1" -v sortdests="${2:-}" '
		function flush(  i, j, t) {
			if (nd == 0 && svc == "") return
			for (i = 2; sortdests != "" && i <= nd; i++) {
				t = d[i]
				for (j = i - 1; j >= 1 && d[j] > t; j--) d[j + 1] = d[j]
				d[j + 1] = t
			}
			b = svc
			for (i = 1; i <= nd; i++) b = b "\001" d[i]
			print b | "LC_ALL=C sort"
			nd = 0; svc = ""
		}
		NR <= hdr { print; fflush(); next }
		/^[A-Z]/ { flush(); svc = $0; next }
		{ d[++nd] = $0 }
		END { flush() }' | tr '\001' '\n'
}

expected_proc_ip_vs() {
	local id a p f t
	echo "IP Virtual Server version 1.2.1 (size=4096)"
	echo "Prot LocalAddress:Port Scheduler Flags"
	echo "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn"
	for id in "${SVC_IDS[@]}"; do
		case ${S_KIND[$id]} in
		tcp|udp)
			printf '%s  [%s]:%04X rr ' "${S_KIND[$id]^^}" "$(v6full "${S_ADDR[$id]}")" "${S_PORT[$id]}" ;;
		fwm|fwm6)
			printf 'FWM  %08X rr ' "${S_ADDR[$id]}" ;;
		esac
		if [ -n "${S_TMO[$id]}" ]; then
			t=${S_PLEN[$id]}
			[ -z "$t" ] && t=128
			printf 'persistent %d %s\n' $((S_TMO[$id] * HZ)) "$(be32 "$t")"
		else
			echo
		fi
		while read -r a p f; do
			case $a in
			*:*) printf '  -> [%s]:%04X      %-7s %-6d %-10d %-10d\n' \
				"$(v6full "$a")" "$p" "$(fwd_name "$a" "$f")" 1 0 0 ;;
			*) printf '  -> %s:%04X      %-7s %-6d %-10d %-10d\n' \
				"$(v4hex "$a")" "$p" "$(fwd_name "$a" "$f")" 1 0 0 ;;
			esac
		done < <(dests_newest_first "$id")
	done
}

expected_ipvsadm_ln() {
	local id a p f line
	echo "IP Virtual Server version 1.2.1 (size=4096)"
	echo "Prot LocalAddress:Port Scheduler Flags"
	echo "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
	for id in "${SVC_IDS[@]}"; do
		case ${S_KIND[$id]} in
		tcp|udp) line="${S_KIND[$id]^^}  [${S_ADDR[$id]}]:${S_PORT[$id]} rr" ;;
		fwm) line="FWM  ${S_ADDR[$id]} rr" ;;
		fwm6) line="FWM  ${S_ADDR[$id]} IPv6 rr" ;;
		esac
		if [ -n "${S_TMO[$id]}" ]; then
			line+=" persistent ${S_TMO[$id]}"
			[ -n "${S_PLEN[$id]}" ] && [ "${S_PLEN[$id]}" != 128 ] &&
				line+=" mask ${S_PLEN[$id]}"
		fi
		echo "$line"
		while read -r a p f; do
			printf '  -> %-28s %-7s %-6d %-10d %-10d\n' "$(addr_port "$a" "$p")" \
				"$(fwd_name "$a" "$f")" 1 0 0
		done <<< "${S_DESTS[$id]%$'\n'}"
	done
}

# Traffic services (rs1 and rs2 listen on 80, 81 and 90; the director's
# own server on 83, 84 and 8080).
svc dr_t tcp "$VIP6" 80
svc dr_u udp "$VIP6" 80
svc nat_t tcp "$VIP6" 81
svc nat_u udp "$VIP6" 81
for id in dr_t dr_u; do
	dest $id fd00:1:1::2 80 -g
	dest $id fd00:1:2::2 80 -g
done
for id in nat_t nat_u; do
	dest $id fd00:1:1::2 81 -m
	dest $id fd00:1:2::2 81 -m
done
LOCAL_PORTS=(83 84 85)
LOCAL_DEST=("::1 83 -g" "$DIP6 84 -g" "$DIP6 8080 -m")
LOCAL_NAME=("DR to [::1]:83" "DR to the director's [$DIP6]:84" "NAT to the director's [$DIP6]:8080")
for i in 0 1 2; do
	for p in t u; do
		svc "l${i}_$p" "$([ $p = t ] && echo tcp || echo udp)" "$VIP6" "${LOCAL_PORTS[i]}"
		# shellcheck disable=SC2086
		dest "l${i}_$p" ${LOCAL_DEST[i]}
		dest "l${i}_$p" fd00:1:1::2 81 -m
	done
done
svc p64 tcp "$VIP6" 86 60 64
svc p128 tcp "$VIP6" 87 60 128
for id in p64 p128; do
	dest $id fd00:1:1::2 80 -m
	dest $id fd00:1:2::2 80 -m
done
svc f1 fwm 1
dest f1 10.1.1.2 80 -m
dest f1 10.1.2.2 80 -m
svc f1_6 fwm6 1
dest f1_6 fd00:1:1::2 80 -m
dest f1_6 fd00:1:2::2 80 -m
# Services of the connection listing, one real server each.
svc c_dr udp "$VIP6" 90
dest c_dr fd00:1:1::2 90 -g
svc c_nat tcp "$VIP6" 91
dest c_nat fd00:1:2::2 81 -m
svc c_p udp "$VIP6" 92 60 64
dest c_p fd00:1:1::2 81 -m
svc f2 fwm6 2 0 60
dest f2 fd00:1:2::2 81 -m

# ---------------------------------------------------------------------------

start_local_server() {
	local ready j
	ready=$(mktemp -d)
	bg "$NS_D" "$SERVER" local --port 83 --port 84 --port 8080 --ipv6 --udp-pktinfo \
		--ready-file "$ready/local"
	for ((j = 0; j < 300; j++)); do
		[ -e "$ready/local" ] && break
		sleep 0.1
	done
	[ -e "$ready/local" ] || { rm -rf "$ready"; return 1; }
	rm -rf "$ready"
}

setup() {
	topo_nat 2 || return 1
	rs_direct 1 dr "$VIP6" || return 1
	rs_direct 2 dr "$VIP6" || return 1
	ip -n "$NS_C" -b - <<-EOF || return 1
		addr add $CIP6B/64 dev c0 nodad
		addr add $CIP6C/64 dev c0 nodad
		addr add $CIP4B/24 dev c0
	EOF
	ip -n "$NS_D" addr add "$VIP6B/128" dev lo || return 1
	start_servers 2 80 --port 81 --port 90 --ipv6 --udp-pktinfo || return 1
	start_local_server || return 1
	nsx "$NS_D" nft -f - <<-EOF || return 1
	table inet ipvst6 {
		chain pre {
			type filter hook prerouting priority mangle;
			ip daddr $VIP meta l4proto { tcp, udp } th dport 88 meta mark set 1
			ip6 daddr $VIP6 meta l4proto { tcp, udp } th dport 88 meta mark set 1
			ip6 daddr $VIP6B udp dport 81 meta mark set 2
		}
	}
	EOF
	restore_input | nsx "$NS_D" ipvsadm -R
}

if setup; then
	ktap_pass "setup: dual-stack topology, ${#SVC_IDS[@]} services restored with ipvsadm -R"
else
	ktap_diag "$(nsx "$NS_D" ipvsadm -Ln 2>&1)"
	ktap_fail "setup: dual-stack topology, ${#SVC_IDS[@]} services restored with ipvsadm -R"
	ktap_exit
fi

# compare NAME EXPECTED ACTUAL
compare() {
	if [ "$2" = "$3" ]; then
		ktap_pass "$1"
	else
		ktap_diag "$(diff -u --label expected --label actual <(echo "$2") <(echo "$3"))"
		ktap_fail "$1"
	fi
}

# --- listings, before any traffic (all counters 0)
compare "/proc/net/ip_vs: IPv6 services and real servers as [%pI6]:%04X, v4 ones as %08X" \
	"$(expected_proc_ip_vs | glue_blocks 3)" \
	"$(nsx "$NS_D" cat /proc/net/ip_vs | glue_blocks 3)"
compare "ipvsadm -Ln: IPv6 services and real servers as [addr]:port" \
	"$(expected_ipvsadm_ln | glue_blocks 3 sort)" \
	"$(nsx "$NS_D" ipvsadm -Ln 2>&1 | glue_blocks 3 sort)"

# --- connection listings: four connections from fixed ports
out=$( {
	nsx "$NS_C" "$CLIENT" udp "$VIP6" 90 1 --source "$CIP6" --sport-base 45000
	nsx "$NS_C" "$CLIENT" tcp "$VIP6" 91 1 --source "$CIP6B" --sport-base 45001
	nsx "$NS_C" "$CLIENT" udp "$VIP6" 92 1 --source "$CIP6C" --sport-base 45002
	nsx "$NS_C" "$CLIENT" udp "$VIP6B" 81 1 --source "$CIP6B" --sport-base 45003
} 2>&1)
if [ "$(tr '\n' ' ' <<< "$out")" = "0 rs1 0 rs2 0 rs1 0 rs2 " ]; then
	ktap_pass "UDP DR, TCP NAT, persistent UDP and persistent fwmark connections answered"
else
	ktap_diag "$out"
	ktap_fail "UDP DR, TCP NAT, persistent UDP and persistent fwmark connections answered"
fi

# The connections: PROTO CADDR CPORT VADDR VPORT DADDR DPORT STATE.
CONNS="UDP $CIP6 45000 $VIP6 90 fd00:1:1::2 90 UDP
TCP $CIP6B 45001 $VIP6 91 fd00:1:2::2 81 TIME_WAIT
UDP $CIP6C 45002 $VIP6 92 fd00:1:1::2 81 UDP
UDP $CNET6 0 $VIP6 92 fd00:1:1::2 81 ASSURED
UDP $CIP6B 45003 $VIP6B 81 fd00:1:2::2 81 UDP
IP $CIP6B 0 0:2:: 0 fd00:1:2::2 0 ASSURED"

# mask_proc_conn: the Expires column (%7u at the end) -> XXXXXXX
mask_proc_conn() {
	sed -E 's/[ 0-9]{6}[0-9]$/XXXXXXX/' | { IFS= read -r h; echo "$h"; LC_ALL=C sort; }
}

expected_proc_conn() {
	local sync=$1 pr ca cp va vp da dp st
	if [ "$sync" = 1 ]; then
		echo "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires"
	else
		echo "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"
	fi
	while read -r pr ca cp va vp da dp st; do
		printf '%-3s %s %04X %s %04X %s %04X %-11s ' "$pr" "$(v6full "$ca")" "$cp" \
			"$(v6full "$va")" "$vp" "$(v6full "$da")" "$dp" "$st"
		[ "$sync" = 1 ] && printf '%-6s ' LOCAL
		echo XXXXXXX
	done <<< "$CONNS" | LC_ALL=C sort
}

expected_lnc() {
	local pr ca cp va vp da dp st
	echo "IPVS connection entries"
	echo "pro expire state       source             virtual            destination"
	while read -r pr ca cp va vp da dp st; do
		printf '%-3s XX:XX  %-11s %-18s %-18s %s\n' "$pr" "$st" "[$ca]:$cp" "[$va]:$vp" "[$da]:$dp"
	done <<< "$CONNS" | LC_ALL=C sort
}

compare "/proc/net/ip_vs_conn: IPv6 entries as %pI6 %04X, templates included" \
	"$(expected_proc_conn 0)" "$(nsx "$NS_D" cat /proc/net/ip_vs_conn | mask_proc_conn)"
compare "/proc/net/ip_vs_conn_sync: the same entries with their origin" \
	"$(expected_proc_conn 1)" "$(nsx "$NS_D" cat /proc/net/ip_vs_conn_sync | mask_proc_conn)"
compare "ipvsadm -Lnc: IPv6 entries as [addr]:port" \
	"$(expected_lnc)" \
	"$(nsx "$NS_D" ipvsadm -Lnc 2>&1 | sed -E 's/^(... )[0-9][0-9]:[0-9][0-9]  /\1XX:XX  /' |
		{ IFS= read -r a; IFS= read -r b; printf '%s\n%s\n' "$a" "$b"; LC_ALL=C sort; })"

# check NAME OUTPUT WHO1 WHO2: REQ answers, PER from each of WHO1, WHO2.
check() {
	local name=$1 out=$2 n1 n2 nerr
	n1=$(grep -c -E "^[0-9]+ $3\$" <<< "$out")
	n2=$(grep -c -E "^[0-9]+ $4\$" <<< "$out")
	nerr=$(grep -c -v -E "^[0-9]+ ($3|$4)\$" <<< "$out")
	if [ "$n1" = $PER ] && [ "$n2" = $PER ] && [ "$nerr" = 0 ]; then
		ktap_pass "$name: $REQ answered, $PER by $3, $PER by $4"
	else
		ktap_diag "$name: $3 $n1, $4 $n2, unanswered or wrong $nerr (want $PER, $PER, 0)"
		[ "$nerr" = 0 ] || ktap_diag "$(grep -v -E "^[0-9]+ ($3|$4)\$" <<< "$out" | head -6)"
		ktap_fail "$name: $REQ answered, $PER by $3, $PER by $4"
	fi
}

# --- DR and NAT
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" 80 $REQ --source "$CIP6" 2>&1)
check "DR [VIP6]:80, tcp" "$out" rs1 rs2
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP6" 80 $REQ --source "$CIP6" --sport-base 40000 2>&1)
check "DR [VIP6]:80, udp" "$out" rs1 rs2
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" 81 $REQ --source "$CIP6B" 2>&1)
check "NAT [VIP6]:81, tcp, answered from the VIP" "$out" rs1 rs2
out=$(nsx "$NS_C" "$CLIENT" udp "$VIP6" 81 $REQ --source "$CIP6B" --sport-base 40100 2>&1)
check "NAT [VIP6]:81, udp, answered from the VIP" "$out" rs1 rs2

# --- local real servers
for i in 0 1 2; do
	port=${LOCAL_PORTS[i]}
	out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" "$port" $REQ --source "$CIP6B" 2>&1)
	check "[VIP6]:$port ${LOCAL_NAME[i]}, tcp" "$out" local rs1
	out=$(nsx "$NS_C" "$CLIENT" udp "$VIP6" "$port" $REQ --source "$CIP6B" \
		--sport-base $((40200 + 10 * i)) 2>&1)
	check "[VIP6]:$port ${LOCAL_NAME[i]}, udp" "$out" local rs1
done

# --- persistence with IPv6 prefix lengths
# servers ARGS...: the distinct answers of ipvs-client ARGS (sorted).
servers() {
	nsx "$NS_C" "$CLIENT" "$@" 2>&1 | awk '{ $1 = ""; print substr($0, 2) }' | sort -u |
		tr '\n' ' ' | sed 's/ $//'
}
a=$(servers tcp "$VIP6" 86 3 --source "$CIP6B")
b=$(servers tcp "$VIP6" 86 3 --source "$CIP6C")
ktap_diag "-M 64: $CIP6B: $a; $CIP6C: $b"
if [[ "$a" =~ ^rs[12]$ ]] && [ "$a" = "$b" ]; then
	ktap_pass "-p 60 -M 64: two clients of one /64 share a real server"
else
	ktap_fail "-p 60 -M 64: two clients of one /64 share a real server"
fi
a=$(servers tcp "$VIP6" 87 3 --source "$CIP6B")
b=$(servers tcp "$VIP6" 87 3 --source "$CIP6C")
ktap_diag "-M 128: $CIP6B: $a; $CIP6C: $b"
if [[ "$a" =~ ^rs[12]$ ]] && [[ "$b" =~ ^rs[12]$ ]] && [ "$a" != "$b" ]; then
	ktap_pass "-p 60 -M 128: each client keeps its server, rr sends them apart"
else
	ktap_fail "-p 60 -M 128: each client keeps its server, rr sends them apart"
fi
conns=$(nsx "$NS_D" ipvsadm -Lnc 2>&1)
t64=$(grep -E "^TCP .* ASSURED +\[[0-9a-f:]+\]:0 +\[$VIP6\]:86 " <<< "$conns" | awk '{ print $4 }')
t128=$(grep -E "^TCP .* ASSURED +\[[0-9a-f:]+\]:0 +\[$VIP6\]:87 " <<< "$conns" | awk '{ print $4 }' |
	LC_ALL=C sort | tr '\n' ' ')
if [ "$t64" = "[$CNET6]:0" ] && [ "$t128" = "[$CIP6B]:0 [$CIP6C]:0 " ]; then
	ktap_pass "templates: one for [$CNET6] (/64), one per client address (/128)"
else
	ktap_diag "/64: $t64; /128: $t128"
	ktap_diag "$conns"
	ktap_fail "templates: one for [$CNET6] (/64), one per client address (/128)"
fi

# --- fwmark 1 for both families
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 88 $REQ --source "$CIP4B" 2>&1)
check "mark 1, IPv4 to VIP:88 (service -f 1)" "$out" rs1 rs2
out=$(nsx "$NS_C" "$CLIENT" tcp "$VIP6" 88 $REQ --source "$CIP6B" 2>&1)
check "mark 1, IPv6 to [VIP6]:88 (service -f 1 -6)" "$out" rs1 rs2
want="v4 1 $REQ
v4 10.1.1.2:80 $PER
v4 10.1.2.2:80 $PER
v6 1 $REQ
v6 [fd00:1:1::2]:80 $PER
v6 [fd00:1:2::2]:80 $PER
v6 2 1
v6 [fd00:1:2::2]:81 1"
want=$(LC_ALL=C sort <<< "$want")
# fwm_conns: "v4|v6 MARK|SERVER CONNS" of the fwmark services, sorted. The
# C IPVS folds its per-CPU counters into what ipvsadm reads in the
# estimator kthread, every 2 s (later under load): retry for a while.
fwm_conns() {
	awk '$1 == "FWM" { svc = ($3 == "IPv6") ? "v6" : "v4"; print svc, $2, ($3 == "IPv6") ? $4 : $3; next }
		$1 == "->" && svc != "" { print svc, $2, $3; next } { svc = "" }' <<< "$1" |
		LC_ALL=C sort
}
for ((i = 0; i < 30; i++)); do
	stats=$(nsx "$NS_D" ipvsadm -Ln --stats 2>&1)
	got=$(fwm_conns "$stats")
	[ "$got" = "$want" ] && break
	sleep 1
done
if [ "$got" = "$want" ]; then
	ktap_pass "ipvsadm -Ln --stats: each family's connections counted by its own mark 1 service"
else
	ktap_diag "$(diff -u --label expected --label actual <(echo "$want") <(echo "$got"))"
	ktap_diag "$stats"
	ktap_fail "ipvsadm -Ln --stats: each family's connections counted by its own mark 1 service"
fi

# Counters: nothing negative or stuck after all this.
list=$(nsx "$NS_D" ipvsadm -Ln 2>&1)
if ! grep -qE -- "-[0-9]|4294967" <<< "$list"; then
	ktap_pass "connection counters stay sane"
else
	ktap_diag "$list"
	ktap_fail "connection counters stay sane"
fi

ktap_exit
