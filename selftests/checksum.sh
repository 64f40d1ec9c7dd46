#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Transport checksums of NAT packets, with every checksum done in software.
#
#   client -> director (VIP 10.0.100.1) -> rs1, rs2 (NAT, -m)
#
# Checksum offload is off on every veth (ethtool -K tx off rx off): senders
# compute full TCP/UDP checksums, the director sees plain packets
# (CHECKSUM_NONE, not the CHECKSUM_PARTIAL of offloading veths that the
# other tests see) and every receiver verifies checksums itself, dropping
# and counting (InCsumErrors) any a rewrite got wrong. So:
#  - TCP and UDP requests to the service are all answered, both ways through
#    the NAT rewrite;
#  - 1 MB up and 1 MB down over one TCP connection arrive intact;
#  - UDP datagrams sent without a checksum (zero, SO_NO_CHECK) are answered;
#  - no InCsumErrors at the client or the real servers.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

N=2
REQ=20
SIZE=$((1024 * 1024))
BULK=$TOOLS/lib/ipvs-bulk

command -v ethtool >/dev/null || ktap_skip_all "ethtool not installed (tools/setup)"
ipvs_use "$IPVS_IMPL" || ktap_skip_all "cannot load the $IPVS_IMPL IPVS"
ktap_header 6
ktap_diag "implementation: $IPVS_IMPL ($(ipvs_which))"

# no_offload NS DEV: checksums of DEV computed and verified in software.
no_offload() {
	nsx "$1" ethtool -K "$2" tx off rx off >/dev/null 2>&1
}

# csum_errors NS: TCP and UDP InCsumErrors of NS, summed.
csum_errors() {
	nsx "$1" awk '
		($1 == "Tcp:" || $1 == "Udp:") && !seen[$1]++ {
			for (i = 2; i <= NF; i++) col[$1, $i] = i; next
		}
		($1 == "Tcp:" || $1 == "Udp:") { n += $col[$1, "InCsumErrors"] }
		END { print n + 0 }' /proc/net/snmp
}

setup() {
	local i ready
	topo_nat $N && start_servers $N || return 1
	no_offload "$NS_C" c0 && no_offload "$NS_D" d0 || return 1
	for ((i = 1; i <= N; i++)); do
		no_offload "$NS_D" "r$i" && no_offload "${NS_RS[i]}" eth0 || return 1
	done
	ready=$(mktemp -d)
	bg "${NS_RS[1]}" "$BULK" server --port 81 --ready-file "$ready/rs1"
	for ((i = 0; i < 100; i++)); do
		[ -e "$ready/rs1" ] && break
		sleep 0.1
	done
	rm -rf "$ready"
	nsx "$NS_D" ipvsadm -A -t "$VIP:80" -s rr &&
	nsx "$NS_D" ipvsadm -A -u "$VIP:80" -s rr &&
	nsx "$NS_D" ipvsadm -A -t "$VIP:81" -s rr &&
	nsx "$NS_D" ipvsadm -a -t "$VIP:81" -r "${RIP[1]}:81" -m || return 1
	for ((i = 1; i <= N; i++)); do
		nsx "$NS_D" ipvsadm -a -t "$VIP:80" -r "${RIP[i]}:80" -m &&
		nsx "$NS_D" ipvsadm -a -u "$VIP:80" -r "${RIP[i]}:80" -m || return 1
	done
}

if ! setup; then
	ktap_fail "setup: NAT services, checksum offload off on every link"
	ktap_exit
fi
ktap_pass "setup: NAT services, checksum offload off on every link"

# answered NAME OUTPUT: every request answered by a real server.
answered() {
	local bad
	bad=$(grep -c -v -E '^[^ ]+ rs[0-9]+$' <<< "$2")
	if [ "$bad" = 0 ] && [ "$(wc -l <<< "$2")" = "$REQ" ]; then
		ktap_pass "$1: $REQ requests answered"
	else
		ktap_diag "$(grep -v -E '^[^ ]+ rs[0-9]+$' <<< "$2" | head -3)"
		ktap_fail "$1: $REQ requests answered ($bad failed)"
	fi
}

answered tcp "$(nsx "$NS_C" "$CLIENT" tcp "$VIP" 80 $REQ --timeout 5)"
answered udp "$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 40000 --timeout 5)"
answered "udp without checksum" \
	"$(nsx "$NS_C" "$CLIENT" udp "$VIP" 80 $REQ --sport-base 41000 --timeout 5 --no-check)"

ok=1
for dir in up down; do
	out=$(nsx "$NS_C" timeout -k 5 90 "$BULK" client "$VIP" 81 "$dir" $SIZE --timeout 30 2>&1)
	ktap_diag "$out"
	grep -q "^$dir ok" <<< "$out" || ok=0
done
ktap_check "tcp: 1 MB up and 1 MB down intact" test $ok = 1

errs=$(csum_errors "$NS_C")
for ((i = 1; i <= N; i++)); do
	errs="$errs $(csum_errors "${NS_RS[i]}")"
done
ktap_diag "InCsumErrors (client, rs1..rs$N): $errs"
ktap_check "no checksum errors at the client or the real servers" \
	test "$(tr -d ' 0' <<< "$errs")" = ""

ktap_exit
