#!/usr/bin/env bash
# Runs the chaos suite (tests/tests/chaos.rs) for longer than its CI variant, and records the
# outcome: 3 slotgate node processes over 2 shards with semi-sync replicas, writers through
# every node, and a seeded schedule of faults (node SIGKILL/SIGSTOP, primary SIGKILL,
# switchovers, online migrations).
#
#   scripts/chaos.sh                       # 5 minutes, seed from the clock
#   scripts/chaos.sh --minutes 30 --seed 42
#
# The summary line (seed, faults, writes checked, lost) is appended to target/chaos-runs.log;
# a failure prints the seed and the schedule, to replay with the same --seed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

minutes=5
seed="$(date +%s)"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: scripts/chaos.sh [--minutes N] [--seed S]" >&2; exit 2 ;;
  esac
done

ensure_mariadb
cargo build -q -p slotgate-proxy
mkdir -p target
log="target/chaos-$seed.log"
set +e
CHAOS_SECONDS=$((minutes * 60)) CHAOS_SEED="$seed" cargo test -q -p slotgate-tests --test chaos -- --nocapture 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -m1 '^chaos: seed .* lost' "$log" || echo "chaos: seed $seed, ${minutes} min: FAILED (see $log)")
echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD) $summary" >> target/chaos-runs.log
exit "$rc"
