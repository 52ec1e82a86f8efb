#!/usr/bin/env bash
# Runs stock clients' own test suites against one MariaDB directly and through slotgate (one
# shard, no sharding rules), and writes the failing tests of each side to
# docs/driver-suites/<suite>-direct.txt and <suite>-slotgate.txt (issue #13: the slotgate
# list should be the direct list plus documented limits). Not part of the CI run: it takes
# minutes and installs packages.
#
# Suites:
#   client-test   mariadb-client-test (the MariaDB C client library's API tests, Debian package
#                 mariadb-test), each test run on its own with a timeout.
#   pymysql       PyMySQL's pytest suite (pymysql/tests) from a source checkout.
#   mysql2        node mysql2's poku suite (test/unit, test/integration) from a source checkout.
#
# The source checkouts come from PYMYSQL_SRC / MYSQL2_SRC (directories) or are cloned from
# GitHub at PYMYSQL_REF / MYSQL2_REF into target/driver-suites/.
#
#   scripts/driver-suites.sh                  # every suite
#   TEST_TIMEOUT=30 scripts/driver-suites.sh client-test
#   ONLY="client_query test_prepare" scripts/driver-suites.sh client-test   # a few tests
#   PROFILE=debug scripts/driver-suites.sh pymysql   # use target/debug/slotgate
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(client-test pymysql mysql2)
TEST_TIMEOUT=${TEST_TIMEOUT:-20}
PROFILE=${PROFILE:-release}
PYMYSQL_REF=${PYMYSQL_REF:-main}
MYSQL2_REF=${MYSQL2_REF:-master}
OUT=docs/driver-suites
mkdir -p "$OUT"

ensure_mariadb
command -v mariadb-client-test >/dev/null 2>&1 || apt_install mariadb-test
echo "== cargo build ($PROFILE) -p slotgate-proxy" >&2
if [ "$PROFILE" = debug ]; then
  cargo build -q -p slotgate-proxy
else
  cargo build -q --profile "$PROFILE" -p slotgate-proxy
fi
SLOTGATE=target/$PROFILE/slotgate

WORK=$(mktemp -d /tmp/slotgate-suites.XXXXXX)
SLOTGATE_PID=
cleanup() {
  [ -n "$SLOTGATE_PID" ] && stop_pid "$SLOTGATE_PID" 10
  mariadb_stop "$WORK/db" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# source_dir NAME URL REF VAR: the checkout named by $VAR, else a clone of URL at REF.
source_dir() {
  local name=$1 url=$2 ref=$3 dir=${!4:-}
  if [ -z "$dir" ]; then
    dir=target/driver-suites/$name
    [ -d "$dir/.git" ] || git clone -q "$url" "$dir"
    git -C "$dir" checkout -q "$ref"
  fi
  (cd "$dir" && pwd)
}

USER_NAME=suite
USER_PASSWORD=$(random_password)
# PyMySQL's second account, limited to test2 (its suite expects this name and password).
USER2_NAME=test2
USER2_PASSWORD="some password"
mariadb_start "$WORK/db" 1 --innodb-buffer-pool-size=64M --log-bin=mariadb-bin --binlog-format=ROW
DB_PORT=$MARIADB_PORT
mariadb_add_user "$WORK/db" "$USER_NAME" "$USER_PASSWORD"
# What the suites expect to find: client-test connects to `test` and creates client_test_db,
# PyMySQL uses test1 and test2, mysql2 uses `test`.
mariadb_sql "$WORK/db" "SET SESSION sql_log_bin = 0;
  GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'%' WITH GRANT OPTION;
  CREATE DATABASE test; CREATE DATABASE client_test_db;
  CREATE DATABASE test1 DEFAULT CHARACTER SET utf8mb4;
  CREATE DATABASE test2 DEFAULT CHARACTER SET utf8mb4;
  CREATE USER '$USER2_NAME'@'%' IDENTIFIED BY '$USER2_PASSWORD';
  GRANT ALL ON test2.* TO '$USER2_NAME'@'%'; FLUSH PRIVILEGES;"

PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$WORK/users.toml" <<EOF
[[users]]
name = "$USER_NAME"
password_hash = "$(native_password_hash "$USER_PASSWORD")"
# It has ALL PRIVILEGES on the server, so it may see and kill every connection.
connection_admin = true

[[users]]
name = "$USER2_NAME"
password_hash = "$(native_password_hash "$USER2_PASSWORD")"
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
    # Each test from the same clean databases (tests leave tables in `test`, and both sides
    # share the one server).
    mariadb_sql "$WORK/db" "SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS client_test_db;
      DROP DATABASE IF EXISTS test; CREATE DATABASE test;" >/dev/null
    if ! timeout "$TEST_TIMEOUT" mariadb-client-test --no-defaults -h 127.0.0.1 -P "$port" -u "$USER_NAME" \
      -p"$USER_PASSWORD" -s "$t" >"$WORK/ct.log" 2>&1 </dev/null; then
      failed=$((failed + 1))
      # The server error and the failed check, else the last line.
      why=$(grep -E '\]\[[0-9]+\]|check failed|ERROR' "$WORK/ct.log" | head -n 2 | tr '\n' ' ' | sed 's/\[MySQL-[^]]*\]//g')
      [ -n "$why" ] || why=$(grep -v '^ *$' "$WORK/ct.log" | tail -n 1)
      echo "$t: $(echo "$why" | cut -c1-200)" >>"$list"
    fi
  done
  echo "# $failed of $n failed" >>"$list"
  echo "client-test $side: $failed of $n failed (list: $list)" >&2
}

# pymysql SIDE PORT: PyMySQL's tests; the failing test ids (with their error) to the list.
pymysql_suite() {
  local side=$1 port=$2 list="$OUT/pymysql-$1.txt" src
  src=$(source_dir pymysql https://github.com/PyMySQL/PyMySQL.git "$PYMYSQL_REF" PYMYSQL_SRC)
  python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet pytest ||
    python3 -m pip install --quiet --break-system-packages pytest
  cat >"$src/pymysql/tests/databases.json" <<EOF
[
 {"host": "127.0.0.1", "port": $port, "user": "$USER_NAME", "password": "$USER_PASSWORD",
  "database": "test1", "use_unicode": true, "local_infile": true},
 {"host": "127.0.0.1", "port": $port, "user": "$USER2_NAME", "password": "$USER2_PASSWORD",
  "database": "test2"}
]
EOF
  (cd "$src" && timeout 1200 python3 -m pytest -q -p no:cacheprovider -rfE pymysql/tests) \
    >"$WORK/pymysql.log" 2>&1 </dev/null || true
  rm -f "$src/pymysql/tests/databases.json"
  {
    echo "# PyMySQL $(git -C "$src" describe --tags --always) tests, $side (127.0.0.1:$port), $(date -u +%F)"
    grep -E '^(FAILED|ERROR) ' "$WORK/pymysql.log" | cut -c1-220 || true
    echo "# $(tail -n 1 "$WORK/pymysql.log" | tr -d '=')"
  } >"$list"
  echo "pymysql $side: $(tail -n 1 "$list") (list: $list)" >&2
}

# mysql2 SIDE PORT: node mysql2's tests (poku); the failing test files, each with its
# failing checks, to the list.
mysql2_suite() {
  local side=$1 port=$2 list="$OUT/mysql2-$1.txt" src
  src=$(source_dir mysql2 https://github.com/sidorares/node-mysql2.git "$MYSQL2_REF" MYSQL2_SRC)
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  [ -d "$src/node_modules" ] || (cd "$src" && npm install --no-audit --no-fund >/dev/null)
  (cd "$src" && CI=1 NO_COLOR=1 MYSQL_HOST=127.0.0.1 MYSQL_PORT="$port" MYSQL_USER="$USER_NAME" \
    MYSQL_PASSWORD="$USER_PASSWORD" MYSQL_DATABASE=test timeout 1800 npx poku) \
    >"$WORK/mysql2.log" 2>&1 </dev/null || true
  sed -i 's/\x1b\[[0-9;]*m//g' "$WORK/mysql2.log"
  {
    echo "# mysql2 $(git -C "$src" describe --tags --always) tests, $side (127.0.0.1:$port), $(date -u +%F)"
    sed -n '/test file(s) failed:/,$p' "$WORK/mysql2.log" |
      grep -E '^[0-9]+\) |✘|Actual|Expected|^ +"' | sed 's/^ *//' | cut -c1-220 || true
    echo "# $(grep -E 'PASS › [0-9]+' "$WORK/mysql2.log" | tail -n 1 | sed 's/  */ /g')"
  } >"$list"
  echo "mysql2 $side: $(tail -n 1 "$list") (list: $list)" >&2
}

for s in "${suites[@]}"; do
  case $s in
    client-test)
      client_test direct "$DB_PORT"
      client_test slotgate "$PROXY_PORT"
      ;;
    pymysql)
      pymysql_suite direct "$DB_PORT"
      pymysql_suite slotgate "$PROXY_PORT"
      ;;
    mysql2)
      mysql2_suite direct "$DB_PORT"
      mysql2_suite slotgate "$PROXY_PORT"
      ;;
    *) echo "unknown suite $s (known: client-test pymysql mysql2)" >&2; exit 2 ;;
  esac
done
