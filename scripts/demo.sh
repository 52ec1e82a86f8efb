#!/usr/bin/env bash
# A local slotgate cluster to play with: 4 MariaDB shards (s0..s3, each a primary with one
# semi-synchronous GTID replica) and 3 slotgate nodes that
# form one embedded Raft meta group (the topology), initialised with `slotctl init`.
#
#   scripts/demo.sh            run in the foreground until Ctrl-C, then clean everything up
#   scripts/demo.sh --detach   start, write .demo/cluster.json, return (processes keep running)
#   scripts/demo.sh stop       stop a detached demo and remove .demo/
#
# Nodes listen for MySQL on 127.0.0.1:6033-6035 and for admin HTTP on 127.0.0.1:9033-9035
# (node ids 1-3). Client login: user `demo`, password `demo`, database `demo`. Every shard has
# the `demo` database and a backend user `slotgate` (random password, in cluster.json).
# Installs mariadb-server/-client if missing and builds slotgate + slotctl (debug).
# Starting a demo first stops a previous detached one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DEMO=$ROOT/.demo
SHARDS=4
NODES=3
BACKEND_USER=slotgate
DEMO_USER=demo
DEMO_PASSWORD=demo

usage() {
  echo "usage: $0 [--detach | stop]" >&2
  exit 2
}

# demo_pid FILE: the pid recorded in FILE if that process is still one of ours (its command
# line mentions the demo dir), so a recycled pid is never signalled.
demo_pid() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$DEMO" && echo "$pid"
}

demo_stop() {
  [ -d "$DEMO" ] || return 0
  local f pid
  for f in "$DEMO"/node*/pid "$DEMO"/shard*/pid; do
    if pid=$(demo_pid "$f"); then stop_pid "$pid" 30; fi
  done
  rm -rf "$DEMO"
}

MODE=foreground
case "${1:-}" in
  "") ;;
  --detach) MODE=detach ;;
  stop)
    demo_stop
    echo "demo stopped"
    exit 0
    ;;
  *) usage ;;
esac

demo_stop

# --- prerequisites --------------------------------------------------------------------------
ensure_mariadb
echo "== building slotgate and slotctl (debug)" >&2
cargo build -p slotgate-proxy -p slotctl
SLOTGATE=$ROOT/target/debug/slotgate
SLOTCTL=$ROOT/target/debug/slotctl
CLUSTER_URLS=http://127.0.0.1:9033,http://127.0.0.1:9034,http://127.0.0.1:9035
for n in $(seq 1 "$NODES"); do
  for port in $((6032 + n)) $((9032 + n)); do
    if port_listening "$port"; then
      echo "error: port $port is in use; stop whatever listens there first" >&2
      exit 1
    fi
  done
done

READY=0
on_exit() {
  if [ "$MODE" = foreground ] || [ "$READY" = 0 ]; then
    echo "== cleaning up" >&2
    demo_stop
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# In detached mode the processes get their own session so closing the terminal leaves them be.
if [ "$MODE" = detach ]; then MARIADB_SETSID=1; fi

# --- shards ---------------------------------------------------------------------------------
mkdir -p "$DEMO"
BACKEND_PASSWORD=$(random_password)
CLUSTER_SECRET=$(random_password)
SHARD_ADDRS=()
REPLICA_ADDRS=()
for i in $(seq 0 $((SHARDS - 1))); do
  dir=$DEMO/shard$i
  echo "== starting shard s$i" >&2
  mariadb_start "$dir" $((i + 1)) --innodb-buffer-pool-size=32M --log-bin=mariadb-bin \
    --binlog-format=ROW --gtid-strict-mode=ON --log-slave-updates
  mariadb_add_user "$dir" "$BACKEND_USER" "$BACKEND_PASSWORD"
  mariadb_sql "$dir" "CREATE DATABASE IF NOT EXISTS demo"
  # Semi-synchronous replication: a commit is acknowledged once the replica has it, so a
  # failover loses no acknowledged write (falls back to async after 10 s without a replica).
  mariadb_sql "$dir" "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC;
    SET GLOBAL rpl_semi_sync_master_timeout = 10000; SET GLOBAL rpl_semi_sync_master_enabled = ON"
  primary_port=$MARIADB_PORT
  SHARD_ADDRS+=("127.0.0.1:$primary_port")
  echo "== starting replica of shard s$i" >&2
  mariadb_start "$dir-replica" $((i + 101)) --innodb-buffer-pool-size=32M --log-bin=mariadb-bin \
    --binlog-format=ROW --gtid-strict-mode=ON --log-slave-updates --read-only=ON
  mariadb_add_user "$dir-replica" "$BACKEND_USER" "$BACKEND_PASSWORD"
  mariadb_sql "$dir-replica" "SET GLOBAL rpl_semi_sync_slave_enabled = ON;
    CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$primary_port, MASTER_USER='$BACKEND_USER',
      MASTER_PASSWORD='$BACKEND_PASSWORD', MASTER_USE_GTID=slave_pos;
    START SLAVE"
  REPLICA_ADDRS+=("127.0.0.1:$MARIADB_PORT")
done
# A spare server, not in the topology: `slotctl shard add s4` and `slotctl slots migrate` move
# data onto it (README: "Add a shard and move data to it").
echo "== starting spare server for shard s4" >&2
mariadb_start "$DEMO/shard$SHARDS" $((SHARDS + 1)) --innodb-buffer-pool-size=32M --log-bin=mariadb-bin \
  --binlog-format=ROW --gtid-strict-mode=ON --log-slave-updates
mariadb_add_user "$DEMO/shard$SHARDS" "$BACKEND_USER" "$BACKEND_PASSWORD"
SPARE_ADDR="127.0.0.1:$MARIADB_PORT"

# --- slotgate nodes -------------------------------------------------------------------------
cat >"$DEMO/users.toml" <<EOF
[[users]]
name = "$DEMO_USER"
password_hash = "$(native_password_hash "$DEMO_PASSWORD")"
EOF
NODE_PIDS=()
for n in $(seq 1 "$NODES"); do
  dir=$DEMO/node$n
  mkdir -p "$dir"
  {
    printf '[node]\nid = %d\nlisten = "127.0.0.1:%d"\nadmin_listen = "127.0.0.1:%d"\n' \
      "$n" $((6032 + n)) $((9032 + n))
    printf 'users_file = "../users.toml"\n\n'
    printf '[backend]\nuser = "%s"\npassword = "%s"\npool_max = 16\n\n' "$BACKEND_USER" "$BACKEND_PASSWORD"
    for i in $(seq 0 $((SHARDS - 1))); do
      printf '[[shards]]\nid = "s%d"\nprimary = "%s"\nreplicas = ["%s"]\n\n' "$i" "${SHARD_ADDRS[$i]}" "${REPLICA_ADDRS[$i]}"
    done
    printf '[routing]\nhome_shard = "s0"\nslot_count = 1024\n\n'
    # The demo schema (created below through node 1): users sharded by id, orders by user_id.
    printf '[[routing.rules]]\ndatabase = "demo"\ntable = "users"\ncolumn = "id"\n\n'
    printf '[[routing.rules]]\ndatabase = "demo"\ntable = "orders"\ncolumn = "user_id"\n\n'
    # Every node is a voter of the meta group; `slotctl init` below proposes the topology
    # above ([[shards]] and [routing]) once.
    printf '[meta]\ndata_dir = "meta"\ncluster_secret = "%s"\ninit_from_config = false\n' "$CLUSTER_SECRET"
    for v in $(seq 1 "$NODES"); do
      printf '[[meta.voters]]\nid = %d\naddr = "127.0.0.1:%d"\n' "$v" $((9032 + v))
    done
  } >"$dir/slotgate.toml"
  echo "== starting slotgate node $n" >&2
  # Started directly (no function or subshell in between) so that $! is slotgate's own pid.
  if [ "$MODE" = detach ]; then
    setsid "$SLOTGATE" --config "$dir/slotgate.toml" </dev/null >"$dir/slotgate.log" 2>&1 &
  else
    "$SLOTGATE" --config "$dir/slotgate.toml" </dev/null >"$dir/slotgate.log" 2>&1 &
  fi
  echo "$!" >"$dir/pid"
  NODE_PIDS+=("$!")
done
for n in $(seq 1 "$NODES"); do
  if ! wait_for "${NODE_PIDS[$((n - 1))]}" 30 "slotgate node $n /healthz" http_ok "127.0.0.1:$((9032 + n))" /healthz; then
    tail -n 20 "$DEMO/node$n/slotgate.log" >&2
    exit 1
  fi
done
echo "== slotctl init (the meta group elects a leader, then commits topology version 1)" >&2
"$SLOTCTL" --cluster "$CLUSTER_URLS" --timeout 60 init --config "$DEMO/node1/slotgate.toml" >&2
for n in $(seq 1 "$NODES"); do
  if ! wait_for "${NODE_PIDS[$((n - 1))]}" 30 "slotgate node $n /readyz" http_ok "127.0.0.1:$((9032 + n))" /readyz; then
    tail -n 20 "$DEMO/node$n/slotgate.log" >&2
    exit 1
  fi
done

# --- demo schema, created through slotgate (DDL is broadcast to every shard) -----------------
mariadb --skip-ssl -h127.0.0.1 -P6033 -u"$DEMO_USER" -p"$DEMO_PASSWORD" demo -e "
  CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, name VARCHAR(100), country CHAR(2));
  CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount DECIMAL(10,2), KEY (user_id));
  CREATE TABLE IF NOT EXISTS countries (code CHAR(2) PRIMARY KEY, name VARCHAR(100));"

# --- cluster.json ---------------------------------------------------------------------------
{
  echo '{'
  echo '  "nodes": ['
  for n in $(seq 1 "$NODES"); do
    sep=$([ "$n" -lt "$NODES" ] && echo , || true)
    printf '    {"id": %d, "mysql": "127.0.0.1:%d", "admin": "127.0.0.1:%d", "pid": %d, "config": "%s"}%s\n' \
      "$n" $((6032 + n)) $((9032 + n)) "${NODE_PIDS[$((n - 1))]}" "$DEMO/node$n/slotgate.toml" "$sep"
  done
  echo '  ],'
  echo '  "shards": ['
  for i in $(seq 0 $((SHARDS - 1))); do
    sep=$([ "$i" -lt $((SHARDS - 1)) ] && echo , || true)
    printf '    {"id": "s%d", "addr": "%s", "replica": "%s", "user": "%s", "password": "%s", "database": "demo", "root_cnf": "%s", "pid": %d}%s\n' \
      "$i" "${SHARD_ADDRS[$i]}" "${REPLICA_ADDRS[$i]}" "$BACKEND_USER" "$BACKEND_PASSWORD" "$DEMO/shard$i/root.cnf" \
      "$(cat "$DEMO/shard$i/pid")" "$sep"
  done
  echo '  ],'
  printf '  "spare": {"id": "s%d", "addr": "%s"},\n' "$SHARDS" "$SPARE_ADDR"
  printf '  "cluster": "%s",\n' "$CLUSTER_URLS"
  printf '  "demo_user": {"name": "%s", "password": "%s", "database": "demo"}\n' "$DEMO_USER" "$DEMO_PASSWORD"
  echo '}'
} >"$DEMO/cluster.json"

READY=1
"$SLOTCTL" --cluster "$CLUSTER_URLS" status || true
cat <<EOF

slotgate demo is up: $NODES nodes, $SHARDS shards (details in .demo/cluster.json, logs in .demo/*/).
Connect with:
  mariadb -h127.0.0.1 -P6033 -u$DEMO_USER -p$DEMO_PASSWORD demo      (nodes on 6033, 6034, 6035)
Tables: demo.users (sharded by id), demo.orders (sharded by user_id), demo.countries (home shard s0).
Try:
  INSERT INTO users (id, name, country) VALUES (1,'ada','uk'),(2,'bob','fr'),(3,'cy','de'),(4,'dee','jp');
  SELECT * FROM users WHERE id = 3;                      -- one shard
  SELECT country, COUNT(*) FROM users GROUP BY country;  -- every shard, merged
Topology (the meta group on the admin ports 9033-9035):
  target/debug/slotctl status
  target/debug/slotctl history
  target/debug/slotctl shard list
  target/debug/slotctl switchover s1       (writes to s1 pause, its replica becomes primary)
Add a shard and move data to it (a spare server runs at $SPARE_ADDR):
  target/debug/slotctl shard add s4 --primary $SPARE_ADDR
  target/debug/slotctl slots migrate 0-63 --to s4 --wait
  target/debug/slotctl migration list
Admin:
  curl http://127.0.0.1:9033/readyz                  (9033, 9034, 9035)
  curl -s http://127.0.0.1:9033/metrics | grep slotgate_queries_total
EOF
if [ "$MODE" = detach ]; then
  echo "Stop with: scripts/demo.sh stop"
  exit 0
fi
echo "Press Ctrl-C to stop."
# Returns when a node exits (or Ctrl-C runs the INT trap).
wait -n "${NODE_PIDS[@]}" || true
echo "error: a slotgate node exited; see .demo/node*/slotgate.log" >&2
exit 1
