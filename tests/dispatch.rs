//! The dispatcher in-process against real receivers: outcomes, the attempt record, signatures,
//! backoff, inactive webhooks, isolation, hostile responses and both wake-up paths.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use postmand::cli::Role;
use postmand::store::queue;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::common::receiver::{Answer, RawReceiver, Receiver};
use crate::common::{TestApp, TestDb, fixtures, wait_until};

/// Polling so slow that only a wake-up can explain a prompt delivery.
const NO_POLL: (&str, &str) = ("POSTMAND_POLLING_INTERVAL", "60000");

fn webhook(app: &TestApp, url: &str, overrides: Value) -> String {
    let body = fixtures::merge(json!({"url": url, "max_delivery_attempts": 1}), overrides);
    fixtures::webhook(app, body)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn deliver(app: &TestApp, webhook_id: &str, payload: &str) -> String {
    fixtures::delivery(app, webhook_id, payload)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn attempts(app: &TestApp, delivery_id: &str) -> Vec<Value> {
    app.attempts(delivery_id)
}

fn hex_hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn delivery_to_accepting_endpoint_succeeds_with_one_attempt() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("dispatch_success", &[NO_POLL]);
    let webhook_id = webhook(
        &app,
        &receiver.url("/hook?x=1"),
        json!({"secret_token": ""}),
    );
    let id = deliver(&app, &webhook_id, "{\"success\": true}");
    let delivery = app.finished(&id);
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(delivery["delivery_attempts"], 1);
    let attempts = attempts(&app, &id);
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(attempt["success"], true);
    assert_eq!(attempt["response_status_code"], 200);
    assert_eq!(attempt["error"], "");
    assert_eq!(attempt["webhook_id"], json!(webhook_id));
    let raw_request = attempt["raw_request"].as_str().unwrap();
    assert!(
        raw_request.starts_with(&format!(
            "POST /hook?x=1 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
            receiver.addr
        )),
        "{raw_request}"
    );
    assert!(
        raw_request.ends_with("\r\n\r\n{\"success\": true}"),
        "{raw_request}"
    );
    let raw_response = attempt["raw_response"].as_str().unwrap();
    assert!(
        raw_response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{raw_response}"
    );
    assert!(raw_response.ends_with("\r\n\r\nok"), "{raw_response}");
    let request = &receiver.requests.lock().unwrap()[0];
    assert_eq!(request.url, "/hook?x=1");
    assert_eq!(request.body, b"{\"success\": true}");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("postmand/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    assert_eq!(request.header("x-hub-signature"), None);
    assert_eq!(request.header("webhook-signature"), None);
}

#[test]
fn signature_headers_match_independent_computation() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("dispatch_signatures", &[NO_POLL]);
    let webhook_id = webhook(
        &app,
        &receiver.url("/"),
        json!({"secret_token": "my-secret-token", "content_type": "text/plain"}),
    );
    let id = deliver(&app, &webhook_id, "{\"success\": true}");
    app.finished(&id);
    let request = receiver.requests.lock().unwrap()[0].clone();
    assert_eq!(request.header("content-type"), Some("text/plain"));
    // The original's published vector.
    assert_eq!(
        request.header("x-hub-signature"),
        Some("3fc5d4b8ff4efb404be24faf543667d29902d6a1306bd0c1ef2084497300cee9")
    );
    assert_eq!(
        request.header("x-hub-signature-256"),
        Some("sha256=3fc5d4b8ff4efb404be24faf543667d29902d6a1306bd0c1ef2084497300cee9")
    );
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    let signed = format!("{id}.{timestamp}.{{\"success\": true}}");
    use base64::Engine;
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD
            .encode(hex_hmac(b"my-secret-token", signed.as_bytes()))
    );
    assert_eq!(request.header("webhook-signature"), Some(expected.as_str()));
}

#[test]
fn whsec_secret_signs_with_the_decoded_key() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("dispatch_whsec", &[NO_POLL]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let webhook_id = webhook(&app, &receiver.url("/"), json!({"secret_token": secret}));
    let id = deliver(&app, &webhook_id, "payload");
    app.finished(&id);
    let request = receiver.requests.lock().unwrap()[0].clone();
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let expected = format!(
        "v1,{}",
        engine.encode(hex_hmac(
            &key,
            format!("{id}.{timestamp}.payload").as_bytes()
        ))
    );
    assert_eq!(request.header("webhook-signature"), Some(expected.as_str()));
    let invalid = app.post(
        "/v1/webhooks",
        &fixtures::merge(
            fixtures::webhook_body(),
            json!({"secret_token": "whsec_not base64"}),
        ),
    );
    assert_eq!(
        invalid.json()["details"],
        "secret_token: must be base64 after the whsec_ prefix."
    );
}

#[test]
fn failing_endpoint_retries_on_the_backoff_schedule_then_fails() {
    let receiver = Receiver::status(500);
    let app = TestApp::start_all("dispatch_backoff", &[("POSTMAND_POLLING_INTERVAL", "50")]);
    let webhook_id = webhook(
        &app,
        &receiver.url("/"),
        json!({"max_delivery_attempts": 3, "retry_min_backoff": 1, "retry_max_backoff": 2}),
    );
    let id = deliver(&app, &webhook_id, "x");
    let delivery = app.finished(&id);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["delivery_attempts"], 3);
    let uuid = Uuid::parse_str(&id).unwrap();
    let gaps: Vec<f64> = app
        .db
        .client()
        .query(
            "SELECT extract(epoch FROM created_at - lag(created_at) OVER (ORDER BY created_at))::float8
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY created_at",
            &[&uuid],
        )
        .unwrap()
        .iter()
        .skip(1)
        .map(|row| row.get(0))
        .collect();
    assert_eq!(gaps.len(), 2);
    // 1 s after the first failure, then 2 s (min 1 s doubled, capped at 2 s); each gap also
    // includes the poll that picks the delivery up again.
    assert!((1.0..1.9).contains(&gaps[0]), "{gaps:?}");
    assert!((2.0..2.9).contains(&gaps[1]), "{gaps:?}");
    assert_eq!(receiver.count(), 3);
    for attempt in attempts(&app, &id) {
        assert_eq!(
            (
                attempt["success"].clone(),
                attempt["response_status_code"].clone()
            ),
            (json!(false), json!(500))
        );
    }
}

#[test]
fn status_outside_valid_codes_fails_and_listed_code_succeeds() {
    let receiver = Receiver::start(|n, _| Answer::status(if n == 0 { 204 } else { 202 }));
    let app = TestApp::start_all("dispatch_valid_codes", &[NO_POLL]);
    let webhook_id = webhook(
        &app,
        &receiver.url("/"),
        json!({"valid_status_codes": [200, 202]}),
    );
    let first = deliver(&app, &webhook_id, "a");
    let delivery = app.finished(&first);
    assert_eq!(delivery["status"], "failed");
    let attempt = &attempts(&app, &first)[0];
    assert_eq!(attempt["response_status_code"], 204);
    assert_eq!(attempt["success"], false);
    assert_eq!(attempt["error"], "");
    assert!(!attempt["raw_response"].as_str().unwrap().is_empty());
    let second = deliver(&app, &webhook_id, "b");
    assert_eq!(app.finished(&second)["status"], "succeeded");
}

#[test]
fn slow_endpoint_times_out_with_request_dump_kept() {
    let receiver = Receiver::start(|_, _| Answer {
        delay: Duration::from_secs(4),
        ..Answer::status(200)
    });
    let app = TestApp::start_all("dispatch_timeout", &[NO_POLL]);
    let url = receiver.url("/slow");
    let webhook_id = webhook(&app, &url, json!({"delivery_attempt_timeout": 1}));
    let id = deliver(&app, &webhook_id, "x");
    assert_eq!(app.finished(&id)["status"], "failed");
    let attempt = &attempts(&app, &id)[0];
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("Post {url:?}: ")), "{error}");
    assert!(error.contains("timeout"), "{error}");
    assert_eq!(attempt["response_status_code"], 0);
    assert_eq!(attempt["raw_response"], "");
    assert!(
        attempt["raw_request"]
            .as_str()
            .unwrap()
            .starts_with("POST /slow HTTP/1.1\r\n")
    );
    let duration = attempt["execution_duration"].as_i64().unwrap();
    assert!((900..3000).contains(&duration), "{duration}");
}

#[test]
fn refused_connection_is_a_failed_attempt() {
    let (port, _refusing) = crate::common::process::refusing_port();
    let app = TestApp::start_all("dispatch_refused", &[NO_POLL]);
    let url = format!("http://127.0.0.1:{port}/x");
    let webhook_id = webhook(&app, &url, json!({}));
    let id = deliver(&app, &webhook_id, "x");
    assert_eq!(app.finished(&id)["status"], "failed");
    let attempt = &attempts(&app, &id)[0];
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("Post \"{url}\": ")), "{error}");
    assert_eq!(attempt["response_status_code"], 0);
    assert_eq!(attempt["success"], false);
    assert!(!attempt["raw_request"].as_str().unwrap().is_empty());
}

#[test]
fn redirect_is_not_followed() {
    let receiver = Receiver::start(|_, _| Answer {
        headers: vec![("Location".into(), "/elsewhere".into())],
        ..Answer::status(302)
    });
    let app = TestApp::start_all("dispatch_redirect", &[NO_POLL]);
    let webhook_id = webhook(&app, &receiver.url("/start"), json!({}));
    let id = deliver(&app, &webhook_id, "x");
    assert_eq!(app.finished(&id)["status"], "failed");
    let attempt = &attempts(&app, &id)[0];
    assert_eq!(attempt["response_status_code"], 302);
    assert!(
        attempt["raw_response"]
            .as_str()
            .unwrap()
            .contains("Location: /elsewhere")
    );
    let urls: Vec<String> = receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.url.clone())
        .collect();
    assert_eq!(urls, ["/start"]);
}

#[test]
fn inactive_webhook_waits_until_reactivated() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("dispatch_inactive", &[NO_POLL]);
    let paused = webhook(&app, &receiver.url("/paused"), json!({"active": false}));
    let waiting = deliver(&app, &paused, "waiting");
    // A later delivery of an active webhook goes through; the paused one must still wait.
    let active = webhook(&app, &receiver.url("/active"), json!({}));
    let later = deliver(&app, &active, "later");
    assert_eq!(app.finished(&later)["status"], "succeeded");
    let still = app.get(&format!("/v1/deliveries/{waiting}")).json();
    assert_eq!(
        (still["status"].clone(), still["delivery_attempts"].clone()),
        (json!("pending"), json!(0))
    );
    assert_eq!(receiver.count(), 1);
    let body = fixtures::merge(
        fixtures::webhook_body(),
        json!({"url": receiver.url("/paused"), "active": true}),
    );
    assert_eq!(
        app.put(&format!("/v1/webhooks/{paused}"), &body).status,
        200
    );
    assert_eq!(app.finished(&waiting)["status"], "succeeded");
}

#[test]
fn retry_endpoint_sends_a_failed_delivery_again() {
    let receiver = Receiver::start(|n, _| Answer::status(if n == 0 { 500 } else { 200 }));
    let app = TestApp::start_all("dispatch_retry_endpoint", &[NO_POLL]);
    let webhook_id = webhook(&app, &receiver.url("/"), json!({}));
    let id = deliver(&app, &webhook_id, "x");
    assert_eq!(app.finished(&id)["status"], "failed");
    let response = app.send("POST", &format!("/v1/deliveries/{id}/retry"), "");
    assert_eq!(response.status, 200);
    let delivery = app.finished(&id);
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(delivery["delivery_attempts"], 1);
    assert_eq!(attempts(&app, &id).len(), 2);
}

#[test]
fn dead_endpoint_does_not_starve_a_healthy_one() {
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let dead = Receiver::start(move |_, _| Answer {
        hold: Some(hold.clone()),
        ..Answer::status(200)
    });
    let healthy = Receiver::status(200);
    // Four dispatchers: a webhook no one has seen succeed may hold one (slow start), so the
    // dead webhook takes one and the other three keep the healthy webhook flowing.
    let app = TestApp::start_all(
        "dispatch_isolation",
        &[NO_POLL, ("POSTMAND_WORKER_CONCURRENCY", "4")],
    );
    let dead_id = webhook(
        &app,
        &dead.url("/dead"),
        json!({"delivery_attempt_timeout": 30}),
    );
    let stuck: Vec<String> = (0..20)
        .map(|i| deliver(&app, &dead_id, &format!("dead {i}")))
        .collect();
    wait_until("the dead endpoint to hold a dispatcher", || {
        let n = dead.in_progress.load(std::sync::atomic::Ordering::SeqCst);
        if n == 1 { Ok(()) } else { Err(n) }
    });
    let healthy_id = webhook(&app, &healthy.url("/ok"), json!({}));
    let flowing: Vec<String> = (0..30)
        .map(|i| deliver(&app, &healthy_id, &format!("ok {i}")))
        .collect();
    for id in &flowing {
        assert_eq!(app.finished(id)["status"], "succeeded");
    }
    assert_eq!(
        dead.max_in_progress
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let pending = stuck
        .iter()
        .filter(|id| app.get(&format!("/v1/deliveries/{id}")).json()["status"] == "pending")
        .count();
    assert_eq!(pending, 20);
    drop(release);
}

/// Each hostile answer must produce exactly one stored attempt and one connection per try.
fn hostile(name: &str, response: Vec<u8>, chunk: usize, pause: Duration, check: impl Fn(&Value)) {
    let receiver = RawReceiver::start(response, chunk, pause);
    let app = TestApp::start_all(name, &[NO_POLL]);
    let webhook_id = webhook(
        &app,
        &receiver.url(),
        json!({"delivery_attempt_timeout": 2, "valid_status_codes": [200]}),
    );
    let id = deliver(&app, &webhook_id, "x");
    let delivery = app.finished(&id);
    let attempts = attempts(&app, &id);
    assert_eq!(attempts.len(), 1, "{name}");
    assert_eq!(delivery["delivery_attempts"], 1, "{name}");
    assert_eq!(receiver.count(), 1, "{name}");
    check(&attempts[0]);
}

#[test]
fn response_with_nul_and_invalid_utf8_is_stored_once() {
    let mut body =
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Bin: a\xffb\r\n\r\nab\0cd\xfe\xff!".to_vec();
    body.truncate(body.len());
    hostile(
        "dispatch_hostile_bytes",
        body,
        4096,
        Duration::ZERO,
        |attempt| {
            assert_eq!(attempt["success"], true);
            let raw = attempt["raw_response"].as_str().unwrap();
            assert!(!raw.contains('\0'));
            assert!(raw.ends_with("ab\u{FFFD}cd\u{FFFD}\u{FFFD}!"), "{raw:?}");
        },
    );
}

#[test]
fn ten_mib_response_is_cut_and_stored_once() {
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n".to_vec();
    response.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    hostile(
        "dispatch_hostile_huge",
        response,
        1 << 20,
        Duration::ZERO,
        |attempt| {
            assert_eq!(attempt["response_status_code"], 200);
            let raw = attempt["raw_response"].as_str().unwrap();
            assert!(raw.len() < 70 * 1024, "{}", raw.len());
            assert!(raw.ends_with("[postmand: dump cut at 65536 bytes]"));
        },
    );
}

#[test]
fn response_slower_than_timeout_is_one_attempt() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
    let mut slow = response;
    slow.extend(std::iter::repeat_n(b'z', 100));
    // Headers and body one byte every 100 ms: about 14 s in all, against a 2 s timeout.
    hostile(
        "dispatch_hostile_slow",
        slow,
        1,
        Duration::from_millis(100),
        |attempt| {
            assert_eq!(attempt["success"], false);
            assert!(
                attempt["error"].as_str().unwrap().contains("timeout"),
                "{attempt}"
            );
        },
    );
}

#[test]
fn garbage_instead_of_http_is_one_failed_attempt() {
    hostile(
        "dispatch_hostile_garbage",
        b"\0\x01\x02 this is not HTTP\r\n\r\n".to_vec(),
        4096,
        Duration::ZERO,
        |attempt| {
            assert_eq!(attempt["success"], false);
            assert_eq!(attempt["response_status_code"], 0);
            assert!(attempt["error"].as_str().unwrap().starts_with("Post \""));
        },
    );
}

#[test]
fn notify_wakes_a_separate_worker_within_the_cooldown() {
    // API and worker in different "processes" (separate pools, no shared wake channel), polling
    // every 60 s: only LISTEN/NOTIFY can deliver these promptly. The second and third creates
    // land inside the notifier's cooldown of the first.
    let receiver = Receiver::status(200);
    let db = TestDb::new("dispatch_notify_cross");
    let config = db.config_with(&[NO_POLL]);
    let worker = TestApp::start_with(db.share(), &config, Role::Worker);
    let api = TestApp::start_with(db, &config, Role::Api);
    let webhook_id = webhook(&api, &receiver.url("/"), json!({}));
    let ids: Vec<String> = (0..3)
        .map(|i| deliver(&api, &webhook_id, &i.to_string()))
        .collect();
    for id in &ids {
        assert_eq!(api.finished(id)["status"], "succeeded");
    }
    drop(worker);
}

#[test]
fn notifier_sees_only_other_processes_listeners() {
    // The notifier of a lone `--role all` process skips NOTIFY; it must not skip it while any
    // other process listens.
    let db = TestDb::new("dispatch_other_listeners");
    let mut checker = db.client();
    let others = |checker: &mut postgres::Client, own: &str| {
        queue::others_listening(checker, own).expect("check listeners")
    };
    let connect = |name: &str| postmand::db::connect(&db.url, name).expect("connect");
    let own = queue::listener_name(Some(&queue::new_sender_tag()));
    assert!(!others(&mut checker, &own), "no listener at all");
    let _own_listener = connect(&own);
    assert!(!others(&mut checker, &own), "only this process's own");
    assert!(
        others(&mut checker, ""),
        "an API-only process has none of its own"
    );
    let another = connect(&queue::listener_name(Some(&queue::new_sender_tag())));
    assert!(others(&mut checker, &own), "another --role all process");
    drop(another);
    wait_until("the closed listener to leave pg_stat_activity", || {
        if others(&mut checker, &own) {
            Err("still listed")
        } else {
            Ok(())
        }
    });
    let _worker = connect(&queue::listener_name(None));
    assert!(others(&mut checker, &own), "a --role worker process");
}

#[test]
fn polling_picks_up_rows_inserted_without_notify() {
    let receiver = Receiver::status(200);
    let db = TestDb::new("dispatch_poll_fallback");
    let config = db.config_with(&[("POSTMAND_POLLING_INTERVAL", "50")]);
    let app = TestApp::start_with(db, &config, Role::Worker);
    let mut client = app.db.client();
    let webhook_id = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO webhooks VALUES ($1, 'Raw', $2, 'text/plain', '{200}', '', true, 1, 1, 1, 1, now(), now())",
            &[&webhook_id, &receiver.url("/")],
        )
        .unwrap();
    let id = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO deliveries VALUES ($1, $2, 'x', now(), 0, 'pending', now(), now())",
            &[&id, &webhook_id],
        )
        .unwrap();
    wait_until("the polled delivery to succeed", || {
        let status: String = client
            .query_one("SELECT status FROM deliveries WHERE id = $1", &[&id])
            .unwrap()
            .get(0);
        if status == "succeeded" {
            Ok(())
        } else {
            Err(status)
        }
    });
}

#[test]
fn claim_uses_the_pending_index_and_skips_inactive_backlog() {
    let db = TestDb::new("dispatch_claim_plan");
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO webhooks VALUES ('00000000-0000-4000-8000-000000000001', 'Off', 'http://127.0.0.1:9/', 'text/plain', '{200}', '', false, 1, 1, 1, 1, now(), now());
             INSERT INTO webhooks VALUES ('00000000-0000-4000-8000-000000000002', 'On', 'http://127.0.0.1:9/', 'text/plain', '{200}', '', true, 1, 1, 1, 1, now(), now());
             INSERT INTO deliveries SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000001', 'x', now() - interval '1 hour', 0, 'pending', now(), now() FROM generate_series(1, 5000);
             INSERT INTO deliveries SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000002', 'x', now(), 0, 'pending', now(), now() FROM generate_series(1, 3);
             ANALYZE;",
        )
        .unwrap();
    let mut tx = client.transaction().unwrap();
    let due = postmand::store::queue::due_webhooks(&mut tx, None, &[], 4).unwrap();
    let due: Vec<String> = due.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(due, ["00000000-0000-4000-8000-000000000002"]);
    let batch = postmand::store::queue::claim_batch(
        &mut tx,
        None,
        "00000000-0000-4000-8000-000000000002".parse().unwrap(),
        8,
    )
    .unwrap();
    assert_eq!(batch.len(), 3);
    tx.rollback().unwrap();
    let plan = postmand::store::queue::explain_claim(&mut client, 8).unwrap();
    assert!(
        plan.contains("deliveries_pending_webhook_due_idx"),
        "{plan}"
    );
    // The inactive webhook's 5000 due rows are never read: sum what every scan of deliveries
    // returned (rows per loop times loops).
    let rows_read: u64 = plan
        .lines()
        .filter(|line| line.contains(" on deliveries "))
        .map(|line| {
            let number = |key: &str| -> u64 {
                let at = line.rfind(key).map(|i| i + key.len()).unwrap_or(line.len());
                line[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            };
            number("rows=") * number("loops=")
        })
        .sum();
    assert!(rows_read < 50, "claim read {rows_read} rows:\n{plan}");
}
