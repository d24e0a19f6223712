#!/usr/bin/env bash
# Compare `kmemtrace report` with `perf kmem stat --caller --alloc` on the same events.
#
# Usage (as root): kmemtrace/scripts/perf-compare.sh [RUNS_OF_LS] [TIMES]
#   (defaults: 200 runs of `ls /usr/bin` as the traced workload, best of 3 timings)
#
# 1. `perf kmem record` traces the kmem tracepoints on this host while the workload runs;
# 2. `perf script` prints those events and `kmemtrace import-perf` turns them into a kmemtrace
#    trace directory (same events: every kmalloc/kfree/kmem_cache_alloc/kmem_cache_free record,
#    one kmemtrace record each);
# 3. both tools analyse their copy: `perf kmem stat --caller --alloc` and
#    `kmemtrace report --caller --alloc`; the best wall time of each gives events/s.
# Needs linux-perf and /usr/bin/time.
set -euo pipefail
LS_RUNS=${1:-200}
TIMES=${2:-3}
cd "$(dirname "$0")/../.."
cargo build --release -q -p kmemtrace
B=$PWD/target/release/kmemtrace
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
perf kmem record -o "$T/perf.data" -- sh -c "for i in \$(seq $LS_RUNS); do ls /usr/bin >/dev/null; done" \
    >/dev/null 2>"$T/record.log"
perf script -i "$T/perf.data" >"$T/perf.txt" 2>/dev/null
"$B" import-perf "$T/perf.txt" -o "$T/trace" 2>"$T/import.log"
N=$("$B" report --format json "$T/trace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["records"])')
echo "events: $N (load average $(cut -d' ' -f1-3 /proc/loadavg))"
best() { # best wall time and best CPU time (user+sys) of TIMES runs of "$@"
    local b= c=
    for _ in $(seq "$TIMES"); do
        /usr/bin/time -f '%e %U %S' -o "$T/t" "$@" >/dev/null 2>&1
        local w u s; read -r w u s <"$T/t"
        local cpu; cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{print u + s}')
        if [ -z "$b" ] || awk "BEGIN{exit !($w < $b)}"; then b=$w; fi
        if [ -z "$c" ] || awk "BEGIN{exit !($cpu < $c)}"; then c=$cpu; fi
    done
    echo "$b $c"
}
read -r PW PC < <(best perf kmem -i "$T/perf.data" stat --caller --alloc)
read -r KW KC < <(best "$B" report --caller --alloc "$T/trace")
awk -v n="$N" -v pw="$PW" -v pc="$PC" -v kw="$KW" -v kc="$KC" 'BEGIN {
    printf "perf kmem stat --caller --alloc:   wall %.3f s (%.2f M events/s), CPU %.2f s\n", pw, n / pw / 1e6, pc
    printf "kmemtrace report --caller --alloc: wall %.3f s (%.2f M events/s), CPU %.2f s\n", kw, n / kw / 1e6, kc
    printf "ratio: %.1fx wall, %.1fx CPU time\n", pw / kw, pc / kc }'
