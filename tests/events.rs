//! Issue 15: webhooks subscribe to event types; `POST /v1/events` fans an event out to every
//! active subscribed webhook in one statement; events are listed and read back with their
//! deliveries; deliveries carry `event_id` and requests for them `X-Postmand-Event`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::{TestApp, assert_key_order, fixtures, ids_in};

/// Posts an event and returns its 201 JSON.
fn event(app: &TestApp, event_type: &str, payload: &str) -> Value {
    let response = app.post(
        "/v1/events",
        &json!({"event_type": event_type, "payload": payload}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

/// The webhook ids of an event's deliveries, from `GET /v1/events/{id}`.
fn fanned_out_to(app: &TestApp, event: &Value) -> BTreeSet<String> {
    let id = event["id"].as_str().expect("event id");
    let detail = app.get(&format!("/v1/events/{id}"));
    assert_eq!(detail.status, 200, "{}", detail.text());
    detail.json()["delivery_statuses"]
        .as_array()
        .expect("delivery_statuses")
        .iter()
        .map(|d| d["webhook_id"].as_str().expect("webhook_id").to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[test]
fn webhook_json_shows_event_types_after_the_seed_fields_and_put_replaces_them() {
    let app = TestApp::start("events_webhook_field");
    let created = app.post(
        "/v1/webhooks",
        &fixtures::merge(
            fixtures::webhook_body(),
            json!({"event_types": ["invoice.paid", "user_created-2"]}),
        ),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_key_order(&created.text(), fixtures::WEBHOOK_KEYS);
    let webhook = created.json();
    assert_eq!(
        webhook["event_types"],
        json!(["invoice.paid", "user_created-2"])
    );
    let id = webhook["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).json(), webhook);
    // A PUT without the field replaces it with "every type", like any omitted field.
    let replaced = app.put(&format!("/v1/webhooks/{id}"), &fixtures::webhook_body());
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["event_types"], json!([]));
    let null = app.post(
        "/v1/webhooks",
        &fixtures::merge(fixtures::webhook_body(), json!({})),
    );
    assert_eq!(null.json()["event_types"], json!([]));
}

#[test]
fn bad_event_types_are_400_naming_the_field() {
    let app = TestApp::start("events_webhook_validation");
    let too_many: Vec<String> = (0..101).map(|i| format!("type.{i}")).collect();
    for (types, message) in [
        (
            json!(["ok", ""]),
            "event_types: each must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!(["has space"]),
            "event_types: each must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!(["x".repeat(129)]),
            "event_types: each must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!(["caf\u{e9}"]),
            "event_types: each must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!(too_many),
            "event_types: must have at most 100 event types.",
        ),
        (
            json!(["a", "b", "a"]),
            "event_types: must not repeat an event type.",
        ),
    ] {
        let response = app.post(
            "/v1/webhooks",
            &fixtures::merge(fixtures::webhook_body(), json!({"event_types": types})),
        );
        assert_eq!(response.status, 400, "{types}: {}", response.text());
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed", "details": message}),
            "{types}"
        );
    }
    let exactly_100: Vec<String> = (0..100).map(|i| format!("type.{i}")).collect();
    let response = app.post(
        "/v1/webhooks",
        &fixtures::merge(
            fixtures::webhook_body(),
            json!({"event_types": exactly_100, "name": "x".repeat(3)}),
        ),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    for wrong_type in [json!("invoice.paid"), json!([1]), json!({"a": 1})] {
        let response = app.post(
            "/v1/webhooks",
            &fixtures::merge(fixtures::webhook_body(), json!({"event_types": wrong_type})),
        );
        assert_eq!(response.status, 400, "{}", response.text());
        assert_eq!(response.json()["code"], 3, "{wrong_type}");
    }
}

#[test]
fn an_event_reaches_every_active_webhook_whose_filter_matches() {
    let app = TestApp::start("events_filter_matching");
    let every = fixtures::webhook_id(&app, json!({}));
    let one = fixtures::webhook_id(&app, json!({"event_types": ["invoice.paid"]}));
    let several = fixtures::webhook_id(
        &app,
        json!({"event_types": ["invoice.failed", "invoice.paid", "user.created"]}),
    );
    let other = fixtures::webhook_id(&app, json!({"event_types": ["user.created"]}));
    let inactive = fixtures::webhook_id(
        &app,
        json!({"event_types": ["invoice.paid"], "active": false}),
    );

    let paid = event(&app, "invoice.paid", "{\"invoice\":1}");
    assert_eq!(paid["deliveries"], 3);
    assert_eq!(fanned_out_to(&app, &paid), set(&[&every, &one, &several]));

    let created = event(&app, "user.created", "{}");
    assert_eq!(created["deliveries"], 3);
    assert_eq!(
        fanned_out_to(&app, &created),
        set(&[&every, &several, &other])
    );

    let nobody_else = event(&app, "refund.issued", "");
    assert_eq!(nobody_else["deliveries"], 1);
    assert_eq!(fanned_out_to(&app, &nobody_else), set(&[&every]));

    // Types match exactly: no prefixes, no case folding.
    let unmatched = event(&app, "Invoice.paid", "");
    assert_eq!(fanned_out_to(&app, &unmatched), set(&[&every]));

    // Each delivery is the event's payload for one webhook, pending, tied to the event.
    let paid_id = paid["id"].as_str().unwrap();
    let deliveries = app.get(&format!("/v1/deliveries?event_id={paid_id}"));
    let listed = deliveries.json()["deliveries"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    for delivery in &listed {
        assert_eq!(delivery["event_id"], json!(paid_id));
        assert_eq!(delivery["payload"], "{\"invoice\":1}");
        assert_eq!(delivery["status"], "pending");
        assert_eq!(delivery["delivery_attempts"], 0);
        assert_ne!(delivery["webhook_id"], json!(inactive));
        // Time-ordered ids, like those of direct creates.
        let id = uuid::Uuid::parse_str(delivery["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7, "{id}");
    }
}

#[test]
fn an_event_no_webhook_subscribes_to_is_stored_with_no_deliveries() {
    let app = TestApp::start("events_unsubscribed");
    fixtures::webhook_id(&app, json!({"event_types": ["a.b"]}));
    let response = app.post(
        "/v1/events",
        &json!({"event_type": "c.d", "payload": "{\"x\":1}"}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    assert_key_order(
        &response.text(),
        &["id", "event_type", "payload", "deliveries", "created_at"],
    );
    let created = response.json();
    assert_eq!(created["event_type"], "c.d");
    assert_eq!(created["payload"], "{\"x\":1}");
    assert_eq!(created["deliveries"], 0);
    let id = created["id"].as_str().unwrap();
    let detail = app.get(&format!("/v1/events/{id}"));
    assert_eq!(detail.status, 200);
    assert_key_order(
        &detail.text(),
        &[
            "id",
            "event_type",
            "payload",
            "deliveries",
            "created_at",
            "delivery_statuses",
        ],
    );
    let mut expected = created.clone();
    expected["delivery_statuses"] = json!([]);
    assert_eq!(detail.json(), expected);
}

#[test]
fn every_delivery_of_an_event_arrives_with_its_headers() {
    let receiver = Receiver::status(200);
    let app = TestApp::start_all("events_arrive", &[("POSTMAND_POLLING_INTERVAL", "60000")]);
    let a = fixtures::webhook_id(
        &app,
        json!({"url": receiver.url("/a"), "event_types": ["order.shipped"]}),
    );
    let b = fixtures::webhook_id(
        &app,
        json!({"url": receiver.url("/b"), "secret_token": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );
    let payload = "{\"order\":7}";
    let shipped = event(&app, "order.shipped", payload);
    let id = shipped["id"].as_str().unwrap();
    let mut arrived = vec![receiver.next_arrival(), receiver.next_arrival()];
    arrived.sort_by(|x, y| x.url.cmp(&y.url));
    assert_eq!(
        arrived.iter().map(|r| r.url.as_str()).collect::<Vec<_>>(),
        ["/a", "/b"]
    );
    let deliveries = app.get(&format!("/v1/deliveries?event_id={id}")).json();
    for request in &arrived {
        assert_eq!(request.body, payload.as_bytes());
        assert_eq!(request.header("x-postmand-event"), Some("order.shipped"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let webhook = if request.url == "/a" { &a } else { &b };
        let delivery = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["webhook_id"] == json!(webhook))
            .expect("a delivery for each webhook");
        assert_eq!(request.header("webhook-id"), delivery["id"].as_str());
        assert!(
            request
                .header("webhook-signature")
                .is_some_and(|s| s.starts_with("v1,"))
        );
    }
    for delivery in deliveries["deliveries"].as_array().unwrap() {
        let finished = app.finished(delivery["id"].as_str().unwrap());
        assert_eq!(finished["status"], "succeeded");
        assert_eq!(finished["event_id"], json!(id));
    }
    let statuses: Vec<Value> = app.get(&format!("/v1/events/{id}")).json()["delivery_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("succeeded"), json!("succeeded")]);
    // A direct delivery has no event: no header, and a null event_id.
    let direct = fixtures::delivery(&app, &a, "direct");
    assert_eq!(direct["event_id"], Value::Null);
    let request = receiver.next_arrival();
    assert_eq!(request.body, b"direct");
    assert_eq!(request.header("x-postmand-event"), None);
}

#[test]
fn events_list_filters_by_type_and_time_and_pages() {
    let app = TestApp::start("events_list");
    fixtures::webhook_id(&app, json!({}));
    let first = event(&app, "a.one", "1");
    let second = event(&app, "b.two", "2");
    let third = event(&app, "a.one", "3");
    let id = |e: &Value| e["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids_in(&app.get("/v1/events"), "events"),
        [id(&third), id(&second), id(&first)]
    );
    let list = app.get("/v1/events?limit=2&offset=1");
    assert_eq!(list.json()["limit"], 2);
    assert_eq!(list.json()["offset"], 1);
    assert_eq!(ids_in(&list, "events"), [id(&second), id(&first)]);
    assert_eq!(
        ids_in(&app.get("/v1/events?event_type=a.one"), "events"),
        [id(&third), id(&first)]
    );
    let since = second["created_at"].as_str().unwrap();
    assert_eq!(
        ids_in(
            &app.get(&format!("/v1/events?created_at.gte={since}")),
            "events"
        ),
        [id(&third), id(&second)]
    );
    assert_eq!(
        app.get("/v1/events").json()["events"][0],
        third,
        "list items are the create's JSON"
    );
    for (query, details) in [
        (
            "event_type=not%20a%20type",
            "event_type: must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        ("limit=0", "limit: must be an integer from 1 to 1000."),
        (
            "created_at.lt=yesterday",
            "created_at.lt: must be an RFC 3339 date-time.",
        ),
    ] {
        app.assert_error(
            "GET",
            &format!("/v1/events?{query}"),
            400,
            json!({"code": 4, "message": "request validation failed", "details": details}),
        );
    }
}

#[test]
fn event_errors_follow_the_catalogue() {
    let app = TestApp::start("events_errors");
    app.assert_error(
        "GET",
        "/v1/events/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        404,
        json!({"code": 17, "message": "event not found"}),
    );
    app.assert_error(
        "GET",
        "/v1/events/not-a-uuid",
        404,
        json!({"code": 2, "message": "invalid id"}),
    );
    app.assert_error(
        "DELETE",
        "/v1/events",
        405,
        json!({"code": 12, "message": "method not allowed", "details": "allowed: GET, POST"}),
    );
    for (body, details) in [
        (json!({}), "event_type: cannot be blank."),
        (
            json!({"event_type": "", "payload": "x"}),
            "event_type: cannot be blank.",
        ),
        (
            json!({"event_type": "a b"}),
            "event_type: must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!({"event_type": "e".repeat(129)}),
            "event_type: must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'.",
        ),
        (
            json!({"event_type": "ok", "payload": "nul\u{0}"}),
            "payload: must not contain NUL characters.",
        ),
    ] {
        let response = app.post("/v1/events", &body);
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed", "details": details}),
            "{body}"
        );
    }
    for malformed in [
        r#"{"event_type": 1}"#,
        r#"{"event_type": "a", "payload": {"x": 1}}"#,
        "[",
        "null",
    ] {
        let response = app.send("POST", "/v1/events", malformed);
        assert_eq!(response.status, 400, "{malformed}: {}", response.text());
        assert_eq!(response.json()["code"], 3, "{malformed}");
    }
    let response = crate::common::http::request(
        app.api,
        "POST",
        "/v1/events",
        &[("Content-Type", "text/plain")],
        Some(b"{\"event_type\":\"a\"}"),
    );
    assert_eq!(response.status, 415);
    assert_eq!(response.json()["code"], 10);
    // Nothing above created an event.
    assert_eq!(ids_in(&app.get("/v1/events"), "events").len(), 0);
}
