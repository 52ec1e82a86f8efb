#!/usr/bin/env bash
# Runs every test of the workspace (unit + integration against real MariaDB servers).
#
# Installs what is missing first (Debian 12, root or sudo): mariadb-server/-client, and the
# Python drivers (pymysql, sqlalchemy) used by the driver-compatibility tests. Uses
# cargo-nextest when installed (one process per test), else `cargo test`. Extra arguments are
# passed to the test runner. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_mariadb

if ! python3 -c 'import pymysql, sqlalchemy' >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3 python3-pip
  fi
  python3 -m pip install --quiet pymysql sqlalchemy ||
    python3 -m pip install --quiet --break-system-packages pymysql sqlalchemy
  python3 -c 'import pymysql, sqlalchemy'
fi

# The binaries the demo and slotctl tests run, built before the tests start so that they do
# not compile while other tests load the machine.
echo "== cargo build -p slotgate-proxy -p slotctl"
cargo build -p slotgate-proxy -p slotctl

if cargo nextest --version >/dev/null 2>&1; then
  profile=()
  # CI sets CI=true; use the repo's `ci` nextest profile when there is one.
  if [ -n "${CI:-}" ] && grep -qs '^\[profile\.ci\]' .config/nextest.toml; then
    profile=(--profile ci)
  fi
  echo "== cargo nextest run --workspace --no-fail-fast ${profile[*]} $*"
  cargo nextest run --workspace --no-fail-fast "${profile[@]}" "$@"
else
  echo "== cargo-nextest not installed; cargo test --workspace --no-fail-fast $*"
  cargo test --workspace --no-fail-fast "$@"
fi
