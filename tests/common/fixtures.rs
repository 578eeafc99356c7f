//! Rows with sensible defaults, written through the API's own JSON so fixtures stay valid.

use serde_json::{Value, json};

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

/// Creates a delivery through the API and returns its JSON.
pub fn delivery(app: &super::TestApp, webhook_id: &str, payload: &str) -> Value {
    let response = app.post(
        "/v1/deliveries",
        &json!({"webhook_id": webhook_id, "payload": payload}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}
