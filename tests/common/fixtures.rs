//! Rows with sensible defaults, written through the API's own JSON so fixtures stay valid, and
//! in SQL for tests that run no API.

use serde_json::{Value, json};
use uuid::Uuid;

/// The keys of webhook JSON, in wire order: the original's, then issue 15's and issue 16's.
pub const WEBHOOK_KEYS: &[&str] = &[
    "id",
    "name",
    "url",
    "content_type",
    "valid_status_codes",
    "secret_token",
    "active",
    "max_delivery_attempts",
    "delivery_attempt_timeout",
    "retry_min_backoff",
    "retry_max_backoff",
    "created_at",
    "updated_at",
    "event_types",
    "disabled_reason",
    "disabled_at",
    "previous_secret_expires_at",
];

/// A valid webhook body; override fields with `merge`.
pub fn webhook_body() -> Value {
    json!({
        "name": "Httpbin Post",
        "url": "http://127.0.0.1:9/post",
        "content_type": "application/json",
        "valid_status_codes": [200, 201],
        "secret_token": "my-secret-token",
        "active": true,
        "max_delivery_attempts": 5,
        "delivery_attempt_timeout": 1,
        "retry_min_backoff": 10,
        "retry_max_backoff": 60
    })
}

/// `base` with every field of `overrides` replaced (a `null` override removes the field).
pub fn merge(mut base: Value, overrides: Value) -> Value {
    if let (Some(base), Some(overrides)) = (base.as_object_mut(), overrides.as_object()) {
        for (key, value) in overrides {
            if value.is_null() {
                base.remove(key);
            } else {
                base.insert(key.clone(), value.clone());
            }
        }
    }
    base
}

/// Creates a webhook through the API and returns its JSON.
pub fn webhook(app: &super::TestApp, overrides: Value) -> Value {
    let response = app.post("/v1/webhooks", &merge(webhook_body(), overrides));
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

/// Creates a webhook through the API and returns its id.
pub fn webhook_id(app: &super::TestApp, overrides: Value) -> String {
    id_of(&webhook(app, overrides))
}

/// Creates a delivery through the API and returns its JSON.
pub fn delivery(app: &super::TestApp, webhook_id: &str, payload: &str) -> Value {
    let response = app.post(
        "/v1/deliveries",
        &json!({"webhook_id": webhook_id, "payload": payload}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

/// Creates a delivery through the API and returns its id.
pub fn delivery_id(app: &super::TestApp, webhook_id: &str, payload: &str) -> String {
    id_of(&delivery(app, webhook_id, payload))
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().unwrap().to_string()
}

/// Inserts in SQL an active webhook posting to `url`: valid code 200, 5 s timeout, secret
/// "my-secret-token", `max_delivery_attempts` attempts and a retry backoff of
/// `retry_backoff` (min, max) seconds. Returns its id.
pub fn insert_webhook(
    c: &mut postgres::Client,
    url: &str,
    max_delivery_attempts: i32,
    retry_backoff: (i32, i32),
) -> Uuid {
    c.query_one(
        "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, \
             active, max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, \
             retry_max_backoff, created_at, updated_at) \
         VALUES (gen_random_uuid(), 'Receiver', $1, 'application/json', '{200}', \
             'my-secret-token', true, $2::integer, 5, $3::integer, $4::integer, now(), now()) \
         RETURNING id",
        &[
            &url,
            &max_delivery_attempts,
            &retry_backoff.0,
            &retry_backoff.1,
        ],
    )
    .expect("insert webhook")
    .get(0)
}

/// Through the API of a child process at `api`: a webhook (the fixture body with `overrides`)
/// and one delivery of `payload` for it. Returns (webhook id, delivery id).
pub fn webhook_and_delivery(
    api: std::net::SocketAddr,
    overrides: Value,
    payload: &str,
) -> (String, String) {
    let webhook = super::http::post_json(api, "/v1/webhooks", &merge(webhook_body(), overrides));
    assert_eq!(webhook.status, 201, "{}", webhook.text());
    let webhook_id = webhook.json()["id"].as_str().expect("id").to_string();
    let created = super::http::post_json(
        api,
        "/v1/deliveries",
        &json!({"webhook_id": webhook_id, "payload": payload}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let delivery_id = created.json()["id"].as_str().expect("id").to_string();
    (webhook_id, delivery_id)
}
