#!/usr/bin/env bash
# Runs a stock client's own test suite against one MariaDB directly and through slotgate
# (one shard, no sharding rules), and writes the failing tests of each side to
# docs/driver-suites/<suite>-direct.txt and <suite>-slotgate.txt (issue #13: the slotgate
# list should be the direct list plus documented limits). Not part of the CI run: it takes
# minutes and installs packages.
#
# Suites:
#   client-test   mariadb-client-test (the MariaDB C client library's API tests, Debian package
#                 mariadb-test), each test run on its own with a timeout.
#
#   scripts/driver-suites.sh                  # every suite
#   TEST_TIMEOUT=30 scripts/driver-suites.sh client-test
#   ONLY="client_query test_prepare" scripts/driver-suites.sh client-test   # a few tests
#
# State (2026-12-07): unfinished. mariadb-client-test 10.11 does not get a connection with
# these options even to the direct server ("Check the connection options"), so every test
# fails on both sides; the cause is not found yet and no lists are recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(client-test)
TEST_TIMEOUT=${TEST_TIMEOUT:-20}
OUT=docs/driver-suites
mkdir -p "$OUT"

ensure_mariadb
command -v mariadb-client-test >/dev/null 2>&1 || apt_install mariadb-test
echo "== cargo build --release -p slotgate-proxy" >&2
cargo build --release -q -p slotgate-proxy
SLOTGATE=target/release/slotgate

WORK=$(mktemp -d /tmp/slotgate-suites.XXXXXX)
SLOTGATE_PID=
cleanup() {
  [ -n "$SLOTGATE_PID" ] && stop_pid "$SLOTGATE_PID" 10
  mariadb_stop "$WORK/db" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

USER_NAME=suite
USER_PASSWORD=$(random_password)
mariadb_start "$WORK/db" 1 --innodb-buffer-pool-size=64M --log-bin=mariadb-bin --binlog-format=ROW
DB_PORT=$MARIADB_PORT
mariadb_add_user "$WORK/db" "$USER_NAME" "$USER_PASSWORD"

PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$WORK/users.toml" <<EOF
[[users]]
name = "$USER_NAME"
password_hash = "$(native_password_hash "$USER_PASSWORD")"
EOF
cat >"$WORK/slotgate.toml" <<EOF
[node]
listen = "127.0.0.1:$PROXY_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
users_file = "users.toml"

[backend]
user = "$USER_NAME"
password = "$USER_PASSWORD"
pool_max = 16

[[shards]]
id = "s0"
primary = "127.0.0.1:$DB_PORT"

[routing]
home_shard = "s0"
EOF
"$SLOTGATE" --config "$WORK/slotgate.toml" </dev/null >"$WORK/slotgate.log" 2>&1 &
SLOTGATE_PID=$!
wait_for "$SLOTGATE_PID" 30 "slotgate" port_listening "$PROXY_PORT" || { tail -n 20 "$WORK/slotgate.log" >&2; exit 1; }

# client_test SIDE PORT: runs every mariadb-client-test test alone; failures to the list.
client_test() {
  local side=$1 port=$2 list="$OUT/client-test-$1.txt" t n=0 failed=0
  local tests
  if [ -n "${ONLY:-}" ]; then tests=$ONLY; else tests=$(mariadb-client-test -T 2>/dev/null | tail -n +3); fi
  {
    echo "# mariadb-client-test $(mariadb-client-test --version 2>/dev/null | grep -o 'Distrib [^,]*') $side (127.0.0.1:$port), $(date -u +%F)"
    echo "# each test alone, ${TEST_TIMEOUT}s timeout; failing tests, with the last line of their output"
  } >"$list"
  for t in $tests; do
    n=$((n + 1))
    if ! timeout "$TEST_TIMEOUT" mariadb-client-test --no-defaults -h 127.0.0.1 -P "$port" -u "$USER_NAME" \
      -p"$USER_PASSWORD" -D client_test_db -s "$t" >"$WORK/ct.log" 2>&1 </dev/null; then
      failed=$((failed + 1))
      echo "$t: $(grep -v '^ *$' "$WORK/ct.log" | tail -n 1 | cut -c1-200)" >>"$list"
    fi
  done
  echo "# $failed of $n failed" >>"$list"
  echo "client-test $side: $failed of $n failed (list: $list)" >&2
}

for s in "${suites[@]}"; do
  case $s in
    client-test)
      client_test direct "$DB_PORT"
      client_test slotgate "$PROXY_PORT"
      ;;
    *) echo "unknown suite $s (known: client-test)" >&2; exit 2 ;;
  esac
done
