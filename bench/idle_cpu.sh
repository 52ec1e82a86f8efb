#!/usr/bin/env bash
# CPU used by idle slotgate nodes: starts the demo (3 nodes forming the meta group, 4 shards,
# no clients), lets it settle, then reads each node's utime+stime from /proc/<pid>/stat over
# a window and prints the share of one core per node. Stops the demo afterwards (also on
# failure). Target (issue #12): < 1% of a core per node.
#
#   bench/idle_cpu.sh                 # 30 s window after 5 s of settling
#   WINDOW=60 SETTLE=10 bench/idle_cpu.sh
#   MAX_PCT=1 bench/idle_cpu.sh       # exit 1 when a node is above MAX_PCT
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${WINDOW:-30}
SETTLE=${SETTLE:-5}
MAX_PCT=${MAX_PCT:-}

trap 'scripts/demo.sh stop >/dev/null 2>&1 || true' EXIT
scripts/demo.sh --detach >/tmp/slotgate-idle-demo.log 2>&1 || { cat /tmp/slotgate-idle-demo.log; exit 1; }
mapfile -t PIDS < <(python3 -c 'import json; [print(n["pid"]) for n in json.load(open(".demo/cluster.json"))["nodes"]]')
[ "${#PIDS[@]}" -gt 0 ] || { echo "no node pids in .demo/cluster.json" >&2; exit 1; }

# ticks PID: utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name in field 2 has no spaces for slotgate).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

sleep "$SETTLE"
declare -a BEFORE
for i in "${!PIDS[@]}"; do BEFORE[$i]=$(ticks "${PIDS[$i]}"); done
start=$(date +%s.%N)
sleep "$WINDOW"
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
fail=0
echo "idle CPU over $WINDOW s ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), debug build as the demo runs it):"
for i in "${!PIDS[@]}"; do
  after=$(ticks "${PIDS[$i]}")
  pct=$(awk -v a="$after" -v b="${BEFORE[$i]}" -v hz="$hz" -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", 100 * (a - b) / hz / (e - s) }')
  echo "  node $((i + 1)) (pid ${PIDS[$i]}): ${pct}% of one core"
  if [ -n "$MAX_PCT" ] && awk -v p="$pct" -v m="$MAX_PCT" 'BEGIN { exit !(p > m) }'; then fail=1; fi
done
exit "$fail"
