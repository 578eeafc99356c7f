#!/usr/bin/env bash
# Loads /swagger/index.html in a real headless Chromium (Debian's package) against a running
# postmand and checks that Swagger UI 5 fetched the OpenAPI document and rendered every
# operation of it. Then loads the page again with ?url= and ?configUrl= naming a document that
# a local server offers, and checks that the page still shows ours and never asked for that one
# (configuration from the query string is off: CVE-2021-46708).
# Needs POSTMAND_TEST_DATABASE_URL (scripts/test.sh sets it) and a built postmand in
# ${CARGO_TARGET_DIR:-target}/debug.
# As root it installs chromium when missing; otherwise, without chromium, it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
. scripts/lib/check.sh
pg_find_bin

check_browser check-swagger-ui

check_database swagger_ui_check
check_start_api
evil=""
cleanup() {
  kill "$server" $evil 2>/dev/null || true
  wait "$server" $evil 2>/dev/null || true
  check_drop_database
  rm -rf "$work"
}
trap cleanup EXIT

# A server of the document the query string names: it logs every request it gets, and would
# serve (with CORS, so a browser could use it) a document of one operation, /evil.
evil_port=$(pg_free_port)
python3 - "$evil_port" "$work/evil.log" <<'EOF' 2>/dev/null &
import http.server, json, sys
port, log = int(sys.argv[1]), sys.argv[2]
doc = {"openapi": "3.0.3", "info": {"title": "evil", "version": "1"},
       "paths": {"/evil": {"get": {"operationId": "evil", "responses": {"200": {"description": "x"}}}}}}
config = {"url": f"http://127.0.0.1:{port}/evil.json"}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        body = json.dumps(config if self.path.startswith("/config") else doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
evil=$!
check_wait_ports "$evil_port"
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$evil_port/warm-up').read()"
: >"$work/evil.log"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/swagger/doc.json').read().decode())" >"$work/doc.json"

# Flags as this machine's notes advise: no sandbox as root, and no background networking (the
# machine has no internet, and the page must not need it).
render() {
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile-$2" --virtual-time-budget=15000 \
    --dump-dom "http://127.0.0.1:$port/swagger/index.html$1" >"$work/dom-$2.html" 2>"$work/chromium-$2.log" || true
}
evil_url="http://127.0.0.1:$evil_port/evil.json"
render "" plain
render "?url=$evil_url&configUrl=http://127.0.0.1:$evil_port/config.json" query

# Checks one rendered page: Swagger UI 5 drew it (the page notes the version on <html>), and
# every operation of doc.json is there once, with its method and path, and nothing else.
checked=0
python3 - "$work/doc.json" "$work/dom-plain.html" "$work/dom-query.html" <<'EOF' || checked=1
import json, re, sys
doc = json.load(open(sys.argv[1]))
want = sorted((method, path, op["tags"][0], op["operationId"])
              for path, item in doc["paths"].items()
              for method, op in item.items() if isinstance(op, dict) and "operationId" in op)
failed = False
for name in sys.argv[2:]:
    dom = open(name).read()
    version = re.search(r'<html[^>]* data-swagger-ui-version="([^"]*)"', dom)
    if not version or not re.fullmatch(r"5\.\d+\.\d+", version.group(1)):
        print(f"check-swagger-ui: {name}: Swagger UI version {version and version.group(1)!r}, want 5.x")
        failed = True
    got = sorted(re.findall(r'<div class="opblock opblock-([a-z]+)[^"]*" id="operations-([^"]+)"', dom))
    expected = sorted((method, f"{tag}-{op_id}") for method, _, tag, op_id in want)
    if got != expected:
        print(f"check-swagger-ui: {name}: rendered operations {got}, want {expected}")
        failed = True
    for method, path, _, _ in want:
        if f'data-path="{path}"' not in dom:
            print(f"check-swagger-ui: {name}: {method.upper()} {path} is not in the rendered page")
            failed = True
    if "/evil" in dom:
        print(f"check-swagger-ui: {name}: the page shows the document the query string named")
        failed = True
sys.exit(1 if failed else 0)
EOF
if [ -s "$work/evil.log" ]; then
  echo "check-swagger-ui: FAILED, the page fetched what the query string named: $(tr '\n' ' ' <"$work/evil.log")"
  checked=1
fi
if [ "$checked" != 0 ]; then
  echo "check-swagger-ui: FAILED"
  tail -20 "$work/chromium-plain.log" "$work/chromium-query.log"
  exit 1
fi
version=$(grep -o 'data-swagger-ui-version="[^"]*"' "$work/dom-plain.html" | head -1 | cut -d'"' -f2)
operations=$(python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print(sum(1 for i in d['paths'].values() for o in i.values() if isinstance(o, dict) and 'operationId' in o))" "$work/doc.json")
echo "check-swagger-ui: ok, Chromium rendered all $operations operations from /swagger/doc.json with Swagger UI $version, and ignored ?url= and ?configUrl="
