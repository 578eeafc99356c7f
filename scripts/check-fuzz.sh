#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document: schemathesis reads /swagger/doc.json of a
# running postmand and sends requests it generates from it, schema-valid and schema-invalid,
# to every operation, with a fixed seed and a fixed number of cases (about a minute on two
# cores). It fails on any 5xx, on a status code, Content-Type or body the document does not
# give for the operation, on a schema-invalid request that is accepted, and on a schema-valid
# request that is refused: the document must state the validators exactly.
# postmand runs with --role api only, so no delivery the fuzzer makes is ever sent anywhere.
# Needs POSTMAND_TEST_DATABASE_URL (scripts/test.sh sets it) and a built postmand in
# ${CARGO_TARGET_DIR:-target}/debug. schemathesis is installed, pinned with everything it
# uses, into a virtualenv in ${XDG_CACHE_HOME:-$HOME/.cache}/postmand/ (outside the checkout);
# as root it installs Debian's python3-venv when Python has no venv module, otherwise it says
# so and skips.
# POSTMAND_FUZZ_SEED replays another seed; POSTMAND_FUZZ_EXAMPLES sets the cases per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
. scripts/lib/check.sh
pg_find_bin

seed=${POSTMAND_FUZZ_SEED:-20261201}
examples=${POSTMAND_FUZZ_EXAMPLES:-150}

# --- schemathesis, pinned with its whole dependency set so a seed replays the same cases.
version=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/postmand/schemathesis-venv"
requirements="anyio==4.16.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3 click==8.5.1
graphql-core==3.3.2 harfile==0.6.0 hypothesis==6.170.17 hypothesis-graphql==0.13.5 idna==3.20
iniconfig==2.3.1 jsonschema_rs==0.60.3 markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2
packaging==26.4 pluggy==1.7.0 Pygments==2.21.0 pyrate-limiter==4.5.1 pytest==9.2.0 PyYAML==6.0.4
requests==2.34.2 rich==15.0.0 schemathesis==$version sortedcontainers==2.4.0
typing_extensions==4.16.0 urllib3==2.8.0 Werkzeug==3.1.9"
if [ "$(cat "$venv/pinned" 2>/dev/null)" != "$requirements" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "check-fuzz: installing Debian's python3-venv"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "check-fuzz: SKIPPED, Python has no venv module (apt-get install python3-venv)"
      exit 0
    fi
  fi
  echo "check-fuzz: installing schemathesis $version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # one requirement per word
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps $requirements
  printf '%s' "$requirements" >"$venv/pinned"
fi

# --- a throwaway database and postmand --role api on free ports of 127.0.0.1.
check_database fuzz_check
check_start_api
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  check_drop_database
  rm -rf "$work"
}
trap cleanup EXIT
if ! kill -0 "$server" 2>/dev/null; then
  cat "$work/postmand.log"
  echo "check-fuzz: FAILED, postmand did not start"
  exit 1
fi

# --- rows for the fuzzer to find: generated ids are random, so without these every read of
# an id would be a 404 and no 200 body would be checked against its schema. One webhook and
# its rows for reads, replaces and retries; another for the deletes.
api="http://127.0.0.1:$port"
python3 - "$api" "$work/ids" <<'EOF'
import json, sys, urllib.request
api, out = sys.argv[1], sys.argv[2]
def post(path, body):
    request = urllib.request.Request(api + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["id"]
webhook = {"name": "fuzz", "url": "http://127.0.0.1:9/hook", "content_type": "application/json",
           "valid_status_codes": [200], "active": True, "max_delivery_attempts": 3,
           "delivery_attempt_timeout": 1, "retry_min_backoff": 1, "retry_max_backoff": 2}
ids = {"webhook": post("/v1/webhooks", webhook), "doomed_webhook": post("/v1/webhooks", webhook)}
ids["delivery"] = post("/v1/deliveries", {"webhook_id": ids["webhook"], "payload": "{}"})
ids["finished_delivery"] = post("/v1/deliveries", {"webhook_id": ids["webhook"], "payload": "{}"})
ids["doomed_delivery"] = post("/v1/deliveries", {"webhook_id": ids["webhook"], "payload": "{}"})
ids["event"] = post("/v1/events", {"event_type": "fuzz.seeded", "payload": "{}"})
json.dump(ids, open(out, "w"))
EOF
seeded() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/ids" "$1"; }
# An attempt as a dispatcher records it, and a finished delivery that can be retried: only a
# worker makes these, and none runs here.
attempt=$(python3 -c 'import uuid; print(uuid.uuid4())')
pg_psql -q "$url" -v ON_ERROR_STOP=1 >/dev/null <<EOF
INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response,
    response_status_code, execution_duration, success, error)
VALUES ('$attempt', '$(seeded webhook)', '$(seeded finished_delivery)', E'POST /hook HTTP/1.1\r\n\r\n{}', '',
    0, 3, false, 'connection refused');
UPDATE deliveries SET status = 'failed', delivery_attempts = 3 WHERE id = '$(seeded finished_delivery)';
EOF

# --- the run. No example database, no cache and no values taken from responses (ids and
# timestamps differ from run to run), and one worker (with two, the order in which operations
# meet the same rows changes): what is sent depends on the seed alone, so a seed replays its
# run. The dictionaries put the rows above into half of the generated ids (path ids, and
# webhook_id in a delivery's body); the rest stay random.
cat >"$work/schemathesis.toml" <<EOF
color = false
cache = { enabled = false }
generation = { database = "none" }

[phases.coverage]
extra-data-sources = { responses = false }

[phases.fuzzing]
extra-data-sources = { responses = false }
error-feedback = { enabled = false }

[dictionaries]
webhook = { values = ["$(seeded webhook)"] }
doomed_webhook = { values = ["$(seeded doomed_webhook)"] }
delivery = { values = ["$(seeded delivery)", "$(seeded finished_delivery)"] }
doomed_delivery = { values = ["$(seeded doomed_delivery)"] }
attempt = { values = ["$attempt"] }
event = { values = ["$(seeded event)"] }

[[operations]]
include-operation-id = ["getWebhook", "updateWebhook"]
parameters = { "path.webhook_id" = { dictionary = "webhook", probability = 0.5 } }

[[operations]]
include-operation-id = "deleteWebhook"
parameters = { "path.webhook_id" = { dictionary = "doomed_webhook", probability = 0.5 } }

[[operations]]
include-operation-id = ["getDelivery", "retryDelivery"]
parameters = { "path.delivery_id" = { dictionary = "delivery", probability = 0.5 } }

[[operations]]
include-operation-id = "deleteDelivery"
parameters = { "path.delivery_id" = { dictionary = "doomed_delivery", probability = 0.5 } }

[[operations]]
include-operation-id = "getDeliveryAttempt"
parameters = { "path.delivery_attempt_id" = { dictionary = "attempt", probability = 0.5 } }

[[operations]]
include-operation-id = "getEvent"
parameters = { "path.event_id" = { dictionary = "event", probability = 0.5 } }

[[operations]]
include-operation-id = "createDelivery"
parameters = { "body.webhook_id" = { dictionary = "webhook", probability = 0.5 } }
EOF

# The rules JSON Schema cannot state, each described in the document: a schema-valid request
# that breaks one of them is refused, and that refusal is the right answer. The hook lets
# exactly these answers (status and whole body) through the positive_data_acceptance check
# (ST202); any other refusal of a schema-valid request still fails the run.
cat >"$work/hooks.py" <<'EOF'
import schemathesis

def error(status, code, message, details=None):
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return status, body

BACKOFF_ORDER = error(400, 4, "request validation failed", "retry_max_backoff: must be no less than retry_min_backoff.")
KEY_REUSED = error(422, 15, "idempotency key reused", "this Idempotency-Key was used with a different request body")
# A list's cursor must be a next_cursor the list gave (its bytes name the list and a row), and
# must not come with a non-zero offset: rules of a value's meaning and between two parameters.
LIST = [error(400, 18, "invalid cursor", "cursor: must be the next_cursor of an earlier page of the same list, unchanged."),
        error(400, 4, "request validation failed", "offset: must be 0 or absent with a cursor.")]
EXPECTED = {
    "GET /v1/webhooks": LIST,
    "GET /v1/deliveries": LIST,
    "GET /v1/delivery-attempts": LIST,
    "GET /v1/events": LIST,
    # retry_max_backoff >= retry_min_backoff: a rule between two fields.
    "POST /v1/webhooks": [BACKOFF_ORDER],
    "PUT /v1/webhooks/{webhook_id}": [BACKOFF_ORDER],
    # webhook_id must name a webhook that exists; and an Idempotency-Key must not have been
    # used with another body (the fuzzer draws keys from a small space, so it reuses them).
    "POST /v1/deliveries": [error(400, 4, "request validation failed", "webhook_id: webhook does not exist."), KEY_REUSED],
    "POST /v1/events": [KEY_REUSED],
    # until must be later than since: a rule between two fields.
    "POST /v1/webhooks/{webhook_id}/recover": [error(400, 4, "request validation failed", "until: must be later than since.")],
}

@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.code != "ST202":
        return True
    try:
        answer = (response.status_code, response.json())
    except ValueError:
        return True
    return answer not in EXPECTED.get(case.operation.label, [])
EOF

cd "$work"
started=$(date +%s)
status=0
SCHEMATHESIS_HOOKS="$work/hooks.py" "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run \
  "$api/swagger/doc.json" --seed "$seed" --max-examples "$examples" --workers 1 \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance \
  >"$work/schemathesis.log" 2>&1 || status=$?
took=$(($(date +%s) - started))
if [ "$status" != 0 ]; then
  cat "$work/schemathesis.log"
  echo "--- postmand's log:"
  tail -20 "$work/postmand.log"
  echo "check-fuzz: FAILED (seed $seed, $examples cases per operation, ${took}s); replay with POSTMAND_FUZZ_SEED=$seed bash scripts/check-fuzz.sh"
  exit 1
fi
summary=$(grep -E '^ +[0-9]+ generated' "$work/schemathesis.log" | sed 's/^ *//')
expected=$(grep -oE '^Filtered: [0-9]+' "$work/schemathesis.log" | grep -oE '[0-9]+' || echo 0)
echo "check-fuzz: ok, schemathesis $version found nothing in ${took}s (seed $seed, $examples cases per operation: $summary; $expected refusals of rules JSON Schema cannot state)"
