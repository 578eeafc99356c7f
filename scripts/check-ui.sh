#!/usr/bin/env bash
# Drives the dashboard (/ui/) in a real headless Chromium (Debian's package) against the debug
# binary in --role all with POSTMAND_API_TOKEN set, on a throwaway database: a local receiver
# answers one webhook 200 and another 500 with <script> and <img onerror> markers in its
# headers and body, and a delivery's payload carries the same markers. Then, as a person would
# (scripts/lib/check_ui.py, over the DevTools protocol): log in with a wrong and the right
# token, open every page and check it shows the real data, check the markers are text and no
# script ran, press the retry button and see the delivery sent again, search by id, log out.
# A POST without the CSRF token is refused (403). Screenshots of every page are kept in
# ${CARGO_TARGET_DIR:-target}/check-ui/; with --update-readme-screenshot the overview's also
# becomes docs/dashboard.png.
# Needs POSTMAND_TEST_DATABASE_URL (scripts/test.sh sets it) and a built postmand in
# ${CARGO_TARGET_DIR:-target}/debug.
# As root it installs chromium when missing; otherwise, without chromium, it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
. scripts/lib/check.sh
pg_find_bin

readme_screenshot=""
if [ "${1:-}" = "--update-readme-screenshot" ]; then
  readme_screenshot=docs/dashboard.png
fi

check_browser check-ui

check_database ui_check
port=$(pg_free_port)
health=$(pg_free_port)
receiver_port=$(pg_free_port)
artefacts="${CARGO_TARGET_DIR:-target}/check-ui"
rm -rf "$artefacts"
mkdir -p "$artefacts"
work=$(mktemp -d)
token="check-ui-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export POSTMAND_DATABASE_URL=$url POSTMAND_HTTP_PORT=$port POSTMAND_HEALTH_CHECK_HTTP_PORT=$health \
  POSTMAND_BIND_ADDRESS=127.0.0.1 POSTMAND_LOG_LEVEL=warn POSTMAND_API_TOKEN=$token \
  POSTMAND_WORKER_CONCURRENCY=2
bin="${CARGO_TARGET_DIR:-target}/debug/postmand"
server=""
receiver=""
cleanup() {
  kill $server $receiver 2>/dev/null || true
  wait $server $receiver 2>/dev/null || true
  check_drop_database
  rm -rf "$work"
}
trap cleanup EXIT

# The receiver: 200 on /ok; on /hostile, 500 with markers in a header and in the body.
python3 - "$receiver_port" <<'EOF' 2>/dev/null &
import http.server, sys
MARKERS = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hostile = self.path.startswith("/hostile")
        body = (MARKERS if hostile else "ok").encode()
        self.send_response(500 if hostile else 200)
        self.send_header("Content-Type", "text/html")
        if hostile:
            self.send_header("X-Evil", "<script>document.title='pwned'</script>")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
receiver=$!

"$bin" migrate >/dev/null 2>&1
"$bin" --role all 2>"$work/postmand.log" &
server=$!
check_wait_ports "$port" "$receiver_port"

status=0
python3 scripts/lib/check_ui.py --browser "$browser" --base "http://127.0.0.1:$port" \
  --receiver "http://127.0.0.1:$receiver_port" --token "$token" --work "$work" \
  --artefacts "$artefacts" || status=$?
if [ "$status" != 0 ]; then
  echo "check-ui: FAILED"
  tail -20 "$work/postmand.log" "$work/chromium.log" 2>/dev/null || true
  exit 1
fi
if [ -n "$readme_screenshot" ]; then
  mkdir -p "$(dirname "$readme_screenshot")"
  cp "$artefacts/readme.png" "$readme_screenshot"
  echo "check-ui: $readme_screenshot updated"
fi
