#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Soak: boot the same kmt run N times and count how each ended (kmt's exit codes: 0 ok, 17
# trace_damaged, anything else another failure). Each run's directory is kept under OUT.
#
#   ci/soak.sh N OUT [kmt run arguments...]
#   ci/soak.sh 100 soak/toggle --arch x86_64 --exec ./toggle --exec-arg 300
#   ci/soak.sh 30 soak/stop --arch x86_64 --kernel 6.1 --workload boot   # with host load beside it
#
# Prints one line per boot and a summary line: "N boots: A ok, B trace_damaged, C other".
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 N OUT [kmt run arguments...]" >&2
    exit 2
fi
n=$1
out=$2
shift 2
kmt=${KMT:-kmt}
if [ -e "$out" ]; then
    echo "$out exists: give a new directory" >&2
    exit 2
fi
mkdir -p "$out"
ok=0
damaged=0
other=0
for i in $(seq 1 "$n"); do
    start=$(date +%s)
    set +e
    "$kmt" -q run --out "$out/$i" "$@" >"$out/$i.log" 2>&1
    rc=$?
    set -e
    case $rc in
    0) ok=$((ok + 1)) ;;
    17) damaged=$((damaged + 1)) ;;
    *) other=$((other + 1)) ;;
    esac
    echo "boot $i: exit $rc ($(($(date +%s) - start)) s)"
done
echo "$n boots: $ok ok, $damaged trace_damaged, $other other"
