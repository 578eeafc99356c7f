//! Issue 16: endpoints that fail, move or rotate. 410 Gone deactivates; Retry-After stretches
//! the backoff up to the cap; a failure-only span deactivates; an operational webhook hears of
//! every deactivation; secrets rotate with two signatures during the overlap; failed deliveries
//! of a window are recovered. Times are checked against the database clock; spans of hours are
//! arranged in SQL, never slept through.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::http;
use crate::common::receiver::{Answer, Receiver, Recorded};
use crate::common::{TestApp, fixtures, wait_until};

const NO_POLL: (&str, &str) = ("POSTMAND_POLLING_INTERVAL", "60000");

/// Retries scheduled for later are picked up by the poll: tests that wait for one poll often.
const QUICK_POLL: (&str, &str) = ("POSTMAND_POLLING_INTERVAL", "100");

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The Standard Webhooks key of a secret: the base64 after `whsec_`, else its bytes.
fn key_of(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
        None => secret.as_bytes().to_vec(),
    }
}

/// The `v1,` signatures of `request` that `secret` verifies, as the Standard Webhooks libraries
/// check them: base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")).
fn verified_by(request: &Recorded, secret: &str) -> usize {
    let signed = format!(
        "{}.{}.{}",
        request.header("webhook-id").unwrap(),
        request.header("webhook-timestamp").unwrap(),
        String::from_utf8_lossy(&request.body)
    );
    let expected =
        base64::engine::general_purpose::STANDARD.encode(hmac(&key_of(secret), signed.as_bytes()));
    request
        .header("webhook-signature")
        .unwrap_or("")
        .split(' ')
        .filter(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()))
        .count()
}

fn sql(app: &TestApp, statement: &str) {
    app.db
        .client()
        .batch_execute(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn webhook(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/webhooks/{id}")).json()
}

/// Waits until webhook `id` is inactive and returns it.
fn deactivated(app: &TestApp, id: &str) -> Value {
    wait_until(&format!("webhook {id} to be deactivated"), || {
        let webhook = webhook(app, id);
        if webhook["active"] == false {
            Ok(webhook)
        } else {
            Err(webhook)
        }
    })
}

/// Waits until delivery `id` has `n` attempts and returns it.
fn after_attempts(app: &TestApp, id: &str, n: i64) -> Value {
    wait_until(&format!("delivery {id} to have {n} attempts"), || {
        let delivery = app.get(&format!("/v1/deliveries/{id}")).json();
        if delivery["delivery_attempts"].as_i64() >= Some(n) {
            Ok(delivery)
        } else {
            Err(delivery)
        }
    })
}

#[test]
fn a_410_deactivates_the_webhook_and_reactivating_resumes_its_deliveries() {
    // The endpoint is gone for its first request, then back.
    let receiver = Receiver::start(|n, _| Answer::status(if n == 0 { 410 } else { 200 }));
    let app = TestApp::start_all("failing_410", &[QUICK_POLL]);
    let id = fixtures::webhook_id(
        &app,
        json!({"url": receiver.url("/"), "retry_min_backoff": 1, "retry_max_backoff": 1}),
    );
    let first = fixtures::delivery_id(&app, &id, "first");
    let webhook = deactivated(&app, &id);
    assert_eq!(webhook["disabled_reason"], "endpoint answered 410 Gone");
    assert!(webhook["disabled_at"].is_string());
    // The 410 failed its attempt; the delivery waits, paused with its webhook.
    let paused = app.get(&format!("/v1/deliveries/{first}")).json();
    assert_eq!(
        (
            paused["status"].clone(),
            paused["delivery_attempts"].clone()
        ),
        (json!("pending"), json!(1))
    );
    let attempt = &app.attempts(&first)[0];
    assert_eq!(attempt["response_status_code"], 410);
    assert_eq!(attempt["success"], false);
    let second = fixtures::delivery_id(&app, &id, "second");
    let metrics = http::request(app.health, "GET", "/metrics", &[], None).text();
    assert!(
        metrics.contains("postmand_webhooks_disabled_total{reason=\"gone\"} 1"),
        "{metrics}"
    );
    let gone_later = app.get(&format!("/v1/deliveries/{second}")).json();
    assert_eq!(gone_later["status"], "pending");

    // PUT with active true clears the reason and resumes both.
    let body = fixtures::merge(
        fixtures::webhook_body(),
        json!({"url": receiver.url("/"), "retry_min_backoff": 1, "retry_max_backoff": 1}),
    );
    let reactivated = app.put(&format!("/v1/webhooks/{id}"), &body).json();
    assert_eq!(reactivated["active"], true);
    assert_eq!(reactivated["disabled_reason"], Value::Null);
    assert_eq!(reactivated["disabled_at"], Value::Null);
    assert_eq!(app.finished(&second)["status"], "succeeded");
    assert_eq!(app.finished(&first)["status"], "succeeded");
}

#[test]
fn a_410_listed_as_valid_is_a_success() {
    let receiver = Receiver::status(410);
    let app = TestApp::start_all("failing_410_valid", &[NO_POLL]);
    let id = fixtures::webhook_id(
        &app,
        json!({"url": receiver.url("/"), "valid_status_codes": [200, 410]}),
    );
    let delivery = fixtures::delivery_id(&app, &id, "x");
    assert_eq!(app.finished(&delivery)["status"], "succeeded");
    assert_eq!(webhook(&app, &id)["active"], true);
}

#[test]
fn retry_after_sets_the_next_attempt_within_the_cap() {
    // Each path answers a slow-down status with its own Retry-After.
    let at_40s = chrono::Utc::now() + chrono::Duration::seconds(40);
    let in_40s = httpdate(at_40s);
    let in_2h = httpdate(chrono::Utc::now() + chrono::Duration::hours(2));
    let answers: Vec<(&str, u16, String)> = vec![
        ("/seconds", 429, "30".to_string()),
        ("/seconds-over-cap", 503, "3600".to_string()),
        ("/date", 504, in_40s),
        ("/date-over-cap", 429, in_2h),
        ("/malformed", 429, "soon".to_string()),
        ("/not-slow-down", 500, "30".to_string()),
    ];
    let script = answers.clone();
    let receiver = Receiver::start(move |_, request| {
        let (_, status, retry_after) = script
            .iter()
            .find(|(path, _, _)| *path == request.url)
            .expect("a known path");
        Answer {
            headers: vec![("Retry-After".to_string(), retry_after.clone())],
            ..Answer::status(*status)
        }
    });
    let app = TestApp::start_all("failing_retry_after", &[NO_POLL]);
    let mut client = app.db.client();
    for (path, _, _) in &answers {
        let id = fixtures::webhook_id(
            &app,
            json!({"url": receiver.url(path), "retry_min_backoff": 5, "retry_max_backoff": 60}),
        );
        let delivery = fixtures::delivery_id(&app, &id, path);
        after_attempts(&app, &delivery, 1);
        // The wait, by the database clock: next due time minus the end of the attempt.
        let row = client
            .query_one(
                "SELECT extract(epoch FROM d.scheduled_at - a.created_at)::float8, a.error, \
                     extract(epoch FROM a.created_at)::float8 \
                 FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id \
                 WHERE d.id = $1::text::uuid",
                &[&delivery],
            )
            .unwrap();
        let (wait, error, attempted): (f64, String, f64) = (row.get(0), row.get(1), row.get(2));
        let (expected, tolerance, note): (f64, f64, &str) = match *path {
            "/seconds" => (30.0, 0.01, ""),
            "/seconds-over-cap" => (
                60.0,
                0.01,
                "Retry-After asked for 3600 s; waiting the webhook's retry_max_backoff of 60 s",
            ),
            // The date asks for the time from the attempt to it (40 s after the test began,
            // less however long the paths before it took); an HTTP date has whole seconds.
            "/date" => (at_40s.timestamp() as f64 - attempted, 2.0, ""),
            "/date-over-cap" => (60.0, 0.01, "Retry-After asked for"),
            "/malformed" | "/not-slow-down" => (5.0, 0.01, ""),
            _ => unreachable!(),
        };
        assert!(
            (wait - expected).abs() <= tolerance,
            "{path}: waits {wait} s, expected {expected}"
        );
        assert!(error.starts_with(note), "{path}: {error:?}");
        if note.is_empty() {
            assert_eq!(error, "", "{path}");
        }
    }
}

/// An IMF-fixdate, as `Retry-After` carries it.
fn httpdate(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[test]
fn a_webhook_failing_for_the_whole_span_is_deactivated_and_a_success_resets_the_clock() {
    let failing = Receiver::status(500);
    // First request fails, then every one succeeds.
    let recovering = Receiver::start(|n, _| Answer::status(if n == 0 { 500 } else { 200 }));
    let app = TestApp::start_all(
        "failing_auto_disable",
        &[QUICK_POLL, ("POSTMAND_DISABLE_AFTER_HOURS", "1")],
    );
    let settings = |url: String| json!({"url": url, "max_delivery_attempts": 50, "retry_min_backoff": 1, "retry_max_backoff": 1});
    let short = fixtures::webhook_id(&app, settings(failing.url("/short")));
    let long = fixtures::webhook_id(&app, settings(failing.url("/long")));
    let healed = fixtures::webhook_id(&app, settings(recovering.url("/")));
    let (short_delivery, long_delivery, healed_delivery) = (
        fixtures::delivery_id(&app, &short, "a"),
        fixtures::delivery_id(&app, &long, "b"),
        fixtures::delivery_id(&app, &healed, "c"),
    );
    for delivery in [&short_delivery, &long_delivery, &healed_delivery] {
        after_attempts(&app, delivery, 1);
    }
    // As if both had failed for two hours: `short` with 5 failed attempts, `long` with 9.
    sql(
        &app,
        &format!(
            "UPDATE webhook_failures SET failing_since = now() - interval '2 hours', failures = 5 \
             WHERE webhook_id = '{short}';
             UPDATE webhook_failures SET failing_since = now() - interval '2 hours', failures = 9 \
             WHERE webhook_id = '{long}';"
        ),
    );
    // The next failure is the tenth of `long`: deactivated.
    let webhook = deactivated(&app, &long);
    let reason = webhook["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("every attempt failed for 1 hours: 10 failed attempts since "),
        "{reason}"
    );
    let metrics = http::request(app.health, "GET", "/metrics", &[], None).text();
    assert!(metrics.contains("postmand_webhooks_disabled_total{reason=\"failing\"} 1"));
    // `short` goes on failing past its sixth attempt but has fewer than 10 in the span.
    after_attempts(&app, &short_delivery, 3);
    assert_eq!(self::webhook(&app, &short)["active"], true);
    // A success deletes the clock.
    assert_eq!(app.finished(&healed_delivery)["status"], "succeeded");
    let clocks: i64 = app
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM webhook_failures WHERE webhook_id = $1::text::uuid",
            &[&healed],
        )
        .unwrap()
        .get(0);
    assert_eq!(clocks, 0);
}

#[test]
fn the_operational_webhook_hears_of_a_deactivation_with_a_signed_notice() {
    let gone = Receiver::status(410);
    let operations = Receiver::status(200);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let url = operations.url("/ops");
    let app = TestApp::start_all(
        "failing_operational",
        &[
            NO_POLL,
            ("POSTMAND_OPERATIONAL_WEBHOOK_URL", &url),
            ("POSTMAND_OPERATIONAL_WEBHOOK_SECRET", secret),
        ],
    );
    let id = fixtures::webhook_id(&app, json!({"url": gone.url("/")}));
    // Events never reach the operational webhook: only the one it subscribes to.
    let event = app
        .post(
            "/v1/events",
            &json!({"event_type": "order.created", "payload": "{}"}),
        )
        .json();
    assert_eq!(event["deliveries"], 1);
    fixtures::delivery_id(&app, &id, "x");
    let notice = operations.next_arrival();
    assert_eq!(notice.url, "/ops");
    let body: Value = serde_json::from_slice(&notice.body).expect("a JSON notice");
    let webhook = deactivated(&app, &id);
    assert_eq!(body["type"], "webhook.disabled");
    assert_eq!(body["webhook_id"], json!(id));
    assert_eq!(body["reason"], "endpoint answered 410 Gone");
    let at = body["at"].as_str().expect("at");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(at).unwrap(),
        chrono::DateTime::parse_from_rfc3339(webhook["disabled_at"].as_str().unwrap()).unwrap()
    );
    assert_eq!(verified_by(&notice, secret), 1, "{:?}", notice.headers);
    // It is an ordinary delivery of its own webhook: recorded like any other.
    let delivery = notice.header("webhook-id").unwrap();
    assert_eq!(app.finished(delivery)["status"], "succeeded");
    // Clients cannot forge notices: the type is reserved, and no event reaches the operational
    // webhook even when a PUT leaves it subscribed to every type.
    let forged = app.post(
        "/v1/events",
        &json!({"event_type": "postmand.operational", "payload": "{\"type\":\"webhook.disabled\"}"}),
    );
    assert_eq!(forged.status, 400, "{}", forged.text());
    let operational = "706f7374-6d61-4e64-8000-000000000001";
    let replaced = app.put(
        &format!("/v1/webhooks/{operational}"),
        &fixtures::merge(
            fixtures::webhook_body(),
            json!({"url": url, "secret_token": secret}),
        ),
    );
    assert_eq!(replaced.json()["event_types"], json!([]));
    let listening = fixtures::webhook_id(&app, json!({"url": operations.url("/client")}));
    let event = app
        .post(
            "/v1/events",
            &json!({"event_type": "order.shipped", "payload": "{}"}),
        )
        .json();
    assert_eq!(event["deliveries"], 1, "the client's webhook only");
    let made = app
        .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
        .json();
    assert_eq!(made["delivery_statuses"][0]["webhook_id"], json!(listening));
}

#[test]
fn deleting_a_webhook_whose_attempt_fails_in_flight_waits_and_succeeds() {
    // The dispatcher holds the delivery's lock while the delete's cascade waits for it; the
    // failure's clock must not then wait for the webhook row the delete holds (a deadlock).
    let receiver = Receiver::start(|_, _| Answer {
        delay: std::time::Duration::from_millis(600),
        ..Answer::status(500)
    });
    let app = TestApp::start_all("failing_delete_in_flight", &[QUICK_POLL]);
    let id = fixtures::webhook_id(&app, json!({"url": receiver.url("/")}));
    fixtures::delivery_id(&app, &id, "x");
    wait_until("the attempt to be in flight", || {
        if receiver.count() > 0 {
            Ok(())
        } else {
            Err(())
        }
    });
    let deleted = app.delete(&format!("/v1/webhooks/{id}"));
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).status, 404);
}

#[test]
fn a_bad_operational_webhook_setting_stops_the_start() {
    let db = crate::common::TestDb::new("failing_operational_config");
    for (url, secret, named) in [
        ("ftp://x", "s", "POSTMAND_OPERATIONAL_WEBHOOK_URL"),
        (
            "http://127.0.0.1:9/",
            "",
            "POSTMAND_OPERATIONAL_WEBHOOK_SECRET",
        ),
        (
            "http://127.0.0.1:9/",
            "whsec_%%%",
            "POSTMAND_OPERATIONAL_WEBHOOK_SECRET",
        ),
    ] {
        let error = postmand::config::Config::from_lookup(|name| match name {
            "POSTMAND_DATABASE_URL" => Some(db.url.clone()),
            "POSTMAND_OPERATIONAL_WEBHOOK_URL" => Some(url.to_string()),
            "POSTMAND_OPERATIONAL_WEBHOOK_SECRET" => Some(secret.to_string()),
            _ => None,
        })
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(named), "{text}");
        assert!(
            !text.contains("whsec_%%%"),
            "secrets stay out of messages: {text}"
        );
    }
}

#[test]
fn a_rotated_secret_signs_beside_the_old_one_until_it_expires() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("failing_rotation", &[NO_POLL]);
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_dGhpcyBpcyB0aGUgbmV3IHNlY3JldCBrZXkgISE=";
    let id = fixtures::webhook_id(&app, json!({"url": receiver.url("/"), "secret_token": old}));
    let rotated = app.post(
        &format!("/v1/webhooks/{id}/rotate-secret"),
        &json!({"secret_token": new, "previous_valid_for": 3600}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let rotated = rotated.json();
    assert_eq!(rotated["secret_token"], new);
    let expires = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"]
            .as_str()
            .expect("expiry shown"),
    )
    .unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (expires.with_timezone(&chrono::Utc) - in_an_hour)
            .num_seconds()
            .abs()
            < 60
    );

    let delivery = fixtures::delivery_id(&app, &id, "{\"during\":true}");
    let during = receiver.next_arrival();
    assert_eq!(during.header("webhook-id"), Some(delivery.as_str()));
    let signatures: Vec<&str> = during
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert_eq!(verified_by(&during, new), 1, "the new secret signs");
    assert_eq!(verified_by(&during, old), 1, "the old secret still signs");
    assert!(
        signatures[0].ends_with(
            &base64::engine::general_purpose::STANDARD.encode(hmac(
                &key_of(new),
                format!(
                    "{}.{}.{}",
                    delivery,
                    during.header("webhook-timestamp").unwrap(),
                    "{\"during\":true}"
                )
                .as_bytes()
            ))
        ),
        "the new one first"
    );
    let hub = hex(&hmac(new.as_bytes(), b"{\"during\":true}"));
    assert_eq!(
        during.header("x-hub-signature-256"),
        Some(format!("sha256={hub}").as_str())
    );

    // Once the old one expires, only the new one signs.
    sql(
        &app,
        &format!(
            "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' \
             WHERE id = '{id}'"
        ),
    );
    assert_eq!(
        webhook(&app, &id)["previous_secret_expires_at"],
        Value::Null
    );
    fixtures::delivery_id(&app, &id, "after");
    let after = receiver.next_arrival();
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert_eq!(verified_by(&after, new), 1);
    assert_eq!(verified_by(&after, old), 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rotation_generates_a_secret_and_checks_its_input() {
    let app = TestApp::start("failing_rotation_input");
    let id = fixtures::webhook_id(&app, json!({}));
    // No body at all: a generated secret, the old one kept for a day.
    let response = http::request(
        app.api,
        "POST",
        &format!("/v1/webhooks/{id}/rotate-secret"),
        &[],
        None,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let generated = response.json()["secret_token"]
        .as_str()
        .unwrap()
        .to_string();
    let key = key_of(&generated);
    assert!(generated.starts_with("whsec_"), "{generated}");
    assert_eq!(key.len(), 32);
    assert!(response.json()["previous_secret_expires_at"].is_string());
    let again = app
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &json!({"previous_valid_for": 0}),
        )
        .json();
    assert_ne!(
        again["secret_token"],
        json!(generated),
        "a fresh secret each time"
    );
    assert_eq!(
        again["previous_secret_expires_at"],
        Value::Null,
        "0: not kept"
    );
    for (body, details) in [
        (
            json!({"previous_valid_for": -1}),
            "previous_valid_for: must be between 0 and 2592000 seconds.",
        ),
        (
            json!({"previous_valid_for": 2_592_001}),
            "previous_valid_for: must be between 0 and 2592000 seconds.",
        ),
        (
            json!({"secret_token": ""}),
            "secret_token: cannot be blank.",
        ),
        (
            json!({"secret_token": "whsec_%%%"}),
            "secret_token: must be base64 after the whsec_ prefix.",
        ),
    ] {
        let response = app.post(&format!("/v1/webhooks/{id}/rotate-secret"), &body);
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed", "details": details})
        );
    }
    let malformed = app.send(
        "POST",
        &format!("/v1/webhooks/{id}/rotate-secret"),
        "{\"previous_valid_for\":\"1\"}",
    );
    assert_eq!(malformed.json()["code"], 3);
    app.assert_error(
        "POST",
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d/rotate-secret",
        404,
        json!({"code": 5, "message": "webhook not found"}),
    );
}

#[test]
fn recover_sends_the_windows_failed_deliveries_again_once() {
    let app = TestApp::start("failing_recover");
    let id = fixtures::webhook_id(&app, json!({}));
    let other = fixtures::webhook_id(&app, json!({}));
    // Deliveries arranged in SQL, aged by the database clock.
    let insert = |webhook: &str, status: &str, age: &str| -> String {
        app.db
            .client()
            .query_one(
                &format!(
                    "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
                         status, created_at, updated_at) \
                     VALUES (gen_random_uuid(), '{webhook}', 'x', now() - interval '{age}', 5, '{status}', \
                         now() - interval '{age}', now() - interval '{age}') RETURNING id::text"
                ),
                &[],
            )
            .unwrap()
            .get(0)
    };
    let too_old = insert(&id, "failed", "3 hours");
    let in_window = insert(&id, "failed", "2 hours");
    let at_start = insert(&id, "failed", "150 minutes");
    let pending = insert(&id, "pending", "2 hours");
    let succeeded = insert(&id, "succeeded", "2 hours");
    let too_new = insert(&id, "failed", "10 minutes");
    let other_webhook = insert(&other, "failed", "2 hours");
    let since = chrono::Utc::now() - chrono::Duration::minutes(150);
    let until = chrono::Utc::now() - chrono::Duration::minutes(30);
    let window = json!({"since": since.to_rfc3339(), "until": until.to_rfc3339()});
    let path = format!("/v1/webhooks/{id}/recover");
    let first = app.post(&path, &window);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json(), json!({"recovered": 1, "more": false}));
    // `at_start` was inserted a moment before `since` was taken: outside by the database clock.
    let status = |delivery: &str| app.get(&format!("/v1/deliveries/{delivery}")).json();
    let recovered = status(&in_window);
    assert_eq!(recovered["status"], "pending");
    assert_eq!(recovered["delivery_attempts"], 0, "a fresh budget");
    for (delivery, expected) in [
        (&too_old, "failed"),
        (&at_start, "failed"),
        (&pending, "pending"),
        (&succeeded, "succeeded"),
        (&too_new, "failed"),
        (&other_webhook, "failed"),
    ] {
        assert_eq!(status(delivery)["status"], expected, "{delivery}");
    }
    assert_eq!(
        status(&pending)["delivery_attempts"],
        5,
        "pending ones are untouched"
    );
    // Twice changes nothing.
    assert_eq!(
        app.post(&path, &window).json(),
        json!({"recovered": 0, "more": false})
    );
    // Without `until`: up to now.
    let open = app.post(
        &path,
        &json!({"since": (chrono::Utc::now() - chrono::Duration::hours(4)).to_rfc3339()}),
    );
    assert_eq!(open.json(), json!({"recovered": 3, "more": false}));

    for (body, details) in [
        (json!({}), "since: cannot be blank."),
        (
            json!({"since": "yesterday"}),
            "since: must be an RFC 3339 date-time.",
        ),
        (
            json!({"since": until.to_rfc3339(), "until": since.to_rfc3339()}),
            "until: must be later than since.",
        ),
    ] {
        let response = app.post(&path, &body);
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed", "details": details})
        );
    }
    app.assert_error(
        "POST",
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d/recover",
        400,
        json!({"code": 3, "message": "malformed request body"}),
    );
    let missing = app.post(
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d/recover",
        &window,
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], 5);
}
