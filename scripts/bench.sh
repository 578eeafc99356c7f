#!/usr/bin/env bash
# The reproducible benchmark: builds postmand and the bench driver in release mode, starts a
# throwaway PostgreSQL with its default durability settings (unless POSTMAND_BENCH_DATABASE_URL
# names a server to use), runs every figure against a fast receiver on 127.0.0.1, prints one
# table and writes it to BENCHMARK.md. Takes about 3 minutes on 2 cores.
#   scripts/bench.sh            full run
#   scripts/bench.sh --smoke    tiny loads, seconds (scripts/test.sh runs this)
#   scripts/bench.sh --only api one figure (receiver, pgbench, drain, live, api, isolation,
#                               contention, cost, events, workers, scale)
#   scripts/bench.sh --only scale [--rows N]
#                               the API over a seeded history of N deliveries (default
#                               2,000,000: about 2 minutes, a minute of it seeding, so
#                               not in the full run)
#   scripts/bench.sh --only api --baseline PATH
#                               also measures another postmand binary (e.g. main's, built in a
#                               `git worktree`) in the same run, for a before/after ratio
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

smoke=0
partial=0
extra=()
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    --only) partial=1; extra+=("$arg") ;;
    *) extra+=("$arg") ;;
  esac
done
profile=release
[ $smoke = 1 ] && profile=debug

pg_find_bin
if [ -z "${POSTMAND_BENCH_DATABASE_URL:-}" ]; then
  PG_DIR=$(mktemp -d /tmp/postmand-bench-pg.XXXXXX)
  PG_PORT=$(pg_free_port)
  trap 'pg_stop "$PG_DIR"; rm -rf "$PG_DIR"' EXIT
  # pg_stat_statements gives the cost figure its per-statement breakdown (issue 14).
  PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements" pg_start "$PG_DIR" "$PG_PORT"
  POSTMAND_BENCH_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi

if [ $profile = release ]; then
  cargo build --release --quiet --bin postmand --example bench
else
  cargo build --quiet --bin postmand --example bench
fi

args=(--admin-url "$POSTMAND_BENCH_DATABASE_URL" --postmand "target/$profile/postmand" --pgbench "$PG_BIN/pgbench")
# wrk loads the API as cheaply as pgbench loads the database; without it the driver's own
# clients do, and take more of the 2 cores than the server.
if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing wrk (Debian package) for the API figures" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1; } \
    || echo "wrk could not be installed: the API figures use the driver's own clients" >&2
fi
if command -v wrk >/dev/null; then
  args+=(--wrk "$(command -v wrk)")
fi
if [ $smoke = 1 ]; then
  "target/$profile/examples/bench" "${args[@]}" --smoke "${extra[@]}"
else
  if [ $partial = 1 ]; then
    # A partial run (e.g. --only api) prints its rows and leaves BENCHMARK.md alone.
    "target/$profile/examples/bench" "${args[@]}" "${extra[@]}"
  else
    "target/$profile/examples/bench" "${args[@]}" "${extra[@]+"${extra[@]}"}" --out BENCHMARK.md
    echo "written to BENCHMARK.md"
  fi
fi
