#!/usr/bin/env bash
# Run every fuzz target in fuzz/ for a bounded time, one after another, and
# write measurements/fuzz/<YYYY-MM-DD-HHMM>/report.md (executions, coverage, crashes; or OUT=DIR).
#
#   bash tools/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#   bash tools/fuzz.sh --runs N [TARGET...]      (N executions per target; a 4 h backstop,
#                                                 or MAX_SECONDS per target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Nightly is not needed:
# RUSTC_BOOTSTRAP=1 lets the stable compiler take the sanitizer flags.
# The committed seeds in fuzz/corpus/<target>/ are read, never written: new
# inputs go to a scratch directory that is removed afterwards. A crash, a
# hang (-timeout) or an oversized allocation (-malloc_limit_mb,
# -rss_limit_mb) leaves its input in fuzz/artifacts/<target>/ and counts as
# a crash in the report; the script then exits 1.
set -euo pipefail

usage="usage: $0 [SECONDS_PER_TARGET] | $0 --runs N [TARGET...]"
invocation="bash tools/fuzz.sh $*"
targets=(request_head response_head chunked admin_request config_file dns_answer proxy_header client_hello)
if [[ ${1:-} == --runs ]]; then
    runs=${2:-}
    [[ $runs =~ ^[0-9]+$ ]] || { echo "$usage (--runs needs a count, got '${runs}')" >&2; exit 2; }
    shift 2
    ((${#@})) && targets=("$@")
    secs=${MAX_SECONDS:-14400}
    [[ $secs =~ ^[0-9]+$ ]] || { echo "MAX_SECONDS must be a number of seconds, got '$secs'" >&2; exit 2; }
    bound=(-runs="$runs" -max_total_time="$secs")
else
    secs=${1:-60}
    [[ $secs =~ ^[0-9]+$ ]] || { echo "$usage (got '$secs')" >&2; exit 2; }
    bound=(-max_total_time="$secs")
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# A new dated folder per run (measurements/fuzz/YYYY-MM-DD-HHMM/, `latest` points
# at the newest) unless OUT names one.
out=${OUT:-$(python3 "$root/tools/provenance.py" --run-dir "$root/measurements/fuzz")}
flags=("${bound[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512)

export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
cd "$root/fuzz"
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "building the fuzz targets (release, ASan)"
cargo fuzz build >/dev/null 2>"$scratch/build.log" || { cat "$scratch/build.log" >&2; exit 1; }
rows=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log=$scratch/$t.log
    echo "fuzzing $t (${bound[*]})"
    rc=0
    # The bound: libFuzzer stops itself after -max_total_time; timeout is the backstop.
    timeout --kill-after=10 $((secs + 120)) cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        "${flags[@]}" -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    crashes=$(($(find "artifacts/$t" -type f | wc -l) - before))
    if ((rc != 0 || crashes > 0)); then
        failed=1
        echo "  $t FAILED (exit $rc, $crashes new artifacts); log tail:" >&2
        tail -40 "$log" >&2
        cp "$log" "$out/$t.failure.log"
    fi
    echo "  $t: ${execs:-?} executions, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, crashes $crashes"
    rows+=("| \`$t\` | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${rss:-?} | $crashes (exit $rc) |")
    { grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true; } | sed "s/^/$t: /;s/\t/ /" >>"$scratch/lines"
done

{
    echo "# Fuzzing: executions and coverage per target"
    echo
    echo "Written by \`$invocation\` on $(date -u '+%Y-%m-%d %H:%M UTC'); targets in \`fuzz/\` (issue 15)."
    echo
    echo "- Toolchain: $(rustc --version), $(cargo fuzz --version), libFuzzer via libfuzzer-sys, AddressSanitizer;"
    echo "  stable compiler with \`RUSTC_BOOTSTRAP=1\` (no nightly)."
    echo "- Machine: $(nproc) cores, $(uname -sr); targets run one at a time."
    echo "- Command per target: \`RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET SCRATCH fuzz/corpus/TARGET -- ${flags[*]} -artifact_prefix=fuzz/artifacts/TARGET/\`"
    echo "  (starts from the committed seeds; \`-timeout\` catches hangs, \`-malloc_limit_mb\`/\`-rss_limit_mb\` unbounded allocation)."
    echo
    echo "| target | executions | exec/s | cov | ft | corpus (units/bytes) | peak RSS MB | crashes |"
    echo "|---|---:|---:|---:|---:|---|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "\`cov\` is libFuzzer's count of covered code edges (lbproxy and the crates it calls: httparse, serde_json, toml, std),"
    echo "\`ft\` its count of features (edges with hit-count buckets); both at the end of the run."
    echo "\`executions\` is \`stat::number_of_executed_units\`. Issue 15's goal is 10 million executions per target:"
    echo "at these rates that is \`bash tools/fuzz.sh S\` with S = 10,000,000 / exec/s seconds."
    echo
    echo "First and last status lines of each run:"
    echo
    echo '```'
    cat "$scratch/lines"
    echo '```'
    echo
    python3 "$root/tools/provenance.py" --note "cargo-fuzz: $(cargo fuzz --version 2>/dev/null || echo unknown)"
} >"$out/report.md"
echo "wrote $out/report.md"
python3 "$root/tools/provenance.py" --publish "$out"
exit "$failed"
