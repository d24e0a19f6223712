#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Appends what a reviewer reads to a CI job's summary (markdown, $1): the head of each e2e run's
# report (a kmt compare's diff.md as it is), and the diff of every snapshot a trial changed
# (with INSTA_UPDATE=new a changed snapshot is written as .snap.new while the trial fails).
set -euo pipefail
summary=${1:?usage: ci/summary.sh SUMMARY.md}
cd "$(dirname "$0")/.."
for d in target/kmt-e2e/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    echo "### $(basename "$d")"
    diffmd=$(find "$d" -maxdepth 2 -name diff.md | head -n 1)
    if [ -n "$diffmd" ]; then
        cat "$diffmd"
        continue
    fi
    echo '```'
    head -n 60 "$d/report.txt" 2>/dev/null || echo "no report"
    echo '```'
done >>"$summary"
changed=0
for f in snapshots/*.snap.new; do
    [ -e "$f" ] || continue
    changed=$((changed + 1))
    {
        echo "### snapshot changed: ${f%.new}"
        echo '```diff'
        diff -u "${f%.new}" "$f" || true
        echo '```'
    } >>"$summary"
done
echo "ci/summary.sh: $changed changed snapshot(s)"
