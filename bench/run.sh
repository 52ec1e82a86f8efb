#!/usr/bin/env bash
# Benchmarks slotgate against a direct MariaDB connection and haproxy (TCP mode) with sysbench,
# and prints a markdown table: QPS, p95 latency, QPS ratios and proxy CPU time per query, plus
# (ROUTE_COST=1) the in-process parse + route cost table of bench/src/route_cost.rs.
# See bench/README.md. Everything it starts lives in a temp dir and is stopped on exit.
#
# Knobs (environment): DURATION (s, default 20), THREADS (8), TABLES (4), TABLE_SIZE (10000),
# TESTS ("oltp_point_select oltp_read_write"), MODES ("text prepared"),
# TARGETS ("direct haproxy slotgate"), POOL_MAX (64), SLOTGATE_BIN (skip the release build and
# use this binary), OUT (also write the report to this file), SHARDS (1: slotgate in front of
# the one MariaDB; N > 1: slotgate routes over N more MariaDB servers, sbtest tables sharded by
# id), SHARD_PREPARE (slotgate: load the shards with sysbench prepare through slotgate, falling
# back to direct on failure; direct: load every shard directly), ROUTE_COST (1),
# ROUTE_COST_ITERATIONS (200000), LOG_DIR (keep every log here), SLOTGATE_LOG (warn).
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
SHARDS=${SHARDS:-1}
SHARD_PREPARE=${SHARD_PREPARE:-slotgate}
ROUTE_COST=${ROUTE_COST:-1}
ROUTE_COST_ITERATIONS=${ROUTE_COST_ITERATIONS:-200000}
LOG_DIR=${LOG_DIR:-}
SLOT_COUNT=1024

die() { echo "error: $*" >&2; exit 1; }
[[ $SHARDS =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive integer, not '$SHARDS'"
[[ $TABLES =~ ^[1-9][0-9]*$ ]] || die "TABLES must be a positive integer, not '$TABLES'"
case $SHARD_PREPARE in slotgate | direct) ;; *) die "SHARD_PREPARE must be slotgate or direct" ;; esac
case $ROUTE_COST in 0 | 1) ;; *) die "ROUTE_COST must be 0 or 1" ;; esac
[[ $ROUTE_COST_ITERATIONS =~ ^[1-9][0-9]*$ ]] || die "ROUTE_COST_ITERATIONS must be a positive integer"

# --- prerequisites --------------------------------------------------------------------------
command -v sysbench >/dev/null 2>&1 || apt_install sysbench
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { apt_install haproxy; HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy); }
ensure_mariadb
if [ -z "$SLOTGATE_BIN" ]; then
  echo "== building slotgate (release)" >&2
  cargo build --release -p slotgate-proxy
  SLOTGATE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/slotgate
fi
[ -x "$SLOTGATE_BIN" ] || die "$SLOTGATE_BIN is not an executable"
CLK_TCK=$(getconf CLK_TCK)

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/slotgate-bench.XXXXXX)
PIDS=()
cleanup() {
  local i f
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" 15; done
  # A server interrupted while starting is not in PIDS yet, but its pid file is written.
  for f in "$WORK"/db/pid "$WORK"/shard*/pid; do
    if [ -f "$f" ]; then stop_pid "$(cat "$f")" 15; fi
  done
  if [ -n "$LOG_DIR" ]; then
    if mkdir -p "$LOG_DIR" && cp "$WORK"/*.log "$LOG_DIR"/ 2>/dev/null; then
      echo "== logs kept in $LOG_DIR" >&2
    fi
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Lines printed under the table: failed runs and anything else worth knowing.
FAILURES=()
NOTES=()
# sb_error LOG: sysbench's error message(s) from LOG on one line (each message cut to 400
# characters: a failed bulk INSERT quotes the whole statement).
sb_error() {
  local msg
  msg=$(grep -E 'FATAL|ERROR|[Ee]rror' "$1" | grep -v 'ignored errors' | head -n 3 | cut -c1-400 |
    paste -sd'|' - | sed 's/|/ \/ /g') || true
  [ -n "$msg" ] || msg=$(tail -n 3 "$1" | cut -c1-400 | paste -sd' ' -) || true
  echo "${msg:-no output}"
}

# --- route cost (in-process, before any server runs) ------------------------------------------
ROUTE_COST_TABLE=""
if [ "$ROUTE_COST" = 1 ]; then
  echo "== route_cost ($ROUTE_COST_ITERATIONS iterations; cargo output in route_cost-build.log)" >&2
  if cargo run --release -p slotgate-bench --bin route_cost -- "$ROUTE_COST_ITERATIONS" \
    >"$WORK/route_cost.out" 2>"$WORK/route_cost-build.log"; then
    ROUTE_COST_TABLE=$(cat "$WORK/route_cost.out")
  else
    echo "   route_cost failed:" >&2
    tail -n 15 "$WORK/route_cost-build.log" >&2
    NOTES+=("route_cost failed: $(grep -m1 -E '^error' "$WORK/route_cost-build.log" || tail -n 1 "$WORK/route_cost-build.log")")
  fi
fi

# --- MariaDB --------------------------------------------------------------------------------
SB_USER=sbtest
SB_PASSWORD=$(random_password)
DB_ARGS=(--innodb-buffer-pool-size=256M --skip-log-bin)
# start_db DIR SERVER_ID: one MariaDB with user sbtest and database sbtest; sets MARIADB_PORT.
start_db() {
  mariadb_start "$1" "$2" "${DB_ARGS[@]}"
  PIDS+=("$(cat "$1/pid")")
  mariadb_add_user "$1" "$SB_USER" "$SB_PASSWORD"
  mariadb_sql "$1" "CREATE DATABASE sbtest"
}
echo "== starting MariaDB" >&2
start_db "$WORK/db" 1
DB_PORT=$MARIADB_PORT
SHARD_PORTS=()
if [ "$SHARDS" -gt 1 ]; then
  for ((i = 0; i < SHARDS; i++)); do
    echo "== starting MariaDB shard s$i" >&2
    start_db "$WORK/shard$i" "$((i + 2))"
    SHARD_PORTS+=("$MARIADB_PORT")
  done
fi

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
{
  cat <<EOF
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

EOF
  if [ "$SHARDS" -eq 1 ]; then
    printf '[[shards]]\nid = "s0"\nprimary = "127.0.0.1:%s"\n\n[routing]\nhome_shard = "s0"\n' "$DB_PORT"
  else
    for ((i = 0; i < SHARDS; i++)); do
      printf '[[shards]]\nid = "s%s"\nprimary = "127.0.0.1:%s"\n\n' "$i" "${SHARD_PORTS[$i]}"
    done
    printf '[routing]\nhome_shard = "s0"\nslot_count = %s\n' "$SLOT_COUNT"
    for ((t = 1; t <= TABLES; t++)); do
      printf '\n[[routing.rules]]\ndatabase = "sbtest"\ntable = "sbtest%s"\ncolumn = "id"\n' "$t"
    done
  fi
} >"$WORK/slotgate/slotgate.toml"
cat >"$WORK/slotgate/users.toml" <<EOF
[[users]]
name = "$SB_USER"
password_hash = "$(native_password_hash "$SB_PASSWORD")"
EOF
echo "== starting slotgate on $SG_PORT (admin $SG_ADMIN, $SHARDS shard(s))" >&2
SLOTGATE_LOG=${SLOTGATE_LOG:-warn} "$SLOTGATE_BIN" --config "$WORK/slotgate/slotgate.toml" \
  </dev/null >"$WORK/slotgate.log" 2>&1 &
SG_PID=$!
PIDS+=("$SG_PID")
wait_for "$SG_PID" 30 "slotgate /readyz" http_ok "127.0.0.1:$SG_ADMIN" /readyz ||
  { tail -n 30 "$WORK/slotgate.log" >&2; exit 1; }

# --- data -----------------------------------------------------------------------------------
SB_COMMON=(--mysql-host=127.0.0.1 --mysql-user="$SB_USER" --mysql-password="$SB_PASSWORD"
  --mysql-db=sbtest --mysql-ssl=off --tables="$TABLES" --table-size="$TABLE_SIZE")
# With shards every data set is generated with explicit ids (slotgate needs the shard key in
# each INSERT); the single MariaDB then gets the shards' rows (sync_single_from_shards).
PREPARE_OPTS=()
[ "$SHARDS" -gt 1 ] && PREPARE_OPTS=(--auto-inc=off)
# prepare PORT LOG [SYSBENCH ARGS...]
prepare() {
  local port=$1 log=$2
  shift 2
  sysbench oltp_point_select "${SB_COMMON[@]}" "${PREPARE_OPTS[@]}" "$@" --mysql-port="$port" prepare >"$log" 2>&1
}
echo "== sysbench prepare ($TABLES tables x $TABLE_SIZE rows) directly" >&2
prepare "$DB_PORT" "$WORK/prepare.log" || { tail -n 20 "$WORK/prepare.log" >&2; exit 1; }

# sbtest client over TCP (for the checks through slotgate).
(umask 077 && printf '[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nprotocol=tcp\nskip-ssl\n' \
  "$SB_USER" "$SB_PASSWORD" >"$WORK/sbtest.cnf")
sg_sql() { mariadb --defaults-file="$WORK/sbtest.cnf" -P "$SG_PORT" -N -B -e "$1"; }

# shard_index_sql: the shard index of a row, as Topology::uniform splits the slots.
SHARD_INDEX_SQL="(CRC32(id) % $SLOT_COUNT) * $SHARDS DIV $SLOT_COUNT"
TABLE_NAMES=()
for ((t = 1; t <= TABLES; t++)); do TABLE_NAMES+=("sbtest$t"); done
QUALIFIED_TABLES=$(printf 'sbtest.%s, ' "${TABLE_NAMES[@]}")
QUALIFIED_TABLES=${QUALIFIED_TABLES%, }

# Fallback (and SHARD_PREPARE=direct): sysbench prepare directly on every shard (schema and all
# rows), then each shard deletes the rows of the slots it does not own.
load_shards_directly() {
  local i t
  for ((i = 0; i < SHARDS; i++)); do
    echo "== loading shard s$i directly" >&2
    mariadb_sql "$WORK/shard$i" "DROP TABLE IF EXISTS $QUALIFIED_TABLES"
    prepare "${SHARD_PORTS[$i]}" "$WORK/prepare-shard$i.log" ||
      { tail -n 20 "$WORK/prepare-shard$i.log" >&2; exit 1; }
    for ((t = 1; t <= TABLES; t++)); do
      mariadb_sql "$WORK/shard$i" "DELETE FROM sbtest.sbtest$t WHERE $SHARD_INDEX_SQL <> $i"
    done
  done
}

# check_shards: every table holds ids 1..TABLE_SIZE exactly once over the shards, each row on
# the shard owning its slot, with the single MariaDB's table definition. Problems become NOTES.
check_shards() {
  local t i n out m total outside misplaced schema ok=1
  for ((t = 1; t <= TABLES; t++)); do
    schema=$(mariadb_sql "$WORK/db" "SHOW CREATE TABLE sbtest.sbtest$t")
    total=0 outside=0 misplaced=0
    for ((i = 0; i < SHARDS; i++)); do
      if ! read -r n out m < <(mariadb_sql "$WORK/shard$i" "SELECT COALESCE(SUM(id BETWEEN 1 AND $TABLE_SIZE), 0),
          COALESCE(SUM(id NOT BETWEEN 1 AND $TABLE_SIZE), 0), COALESCE(SUM($SHARD_INDEX_SQL <> $i), 0)
          FROM sbtest.sbtest$t" 2>&1) || ! [[ $n =~ ^[0-9]+$ ]]; then
        NOTES+=("data check: sbtest$t is missing or unreadable on shard s$i")
        ok=0
        continue
      fi
      total=$((total + n)) outside=$((outside + out)) misplaced=$((misplaced + m))
      [ "$(mariadb_sql "$WORK/shard$i" "SHOW CREATE TABLE sbtest.sbtest$t")" = "$schema" ] ||
        { NOTES+=("data check: SHOW CREATE TABLE sbtest$t on shard s$i differs from the single MariaDB's"); ok=0; }
    done
    # id is the primary key on each shard and every row sits on its owner: no id twice.
    if [ "$total" -ne "$TABLE_SIZE" ] || [ "$outside" -ne 0 ] || [ "$misplaced" -ne 0 ]; then
      NOTES+=("data check FAILED for sbtest$t: the shards hold $total rows with ids in 1..$TABLE_SIZE (want $TABLE_SIZE) and $outside outside it; $misplaced rows sit on a shard not owning their slot")
      ok=0
    fi
  done
  [ "$ok" = 1 ] && NOTES+=("data check passed: every sbtest table holds ids 1..$TABLE_SIZE once over the $SHARDS shards, each row on the shard owning its slot, with the same SHOW CREATE TABLE as the single MariaDB")
  return 0
}

# sync_single_from_shards: sysbench cannot generate the same random rows twice (--rand-seed does
# not make prepare repeatable), so the single MariaDB gets the shards' rows instead of its own:
# identical data for every target. Then count + CRC32 checksum per table are compared, also
# through slotgate (a scattered COUNT/SUM that slotgate merges).
ROW_SUM="COUNT(*), SUM(CRC32(CONCAT_WS('|', id, k, c, pad)))"
sync_single_from_shards() {
  local t i want got via ok=1
  for ((t = 1; t <= TABLES; t++)); do mariadb_sql "$WORK/db" "TRUNCATE TABLE sbtest.sbtest$t"; done
  for ((i = 0; i < SHARDS; i++)); do
    mariadb-dump --defaults-file="$WORK/shard$i/root.cnf" --no-create-info --compact --skip-triggers \
      --single-transaction sbtest "${TABLE_NAMES[@]}" |
      mariadb --defaults-file="$WORK/db/root.cnf" sbtest
  done
  for ((t = 1; t <= TABLES; t++)); do
    want=$(mariadb_sql "$WORK/db" "SELECT $ROW_SUM FROM sbtest.sbtest$t" | tr '\t' ' ')
    got=$(for ((i = 0; i < SHARDS; i++)); do mariadb_sql "$WORK/shard$i" "SELECT $ROW_SUM FROM sbtest.sbtest$t"; done |
      awk '{ n += $1; s += $2 } END { printf "%d %d", n, s }')
    [ "$want" = "$got" ] ||
      { NOTES+=("data copy FAILED for sbtest$t: single MariaDB '$want', shards '$got' (rows, checksum)"); ok=0; }
    if via=$(sg_sql "SELECT $ROW_SUM FROM sbtest.sbtest$t" 2>&1); then
      via=$(tr '\t' ' ' <<<"$via")
      [ "$via" = "$want" ] ||
        { NOTES+=("slotgate: SELECT $ROW_SUM FROM sbtest$t answered '$via', expected '$want'"); ok=0; }
    else
      NOTES+=("slotgate: SELECT $ROW_SUM FROM sbtest$t failed: $(grep -m1 ERROR <<<"$via" || echo "$via" | paste -sd' ' -)")
      ok=0
    fi
  done
  [ "$ok" = 1 ] && NOTES+=("the single MariaDB holds the shards' rows: same count and CRC32 checksum per table, directly and through slotgate (scattered COUNT/SUM)")
  return 0
}

LOADED_VIA=""
if [ "$SHARDS" -gt 1 ]; then
  if [ "$SHARD_PREPARE" = slotgate ]; then
    echo "== sysbench prepare through slotgate ($SHARDS shards)" >&2
    if prepare "$SG_PORT" "$WORK/prepare-slotgate.log"; then
      LOADED_VIA="sysbench prepare --auto-inc=off through slotgate"
    else
      err=$(sb_error "$WORK/prepare-slotgate.log")
      echo "   sysbench prepare through slotgate failed: $err" >&2
      NOTES+=("sysbench prepare through slotgate FAILED: $err. Fell back to loading every shard directly.")
    fi
  fi
  if [ -z "$LOADED_VIA" ]; then
    load_shards_directly
    LOADED_VIA="sysbench prepare directly on every shard, then DELETE of the rows of slots the shard does not own"
  fi
  check_shards
  echo "== copying the shards' rows into the single MariaDB" >&2
  sync_single_from_shards
fi

# --- runs -----------------------------------------------------------------------------------
port_of() { case $1 in direct) echo "$DB_PORT" ;; haproxy) echo "$HA_PORT" ;; slotgate) echo "$SG_PORT" ;; esac; }
pid_of() { case $1 in haproxy) echo "$HA_PID" ;; slotgate) echo "$SG_PID" ;; *) echo "" ;; esac; }
ps_mode_of() { case $1 in text) echo disable ;; prepared) echo auto ;; esac; }
# cpu_ticks PID: utime + stime of PID (all threads), in clock ticks; empty when PID is gone.
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  awk '{print $12 + $13}' <<<"${stat##*) }"
}

declare -A QPS P95 CPU
SG_DEAD=0
for test in $TESTS; do
  for mode in $MODES; do
    for target in $TARGETS; do
      key="$test|$mode|$target"
      log="$WORK/run-$test-$mode-$target.log"
      if [ "$target" = slotgate ] && [ "$SG_DEAD" = 1 ]; then
        QPS[$key]=FAILED
        FAILURES+=("$test $mode via slotgate: not run, slotgate had exited")
        continue
      fi
      pid=$(pid_of "$target")
      echo "== $test $mode via $target (${DURATION}s, $THREADS threads)" >&2
      before=""
      [ -n "$pid" ] && before=$(cpu_ticks "$pid")
      # The deadline only guards against a hung proxy; sysbench stops itself after DURATION.
      if timeout --foreground --kill-after=10 "$((DURATION + 180))" sysbench "$test" "${SB_COMMON[@]}" \
        --mysql-port="$(port_of "$target")" --db-ps-mode="$(ps_mode_of "$mode")" \
        --threads="$THREADS" --time="$DURATION" --report-interval=0 --percentile=95 run >"$log" 2>&1; then
        read -r queries qps p95 ignored reconnects < <(awk '
          /^ *queries:/ { n = $2; q = $3; gsub(/\(/, "", q) }
          /95th percentile:/ { p = $3 }
          /ignored errors:/ { e = $3 }
          /reconnects:/ { r = $2 }
          END { print n, q, p, e + 0, r + 0 }' "$log")
        QPS[$key]=$qps
        P95[$key]=$p95
        if [ -n "$pid" ] && [ -n "$before" ]; then
          after=$(cpu_ticks "$pid")
          if [ -n "$after" ]; then
            CPU[$key]=$(awk -v d="$((after - before))" -v t="$CLK_TCK" -v n="$queries" \
              'BEGIN { printf "%.1f", (n > 0 ? d / t * 1e6 / n : 0) }')
          fi
        fi
        if [ "$ignored" != 0 ] || [ "$reconnects" != 0 ]; then
          NOTES+=("$test $mode via $target: sysbench ignored $ignored errors, $reconnects reconnects")
        fi
      else
        err=$(sb_error "$log")
        echo "   sysbench failed via $target: $err" >&2
        QPS[$key]=FAILED
        FAILURES+=("$test $mode via $target: $err")
      fi
      if [ "$target" = slotgate ] && ! pid_alive "$SG_PID"; then
        echo "error: slotgate exited; log tail:" >&2
        tail -n 20 "$WORK/slotgate.log" >&2
        NOTES+=("slotgate exited during $test $mode: $(tail -n 1 "$WORK/slotgate.log")")
        SG_DEAD=1
      fi
    done
  done
done

# slotgate's own counters over the whole bench (prepare and every run), non-zero ones only.
http_get() {
  # shellcheck disable=SC2016
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
    cat <&3' "${1%:*}" "${1##*:}" "$2" | tr -d '\r' | sed '1,/^$/d'
}
SG_COUNTERS=""
if pid_alive "$SG_PID"; then
  SG_COUNTERS=$(http_get "127.0.0.1:$SG_ADMIN" /metrics 2>/dev/null | awk '
    /^slotgate_(queries_total|statements_refused_total|multi_shard_transactions_total|partial_commits_total|errors_total|backend_retries_total)/ && $NF > 0' |
    sed 's/^slotgate_//') || true
fi

# --- report ---------------------------------------------------------------------------------
ratio() { # ratio A B: A/B with 2 decimals, "-" when either is missing or not a number
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}
report() {
  local test mode target key line
  echo "### slotgate benchmark"
  echo
  echo "sysbench $(sysbench --version | awk '{print $2}'), ${DURATION}s per run, $THREADS threads," \
    "$TABLES tables x $TABLE_SIZE rows, $(nproc) CPUs, $(mariadb --version | grep -o '[0-9.]*-MariaDB' || true)," \
    "haproxy nbthread 1, slotgate pool_max $POOL_MAX"
  if [ "$SHARDS" -gt 1 ]; then
    echo
    echo "slotgate routes over $SHARDS MariaDB shards (sbtest1..$TABLES sharded by id, slot_count" \
      "$SLOT_COUNT, loaded by $LOADED_VIA); direct and haproxy use one MariaDB holding all rows." \
      "All $((SHARDS + 1)) MariaDB servers share the same CPUs."
  fi
  echo
  echo "| test | mode | target | QPS | p95 ms | vs direct | vs haproxy | proxy CPU µs/query |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
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
  if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo
    echo "Failed runs (sysbench's error):"
    echo
    for line in "${FAILURES[@]}"; do echo "- $line"; done
  fi
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Notes:"
    echo
    for line in "${NOTES[@]}"; do echo "- $line"; done
  fi
  if [ -n "$SG_COUNTERS" ]; then
    echo
    echo "slotgate counters (non-zero, whole bench including prepare):"
    echo
    echo '```'
    echo "$SG_COUNTERS"
    echo '```'
  fi
  if [ -n "$ROUTE_COST_TABLE" ]; then
    echo
    echo "### Parse + route cost"
    echo
    echo "\`route_cost $ROUTE_COST_ITERATIONS\` (bench/src/route_cost.rs, release, in-process, 4 shards, 1024 slots):"
    echo
    echo "$ROUTE_COST_TABLE"
  fi
}
echo
report
if [ -n "$OUT" ]; then report >"$OUT"; fi
