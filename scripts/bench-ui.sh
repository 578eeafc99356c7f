#!/usr/bin/env bash
# How long each dashboard page takes with 2,000,000 deliveries (issue 18: 50 ms at p99). Seeds
# the database bench/seed.sql describes (about a minute, once: it is kept as `ui_bench`
# for the next run unless --reseed), starts the release binary in --role api on it, and times
# 200 requests of each page, one at a time, after 10 to warm up. Prints one row per page: p50,
# p99 and the slowest, in milliseconds, as the client saw them.
# Each request has a connection of its own, as before tiny_http patch 6: a kept-alive
# connection's responses used to wait about 40 ms for the client's delayed ACK (no TCP_NODELAY).
#   POSTMAND_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/bench-ui.sh
#   ... scripts/bench-ui.sh --reseed --days 30    spread the deliveries over 30 days instead of 7
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
. scripts/lib/check.sh
pg_find_bin

reseed=0
days=7
while [ $# -gt 0 ]; do
  case $1 in
    --reseed) reseed=1 ;;
    --days) days=$2; reseed=1; shift ;;
    *) echo "bench-ui: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
admin=${POSTMAND_BENCH_DATABASE_URL:?set POSTMAND_BENCH_DATABASE_URL to a PostgreSQL server}
db=ui_bench
url="${admin%/*}/$db"
export PGOPTIONS="-c client_min_messages=warning"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/postmand"

exists=$(pg_psql -At "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")
if [ "$reseed" = 1 ] || [ -z "$exists" ]; then
  pg_psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  POSTMAND_DATABASE_URL=$url "$bin" migrate >/dev/null 2>&1
  echo "bench-ui: seeding 2,000,000 deliveries over $days days (about a minute)"
  pg_psql -q "$url" -v ON_ERROR_STOP=1 -v rows=2000000 -v webhooks=50 -v pending=1000 \
    -v days="$days" -f bench/seed.sql
  pg_psql -q "$url" -c "VACUUM ANALYZE"
else
  POSTMAND_DATABASE_URL=$url "$bin" migrate >/dev/null 2>&1
fi

port=$(pg_free_port)
health=$(pg_free_port)
POSTMAND_DATABASE_URL=$url POSTMAND_HTTP_PORT=$port POSTMAND_HEALTH_CHECK_HTTP_PORT=$health \
  POSTMAND_BIND_ADDRESS=127.0.0.1 POSTMAND_LOG_LEVEL=warn "$bin" --role api &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
check_wait_ports "$port"

busy=$(pg_psql -At "$url" -c "SELECT webhook_id FROM deliveries WHERE status = 'failed' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
quiet=$(pg_psql -At "$url" -c "SELECT id FROM webhooks w WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed') LIMIT 1")
failed=$(pg_psql -At "$url" -c "SELECT id FROM deliveries WHERE webhook_id = '$busy' AND status = 'failed' ORDER BY created_at DESC LIMIT 1")
day_ago=$(python3 -c "import datetime; print((datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
rows=$(pg_psql -At "$url" -c "SELECT count(*) FROM deliveries")

python3 - "$port" "$rows" "$days" <<PY
import http.client, statistics, sys, time
port, rows, days = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pages = [
    ("overview", "/ui/"),
    ("webhooks (50, sparklines)", "/ui/webhooks"),
    ("webhook", "/ui/webhooks/$busy"),
    ("webhook, failed", "/ui/webhooks/$busy?status=failed"),
    ("webhook without failures, failed", "/ui/webhooks/$quiet?status=failed"),
    ("webhook, last day, page 11", "/ui/webhooks/$busy?created_at.gte=$day_ago&offset=500"),
    ("delivery (3 attempts)", "/ui/deliveries/$failed"),
]
def get(path):
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    took = (time.perf_counter() - started) * 1000
    if response.status != 200:
        sys.exit(f"bench-ui: {path} answered {response.status}: {body[:300]!r}")
    return took
print(f"dashboard pages, {rows:,} deliveries over {days} days, release build, 200 requests each")
print(f"{'page':36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
for name, path in pages:
    for _ in range(10):
        get(path)
    times = sorted(get(path) for _ in range(200))
    p50 = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    print(f"{name:36} {p50:8.1f} {p99:8.1f} {times[-1]:8.1f}")
PY
