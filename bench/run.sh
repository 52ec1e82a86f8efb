#!/usr/bin/env bash
# Benchmarks slotgate against a direct MariaDB connection and haproxy (TCP mode) with sysbench,
# and prints a markdown table: QPS, p95 latency, QPS ratios and proxy CPU time per query.
# See bench/README.md. Everything it starts lives in a temp dir and is stopped on exit.
#
# Knobs (environment): DURATION (s, default 20), THREADS (8), TABLES (4), TABLE_SIZE (10000),
# TESTS ("oltp_point_select oltp_read_write"), MODES ("text prepared"),
# TARGETS ("direct haproxy slotgate"), POOL_MAX (64), SLOTGATE_BIN (skip the release build and
# use this binary), OUT (also write the table to this file).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-20}
THREADS=${THREADS:-8}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
TESTS=${TESTS:-"oltp_point_select oltp_read_write"}
MODES=${MODES:-"text prepared"}
TARGETS=${TARGETS:-"direct haproxy slotgate"}
POOL_MAX=${POOL_MAX:-64}
SLOTGATE_BIN=${SLOTGATE_BIN:-}
OUT=${OUT:-}

# --- prerequisites --------------------------------------------------------------------------
command -v sysbench >/dev/null 2>&1 || apt_install sysbench
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { apt_install haproxy; HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy); }
ensure_mariadb
if [ -z "$SLOTGATE_BIN" ]; then
  echo "== building slotgate (release)" >&2
  cargo build --release -p slotgate-proxy
  SLOTGATE_BIN=$ROOT/target/release/slotgate
fi
[ -x "$SLOTGATE_BIN" ] || { echo "error: $SLOTGATE_BIN is not an executable" >&2; exit 1; }
CLK_TCK=$(getconf CLK_TCK)

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/slotgate-bench.XXXXXX)
PIDS=()
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" 15; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- MariaDB --------------------------------------------------------------------------------
echo "== starting MariaDB" >&2
mariadb_start "$WORK/db" 1 --innodb-buffer-pool-size=256M --skip-log-bin
DB_PORT=$MARIADB_PORT
PIDS+=("$(cat "$WORK/db/pid")")
SB_USER=sbtest
SB_PASSWORD=$(random_password)
mariadb_add_user "$WORK/db" "$SB_USER" "$SB_PASSWORD"
mariadb_sql "$WORK/db" "CREATE DATABASE sbtest"

# --- haproxy --------------------------------------------------------------------------------
HA_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mariadb
    bind 127.0.0.1:$HA_PORT
    server db 127.0.0.1:$DB_PORT
EOF
echo "== starting haproxy on $HA_PORT" >&2
"$HAPROXY" -f "$WORK/haproxy.cfg" -db </dev/null >"$WORK/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
wait_for "$HA_PID" 15 "haproxy" port_listening "$HA_PORT" || { tail "$WORK/haproxy.log" >&2; exit 1; }

# --- slotgate -------------------------------------------------------------------------------
SG_PORT=$(free_port)
SG_ADMIN=$(free_port)
mkdir -p "$WORK/slotgate"
cat >"$WORK/slotgate/slotgate.toml" <<EOF
[node]
id = 1
listen = "127.0.0.1:$SG_PORT"
admin_listen = "127.0.0.1:$SG_ADMIN"
users_file = "users.toml"
max_connections = 4096

[backend]
user = "$SB_USER"
password = "$SB_PASSWORD"
pool_max = $POOL_MAX

[[shards]]
id = "s0"
primary = "127.0.0.1:$DB_PORT"

[routing]
default_shard = "s0"
EOF
cat >"$WORK/slotgate/users.toml" <<EOF
[[users]]
name = "$SB_USER"
password_hash = "$(native_password_hash "$SB_PASSWORD")"
EOF
echo "== starting slotgate on $SG_PORT (admin $SG_ADMIN)" >&2
SLOTGATE_LOG=${SLOTGATE_LOG:-warn} "$SLOTGATE_BIN" --config "$WORK/slotgate/slotgate.toml" \
  </dev/null >"$WORK/slotgate.log" 2>&1 &
SG_PID=$!
PIDS+=("$SG_PID")
wait_for "$SG_PID" 30 "slotgate /readyz" http_ok "127.0.0.1:$SG_ADMIN" /readyz ||
  { tail -n 30 "$WORK/slotgate.log" >&2; exit 1; }

# --- data -----------------------------------------------------------------------------------
SB_COMMON=(--mysql-host=127.0.0.1 --mysql-user="$SB_USER" --mysql-password="$SB_PASSWORD"
  --mysql-db=sbtest --mysql-ssl=off --tables="$TABLES" --table-size="$TABLE_SIZE")
echo "== sysbench prepare ($TABLES tables x $TABLE_SIZE rows)" >&2
sysbench oltp_point_select "${SB_COMMON[@]}" --mysql-port="$DB_PORT" prepare >"$WORK/prepare.log" 2>&1 ||
  { tail -n 20 "$WORK/prepare.log" >&2; exit 1; }

# --- runs -----------------------------------------------------------------------------------
port_of() { case $1 in direct) echo "$DB_PORT" ;; haproxy) echo "$HA_PORT" ;; slotgate) echo "$SG_PORT" ;; esac; }
pid_of() { case $1 in haproxy) echo "$HA_PID" ;; slotgate) echo "$SG_PID" ;; *) echo "" ;; esac; }
ps_mode_of() { case $1 in text) echo disable ;; prepared) echo auto ;; esac; }
# cpu_ticks PID: utime + stime of PID (all threads), in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

declare -A QPS P95 CPU
for test in $TESTS; do
  for mode in $MODES; do
    for target in $TARGETS; do
      key="$test|$mode|$target"
      log="$WORK/run-$test-$mode-$target.log"
      pid=$(pid_of "$target")
      echo "== $test $mode via $target (${DURATION}s, $THREADS threads)" >&2
      before=0
      [ -n "$pid" ] && before=$(cpu_ticks "$pid")
      if sysbench "$test" "${SB_COMMON[@]}" --mysql-port="$(port_of "$target")" \
        --db-ps-mode="$(ps_mode_of "$mode")" --threads="$THREADS" --time="$DURATION" \
        --report-interval=0 --percentile=95 run >"$log" 2>&1; then
        read -r queries qps p95 < <(awk '
          /^ *queries:/ { n = $2; q = $3; gsub(/\(/, "", q) }
          /95th percentile:/ { p = $3 }
          END { print n, q, p }' "$log")
        QPS[$key]=$qps
        P95[$key]=$p95
        if [ -n "$pid" ]; then
          after=$(cpu_ticks "$pid")
          CPU[$key]=$(awk -v d="$((after - before))" -v t="$CLK_TCK" -v n="$queries" \
            'BEGIN { printf "%.1f", (n > 0 ? d / t * 1e6 / n : 0) }')
        fi
      else
        echo "   sysbench failed via $target:" >&2
        grep -E 'FATAL|ERROR|error' "$log" | head -n 5 >&2 || tail -n 5 "$log" >&2
        QPS[$key]=FAILED
      fi
    done
  done
done

# --- report ---------------------------------------------------------------------------------
ratio() { # ratio A B: A/B with 2 decimals, "-" when either is missing or not a number
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}
report() {
  echo "### slotgate benchmark"
  echo
  echo "sysbench $(sysbench --version | awk '{print $2}'), ${DURATION}s per run, $THREADS threads," \
    "$TABLES tables x $TABLE_SIZE rows, $(nproc) CPUs, $(mariadb --version | grep -o '[0-9.]*-MariaDB' || true)," \
    "haproxy nbthread 1, slotgate pool_max $POOL_MAX"
  echo
  echo "| test | mode | target | QPS | p95 ms | vs direct | vs haproxy | proxy CPU µs/query |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
  local test mode target key
  for test in $TESTS; do
    for mode in $MODES; do
      for target in $TARGETS; do
        key="$test|$mode|$target"
        echo "| $test | $mode | $target | ${QPS[$key]:--} | ${P95[$key]:--} |" \
          "$(ratio "${QPS[$key]:-}" "${QPS[$test|$mode|direct]:-}") |" \
          "$(ratio "${QPS[$key]:-}" "${QPS[$test|$mode|haproxy]:-}") | ${CPU[$key]:--} |"
      done
    done
  done
}
echo
report
if [ -n "$OUT" ]; then report >"$OUT"; fi
