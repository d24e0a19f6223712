#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Benchmark `kmemtrace report` on a synthetic trace.
#
# Usage: kmemtrace/scripts/bench.sh [EVENTS] [RUNS] [STACK_DEPTH] [GROUP_BY]
#        (defaults: 10000000 events, 5 runs, no stacks, --group-by callsite)
#
# With STACK_DEPTH N every record carries a stack of N frames (synth --stack-depth), and
# GROUP_BY (callsite, caller, stack, function) is passed to report --group-by.
#
# Builds the release binary, writes EVENTS synthetic records over 2 CPU files with
# `kmemtrace synth` into a temporary directory, warms the page cache, then runs
# `kmemtrace report --format json` RUNS times under /usr/bin/time and prints the best wall time,
# events per second and the peak RSS. It also checks that the report's summary is the one synth
# promised. Needs /usr/bin/time (Debian: apt-get install time).
set -euo pipefail
EVENTS=${1:-10000000}
RUNS=${2:-5}
DEPTH=${3:-0}
GROUP=${4:-callsite}
cd "$(dirname "$0")/../.."
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 2; }
cargo build --release -q -p kmemtrace
B=$PWD/target/release/kmemtrace
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B" synth -o "$T/trace" --events "$EVENTS" --cpus 2 --stack-depth "$DEPTH" >"$T/expected.json"
cat "$T"/trace/cpu*.out >/dev/null
echo "trace: $EVENTS events, stacks of $DEPTH frames, --group-by $GROUP, $(du -sh "$T/trace" | cut -f1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
best=
for i in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %U %S %M' -o "$T/time" "$B" report --format json --group-by "$GROUP" "$T/trace" >"$T/report.json"
    read -r wall user sys rss <"$T/time"
    echo "run $i: wall ${wall}s user ${user}s sys ${sys}s peak RSS $((rss / 1024)) MB"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; best_rss=$rss; fi
done
python3 - "$T/expected.json" "$T/report.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["summary"]
r = json.load(open(sys.argv[2]))["summary"]
assert e == r, "summary differs from synth's expectation"
PY
awk -v n="$EVENTS" -v w="$best" -v m="$best_rss" \
    'BEGIN { printf "best: %.3f s, %.1f M events/s, peak RSS %d MB (summary verified)\n", w, n / w / 1e6, m / 1024 }'
