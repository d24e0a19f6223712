#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Fuzz every cargo-fuzz target of kmemtrace/fuzz for a bounded time, on the stable toolchain.
#
# Usage: kmemtrace/scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60 s, every target)
#
# Installs cargo-fuzz from crates.io if it is missing, builds the targets with the stable
# toolchain (RUSTC_BOOTSTRAP=1 lets stable take the -Z sanitizer and coverage flags cargo-fuzz
# passes; no nightly is needed), with AddressSanitizer, debug assertions and overflow checks, and
# runs each target in one process on one core (libFuzzer's default: no -jobs, no -fork) for
# SECONDS_PER_TARGET, starting from the seed corpus in git (kmemtrace/fuzz/corpus/TARGET/) and
# adding what it finds to a scratch corpus outside the repo, kept between runs:
# $KMT_FUZZ_DIR (default ${TMPDIR:-/tmp}/kmemtrace-fuzz)/corpus/TARGET. Crashing, hanging (10 s)
# and out-of-memory (2 GiB) inputs go to $KMT_FUZZ_DIR/artifacts/TARGET/; the log of each run is
# $KMT_FUZZ_DIR/TARGET.log.
#
# Prints per target: seconds, executions, executions per second, coverage (libFuzzer's `cov`,
# instrumented edges reached), corpus size and crashes found; exits 1 if any target found one,
# naming the artifact and the command that reproduces it, 2 on a usage error, 3 if the build fails.
#
# Environment: KMT_FUZZ_DIR (scratch directory), KMT_FUZZ_SANITIZER (address, the default, or
# none: if an AddressSanitizer build fails the script says so and falls back to none),
# RUSTUP_TOOLCHAIN (default stable).
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
shift || true
case $SECONDS_PER_TARGET in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
cd "$(dirname "$0")/../fuzz"
WORK=${KMT_FUZZ_DIR:-${TMPDIR:-/tmp}/kmemtrace-fuzz}
SANITIZER=${KMT_FUZZ_SANITIZER:-address}
export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz: cargo install cargo-fuzz --locked" >&2
    cargo install cargo-fuzz --locked
fi
echo "fuzz.sh: $(cargo fuzz --version), $(rustc --version)"

mkdir -p "$WORK"
build() {
    echo "fuzz.sh: RUSTC_BOOTSTRAP=1 RUSTUP_TOOLCHAIN=$RUSTUP_TOOLCHAIN cargo fuzz build -s $1" \
        "(log: $WORK/build.log)"
    cargo fuzz build -s "$1" >"$WORK/build.log" 2>&1
}
if ! build "$SANITIZER"; then
    if [ "$SANITIZER" = none ]; then
        tail -n 50 "$WORK/build.log" >&2
        exit 3
    fi
    echo "fuzz.sh: the $SANITIZER-sanitizer build failed (last lines below); building without" \
        "a sanitizer (-s none): panics, overflows and hangs are still caught" >&2
    tail -n 20 "$WORK/build.log" >&2
    SANITIZER=none
    build none || {
        tail -n 50 "$WORK/build.log" >&2
        exit 3
    }
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# The last value of a libFuzzer figure in a log: `stat::NAME: VALUE` (final statistics) or a
# status line's `NAME: VALUE`; `?` when there is none.
stat() {
    grep -oE "\b$1: +[0-9]+" "$2" | tail -n 1 | grep -oE '[0-9]+$' || echo '?'
}

printf '\n%-12s %8s %12s %8s %8s %8s %s\n' target seconds executions exec/s cov corpus crashes
found=()
for t in "${targets[@]}"; do
    corpus=$WORK/corpus/$t
    artifacts=$WORK/artifacts/$t
    log=$WORK/$t.log
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    start=$SECONDS
    # New inputs go to the first corpus directory (scratch); the seeds are only read.
    cargo fuzz run -s "$SANITIZER" "$t" "$corpus" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 && rc=0 || rc=$?
    elapsed=$((SECONDS - start))
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # libFuzzer failed without writing an artifact: the log says why
    fi
    printf '%-12s %8s %12s %8s %8s %8s %s\n' "$t" "$elapsed" \
        "$(stat stat::number_of_executed_units "$log")" "$(stat stat::average_exec_per_sec "$log")" \
        "$(stat cov "$log")" "$(find "$corpus" -type f | wc -l)" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        found+=("$t: exit $rc, log $log")
        while IFS= read -r a; do
            found+=("  $a  (reproduce: cd kmemtrace/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SANITIZER $t $a)")
        done < <(grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to //')
    fi
done

if [ ${#found[@]} -gt 0 ]; then
    printf '\nfuzz.sh: crashes found:\n' >&2
    printf '%s\n' "${found[@]}" >&2
    exit 1
fi
echo
echo "fuzz.sh: no crash in ${#targets[@]} target(s) (sanitizer: $SANITIZER; scratch corpus: $WORK/corpus)"
