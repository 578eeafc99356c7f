#!/usr/bin/env bash
# The quickstart: builds postmand, migrates, and runs `postmand --role all` on 8000 (API) and
# 8001 (health). Without POSTMAND_DATABASE_URL it starts a private PostgreSQL from this machine's
# binaries, with its data in .pgdata/ under the checkout (kept between runs) on 127.0.0.1:54329,
# and stops it again when postmand exits. Extra arguments go to postmand (e.g. --role api).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

PG_DIR="$PWD/.pgdata"
PG_PORT=${POSTMAND_RUN_PG_PORT:-54329}
started_pg=0
if [ -z "${POSTMAND_DATABASE_URL:-}" ]; then
  pg_find_bin
  if [ -f "$PG_DIR/data/postmaster.pid" ] && pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    echo "using the private PostgreSQL already running in $PG_DIR"
  else
    pg_start "$PG_DIR" "$PG_PORT"
    started_pg=1
    echo "started a private PostgreSQL on 127.0.0.1:$PG_PORT (data in $PG_DIR)"
  fi
  pg_psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'postmand'" | grep -q 1 \
    || pg_psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE postmand"
  export POSTMAND_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postmand"
fi

cargo build --release --quiet
./target/release/postmand migrate

status=0
./target/release/postmand "${@:---role=all}" &
child=$!
trap 'kill -TERM $child 2>/dev/null' INT TERM
wait $child || status=$?
# A signal interrupts the first wait; wait again for the graceful shutdown to finish.
wait $child 2>/dev/null || true
if [ $started_pg = 1 ]; then
  pg_stop "$PG_DIR"
fi
exit $status
