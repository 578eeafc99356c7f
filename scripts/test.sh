#!/usr/bin/env bash
# Runs the whole test suite: formatting and lints, then every unit and integration test against
# a real PostgreSQL. Without POSTMAND_TEST_DATABASE_URL it starts a throwaway server (fsync off)
# on a free port and removes it afterwards. Exits with the tests' status.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

cleanup() { :; }
if [ -z "${POSTMAND_TEST_DATABASE_URL:-}" ]; then
  pg_find_bin
  PG_DIR=$(mktemp -d /tmp/postmand-test-pg.XXXXXX)
  PG_PORT=$(pg_free_port)
  cleanup() { pg_stop "$PG_DIR"; rm -rf "$PG_DIR"; }
  trap cleanup EXIT
  PG_EXTRA_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" pg_start "$PG_DIR" "$PG_PORT"
  export POSTMAND_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "test database: $POSTMAND_TEST_DATABASE_URL"
fi

# The TLS tests make their certificates with the openssl CLI.
if ! command -v openssl >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --quiet
cargo test --quiet -- "$@"
bash scripts/check-deploy.sh
bash scripts/check-swagger-ui.sh
bash scripts/check-fuzz.sh
bash scripts/check-ui.sh
# The benchmark is not a test, but its driver must keep working: a smoke run on tiny loads.
POSTMAND_BENCH_DATABASE_URL="$POSTMAND_TEST_DATABASE_URL" bash scripts/bench.sh --smoke
