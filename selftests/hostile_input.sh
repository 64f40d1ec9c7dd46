#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Hostile input from users, C IPVS and ours side by side in one boot.
#
#  1. An unprivileged user (uid 65534 in its own user and network namespace)
#     adds a service and a real server on 127.0.0.1 with raw setsockopt,
#     sets am_droprate to INT_MIN and drop_packet to 3, and connects to the
#     service: the kernel must survive (this once panicked ours in softirq
#     on an overflow in the drop counter).
#  2. Root adds persistent services with extreme timeouts (up to
#     4294967295 s, which upstream accepts from raw setsockopt and stores as
#     a wrapped jiffies count); /proc/net/ip_vs read by an unprivileged
#     reader and the timeout read back with getsockopt must match the C
#     IPVS (this once panicked ours in `cat`).
#  3. Which /proc/sys/net/ipv4/vs files an unprivileged namespace owner may
#     write matches the C IPVS.
#  4. /proc/net/ip_vs_conn with 400 entries (ten pages) read in 64-byte pieces gives
#     the same text as one big read, each entry once (the file is a
#     resumable iterator, not one huge show).

# timeout: 900

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

RAW=$TOOLS/lib/ipvs-raw
IMPLS=(${HOSTILE_IMPLS:-c $IPVS_IMPL})
ktap_header $((4 * ${#IMPLS[@]} + 2))

work=$(mktemp -d)
rm_work() { save_artifacts "$work" hostile_input; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$@"
}

if ! as_nobody unshare -Urn true 2>/dev/null; then
	ktap_diag "unprivileged user namespaces are not available"
fi

# 1. Unprivileged: INT_MIN drop rate, then a connection.
unpriv_droprate() {
	as_nobody unshare -Urn bash -c '
		set -e
		ip link set lo up
		"$1" add-service tcp 127.0.0.1 80 rr
		"$1" add-dest tcp 127.0.0.1 80 127.0.0.1 8080 --fwd local
		echo -2147483648 > /proc/sys/net/ipv4/vs/am_droprate
		echo 3 > /proc/sys/net/ipv4/vs/drop_packet
		sleep 2
		python3 - <<-EOF
			import socket
			for _ in range(3):
			    s = socket.socket()
			    s.settimeout(1)
			    try:
			        s.connect(("127.0.0.1", 80))
			    except OSError as e:
			        print("connect:", type(e).__name__)
			    s.close()
		EOF
		echo "am_droprate=$(cat /proc/sys/net/ipv4/vs/am_droprate)"
		echo "drop_packet=$(cat /proc/sys/net/ipv4/vs/drop_packet)"
	' unpriv "$RAW"
}

# 2. Persistent services with extreme timeouts, read back.
TIMEOUTS=(1 300 17179869 2147483647 2147483648 4294967295)
persist_timeouts() {
	local ns t i=0
	ns_add ns persist || return 1
	for t in "${TIMEOUTS[@]}"; do
		i=$((i + 1))
		nsx "$ns" "$RAW" add-service tcp "10.9.0.$i" 80 rr --persistent --timeout "$t" || return 1
	done
	# The services sorted: their listing order is the hash table's, whose
	# key upstream (since 7.1) and ours choose at random.
	nsx "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		cat /proc/net/ip_vs | tail -n +2 | awk 'NR <= 2 { print; fflush(); next } { print | "LC_ALL=C sort" }' || return 1
	i=0
	for t in "${TIMEOUTS[@]}"; do
		i=$((i + 1))
		echo "$t: $(nsx "$ns" "$RAW" get-service tcp "10.9.0.$i" 80)"
	done
	cleanup_ns
}

# 3. What an unprivileged owner may write (each file: its own value again).
unpriv_sysctl_modes() {
	as_nobody unshare -Urn bash -c '
		for f in /proc/sys/net/ipv4/vs/*; do
			n=${f##*/}
			# est_cpulist: upstream only (no estimator kthreads here);
			# svc_lfactor, conn_lfactor, conn_max: newer than this C
			# IPVS (svc_table.sh, conn_table.sh).
			case $n in est_cpulist|svc_lfactor|conn_lfactor|conn_max) continue ;; esac
			if v=$(cat "$f" 2>/dev/null) && (echo "$v" > "$f") 2>/dev/null; then
				echo "$n writable"
			else
				echo "$n read-only"
			fi
		done
	'
}

# 4. The connection table read in small pieces.
conn_seq() {
	local out=$1 n=400
	topo_nat 1 || return 1
	nsx "$NS_D" ipvsadm -A -u "$VIP:53" -s rr &&
	nsx "$NS_D" ipvsadm -a -u "$VIP:53" -r "${RIP[1]}:53" -m || return 1
	nsx "$NS_C" python3 - "$VIP" "$n" <<-'EOF' || return 1
		import socket, sys
		vip, n = sys.argv[1], int(sys.argv[2])
		for i in range(n):
		    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		    s.bind(("0.0.0.0", 20000 + i))
		    s.sendto(b"x", (vip, 53))
		    s.close()
	EOF
	# The table fills as the director receives them.
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(nsx "$NS_D" wc -l < /proc/net/ip_vs_conn)" -ge $((n + 1)) ] && break
		sleep 0.2
	done
	nsx "$NS_D" cat /proc/net/ip_vs_conn > "$out.big" || return 1
	nsx "$NS_D" dd if=/proc/net/ip_vs_conn bs=64 status=none > "$out.small" || return 1
	cleanup_ns
	# The expiry column may tick between the reads: compare the rest.
	awk '{ print $1, $2, $3, $4, $5, $6, $7, $8 }' "$out.big" | sort > "$out.a"
	awk '{ print $1, $2, $3, $4, $5, $6, $7, $8 }' "$out.small" | sort > "$out.b"
	local lines dups
	lines=$(wc -l < "$out.big")
	dups=$(tail -n +2 "$out.a" | uniq -d | wc -l)
	ktap_diag "$IPVS_CURRENT: $lines lines, $dups duplicates"
	[ "$lines" = $((n + 1)) ] && [ "$dups" = 0 ] && cmp -s "$out.a" "$out.b"
}

for impl in "${IMPLS[@]}"; do
	d=$work/$impl
	mkdir -p "$d"
	if ! ipvs_use "$impl"; then
		for t in unpriv-droprate persist-timeouts unpriv-sysctl-modes conn-seq; do
			ktap_fail "$impl: $t"
		done
		continue
	fi
	unpriv_droprate > "$d/droprate" 2>&1
	ktap_diag "$impl: $(tr '\n' ' ' < "$d/droprate")"
	ktap_check "$impl: unpriv-droprate (kernel alive, values kept)" \
		grep -qx 'am_droprate=-2147483648' "$d/droprate"
	persist_timeouts > "$d/persist" 2>&1
	ktap_check "$impl: persist-timeouts" grep -q '^4294967295: timeout=' "$d/persist"
	unpriv_sysctl_modes > "$d/modes" 2>&1
	ktap_check "$impl: unpriv-sysctl-modes" grep -q 'amemthresh writable' "$d/modes"
	ktap_check "$impl: conn-seq" conn_seq "$d/conn"
done

# The candidate must answer as the oracle.
same() {
	if diff -u "$work/c/$1" "$work/$IPVS_IMPL/$1" > "$work/$1.diff"; then
		return 0
	fi
	ktap_diag "$(head -40 "$work/$1.diff")"
	return 1
}
ktap_check "persist-timeouts same as C" same persist
ktap_check "unpriv-sysctl-modes same as C" same modes
ktap_exit
