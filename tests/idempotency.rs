//! Issue 15: `Idempotency-Key` on `POST /v1/deliveries` and `POST /v1/events`: a repeat gets the
//! first answer and creates nothing, another body with the key is 422, a repeat while the first
//! is in flight is 409, keys are per endpoint and expire.

use std::sync::{Arc, Barrier};
use std::thread;

use postmand::cli::Role;
use serde_json::{Value, json};

use crate::common::http::{self, Response};
use crate::common::receiver::Receiver;
use crate::common::{TestApp, TestDb, fixtures};

/// `POST path` with `body` and an `Idempotency-Key`.
fn post_with_key(api: std::net::SocketAddr, path: &str, key: &str, body: &Value) -> Response {
    http::request(
        api,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn count(app: &TestApp, sql: &str) -> i64 {
    app.db.client().query_one(sql, &[]).expect("count").get(0)
}

#[test]
fn a_repeated_delivery_create_is_replayed_and_sent_once() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all(
        "idempotency_replay",
        &[("POSTMAND_POLLING_INTERVAL", "60000")],
    );
    let webhook_id = fixtures::webhook_id(&app, json!({"url": receiver.url("/")}));
    let body = json!({"webhook_id": webhook_id, "payload": "pay once"});
    let first = post_with_key(app.api, "/v1/deliveries", "order-42", &body);
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(app.finished(&id)["status"], "succeeded");

    // The same JSON, spaced differently, is the same request.
    let again = http::request(
        app.api,
        "POST",
        "/v1/deliveries",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "order-42"),
        ],
        Some(
            format!("{{ \"payload\" : \"pay once\", \"webhook_id\" : \"{webhook_id}\" }}")
                .as_bytes(),
        ),
    );
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first answer, byte for byte");
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 1);
    assert_eq!(count(&app, "SELECT count(*) FROM delivery_attempts"), 1);
    assert_eq!(receiver.count(), 1);
    // Without the key, the same body is a new delivery.
    let unkeyed = app.post("/v1/deliveries", &body);
    assert_eq!(unkeyed.status, 201);
    assert_ne!(unkeyed.json()["id"], json!(id));
}

#[test]
fn a_key_reused_with_another_body_is_422_and_creates_nothing() {
    let app = TestApp::start("idempotency_mismatch");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let first = post_with_key(
        app.api,
        "/v1/deliveries",
        "k1",
        &json!({"webhook_id": webhook_id, "payload": "a"}),
    );
    assert_eq!(first.status, 201);
    let other = post_with_key(
        app.api,
        "/v1/deliveries",
        "k1",
        &json!({"webhook_id": webhook_id, "payload": "b"}),
    );
    assert_eq!(other.status, 422, "{}", other.text());
    assert_eq!(
        other.json(),
        json!({"code": 15, "message": "idempotency key reused",
               "details": "this Idempotency-Key was used with a different request body"})
    );
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 1);
}

#[test]
fn a_failed_create_stores_nothing_and_may_be_sent_again_with_its_key() {
    let app = TestApp::start("idempotency_failed_first");
    let missing = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";
    let response = post_with_key(
        app.api,
        "/v1/deliveries",
        "k",
        &json!({"webhook_id": missing, "payload": "x"}),
    );
    assert_eq!(response.status, 400);
    assert_eq!(count(&app, "SELECT count(*) FROM idempotency_keys"), 0);
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let corrected = post_with_key(
        app.api,
        "/v1/deliveries",
        "k",
        &json!({"webhook_id": webhook_id, "payload": "x"}),
    );
    assert_eq!(corrected.status, 201, "{}", corrected.text());
    assert_eq!(corrected.header("idempotent-replayed"), None);
}

#[test]
fn concurrent_identical_requests_make_one_delivery() {
    let app = TestApp::start("idempotency_concurrent");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = json!({"webhook_id": webhook_id, "payload": "once"});
    let clients = 16;
    let barrier = Arc::new(Barrier::new(clients));
    let answers: Vec<Response> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (barrier, body, api) = (Arc::clone(&barrier), &body, app.api);
                scope.spawn(move || {
                    barrier.wait();
                    post_with_key(api, "/v1/deliveries", "same-key", body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&Response> = answers.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty());
    for answer in &answers {
        assert!(
            answer.status == 201 || answer.status == 409,
            "{}: {}",
            answer.status,
            answer.text()
        );
        if answer.status == 409 {
            assert_eq!(answer.json()["code"], 16);
        }
    }
    assert!(created.iter().all(|r| r.body == created[0].body));
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 1);
}

#[test]
fn two_api_processes_racing_with_one_key_make_one_delivery() {
    // Separate API servers (each its own in-flight set and writer) on one database: the
    // database settles the race, the loser undoes its create and replays the winner's answer.
    let db = TestDb::new("idempotency_two_apis");
    let config = db.config();
    let one = TestApp::start_with(db.share(), &config, Role::Api);
    let two = TestApp::start_with(db, &config, Role::Api);
    let webhook_id = fixtures::webhook_id(&one, json!({}));
    for round in 0..20 {
        let key = format!("race-{round}");
        let body = json!({"webhook_id": webhook_id, "payload": format!("p{round}")});
        let barrier = Arc::new(Barrier::new(4));
        let answers: Vec<Response> = thread::scope(|scope| {
            let handles: Vec<_> = [one.api, two.api, one.api, two.api]
                .into_iter()
                .map(|api| {
                    let (barrier, body, key) = (Arc::clone(&barrier), &body, &key);
                    scope.spawn(move || {
                        barrier.wait();
                        post_with_key(api, "/v1/deliveries", key, body)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created: Vec<&Response> = answers.iter().filter(|r| r.status == 201).collect();
        assert!(
            answers.iter().all(|r| r.status == 201 || r.status == 409),
            "{:?}",
            answers
                .iter()
                .map(|r| (r.status, r.text()))
                .collect::<Vec<_>>()
        );
        assert!(!created.is_empty());
        assert!(
            created.iter().all(|r| r.body == created[0].body),
            "round {round}"
        );
    }
    assert_eq!(count(&one, "SELECT count(*) FROM deliveries"), 20);
}

#[test]
fn a_repeated_event_is_replayed_and_fans_out_once() {
    let app = TestApp::start("idempotency_events");
    fixtures::webhook_id(&app, json!({}));
    fixtures::webhook_id(&app, json!({"event_types": ["invoice.paid"]}));
    let body = json!({"event_type": "invoice.paid", "payload": "{}"});
    let first = post_with_key(app.api, "/v1/events", "evt-1", &body);
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.json()["deliveries"], 2);
    let again = post_with_key(app.api, "/v1/events", "evt-1", &body);
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(count(&app, "SELECT count(*) FROM events"), 1);
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 2);
    let other = post_with_key(
        app.api,
        "/v1/events",
        "evt-1",
        &json!({"event_type": "invoice.failed", "payload": "{}"}),
    );
    assert_eq!(other.status, 422);
    assert_eq!(other.json()["code"], 15);
}

#[test]
fn a_key_belongs_to_one_endpoint() {
    let app = TestApp::start("idempotency_scope");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let delivery = post_with_key(
        app.api,
        "/v1/deliveries",
        "shared",
        &json!({"webhook_id": webhook_id, "payload": "x"}),
    );
    assert_eq!(delivery.status, 201);
    let event = post_with_key(
        app.api,
        "/v1/events",
        "shared",
        &json!({"event_type": "a.b", "payload": "x"}),
    );
    assert_eq!(event.status, 201, "{}", event.text());
    assert_eq!(event.header("idempotent-replayed"), None);
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 2);
}

#[test]
fn bad_keys_are_400_naming_the_header() {
    let app = TestApp::start("idempotency_bad_keys");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = json!({"webhook_id": webhook_id, "payload": "x"});
    for key in ["k".repeat(256), "tab\tinside".to_string()] {
        let response = post_with_key(app.api, "/v1/deliveries", &key, &body);
        assert_eq!(response.status, 400, "{}", response.text());
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed",
                   "details": "Idempotency-Key: must be 1-255 printable ASCII characters."})
        );
    }
    let longest = post_with_key(app.api, "/v1/deliveries", &"k".repeat(255), &body);
    assert_eq!(longest.status, 201, "{}", longest.text());
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 1);
}

/// `POST /v1/deliveries` with `body` and these raw header lines, over a raw socket (so header
/// bytes outside ASCII go out as they are).
fn post_with_raw_headers(api: std::net::SocketAddr, lines: &[&[u8]], body: &Value) -> Response {
    let body = body.to_string();
    let mut bytes = format!(
        "POST /v1/deliveries HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        http::HOST,
        body.len()
    )
    .into_bytes();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body.as_bytes());
    http::raw(api, &bytes)
}

// See: issue 15 (schemathesis: "Connection aborted" for a key outside ASCII).
#[test]
fn issue_15_a_key_outside_ascii_is_a_400_and_other_headers_do_not_matter() {
    let app = TestApp::start("idempotency_non_ascii_key");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = json!({"webhook_id": webhook_id, "payload": "x"});
    // Latin-1 and UTF-8 bytes in the key, and a key ending in a control character that
    // whitespace trimming used to remove.
    for key in [&b"caf\xe9"[..], "caf\u{e9}".as_bytes(), b"key\x0b", b"\xff"] {
        let mut line = b"Idempotency-Key: ".to_vec();
        line.extend_from_slice(key);
        let response = post_with_raw_headers(app.api, &[&line], &body);
        assert_eq!(response.status, 400, "{key:?}: {}", response.text());
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed",
                   "details": "Idempotency-Key: must be 1-255 printable ASCII characters."}),
            "{key:?}"
        );
    }
    // Bytes outside ASCII in a header nobody reads change nothing; spaces and tabs around a
    // key are not part of it.
    let response = post_with_raw_headers(
        app.api,
        &[
            b"User-Agent: caf\xc3\xa9-client/1",
            b"Idempotency-Key: \t order-7 ",
        ],
        &body,
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let again = post_with_key(app.api, "/v1/deliveries", "order-7", &body);
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, response.body);
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 1);
}

#[test]
fn keys_expire_after_the_window_and_retention_deletes_them() {
    let app = TestApp::start("idempotency_expiry");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = json!({"webhook_id": webhook_id, "payload": "x"});
    let first = post_with_key(app.api, "/v1/deliveries", "old", &body);
    assert_eq!(first.status, 201);
    // As if the default window of 24 hours had passed.
    app.db
        .client()
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
            &[],
        )
        .unwrap();
    let after = post_with_key(app.api, "/v1/deliveries", "old", &body);
    assert_eq!(after.status, 201, "{}", after.text());
    assert_eq!(after.header("idempotent-replayed"), None, "a new request");
    assert_ne!(after.json()["id"], first.json()["id"]);
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 2);
    // The key now answers with the second delivery.
    let replay = post_with_key(app.api, "/v1/deliveries", "old", &body);
    assert_eq!(replay.body, after.body);

    // Retention deletes expired keys and keeps live ones.
    post_with_key(app.api, "/v1/deliveries", "expiring", &body);
    app.db
        .client()
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'expiring'",
            &[],
        )
        .unwrap();
    let pool = postmand::db::pool(&app.db.url, "retention-test", 2).expect("pool");
    let policy = postmand::dispatch::retention::Policy {
        days: None,
        idempotency_hours: 24,
    };
    let deleted =
        postmand::dispatch::retention::sweep(policy, &pool, &postmand::shutdown::Shutdown::new());
    assert_eq!(deleted.keys, 1);
    let left: Vec<String> = app
        .db
        .client()
        .query("SELECT key FROM idempotency_keys", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, ["old"]);
}

#[test]
fn two_api_processes_racing_with_one_event_key_make_one_event_and_one_fan_out() {
    // The loser of the race undoes its event and the deliveries it fanned out.
    let db = TestDb::new("idempotency_two_apis_events");
    let config = db.config();
    let one = TestApp::start_with(db.share(), &config, Role::Api);
    let two = TestApp::start_with(db, &config, Role::Api);
    for _ in 0..3 {
        fixtures::webhook_id(&one, json!({}));
    }
    for round in 0..10 {
        let key = format!("event-race-{round}");
        let body = json!({"event_type": "race.run", "payload": format!("p{round}")});
        let barrier = Arc::new(Barrier::new(4));
        let answers: Vec<Response> = thread::scope(|scope| {
            let handles: Vec<_> = [one.api, two.api, one.api, two.api]
                .into_iter()
                .map(|api| {
                    let (barrier, body, key) = (Arc::clone(&barrier), &body, &key);
                    scope.spawn(move || {
                        barrier.wait();
                        post_with_key(api, "/v1/events", key, body)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(answers.iter().all(|r| r.status == 201 || r.status == 409));
        let created: Vec<&Response> = answers.iter().filter(|r| r.status == 201).collect();
        assert!(
            created.iter().all(|r| r.body == created[0].body),
            "round {round}"
        );
    }
    assert_eq!(count(&one, "SELECT count(*) FROM events"), 10);
    assert_eq!(count(&one, "SELECT count(*) FROM deliveries"), 30);
    assert_eq!(
        count(
            &one,
            "SELECT count(*) FROM deliveries WHERE event_id IS NULL"
        ),
        0,
        "no delivery of an undone event is left behind"
    );
}

#[test]
fn events_and_deliveries_created_together_share_the_writer() {
    let app = TestApp::start("idempotency_mixed_batches");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let clients = 16;
    let barrier = Arc::new(Barrier::new(clients));
    let answers: Vec<Response> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, webhook_id, api) = (Arc::clone(&barrier), &webhook_id, app.api);
                scope.spawn(move || {
                    barrier.wait();
                    let key = format!("mixed-{i}");
                    if i % 2 == 0 {
                        post_with_key(
                            api,
                            "/v1/events",
                            &key,
                            &json!({"event_type": "mixed", "payload": format!("{i}")}),
                        )
                    } else {
                        post_with_key(
                            api,
                            "/v1/deliveries",
                            &key,
                            &json!({"webhook_id": webhook_id, "payload": format!("{i}")}),
                        )
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|r| r.status == 201),
        "{:?}",
        answers.iter().map(|r| r.text()).collect::<Vec<_>>()
    );
    assert_eq!(count(&app, "SELECT count(*) FROM events"), 8);
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 16);
    assert_eq!(count(&app, "SELECT count(*) FROM idempotency_keys"), 16);
}

#[test]
fn a_retry_queued_behind_its_own_first_try_is_answered_from_it() {
    // The writer is stalled past the handlers' 10 s deadline: the first keyed try answers 503
    // but stays queued, and its retry (same key) lands in the same batch. The batch must still
    // commit: the retry gets the first try's answer, an unrelated create its own.
    let app = TestApp::start("idempotency_retry_same_batch");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    app.db
        .client()
        .batch_execute(
            "CREATE FUNCTION stall_writer() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.payload = 'stall' THEN PERFORM pg_sleep(11); END IF; RETURN NEW; END $$; \
             CREATE TRIGGER stall_writer BEFORE INSERT ON deliveries \
             FOR EACH ROW EXECUTE FUNCTION stall_writer();",
        )
        .unwrap();
    let api = app.api;
    // Direct creates have one writer (events have the other): one stalled create, alone in
    // its batch, stalls it.
    let stall = |key: &'static str| {
        let body = json!({"webhook_id": webhook_id, "payload": "stall"});
        thread::spawn(move || post_with_key(api, "/v1/deliveries", key, &body))
    };
    let mut stalled = Vec::new();
    for (writer, key) in ["stall-1"].into_iter().enumerate() {
        stalled.push(stall(key));
        crate::common::wait_until("the writer to stall", || {
            let waiting: i64 = app
                .db
                .client()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND query LIKE 'INSERT INTO deliveries%' \
                 AND state = 'active'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > writer as i64 {
                Ok(())
            } else {
                Err(waiting)
            }
        });
    }
    let body = json!({"webhook_id": webhook_id, "payload": "pay once"});
    let first = post_with_key(api, "/v1/deliveries", "order-7", &body);
    assert_eq!(first.status, 503, "{}", first.text());
    let retry = {
        let body = body.clone();
        thread::spawn(move || post_with_key(api, "/v1/deliveries", "order-7", &body))
    };
    let unrelated = {
        let body = json!({"webhook_id": webhook_id, "payload": "unrelated"});
        thread::spawn(move || post_with_key(api, "/v1/deliveries", "other-key", &body))
    };
    let (retry, unrelated) = (retry.join().unwrap(), unrelated.join().unwrap());
    for stalled in stalled {
        stalled.join().unwrap();
    }
    assert_eq!(retry.status, 201, "{}", retry.text());
    assert_eq!(unrelated.status, 201, "{}", unrelated.text());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM deliveries WHERE payload = 'pay once'"
        ),
        1
    );
}
