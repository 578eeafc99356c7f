#!/usr/bin/env bash
# Loads /swagger/index.html in a real headless Chromium (Debian's package) against a running
# postmand and checks that the UI fetched the OpenAPI document and rendered every operation.
# Needs POSTMAND_TEST_DATABASE_URL (scripts/test.sh sets it) and a built target/debug/postmand.
# As root it installs chromium when missing; otherwise, without chromium, it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
pg_find_bin

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "check-swagger-ui: installing Debian's chromium"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
  else
    echo "check-swagger-ui: SKIPPED, chromium is not installed (apt-get install chromium)"
    exit 0
  fi
fi

db=swagger_ui_check
admin=$POSTMAND_TEST_DATABASE_URL
export PGOPTIONS="-c client_min_messages=warning"
url="${admin%/*}/$db"
pg_psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
health=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
export POSTMAND_DATABASE_URL=$url POSTMAND_HTTP_PORT=$port POSTMAND_HEALTH_CHECK_HTTP_PORT=$health \
  POSTMAND_BIND_ADDRESS=127.0.0.1 POSTMAND_LOG_LEVEL=warn
./target/debug/postmand migrate >/dev/null 2>&1
./target/debug/postmand --role api 2>"$work/postmand.log" &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  pg_psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done

# Flags as this machine's notes advise: no sandbox as root, and no background networking (the
# machine has no internet, and the page must not need it).
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --virtual-time-budget=15000 \
  --dump-dom "http://127.0.0.1:$port/swagger/index.html" >"$work/dom.html" 2>"$work/chromium.log" || true

operations=$(grep -o 'class="opblock opblock-[a-z]*' "$work/dom.html" | wc -l)
missing=0
for path in /v1/webhooks /v1/webhooks/{webhook_id} /v1/deliveries /v1/deliveries/{delivery_id} \
            /v1/deliveries/{delivery_id}/retry /v1/delivery-attempts /v1/delivery-attempts/{delivery_attempt_id}; do
  if ! grep -qF "data-path=\"$path\"" "$work/dom.html"; then
    echo "check-swagger-ui: path $path is not in the rendered page"
    missing=1
  fi
done
if [ "$operations" -ne 12 ] || [ $missing = 1 ]; then
  echo "check-swagger-ui: FAILED, rendered $operations operations (want 12)"
  tail -20 "$work/chromium.log"
  exit 1
fi
echo "check-swagger-ui: ok, Chromium rendered all $operations operations from /swagger/doc.json"
