# shellcheck shell=bash
# Shared helpers for scripts/*.sh and bench/run.sh (sourced, not executed; callers set -euo
# pipefail themselves).
#
# Contract:
# - packages: as_root CMD (directly or via sudo), apt_install PKG... (`apt-get update` once per
#   script), mariadbd_path / have_mariadbd (PATH, then /usr/sbin), ensure_mariadb.
# - processes: pid_alive, wait_for PID|- TIMEOUT DESC CMD... (poll with a deadline, fail fast
#   when PID exits), stop_pid PID [TIMEOUT] (TERM, then KILL).
# - network: free_port, port_listening PORT, http_ok HOST:PORT PATH (bash /dev/tcp, no curl).
# - MariaDB in a directory: mariadb_start DIR SERVER_ID [ARGS...] (sets MARIADB_PORT),
#   mariadb_sql DIR SQL, mariadb_add_user DIR USER PW, mariadb_stop DIR.
# - secrets: random_password, native_password_hash PW (MariaDB's PASSWORD() format).

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: need root to run: $*" >&2
    return 1
  fi
}

_APT_UPDATED=0
apt_install() {
  if [ "$_APT_UPDATED" -eq 0 ]; then
    as_root apt-get update
    _APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

mariadbd_path() {
  local p
  for p in "$(command -v mariadbd 2>/dev/null || true)" /usr/sbin/mariadbd /usr/local/sbin/mariadbd; do
    if [ -n "$p" ] && [ -x "$p" ]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

have_mariadbd() { mariadbd_path >/dev/null; }

# Installs mariadb-server + mariadb-client unless mariadbd and the mariadb client are present.
ensure_mariadb() {
  if ! have_mariadbd || ! command -v mariadb >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1; then
    apt_install mariadb-server mariadb-client
  fi
}

# --- waiting --------------------------------------------------------------------------------

# pid_alive PID: true while PID runs (a zombie child of this shell counts as exited).
pid_alive() {
  kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}

# wait_for PID|- TIMEOUT_S DESCRIPTION CMD...: polls CMD every 0.1 s until it succeeds. Fails
# after TIMEOUT_S seconds, or as soon as process PID (unless "-") has exited.
wait_for() {
  local pid=$1 timeout=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$pid" != "-" ] && ! pid_alive "$pid"; then
      echo "error: $what: process $pid exited" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: $what: not ready after ${timeout}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# stop_pid PID [TIMEOUT_S]: SIGTERM, wait up to TIMEOUT_S (default 30) for exit, then SIGKILL.
stop_pid() {
  local pid=$1 timeout=${2:-30}
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if pid_alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# --- ports and HTTP -------------------------------------------------------------------------

_USED_PORTS=" "
# free_port: prints a random port in 20000-32767 (below Linux's ephemeral range) that nothing
# listens on and this script has not handed out yet. Racy by nature: binders must retry.
free_port() {
  local port _
  for _ in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
    case "$_USED_PORTS" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      _USED_PORTS="$_USED_PORTS$port "
      echo "$port"
      return 0
    fi
  done
  echo "error: no free port found" >&2
  return 1
}

# port_listening PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok HOST:PORT PATH: true when GET PATH answers HTTP 200 (plain bash, no curl needed).
http_ok() {
  local status
  status=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
    head -n 1 <&3' "${1%:*}" "${1##*:}" "$2" 2>/dev/null) || return 1
  [[ $status == HTTP/1.?" 200"* ]]
}

# random_password: 24 hex characters.
random_password() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# --- MariaDB servers in a directory ---------------------------------------------------------
#
# A server lives in DIR: data/, tmp/, sock, error.log, pid (of mariadbd), port, and root.cnf
# (client defaults: root over the socket with a random password, written by mariadb_start).

# Flags for a small, quick local server; callers add their own (e.g. buffer pool size).
MARIADB_BASE_ARGS=(--skip-name-resolve --bind-address=127.0.0.1 --character-set-server=utf8mb4
  --collation-server=utf8mb4_general_ci --innodb-use-native-aio=0 --performance-schema=OFF
  --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 --max-connections=1000)

_mariadb_user_args() { [ "$(id -u)" -eq 0 ] && echo "--user=root" || true; }

# mariadb_sql DIR SQL: runs SQL as root, batch output without column names.
mariadb_sql() { mariadb --defaults-file="$1/root.cnf" -N -B -e "$2"; }

_mariadb_ping() {
  if [ -f "$1/root.cnf" ]; then
    mariadb_sql "$1" 'SELECT 1'
  else
    mariadb --no-defaults --protocol=socket -S "$1/sock" -uroot -e 'SELECT 1'
  fi
}

# mariadb_start DIR SERVER_ID [MARIADBD_ARGS...]: creates DIR (install-db if new), starts
# mariadbd on a free port (retrying on a port clash), waits until it answers, drops anonymous
# users and gives root a random password (kept in DIR/root.cnf). Sets MARIADB_PORT.
# With MARIADB_SETSID=1 the server runs in its own session (survives the terminal closing).
mariadb_start() {
  local dir=$1 server_id=$2
  shift 2
  local bin attempt port pid launcher=()
  if [ "${MARIADB_SETSID:-0}" = 1 ]; then launcher=(setsid); fi
  bin=$(mariadbd_path) || { echo "error: mariadbd not found; apt-get install -y mariadb-server" >&2; return 1; }
  mkdir -p "$dir/tmp"
  if [ ! -d "$dir/data/mysql" ]; then
    # shellcheck disable=SC2046
    if ! mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" \
      --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
      --innodb-log-file-size=32M $(_mariadb_user_args) >"$dir/install.log" 2>&1; then
      echo "error: mariadb-install-db failed in $dir:" >&2
      grep ERROR "$dir/install.log" >&2 || true
      tail -n 15 "$dir/install.log" >&2
      return 1
    fi
  fi
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    local log_lines
    log_lines=0
    [ -f "$dir/error.log" ] && log_lines=$(wc -l <"$dir/error.log")
    # shellcheck disable=SC2046
    "${launcher[@]}" "$bin" --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --port="$port" \
      --socket="$dir/sock" --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
      --server-id="$server_id" "${MARIADB_BASE_ARGS[@]}" "$@" $(_mariadb_user_args) \
      </dev/null >>"$dir/mariadbd.out" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    if wait_for "$pid" 60 "mariadbd in $dir" _mariadb_ping "$dir"; then
      echo "$port" >"$dir/port"
      MARIADB_PORT=$port
      [ -f "$dir/root.cnf" ] || _mariadb_secure "$dir"
      return 0
    fi
    stop_pid "$pid" 5
    if [ "$attempt" -lt 5 ] && tail -n +"$((log_lines + 1))" "$dir/error.log" 2>/dev/null | grep -q 'Address already in use'; then
      continue
    fi
    echo "error: mariadbd failed to start in $dir; error log tail:" >&2
    tail -n 25 "$dir/error.log" >&2 2>/dev/null || tail -n 25 "$dir/mariadbd.out" >&2
    return 1
  done
}

_mariadb_secure() {
  local dir=$1 pw
  pw=$(random_password)
  mariadb --no-defaults --protocol=socket -S "$dir/sock" -uroot -e "
    SET SESSION sql_log_bin = 0;
    DELETE FROM mysql.global_priv WHERE User = ''
      OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'));
    DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
    FLUSH PRIVILEGES;
    ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY '$pw';
    ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$pw';
    ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '$pw';"
  (umask 077 && printf '[client]\nuser=root\npassword=%s\nsocket=%s\nprotocol=socket\n' \
    "$pw" "$dir/sock" >"$dir/root.cnf")
}

# mariadb_add_user DIR USER PASSWORD: creates USER@'%' with ALL privileges (not binlogged).
# USER and PASSWORD must not contain quotes.
mariadb_add_user() {
  mariadb_sql "$1" "SET SESSION sql_log_bin = 0;
    CREATE USER IF NOT EXISTS '$2'@'%' IDENTIFIED BY '$3';
    GRANT ALL PRIVILEGES ON *.* TO '$2'@'%'; FLUSH PRIVILEGES;"
}

# mariadb_stop DIR: stops the server started in DIR (SIGTERM, then SIGKILL after 30 s).
mariadb_stop() {
  [ -f "$1/pid" ] && stop_pid "$(cat "$1/pid")" 30
  rm -f "$1/pid"
}

# native_password_hash PASSWORD: MariaDB's PASSWORD() form, '*' + upper hex SHA1(SHA1(pw)),
# with coreutils only.
native_password_hash() {
  local inner outer
  inner=$(printf '%s' "$1" | sha1sum | cut -c1-40)
  # shellcheck disable=SC2059
  outer=$(printf "$(sed 's/../\\x&/g' <<<"$inner")" | sha1sum | cut -c1-40)
  echo "*${outer^^}"
}
