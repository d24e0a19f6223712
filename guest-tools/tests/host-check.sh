#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# host-check.sh KMEMTRACED - host tests of a native kmemtraced against a fake debugfs.
#
# Regular files stand in for debugfs kmemtrace/{cpu<N>,abi_version,allocator,total_overruns}, procfs
# (kallsyms, sys/kernel/kptr_restrict) and sysfs (devices/system/cpu/online, cpu<N>/node<M>), so
# nothing of the host is read or changed. Covers: a complete trace (bytes, meta.json, kallsyms,
# data appended while running, SIGTERM and SIGINT), and every error path with its exit code:
# usage (2), missing debugfs or cpu file (3), unknown or missing ABI version (4), read-only, full
# or uncreatable output (5), missing kallsyms (6). Tests that need root (tmpfs mounts) say SKIP
# when they cannot run. Run by `make -C guest-tools ARCH=<host> O=DIR check`.
#
# Exit codes: 0 all tests passed (some may be skipped), 1 a test failed, 2 usage.
set -u

K=${1:?usage: host-check.sh PATH/TO/kmemtraced}
[ -x "$K" ] || { echo "host-check: $K is not executable" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/kmt-host-check.XXXXXX")
MOUNTS=()
cleanup() {
	for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

PASS=0 FAIL=0 SKIP=0
ok() { PASS=$((PASS + 1)); echo "PASS $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1: $2"; [ -s "$T/stderr" ] && sed 's/^/    stderr: /' "$T/stderr"; }
skip() { SKIP=$((SKIP + 1)); echo "SKIP $1: $2"; }

# fake DIR: a fake debugfs, proc and sys for CPUs 0 and 1 (cpu0 on node 0, cpu1 without node).
fake() {
	local d=$1
	mkdir -p "$d/dbg/kmemtrace" "$d/proc/sys/kernel" "$d/sys/devices/system/cpu/cpu0/node0" \
		"$d/sys/devices/system/cpu/cpu1"
	echo 1 >"$d/dbg/kmemtrace/abi_version"
	echo 0 >"$d/dbg/kmemtrace/total_overruns"
	echo 0 >"$d/dbg/kmemtrace/enabled"
	head -c 100000 /dev/urandom >"$d/dbg/kmemtrace/cpu0"
	head -c 3000000 /dev/urandom >"$d/dbg/kmemtrace/cpu1"	# > one 1 MiB write buffer
	echo 0-1 >"$d/sys/devices/system/cpu/online"
	printf 'ffffffff81000000 T _stext\nffffffff81001000 t kmemtrace_selftest_alloc\n' \
		>"$d/proc/kallsyms"
	echo 2 >"$d/proc/sys/kernel/kptr_restrict"
}

# run NAME DIR [ARGS...]: starts kmemtraced on the fake in DIR, waits until it is collecting.
# Sets PID; READY is "ready" or empty (it exited during setup).
run() {
	local d=$2
	shift 2
	rm -f "$T/ready"
	mkfifo "$T/ready"
	# -U: the fake's CPUs 0 and 1 need not exist on the test machine.
	"$K" -d "$d/dbg" -p "$d/proc" -s "$d/sys" -t 50 -U "$@" -R 3 3>"$T/ready" 2>"$T/stderr" &
	PID=$!
	READY=
	read -r -t 20 READY <"$T/ready"
}

# finish [SIGNAL]: signals (default TERM) and waits; sets RC.
finish() {
	kill -"${1:-TERM}" "$PID" 2>/dev/null
	wait "$PID"
	RC=$?
}

# expect_rc NAME WANT [GREP]: checks RC and, optionally, that stderr matches GREP.
expect_rc() {
	if [ "$RC" != "$2" ]; then
		bad "$1" "exit $RC, want $2"
	elif [ -n "${3:-}" ] && ! grep -q -- "$3" "$T/stderr"; then
		bad "$1" "stderr does not mention '$3'"
	else
		ok "$1"
	fi
}

json_get() { # FILE PYTHON-EXPR
	python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print($2)" "$1"
}

# --- a complete trace ---
D=$T/good
fake "$D"
run good "$D" -o "$D/out"
if [ "$READY" != ready ]; then
	bad "complete trace" "not ready"
else
	head -c 5000 /dev/urandom >>"$D/dbg/kmemtrace/cpu0"	# logged while running
	echo 7 >"$D/dbg/kmemtrace/total_overruns"			# read after the last drain
	printf '0 105000 0\n1 2999000 1000\n2 0 0\n' >"$D/dbg/kmemtrace/cpu_bytes" # likewise
	finish TERM
	if [ "$RC" != 0 ]; then
		bad "complete trace" "exit $RC"
	elif ! cmp -s "$D/dbg/kmemtrace/cpu0" "$D/out/cpu0.out" ||
		! cmp -s "$D/dbg/kmemtrace/cpu1" "$D/out/cpu1.out"; then
		bad "complete trace" "cpu<N>.out differ from the relay files"
	elif ! cmp -s "$D/proc/kallsyms" "$D/out/kallsyms"; then
		bad "complete trace" "kallsyms differs"
	elif [ "$(cat "$D/proc/sys/kernel/kptr_restrict")" != 0 ]; then
		bad "complete trace" "kptr_restrict not set to 0"
	elif [ -e "$D/out/meta.json.tmp" ] || [ ! -s "$D/out/meta.json" ]; then
		bad "complete trace" "meta.json missing (or the .tmp left behind)"
	else
		ok "complete trace: data, kallsyms, kptr_restrict"
	fi
	if ! command -v python3 >/dev/null; then
		skip "meta.json content" "python3 not installed"
	else
		want="1 kmemtraced 0.1.0 1 $(python3 -c 'import sys; print(sys.byteorder)') $(uname -m) $(uname -r) $(getconf PAGESIZE) 7 0,0,cpu0.out,105000 1,-1,cpu1.out,3000000 True"
		got=$(json_get "$D/out/meta.json" '" ".join(str(x) for x in [m["kmemtrace_meta"], m["collector"], m["abi_version"], m["byte_order"], m["machine"], m["kernel_release"], m["page_size"], m["total_overruns"]] + [",".join(str(c[k]) for k in ("cpu","node","file","bytes")) for c in m["cpus"]] + [m["start_unix_ms"] <= m["stop_unix_ms"]])' 2>&1)
		if [ "$got" = "$want" ]; then
			ok "meta.json content"
		else
			bad "meta.json content" "got '$got', want '$want'"
		fi
	fi
	if grep -q "total_overruns is 7" "$T/stderr"; then
		ok "overruns warning"
	else
		bad "overruns warning" "no warning for total_overruns 7"
	fi
	# cpu_bytes: the kernel's own count per CPU goes into meta.json; a CPU file of another
	# size is reported (here cpu1: 3000000 bytes read, 2999000 logged).
	if command -v python3 >/dev/null; then
		want="0,105000,0 1,2999000,1000"
		got=$(json_get "$D/out/meta.json" '" ".join("%d,%d,%d" % (c["cpu"], c["logged_bytes"], c["dropped_bytes"]) for c in m["cpus"])' 2>&1)
		if [ "$got" = "$want" ]; then
			ok "meta.json logged_bytes and dropped_bytes from cpu_bytes"
		else
			bad "meta.json logged_bytes" "got '$got', want '$want'"
		fi
	fi
	if grep -q "cpu1: read 3000000 bytes, the kernel logged 2999000" "$T/stderr"; then
		ok "accounting mismatch warning"
	else
		bad "accounting mismatch warning" "no warning for cpu1's 1000 extra bytes"
	fi
fi

# --- SIGINT stops too; output dir created; stale meta.json replaced ---
D=$T/sigint
fake "$D"
mkdir -p "$D/out"
echo stale >"$D/out/meta.json"
run sigint "$D" -o "$D/out/new"
finish INT
expect_rc "SIGINT stops with exit 0, creates the output dir" 0
if [ -s "$D/out/new/meta.json" ] && cmp -s "$D/dbg/kmemtrace/cpu1" "$D/out/new/cpu1.out"; then
	ok "SIGINT trace complete"
else
	bad "SIGINT trace complete" "data or meta.json missing"
fi

# --- ABI version 2 (the stack feature) is copied like version 1, and said in meta.json ---
D=$T/abi2
fake "$D"
echo 2 >"$D/dbg/kmemtrace/abi_version"
run abi2 "$D" -o "$D/out"
finish
expect_rc "ABI version 2 accepted" 0
if ! command -v python3 >/dev/null; then
	skip "ABI version 2 in meta.json" "python3 not installed"
elif [ "$(json_get "$D/out/meta.json" 'm["abi_version"]' 2>&1)" = 2 ] &&
	cmp -s "$D/dbg/kmemtrace/cpu1" "$D/out/cpu1.out"; then
	ok "ABI version 2: data copied, meta.json says 2"
else
	bad "ABI version 2" "data or meta.json's abi_version wrong"
fi

# --- a stop request before the readers run stays pending ---
D=$T/early
fake "$D"
"$K" -d "$D/dbg" -p "$D/proc" -s "$D/sys" -t 50 -U -o "$D/out" 2>"$T/stderr" &
PID=$!
# Signal the collector, not the shell's child before it execs it: a SIGTERM sent in that window
# could be lost with the shell's own signal handling, and the collector then waited forever
# (seen once in CI). A watchdog turns any hang into a failure (exit 137) instead.
for _ in $(seq 200); do
	[ "$(readlink "/proc/$PID/exe" 2>/dev/null)" = "$(readlink -f "$K")" ] && break
	sleep 0.01
done
(sleep 30; kill -KILL "$PID" 2>/dev/null) &
WATCHDOG=$!
kill -TERM "$PID"
wait "$PID"
RC=$?
kill "$WATCHDOG" 2>/dev/null
wait "$WATCHDOG" 2>/dev/null
# Either the signal came before the mask (killed: 143) or it was honoured (0); never a hang.
if [ "$RC" = 0 ] && cmp -s "$D/dbg/kmemtrace/cpu1" "$D/out/cpu1.out"; then
	ok "early SIGTERM honoured after setup"
elif [ "$RC" = 143 ]; then
	ok "early SIGTERM (delivered before the signal mask; killed, no meta.json)"
else
	bad "early SIGTERM" "exit $RC"
fi

# --- no sysfs: CPUs from the kmemtrace/cpu<N> files ---
D=$T/nosys
fake "$D"
rm -rf "$D/sys"
run nosys "$D" -o "$D/out"
finish
expect_rc "no sysfs: CPUs from cpu<N> files" 0 "taking the CPUs"
[ -s "$D/out/cpu1.out" ] || bad "no sysfs" "cpu1.out missing"

# --- a CPU the reader cannot be pinned to: error, unless -U ---
D=$T/nopin
fake "$D"
echo 0,1000 >"$D/sys/devices/system/cpu/online"
head -c 1000 /dev/urandom >"$D/dbg/kmemtrace/cpu1000"
rm -f "$T/ready"
mkfifo "$T/ready"
"$K" -d "$D/dbg" -p "$D/proc" -s "$D/sys" -t 50 -o "$D/out" -R 3 3>"$T/ready" 2>"$T/stderr" &
PID=$!
read -r -t 20 READY <"$T/ready"
wait "$PID"	# stops by itself
RC=$?
expect_rc "unpinnable CPU is an error" 1 "pin the reader"
[ -e "$D/out/meta.json" ] && bad "unpinnable CPU" "meta.json written"
run nopin-U "$D" -o "$D/out"
finish
expect_rc "unpinnable CPU with -U: warning" 0 "reading unpinned"

# --- usage ---
"$K" -h >"$T/stdout" 2>"$T/stderr"
RC=$?
expect_rc "-h" 0
grep -q "usage: kmemtraced" "$T/stdout" || bad "-h" "no usage on stdout"
for args in "-x" "-t 0" "-b 1" "-R x" "extra"; do
	# shellcheck disable=SC2086
	"$K" $args >/dev/null 2>"$T/stderr"
	RC=$?
	expect_rc "usage error: $args" 2 "usage"
done

# --- missing debugfs ---
D=$T/nodbg
fake "$D"
rm -rf "$D/dbg"
run nodbg "$D" -o "$D/out"
finish
expect_rc "missing debugfs" 3 "kmemtrace"
[ -e "$D/out" ] && bad "missing debugfs" "output created anyway"

# --- unknown, missing, garbage ABI version ---
for abi in 0 3 missing garbage; do
	D=$T/abi-$abi
	fake "$D"
	case $abi in
	missing) rm "$D/dbg/kmemtrace/abi_version" ;;
	garbage) echo one >"$D/dbg/kmemtrace/abi_version" ;;
	*) echo "$abi" >"$D/dbg/kmemtrace/abi_version" ;;
	esac
	run "abi-$abi" "$D" -o "$D/out"
	finish
	expect_rc "ABI version $abi" 4 "abi_version"
done

# --- an online CPU without its relay file ---
D=$T/nocpu
fake "$D"
rm "$D/dbg/kmemtrace/cpu1"
run nocpu "$D" -o "$D/out"
finish
expect_rc "online CPU without cpu<N>" 3 "cpu1"

# --- missing total_overruns ---
D=$T/noovr
fake "$D"
rm "$D/dbg/kmemtrace/total_overruns"
run noovr "$D" -o "$D/out"
finish
expect_rc "missing total_overruns" 3 "total_overruns"

# --- missing kallsyms: input error, incomplete trace ---
D=$T/noksyms
fake "$D"
rm "$D/proc/kallsyms"
run noksyms "$D" -o "$D/out"
finish
expect_rc "missing kallsyms" 6 "kallsyms"
[ -e "$D/out/meta.json" ] && bad "missing kallsyms" "meta.json written"

# --- output that cannot be created (a file in the way) ---
D=$T/notdir
fake "$D"
echo file >"$D/out"
run notdir "$D" -o "$D/out/x"
finish
expect_rc "output dir cannot be created" 5 "mkdir"

# --- full output (cpu0.out is /dev/full): stale meta.json removed, none written ---
D=$T/devfull
fake "$D"
mkdir -p "$D/out"
echo stale >"$D/out/meta.json"
ln -s /dev/full "$D/out/cpu0.out"
run devfull "$D" -o "$D/out"
finish
expect_rc "full output (/dev/full)" 5 "No space left"
[ -e "$D/out/meta.json" ] && bad "full output (/dev/full)" "meta.json present"

# --- read-only and full tmpfs (root only) ---
D=$T/ro
fake "$D"
mkdir -p "$D/out"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o ro,size=64k kmt-ro "$D/out" 2>/dev/null; then
	MOUNTS+=("$D/out")
	run ro "$D" -o "$D/out"
	finish
	expect_rc "read-only output dir (tmpfs ro)" 5 "Read-only"
else
	chmod 555 "$D/out"
	if [ "$(id -u)" != 0 ]; then
		run ro "$D" -o "$D/out"
		finish
		expect_rc "unwritable output dir (mode 555)" 5 "Permission denied"
	else
		skip "read-only output dir" "cannot mount tmpfs here (no CAP_SYS_ADMIN?)"
	fi
fi

D=$T/full
fake "$D"
mkdir -p "$D/out"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k kmt-full "$D/out" 2>/dev/null; then
	MOUNTS+=("$D/out")
	run full "$D" -o "$D/out"
	# cpu1 (3 MB) fills the 64 KiB tmpfs on its first write: the collector stops on its own.
	wait "$PID"
	RC=$?
	expect_rc "full output dir (tmpfs size=64k), exits by itself" 5 "No space left"
	[ -e "$D/out/meta.json" ] && bad "full tmpfs" "meta.json present"
else
	skip "full output dir (tmpfs size=64k)" "needs root and tmpfs mounts"
fi

echo "host-check: $PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" = 0 ]
