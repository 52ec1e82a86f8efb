#!/usr/bin/env bash
# Runs the generative differential tester longer than CI does: seeded sessions through
# slotgate (4 shards) against one reference MariaDB; on a difference it prints the seed, the
# statement, both answers and a minimised session.
#
#   scripts/difftest.sh [--sessions N] [--seed S] [--statements N] [--binary 0|1|alt]
#                       [--classes a,b,...] [--keep-going] [--minimize-secs N]
#
# A 30-minute run: scripts/difftest.sh --sessions 40000 --keep-going
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case "$1" in
    --sessions) export DIFFTEST_SESSIONS="$2"; shift 2 ;;
    --seed) export DIFFTEST_SEED="$2"; shift 2 ;;
    --statements) export DIFFTEST_STATEMENTS="$2"; shift 2 ;;
    --binary) export DIFFTEST_BINARY="$2"; shift 2 ;;
    --classes) export DIFFTEST_CLASSES="$2"; shift 2 ;;
    --keep-going) export DIFFTEST_KEEP_GOING=1; shift ;;
    --minimize-secs) export DIFFTEST_MINIMIZE_SECS="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_mariadb
exec cargo test -p slotgate-tests --test difftest -- --nocapture
