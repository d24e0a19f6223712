#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Makes the figures of docs/allocator-study.md from real runs: Linux 6.1 with SLAB, SLUB and
# SLOB and 6.12 with SLUB, on x86_64 and big-endian ppc64, the selftest once and the fork
# workload REPEAT times (default 3) per configuration. Kernels come from kmt's cache (built once
# when missing). Runs already made are kept (delete OUT to start again).
#
# Usage: [ARCHES="x86_64 ppc64"] [REPEAT=3] docs/allocator-study/run.sh [OUT]
#        (default OUT: target/allocator-study)
# Writes OUT/runs/<arch>-<kernel>-<allocator>-<workload>-<n>/ (kmt run's output),
# OUT/<arch>-<workload>.md (kmemtrace compare, markdown) and the two diff pictures
# OUT/<arch>-fork-slab-slub.svg and OUT/<arch>-fork-6.1-6.12.svg.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/allocator-study}
repeat=${REPEAT:-3}
configs="6.1:slab 6.1:slub 6.1:slob 6.12:slub"
cargo build --release -q -p kmt -p kmemtrace
root=$PWD
kmt=target/release/kmt
kmemtrace=target/release/kmemtrace
mkdir -p "$out/runs"

runs_of() { # ARCH KERNEL ALLOCATOR WORKLOAD: the run directories, comma-separated
    local n=1
    [ "$4" = fork ] && n=$repeat
    seq "$n" | sed "s|^|$out/runs/$1-$2-$3-$4-|" | paste -sd,
}

for arch in ${ARCHES:-x86_64 ppc64}; do
    for cfg in $configs; do
        k=${cfg%:*} a=${cfg#*:}
        for w in selftest fork; do
            for d in $(runs_of "$arch" "$k" "$a" "$w" | tr , ' '); do
                # A run that fails (a kernel oops, a timeout) is kept as $d.failed-N, listed in
                # OUT/failures.txt, and made again: the study reports failures, it does not hide them.
                for attempt in 1 2 3; do
                    [ -e "$d/report.json" ] && break
                    if [ -e "$d" ]; then
                        mv "$d" "$d.failed-$attempt"
                        mv "$d.log" "$d.failed-$attempt.log"
                        echo "$d.failed-$attempt: $(tail -n 3 "$d.failed-$attempt.log" | tr '\n' ' ')" >>"$out/failures.txt"
                    fi
                    "$kmt" run --arch "$arch" --kernel "$k" --allocator "$a" --workload "$w" --out "$d" >"$d.log" 2>&1 || true
                done
                [ -e "$d/report.json" ] || { echo "run failed three times: $d (see $d.log)" >&2; exit 1; }
            done
        done
    done
    for w in selftest fork; do
        filter=()
        [ "$w" = selftest ] && filter=(--callsite-filter 'kmemtrace_selftest_*')
        sides=()
        for cfg in $configs; do
            k=${cfg%:*} a=${cfg#*:}
            sides+=("$k $(echo "$a" | tr '[:lower:]' '[:upper:]')=$(runs_of "$arch" "$k" "$a" "$w")")
        done
        "$kmemtrace" compare "${filter[@]}" --format markdown "${sides[@]}" >"$out/$arch-$w.md"
    done
    # From inside runs/, so that the pictures' titles name the runs, not the path to them.
    first() { runs_of "$@" | cut -d, -f1 | xargs basename; }
    (
        cd "$out/runs"
        "$root/$kmemtrace" diff --lines 12 --svg "../$arch-fork-slab-slub.svg" \
            "$(first "$arch" 6.1 slab fork)" "$(first "$arch" 6.1 slub fork)" >"../$arch-fork-slab-slub.txt"
        "$root/$kmemtrace" diff --lines 12 --svg "../$arch-fork-6.1-6.12.svg" \
            "$(first "$arch" 6.1 slub fork)" "$(first "$arch" 6.12 slub fork)" >"../$arch-fork-6.1-6.12.txt"
    )
done
echo "allocator study: tables and pictures in $out"
