#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The cost of kmt bisect: runs the e2e trial e2e::ARCH::bisect::middle (a 16-commit history on
# Debian's linux-source-6.12 with a planted allocation change and one commit that does not
# build; tests/bisect/mod.rs) and prints each step's build and total time from its bisect.json,
# the median step after a small change, and the whole bisect.
#
#   harness/scripts/bisect-bench.sh [x86_64|ppc64]
#
# The first run on a cold cache includes one cold kernel build (the base); run it twice to see
# the warm figure, where the base and every commit seen before come from the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-x86_64}
case "$arch" in
x86_64) matrix=default ;;
ppc64) matrix=full ;;
*)
    echo "usage: $0 [x86_64|ppc64]" >&2
    exit 2
    ;;
esac
start=$(date +%s.%N)
KMT_E2E_MATRIX=$matrix cargo test -q --test e2e -- "e2e::$arch::bisect::middle" --exact >/dev/null
end=$(date +%s.%N)
python3 - "target/kmt-e2e/bisect-$arch-middle/bisect.json" "$start" "$end" <<'PY'
import json, statistics, sys
log = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print(f"{'role':<15} {'commit':<13} {'verdict':<8} {'build s':>8} {'step s':>8}  subject")
for s in log["steps"]:
    v = s["verdict"] or "base"
    print(f"{s['role']:<15} {s['commit']['hash'][:12]:<13} {v:<8} {s['build_s']:8.1f} {s['total_s']:8.1f}  {s['commit']['subject']}")
# Steps that built after a small change: probes and the bad end, built by this run, not skipped.
small = [s["total_s"] for s in log["steps"]
         if s["role"] in ("probe", "bad") and s["built"] and s["verdict"] != "skip"]
steps = sum(s["total_s"] for s in log["steps"])
print(f"\n{len(log['range'])} commits, {len(log['steps'])} steps; steps total {steps:.0f} s; "
      f"the whole trial (history, build, bisect) {wall:.0f} s")
if small:
    print(f"a step after a small change (build + runs + judging): median {statistics.median(small):.1f} s, "
          f"max {max(small):.1f} s over {len(small)} steps")
r = log["result"]
print(f"result: {r['message']}")
PY
