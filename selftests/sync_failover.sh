#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
#
# Failover that keeps connections: two directors A and B, each running
# Debian's keepalived (2.2.7) with one VRRP instance for the VIP and
# `lvs_sync_daemon` (keepalived starts the master sync daemon on the VRRP
# master and the backup daemon on the VRRP backup), the same DR virtual
# servers on both. The C IPVS and ours in one boot, one after the other.
#
#   client 10.0.0.2 (.3 .4 .5: persistent clients)
#     |            A 10.0.0.11 (priority 150)   B 10.0.0.12 (priority 100)
#   [ bridge: one segment for the client, the directors, VRRP, the sync
#     multicast and the real servers ]
#     |
#   rs1..rs3 10.0.0.21-23, VIP 10.0.0.100 on lo (arp_ignore/arp_announce),
#   answer the client directly (DR)
#
# Virtual servers: VIP:80 (rr; the real servers echo what they get, for
# held connections: tools/lib/ipvs-hold) and VIP:81 (rr, persistence_timeout
# 300), no health checks. The directors do not forward (ip_forward=0): a
# packet for the VIP reaching the director that lost it is dropped, and TCP
# retransmits it. Every wait is on a condition (the VIP on an interface, the
# daemons listed by `ipvsadm -L --daemon`, the connection tables, the held
# connections' echo counts), never a fixed time. Per implementation:
#
#  1. A is VRRP master (VIP on A, master sync daemon), B backup (backup
#     daemon).
#  2. A held connection (a line every 100 ms, each echoed) and three
#     persistent clients through A.
#  3. B learns the held connection (ESTABLISHED, the same real server) and
#     the three persistence templates.
#  4. A's priority drops to 50 (a track_file): B preempts, the VIP moves to
#     B, which runs the master daemon, and A turns backup daemon.
#  5. The held connection goes on through B, without a reset: its echoes
#     continue and B's service counts its packets (0 before).
#  6. The persistent clients, in reverse order, land through B on the real
#     servers A gave them (the templates B learned); a second held
#     connection starts through B.
#  7. A is lost: its keepalived stops (its virtual servers go; the
#     connection table stays); a third held connection starts through B.
#     A's keepalived starts again at priority 150 with preempt_delay 10 (a
#     backup for 10 s more than VRRP needs): A runs the backup daemon and
#     learns the third connection from B (marked SYNC in
#     /proc/net/ip_vs_conn_sync).
#  8. A preempts: the VIP is back on A with the master daemon, B is backup.
#  9. The three held connections go on through A: the first on A's own
#     entry, whose real server went with A's virtual servers and came back
#     with them (upstream's per-namespace destination trash), the others on
#     what A learned.
# 10. All three end cleanly: never a reset, never an echo lost.
#
# SYNC_FAILOVER_IMPLS="c rust" runs the implementations named (default:
# $IPVS_IMPL);
# SYNC_FAILOVER_PCAP=1 keeps a capture of the segment's TCP traffic with
# the artifacts (VM_OUT/artifacts/sync_failover).
#
# Why the priority drop rather than stopping A's keepalived while it is
# master: keepalived 2.2.7 shutting down removes its virtual servers (the
# checker process) before its VRRP process drops the VIP. With the last
# service gone the IPVS hooks go too (upstream's ip_vs_del_service, and
# ours), and a client packet reaching A in that window meets A's own TCP
# stack, which resets the connection (2 runs in 6 of ours, capture in
# hand; the C IPVS does the same by the same code).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

command -v keepalived >/dev/null || ktap_skip_all "keepalived not installed"
# The implementation under test ($IPVS_IMPL) by default: make check stays
# within its time; SYNC_FAILOVER_IMPLS="c rust" runs both side by side.
impls=("$IPVS_IMPL")
[ -n "${SYNC_FAILOVER_IMPLS:-}" ] && read -r -a impls <<< "$SYNC_FAILOVER_IMPLS"
NSTEPS=10
ktap_header $(( ${#impls[@]} * NSTEPS ))

FVIP=10.0.0.100
A_IP=10.0.0.11
B_IP=10.0.0.12
PCLIENTS=(10.0.0.3 10.0.0.4 10.0.0.5)
SYNCID=7

work=$(mktemp -d)
rm_work() { save_artifacts "$work" sync_failover; rm -rf "$work"; }
KA_PID_A=
KA_PID_B=
stop_ka() { # A|B
	local v=KA_PID_$1
	[ -n "${!v}" ] || return 0
	kill "${!v}" 2>/dev/null
	wait "${!v}" 2>/dev/null
	printf -v "$v" '%s' ""
}
stop_all_ka() { stop_ka A; stop_ka B; }
CLEANUP_HOOKS+=(stop_all_ka rm_work)

NS_SW= NS_A= NS_B=
RS_IP=()

# port NS IF: a veth from NS's IF to the bridge.
port() {
	local p=p$RANDOM
	ip link add "$2" netns "$1" type veth peer name "$p" netns "$NS_SW" || return 1
	ip -n "$NS_SW" link set "$p" master br0 up || return 1
	ip -n "$1" link set "$2" up
}

setup() {
	local i ns
	ns_add NS_SW sw || return 1
	ip -n "$NS_SW" link add br0 type bridge mcast_snooping 0 || return 1
	ip -n "$NS_SW" link set br0 up || return 1
	ns_add NS_C client || return 1
	port "$NS_C" lan0 || return 1
	ip -n "$NS_C" addr add 10.0.0.2/24 dev lan0 || return 1
	for i in "${PCLIENTS[@]}"; do
		ip -n "$NS_C" addr add "$i/24" dev lan0 || return 1
	done
	ns_add NS_A dirA || return 1
	ns_add NS_B dirB || return 1
	port "$NS_A" lan0 && ip -n "$NS_A" addr add $A_IP/24 dev lan0 || return 1
	port "$NS_B" lan0 && ip -n "$NS_B" addr add $B_IP/24 dev lan0 || return 1
	for ns in "$NS_A" "$NS_B"; do
		nsx "$ns" sysctl -qw net.ipv4.ip_forward=0
	done
	NS_RS=("")
	RS_IP=("")
	for i in 1 2 3; do
		ns_add ns "rs$i" || return 1
		NS_RS[i]=$ns
		RS_IP[i]=10.0.0.2$i
		port "$ns" eth0 || return 1
		ip -n "$ns" -b - <<-EOF || return 1
			addr add ${RS_IP[i]}/24 dev eth0
			addr add $FVIP/32 dev lo
		EOF
		nsx "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 || return 1
		bg "$ns" "$SERVER" "rs$i" --port 81 --echo-port 80 --ready-file "$work/$IMPL/ready.rs$i"
	done
	wait_for 30 test -e "$work/$IMPL/ready.rs1" -a -e "$work/$IMPL/ready.rs2" -a -e "$work/$IMPL/ready.rs3" || return 1
	if [ -n "${SYNC_FAILOVER_PCAP:-}" ]; then
		nsenter --net="/run/netns/$NS_SW" tcpdump -U -i br0 -n -w "$work/$IMPL/br0.pcap" tcp 2>/dev/null &
		BG_PIDS+=($!)
	fi
}

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

# write_conf NAME PRIORITY [PREEMPT_DELAY]: keepalived.conf of a director;
# the number in $work/$IMPL/prio-NAME is taken off its priority.
write_conf() {
	local i port
	echo 0 > "$work/$IMPL/prio-$1"
	{
		echo "global_defs {"
		echo "    router_id dir$1"
		echo "    lvs_sync_daemon lan0 VI_1 id $SYNCID"
		echo "    vrrp_garp_master_delay 1"
		echo "}"
		echo "track_file prio {"
		echo "    file $work/$IMPL/prio-$1"
		echo "    weight -1"
		echo "}"
		echo "vrrp_instance VI_1 {"
		echo "    state BACKUP"
		echo "    interface lan0"
		echo "    virtual_router_id 51"
		echo "    priority $2"
		echo "    advert_int 1"
		[ -n "${3:-}" ] && echo "    preempt_delay $3"
		echo "    track_file {"
		echo "        prio"
		echo "    }"
		echo "    virtual_ipaddress {"
		echo "        $FVIP/32 dev lan0"
		echo "    }"
		echo "}"
		for port in 80 81; do
			echo "virtual_server $FVIP $port {"
			echo "    lb_algo rr"
			echo "    lb_kind DR"
			echo "    protocol TCP"
			[ $port = 81 ] && echo "    persistence_timeout 300"
			for i in 1 2 3; do
				echo "    real_server ${RS_IP[i]} $port {"
				echo "        weight 1"
				echo "    }"
			done
			echo "}"
		done
	} > "$work/$IMPL/ka-$1.conf"
}

# start_ka A|B NS: keepalived (VRRP and checker) in NS; its log (-l: to
# standard error) goes to the work directory.
start_ka() {
	local d=$work/$IMPL
	nsenter --net="/run/netns/$2" keepalived -n -l -D -f "$d/ka-$1.conf" \
		-p "$d/ka-$1.pid" -c "$d/ka-$1-checkers.pid" -r "$d/ka-$1-vrrp.pid" \
		>> "$d/ka-$1.log" 2>&1 &
	printf -v "KA_PID_$1" '%s' $!
}

# has_vip NS: the VIP is on NS's lan0.
has_vip() {
	ip -n "$1" -4 -o addr show dev lan0 | grep -q " $FVIP/32 "
}

# daemons NS: the sync daemons listed, "master", "backup", "backup master"
# or "".
daemons() {
	nsx "$1" ipvsadm -L --daemon 2>/dev/null | awk '{ print $1 }' | sort | xargs
}

# state NS VIP(yes|no) DAEMONS: NS has (or not) the VIP and runs DAEMONS.
state() {
	local v=no
	has_vip "$1" && v=yes
	[ "$v" = "$2" ] && [ "$(daemons "$1")" = "$3" ]
}

# services NS: both virtual servers have their three real servers.
services() {
	[ "$(nsx "$1" ipvsadm -Ln 2>/dev/null | grep -c -- '-> 10\.0\.0\.2')" = 6 ]
}

# conn NS CLIENT VPORT: "STATE REAL-SERVER" of the entry of CLIENT
# (address:port; port 0 for a template) to VIP:VPORT in NS's table.
conn() {
	nsx "$1" ipvsadm -Lnc 2>/dev/null |
		awk -v c="$2" -v v="$FVIP:$3" '$4 == c && $5 == v { print $3, $6; exit }'
}

# origin NS CLIENT VPORT: LOCAL or SYNC, from /proc/net/ip_vs_conn_sync
# (addresses and ports in hexadecimal there).
origin() {
	local ip=${2%:*} port=${2##*:} hex
	# shellcheck disable=SC2046 # the address's four numbers
	hex=$(printf '%02X%02X%02X%02X' $(tr . ' ' <<< "$ip"))
	nsx "$1" awk -v c="$hex" -v p="$(printf '%04X' "$port")" -v vp="$(printf '%04X' "$3")" \
		'$2 == c && $3 == p && $5 == vp { print $(NF - 1); exit }' /proc/net/ip_vs_conn_sync
}

# inpkts NS: packets VIP:80 took in (its counter, exact).
inpkts() {
	nsx "$1" ipvsadm -Ln --stats --exact -t "$FVIP:80" 2>/dev/null | awk '$1 == "TCP" { print $4 }'
}

# hold_start NAME SOURCE: a held connection from SOURCE to VIP:80.
hold_start() {
	bg "$NS_C" "$TOOLS/lib/ipvs-hold" "$FVIP" 80 --source "$2" \
		--status "$work/$IMPL/$1.status" --stop-file "$work/$IMPL/stop"
}

# hold NAME KEY: a field of the held connection's status.
hold() {
	sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$work/$IMPL/$1.status" 2>/dev/null
}

# echoes_past NAME N: the held connection is open and echoed more than N.
echoes_past() {
	[ "$(hold "$1" state)" = open ] && [ "$(hold "$1" echoes)" -gt "$2" ] 2>/dev/null
}

# rs_of ANSWER: the real server's address for an answer "rs<i>".
rs_of() {
	case $1 in
	rs[123]) echo "${RS_IP[${1#rs}]}" ;;
	*) echo "?" ;;
	esac
}

# result NAME OK [CMD...]: one result of this implementation; on a
# failure CMD prints what to show.
result() {
	local name=$1 ok=$2
	shift 2
	if [ "$ok" = 1 ]; then
		ktap_pass "$IMPL: $name"
	else
		[ $# -gt 0 ] && ktap_diag "$("$@")"
		ktap_fail "$IMPL: $name"
	fi
}

# status NAME...: the held connections' status lines.
status() {
	local h
	for h in "$@"; do
		echo "$h: $(cat "$work/$IMPL/$h.status" 2>/dev/null)"
	done
}

# show: both directors' view, as diagnostics.
show() {
	local ns
	for ns in A B; do
		local v=NS_$ns
		echo "$ns: vip=$(has_vip "${!v}" && echo yes || echo no) daemons='$(daemons "${!v}")'"
		nsx "${!v}" ipvsadm -Lnc 2>/dev/null | sed 's/^/  /'
		echo "  InPkts VIP:80: $(inpkts "${!v}")"
	done
	status held1 held2 held3
}

run_impl() {
	IMPL=$1
	local ok n sport rs held1_rs t0 i out want got bad pin
	local -A prs
	mkdir -p "$work/$IMPL"
	if ! ipvs_use "$IMPL" || ! setup; then
		for ((i = 0; i < NSTEPS; i++)); do ktap_fail "$IMPL: setup"; done
		cleanup_ns
		return
	fi
	t0=$SECONDS
	write_conf A 150
	write_conf B 100

	# 1. A master, B backup.
	start_ka A "$NS_A"
	ok=0
	if wait_for 60 state "$NS_A" yes master && wait_for 60 services "$NS_A"; then
		start_ka B "$NS_B"
		wait_for 60 state "$NS_B" no backup && wait_for 60 services "$NS_B" &&
			state "$NS_A" yes master && ok=1
	fi
	result "A is VRRP master with the master sync daemon, B backup with the backup daemon" $ok show
	ktap_diag "$IMPL: A: $(nsx "$NS_A" ipvsadm -L --daemon | xargs); B: $(nsx "$NS_B" ipvsadm -L --daemon | xargs)"

	# 2. Through A: a held connection and three persistent clients.
	hold_start held1 10.0.0.2
	ok=0
	for i in "${PCLIENTS[@]}"; do
		out=$(nsx "$NS_C" "$CLIENT" tcp "$FVIP" 81 1 --source "$i" --timeout 5)
		prs[$i]=$(rs_of "${out#* }")
	done
	if wait_for 30 echoes_past held1 5; then
		sport=$(hold held1 sport)
		held1_rs=$(rs_of "$(hold held1 server)")
		[ "${prs[*]}" = "${prs[*]//\?/}" ] && ok=1
	fi
	result "a held connection and three persistent clients through A" $ok \
		echo "$(status held1); persistent: ${prs[*]}"
	ktap_diag "$IMPL: held1 from port ${sport:-?} on $held1_rs; persistent ${PCLIENTS[*]} on ${prs[*]}"

	# 3. B learns them.
	learned() {
		[ "$(conn "$NS_B" "10.0.0.2:$sport" 80)" = "ESTABLISHED $held1_rs:80" ] || return 1
		for i in "${PCLIENTS[@]}"; do
			[ "$(conn "$NS_B" "$i:0" 81 | cut -d' ' -f2)" = "${prs[$i]}:81" ] || return 1
		done
	}
	ok=0
	wait_for 30 learned && [ "$(inpkts "$NS_B")" = 0 ] && ok=1
	result "B learns the held connection and the persistence templates" $ok show

	# 4. A's priority drops under B's: B takes the VIP and runs the master
	# daemon, A the backup daemon.
	echo 100 > "$work/$IMPL/prio-A"
	ok=0
	wait_for 30 state "$NS_B" yes master && wait_for 30 state "$NS_A" no backup && ok=1
	result "A's priority drops: the VIP moves to B, B runs the master daemon, A the backup" $ok show

	# 5. The held connection goes on through B.
	n=$(hold held1 echoes)
	ok=0
	wait_for 60 echoes_past held1 $((n + 30)) && [ "$(inpkts "$NS_B")" -gt 0 ] &&
		[ "$(conn "$NS_B" "10.0.0.2:$sport" 80)" = "ESTABLISHED $held1_rs:80" ] && ok=1
	result "the held connection goes on through B (B forwards it)" $ok show
	ktap_diag "$IMPL: through B: $(status held1); B's InPkts $(inpkts "$NS_B")"

	# 6. The persistent clients, last first, through B; a second held
	# connection.
	bad=
	for ((i = ${#PCLIENTS[@]} - 1; i >= 0; i--)); do
		pin=${PCLIENTS[i]}
		out=$(nsx "$NS_C" "$CLIENT" tcp "$FVIP" 81 1 --source "$pin" --timeout 5)
		got=$(rs_of "${out#* }")
		[ "$got" = "${prs[$pin]}" ] || bad+=" $pin:$got(want ${prs[$pin]})"
	done
	hold_start held2 10.0.0.2
	ok=0
	[ -z "$bad" ] && wait_for 30 echoes_past held2 5 && ok=1
	result "persistent clients land through B on the real servers A gave them" $ok \
		echo "wrong:$bad; $(status held2)"

	# 7. A is lost, and a third connection starts through B meanwhile; A
	# comes back as a backup for 10 s more than VRRP needs and learns it.
	stop_ka A
	hold_start held3 10.0.0.2
	local sport3 rs3
	ok=0
	if wait_for 30 echoes_past held3 5; then
		sport3=$(hold held3 sport)
		rs3=$(rs_of "$(hold held3 server)")
		[ -z "$(conn "$NS_A" "10.0.0.2:$sport3" 80)" ] && ok=1
	fi
	write_conf A 150 10
	start_ka A "$NS_A"
	a_learned() {
		[ "$(conn "$NS_A" "10.0.0.2:$sport3" 80)" = "ESTABLISHED $rs3:80" ] &&
			[ "$(origin "$NS_A" "10.0.0.2:$sport3" 80)" = SYNC ]
	}
	[ $ok = 1 ] && wait_for 30 state "$NS_A" no backup && wait_for 30 a_learned || ok=0
	result "A restarts as VRRP backup with the backup daemon and learns from B" $ok show

	# 8. A preempts.
	ok=0
	wait_for 60 state "$NS_A" yes master && wait_for 30 state "$NS_B" no backup && ok=1
	result "A preempts: the VIP is back on A with the master daemon, B is backup" $ok show

	# 9. The held connections go on through A.
	ok=0
	n=$(inpkts "$NS_A")
	wait_for 60 echoes_past held1 $(( $(hold held1 echoes) + 30 )) &&
		wait_for 60 echoes_past held2 $(( $(hold held2 echoes) + 30 )) &&
		wait_for 60 echoes_past held3 $(( $(hold held3 echoes) + 30 )) &&
		[ "$(inpkts "$NS_A")" -gt "${n:-0}" ] && ok=1
	result "the three held connections go on through A" $ok show

	# 10. They end cleanly.
	touch "$work/$IMPL/stop"
	ok=0
	wait_for 30 grep -q 'state=closed' "$work/$IMPL/held1.status" &&
		wait_for 30 grep -q 'state=closed' "$work/$IMPL/held2.status" &&
		wait_for 30 grep -q 'state=closed' "$work/$IMPL/held3.status" && ok=1
	result "the three held connections end cleanly, never reset" $ok
	ktap_diag "$IMPL: $(status held1 held2 held3)"
	ktap_diag "$IMPL: $((SECONDS - t0)) s"

	stop_all_ka
	cleanup_ns
}

for impl in "${impls[@]}"; do
	run_impl "$impl"
done
ktap_exit
