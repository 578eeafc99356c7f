# What the scripted checks share (check-swagger-ui.sh, check-ui.sh, check-fuzz.sh, and
# bench-ui.sh's wait): a browser, a throwaway database, waiting for a port. Source it after
# scripts/lib/pg.sh and pg_find_bin.
#
# check_browser NAME       sets $browser to Chromium, installing Debian's package when run as
#                          root; otherwise, without one, prints that NAME is skipped and exits 0.
# check_database DB        a new, empty database DB on the server of
#                          $POSTMAND_TEST_DATABASE_URL; sets $db, $admin (the server's URL) and
#                          $url (the database's).
# check_drop_database      drops it again, quietly (for a cleanup trap).
# check_wait_ports PORT... waits up to 10 s until every PORT on 127.0.0.1 accepts a connection.
# check_start_api          migrates $url and starts the debug binary in --role api on free
#                          loopback ports, its log in $work/postmand.log ($work made here); sets
#                          $port, $health, $work and $server, and waits for the API's port.

check_browser() {
  browser=$(command -v chromium || command -v chromium-browser || true)
  if [ -n "$browser" ]; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$1: installing Debian's chromium"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
  else
    echo "$1: SKIPPED, chromium is not installed (apt-get install chromium)"
    exit 0
  fi
}

check_database() {
  db=$1
  admin=$POSTMAND_TEST_DATABASE_URL
  export PGOPTIONS="-c client_min_messages=warning"
  url="${admin%/*}/$db"
  pg_psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
}

check_drop_database() {
  pg_psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

check_wait_ports() {
  local connect="" each
  for each in "$@"; do
    connect="$connect socket.create_connection(('127.0.0.1', $each), 0.2);"
  done
  for _ in $(seq 1 100); do
    if python3 -c "import socket;$connect" 2>/dev/null; then return; fi
    sleep 0.1
  done
}

check_start_api() {
  port=$(pg_free_port)
  health=$(pg_free_port)
  work=$(mktemp -d)
  export POSTMAND_DATABASE_URL=$url POSTMAND_HTTP_PORT=$port POSTMAND_HEALTH_CHECK_HTTP_PORT=$health \
    POSTMAND_BIND_ADDRESS=127.0.0.1 POSTMAND_LOG_LEVEL=warn
  local bin="${CARGO_TARGET_DIR:-target}/debug/postmand"
  "$bin" migrate >/dev/null 2>&1
  "$bin" --role api 2>"$work/postmand.log" &
  server=$!
  check_wait_ports "$port"
}
