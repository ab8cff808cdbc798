#!/bin/sh
# `make fuzz`: builds the libFuzzer harnesses (fuzz/Package.swift) with --sanitize=fuzzer into .build-fuzz, seeds
# each corpus from spec/vectors and runs each harness for FUZZ_SECONDS (default 300). Prints executions and crashes
# per harness; exits 1 if any harness crashed (the input is kept in fuzz/crashes/ and copied to fuzz/regressions/,
# which DecoderMutationTests replays in make test: commit it with the fix).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-300}
scratch="$root/.build-fuzz"
harnesses=${FUZZ_HARNESSES:-"fuzz-frames fuzz-envelope fuzz-bundle fuzz-age fuzz-receive"}

build() {
    mkdir -p "$scratch"
    (cd fuzz && swift build -c release --sanitize=fuzzer --scratch-path "$scratch" >"$scratch/build.log" 2>&1)
}
# The main package is a path dependency of fuzz/Package.swift, and a scratch directory built before a source file
# was added to it can miss that file ("cannot find … in scope"): a failed build is tried once more from scratch.
build || {
    echo "make fuzz: the harnesses did not build; building again from an empty $scratch" >&2
    rm -rf "$scratch"
    build
} || {
    tail -n 30 "$scratch/build.log" >&2
    echo "make fuzz: the harnesses did not build (log: $scratch/build.log)" >&2
    exit 1
}
bin=$(cd fuzz && swift build -c release --sanitize=fuzzer --scratch-path "$scratch" --show-bin-path)
python3 fuzz/seeds.py spec/vectors "$scratch/corpus"
mkdir -p fuzz/crashes

status=0
summary=""
# fuzz-receive's profile database: in memory where /dev/shm exists (its fsyncs would set the pace on a disk),
# removed when the run ends (libFuzzer exits without running any clean-up of the harness's own).
profiles=$([ -d /dev/shm ] && echo "/dev/shm/curbside-fuzz-$$" || echo "$scratch/profiles-$$")
mkdir -p "$profiles"
trap 'rm -rf "$profiles"' EXIT
for harness in $harnesses; do
    log="$scratch/$harness.log"
    before=$(ls fuzz/crashes | grep -c "^$harness-" || true)
    # Memory and time per input are bounded so a slow or hungry input counts as a finding, not a hang.
    FUZZ_PROFILES="$profiles" "$bin/$harness" "$scratch/corpus/$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="fuzz/crashes/$harness-" -print_final_stats=1 >"$log" 2>&1 || true
    after=$(ls fuzz/crashes | grep -c "^$harness-" || true)
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -n 1)
    crashes=$((after - before))
    if [ "$crashes" -gt 0 ]; then
        status=1
        # Each crashing input becomes a regression: DecoderMutationTests replays fuzz/regressions/ in make test.
        mkdir -p "fuzz/regressions/$harness"
        for file in fuzz/crashes/"$harness"-*; do cp "$file" "fuzz/regressions/$harness/"; done
    fi
    summary="$summary$(printf '%-14s %12s executions in %ss, %d crashes' "$harness" "${runs:-?}" "$seconds" "$crashes")
"
    printf '%-14s %12s executions in %ss, %d crashes\n' "$harness" "${runs:-?}" "$seconds" "$crashes" >&2
done
printf '\nfuzz summary\n%s' "$summary"
[ "$status" -eq 0 ] && echo "fuzz: PASS (no crashes)" || echo "fuzz: FAIL (crashing inputs in fuzz/crashes/)"
exit $status
