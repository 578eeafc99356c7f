#!/usr/bin/env bash
# The quickstart: builds postmand, migrates, and runs `postmand --role all` on 8000 (API) and
# 8001 (health). Without POSTMAND_DATABASE_URL it starts a private PostgreSQL from this machine's
# binaries, with its data in .pgdata/ under the checkout (kept between runs) on 127.0.0.1:54329
# (POSTMAND_RUN_PG_PORT changes the port), and stops it again when postmand exits. Extra
# arguments go to postmand (e.g. --role api).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

# Build first, with Cargo's progress shown: a failed build starts nothing.
# POSTMAND_RUN_BINARY runs that binary instead of building one (the tests use the debug build).
postmand=${POSTMAND_RUN_BINARY:-}
if [ -z "$postmand" ]; then
  echo "building postmand (release; the first build takes a few minutes)..."
  cargo build --release
  postmand=./target/release/postmand
fi

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

"$postmand" migrate

# postmand runs in a session of its own, so Ctrl-C in a terminal reaches only this script,
# which forwards one SIGTERM: a second signal would mean "exit now" and cut the attempt in
# flight short.
status=0
setsid "$postmand" "${@:---role=all}" &
child=$!
interrupted=0
# HUP too: with its own session postmand would outlive a closed terminal.
trap 'interrupted=1; kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
# A trapped signal interrupts wait (which then returns 128+n); wait again until postmand has
# really exited, and keep its own exit status. A second Ctrl-C forwards a second SIGTERM, which
# postmand takes as "stop now".
while :; do
  interrupted=0
  if wait "$child"; then status=0; else status=$?; fi
  [ "$interrupted" = 1 ] || break
done
if [ $started_pg = 1 ]; then
  pg_stop "$PG_DIR"
fi
exit $status
