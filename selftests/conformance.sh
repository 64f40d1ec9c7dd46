#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# timeout: 900
#
# Differential conformance suite of the ipvsadm control path.
#
# The corpus is the plain files selftests/conformance/*.cmds. Each file is a
# scenario that starts from an empty table in a fresh network namespace;
# each line of it is one step:
#
#   ARGS...        ipvsadm ARGS (split on blanks; no shell quoting)
#   @ COMMAND      a shell command (bash -c), e.g. to feed ipvsadm -R or to
#                  write a sysctl
#   # ...          a comment (so are blank lines)
#
# Every scenario runs under the C IPVS (the oracle) and then, in the same
# boot, under the implementation under test ($IPVS_IMPL). After each step
# the transcript holds the step's stdout and stderr, its exit status and the
# /proc/net files of the namespace (PROC_FILES). Transcripts must be equal
# byte for byte, with one normalisation: the service entries of
# /proc/net/ip_vs are sorted, because the C IPVS lists its service hash in
# an order that mixes in the address of the namespace (that is also why the
# corpus does not use `ipvsadm -L --nosort`). Nothing else is masked.
#
# One KTAP result per step. With IPVS_IMPL=c the oracle is compared with
# itself, which checks that the corpus is deterministic. CONFORMANCE_SHOW=1
# prints the oracle's transcript; CONFORMANCE_FILES="a.cmds b.cmds" runs a
# subset.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vm
trap cleanup EXIT

CORPUS_DIR=$SELFTESTS_DIR/conformance
PROC_FILES=(ip_vs ip_vs_stats ip_vs_stats_percpu ip_vs_conn ip_vs_conn_sync)

files=()
if [ -n "${CONFORMANCE_FILES:-}" ]; then
	for f in $CONFORMANCE_FILES; do files+=("$CORPUS_DIR/$(basename "$f")"); done
else
	files=("$CORPUS_DIR"/*.cmds)
fi

# steps FILE: the steps of a scenario, one per line.
steps() {
	grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1"
}

total=0
for f in "${files[@]}"; do
	total=$((total + $(steps "$f" | wc -l)))
done
ktap_header "$total"

work=$(mktemp -d)
rm_work() { save_artifacts "$work" conformance; rm -rf "$work"; }
CLEANUP_HOOKS+=(rm_work)

# The guest script of a scenario: one process (in the namespace) runs every
# step, so a step costs one exec of ipvsadm and no more; the /proc files are
# read with bash builtins. Steps are written out with printf %q.
scenario_script() {
	local out=$2 i=0 line
	echo "PROC_FILES='${PROC_FILES[*]}'"
	cat <<- 'EOF'
	set -f
	snap() {
		local p v
		for p in $PROC_FILES; do
			echo "--- /proc/net/$p"
			if [ -e "/proc/net/$p" ]; then
				v=
				IFS= read -r -d '' v < "/proc/net/$p"
				printf '%s' "$v"
			else
				echo "(missing)"
			fi
		done
	}
	EOF
	while IFS= read -r line; do
		printf 'L=%q\n' "$line"
		printf 'exec > %q 2>&1 < /dev/null\n' "$out/$i.raw"
		echo 'echo "\$ $L"'
		if [ "${line:0:1}" = @ ]; then
			echo '( eval "${L:1}" )'
		else
			echo 'ipvsadm $L'
		fi
		echo 'echo "[exit $?]"'
		echo 'snap'
		i=$((i + 1))
	done < <(steps "$1")
}

# normalise DIR: DIR/N.raw -> DIR/N, the service entries (a service line and
# its "->" lines) of the /proc/net/ip_vs part sorted. One awk for all steps.
normalise() {
	awk '
	function flush(  i, j, t) {
		for (i = 2; i <= nb; i++) {
			t = b[i]
			for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]
			b[j + 1] = t
		}
		for (i = 1; i <= nb; i++) print b[i] > out
		nb = 0
	}
	FNR == 1 { if (out != "") { flush(); close(out) } out = FILENAME; sub(/\.raw$/, "", out); sec = "" }
	/^--- \/proc\/net\// { flush(); sec = $2; print > out; hdr = 0; next }
	sec == "/proc/net/ip_vs" {
		hdr++
		if (hdr <= 3) { print > out; next }
		if ($0 ~ /^[A-Z]/) { b[++nb] = $0; next }
		if (nb > 0) { b[nb] = b[nb] "\n" $0; next }
	}
	{ print > out }
	END { if (out != "") flush() }
	' "$1"/*.raw
}

# run_scenario FILE OUTDIR
run_scenario() {
	local file=$1 out=$2 ns
	mkdir -p "$out"
	ns_add ns conf || return 1
	scenario_script "$file" "$out" > "$out/script"
	nsx "$ns" bash "$out/script"
	normalise "$out"
	nsx "$ns" ipvsadm -C >/dev/null 2>&1
	cleanup_ns
}

# run_all IMPL DIR
run_all() {
	local impl=$1 out=$2 f t0
	ipvs_use "$impl" || return 1
	for f in "${files[@]}"; do
		t0=$SECONDS
		run_scenario "$f" "$out/$(basename "$f" .cmds)" || return 1
		ktap_diag "$impl: $(basename "$f"): $((SECONDS - t0)) s"
	done
}

ref=c
cand=$IPVS_IMPL
t0=$(date +%s)
ok_ref=1
run_all "$ref" "$work/ref" || ok_ref=0
t1=$(date +%s)
ok_cand=1
run_all "$cand" "$work/cand" || ok_cand=0
t2=$(date +%s)
ktap_diag "reference: $ref ($((t1 - t0)) s), candidate: $cand ($((t2 - t1)) s, $(ipvs_which)); $total steps in ${#files[@]} scenarios"

for f in "${files[@]}"; do
	name=$(basename "$f" .cmds)
	i=0
	while IFS= read -r line; do
		r=$work/ref/$name/$i
		c=$work/cand/$name/$i
		if [ "${CONFORMANCE_SHOW:-0}" = 1 ] && [ -f "$r" ]; then
			ktap_diag "$(< "$r")"
		fi
		rv=; cv=
		[ -f "$r" ] && IFS= read -r -d '' rv < "$r"
		[ -f "$c" ] && IFS= read -r -d '' cv < "$c"
		if [ "$ok_ref" = 1 ] && [ "$ok_cand" = 1 ] && [ -n "$rv" ] && [ "$rv" = "$cv" ]; then
			ktap_pass "$name: $line"
		else
			[ -f "$r" ] && [ -f "$c" ] &&
				ktap_diag "$(diff -u --label "$ref" --label "$cand" "$r" "$c")"
			ktap_fail "$name: $line"
		fi
		i=$((i + 1))
	done < <(steps "$f")
done
ktap_exit
