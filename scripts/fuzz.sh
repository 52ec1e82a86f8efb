#!/usr/bin/env bash
# Runs the cargo fuzz targets (libFuzzer, nightly) for SECONDS each (default 60), one after
# the other: frontend, router, merge, meta (or the targets named after SECONDS).
#
#   scripts/fuzz.sh            # a minute each
#   scripts/fuzz.sh 3600 router
#
# Starts from the committed seeds (fuzz/corpus/<target>) plus what earlier runs found
# (target/fuzz-corpus/<target>, not committed); crashes land in fuzz/artifacts/<target>/.
# A summary line per target (executions, coverage, crashes) is appended to
# target/fuzz-runs.log. A crash makes the script exit non-zero: minimise it with
# `cargo +nightly fuzz tmin <target> --features libfuzzer <file>`, fix it, and commit it to
# fuzz/regressions/<target>/ so that the test suite replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frontend router merge meta)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cargo +nightly fuzz build --features libfuzzer

status=0
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  log="target/fuzz-$t.log"
  echo "== fuzz $t for ${seconds}s (log $log)"
  set +e
  cargo +nightly fuzz run --features libfuzzer "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  line="$(date -u +%FT%TZ) $(git rev-parse --short HEAD) $t ${seconds}s execs=$execs cov=$cov ft=$ft corpus=$(ls "$work" | wc -l) artifacts=$crashes rc=$rc"
  echo "$line" | tee -a target/fuzz-runs.log
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 || true
  fi
done
exit "$status"
