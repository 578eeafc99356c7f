use serde_json::{Value, json};

use crate::common::TestApp;
use crate::common::fixtures::{self, merge, webhook_body};

/// `value` with the fields postmand keeps about a webhook (issue 16) as a new one has them.
fn with_state_fields(mut value: Value) -> Value {
    for field in [
        "disabled_reason",
        "disabled_at",
        "previous_secret_expires_at",
    ] {
        value[field] = Value::Null;
    }
    value
}

fn without_times(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("created_at");
        object.remove("updated_at");
    }
    value
}

#[test]
fn create_webhook_returns_201_with_every_field_in_order() {
    let app = TestApp::start("create_webhook_201");
    let response = app.post("/v1/webhooks", &webhook_body());
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = response.json();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(
        without_times(body.clone()),
        with_state_fields(merge(webhook_body(), json!({"id": id, "event_types": []})))
    );
    crate::common::assert_key_order(&response.text(), fixtures::WEBHOOK_KEYS);
    assert_eq!(body["created_at"], body["updated_at"]);
    let stored = app.get(&format!("/v1/webhooks/{id}"));
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json(), body);
}

#[test]
fn create_webhook_ignores_client_id_and_timestamps() {
    let app = TestApp::start("create_webhook_ignores_id");
    let body = merge(
        webhook_body(),
        json!({"id": "00000000-0000-4000-8000-000000000000", "created_at": "2000-01-01T00:00:00Z"}),
    );
    let created = app.post("/v1/webhooks", &body).json();
    assert_ne!(created["id"], "00000000-0000-4000-8000-000000000000");
    assert_ne!(created["created_at"], "2000-01-01T00:00:00Z");
}

#[test]
fn create_webhook_without_active_or_secret_is_inactive_and_unsigned() {
    let app = TestApp::start("create_webhook_defaults");
    let created = fixtures::webhook(&app, json!({"active": null, "secret_token": null}));
    assert_eq!(created["active"], false);
    assert_eq!(created["secret_token"], "");
}

#[test]
fn create_webhook_empty_body_lists_every_blank_field() {
    let app = TestApp::start("create_webhook_empty");
    let response = app.send("POST", "/v1/webhooks", "{}");
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json(),
        json!({
            "code": 4,
            "message": "request validation failed",
            "details": "content_type: cannot be blank; delivery_attempt_timeout: cannot be blank; max_delivery_attempts: cannot be blank; name: cannot be blank; retry_max_backoff: cannot be blank; retry_min_backoff: cannot be blank; url: cannot be blank; valid_status_codes: cannot be blank."
        })
    );
}

#[test]
fn create_webhook_malformed_json_returns_code_3() {
    let app = TestApp::start("create_webhook_malformed");
    for body in [
        "{",
        "",
        "[]",
        "\"x\"",
        "{} {}",
        r#"{"active":"true"}"#,
        r#"{"max_delivery_attempts":1.5}"#,
        r#"{"valid_status_codes":[200.5]}"#,
        r#"{"max_delivery_attempts":99999999999999999999}"#,
    ] {
        let response = app.send("POST", "/v1/webhooks", body);
        assert_eq!(response.status, 400, "body {body:?}");
        assert_eq!(
            response.json(),
            json!({"code": 3, "message": "malformed request body"}),
            "body {body:?}"
        );
    }
}

fn details_for(app: &TestApp, overrides: Value) -> String {
    let response = app.post("/v1/webhooks", &merge(webhook_body(), overrides.clone()));
    assert_eq!(response.status, 400, "{overrides}: {}", response.text());
    let body = response.json();
    assert_eq!(body["code"], 4);
    body["details"].as_str().unwrap().to_string()
}

#[test]
fn create_webhook_validation_messages() {
    let app = TestApp::start("create_webhook_validation");
    let cases = [
        (
            json!({"name": "A"}),
            "name: the length must be between 3 and 255.",
        ),
        (
            json!({"name": "A".repeat(256)}),
            "name: the length must be between 3 and 255.",
        ),
        (
            json!({"url": "example.com/hook"}),
            "url: must be a valid URL.",
        ),
        (
            json!({"url": "ftp://example.com"}),
            "url: must be a valid URL.",
        ),
        (json!({"url": "http://"}), "url: must be a valid URL."),
        // A non-ASCII host: the HTTP client refuses it, so every attempt would fail.
        (
            json!({"url": "http://bücher.example/hook"}),
            "url: must be a valid URL.",
        ),
        (
            json!({"content_type": "a\r\nb"}),
            "content_type: must be a valid header value.",
        ),
        (
            json!({"valid_status_codes": []}),
            "valid_status_codes: cannot be blank.",
        ),
        (
            json!({"valid_status_codes": [200, 99]}),
            "valid_status_codes: each must be between 100 and 599.",
        ),
        (
            json!({"valid_status_codes": [600]}),
            "valid_status_codes: each must be between 100 and 599.",
        ),
        (
            json!({"max_delivery_attempts": 0}),
            "max_delivery_attempts: cannot be blank.",
        ),
        (
            json!({"max_delivery_attempts": -1}),
            "max_delivery_attempts: must be no less than 1.",
        ),
        (
            json!({"max_delivery_attempts": 1001}),
            "max_delivery_attempts: must be no greater than 1000.",
        ),
        (
            json!({"max_delivery_attempts": 40000}),
            "max_delivery_attempts: must be no greater than 1000.",
        ),
        (
            json!({"delivery_attempt_timeout": 301}),
            "delivery_attempt_timeout: must be no greater than 300.",
        ),
        (
            json!({"retry_min_backoff": 86401, "retry_max_backoff": 604800}),
            "retry_min_backoff: must be no greater than 86400.",
        ),
        (
            json!({"retry_max_backoff": 604801}),
            "retry_max_backoff: must be no greater than 604800.",
        ),
        (
            json!({"retry_min_backoff": 60, "retry_max_backoff": 10}),
            "retry_max_backoff: must be no less than retry_min_backoff.",
        ),
        (
            json!({"name": "na\u{0}me"}),
            "name: must not contain NUL characters.",
        ),
        (
            json!({"secret_token": "x".repeat(1025)}),
            "secret_token: the length must be no more than 1024.",
        ),
        (
            json!({"name": "A", "url": "nope"}),
            "name: the length must be between 3 and 255; url: must be a valid URL.",
        ),
    ];
    for (overrides, expected) in cases {
        assert_eq!(
            details_for(&app, overrides.clone()),
            expected,
            "{overrides}"
        );
    }
}

#[test]
fn create_webhook_accepts_boundary_values() {
    let app = TestApp::start("create_webhook_boundaries");
    let created = fixtures::webhook(
        &app,
        json!({"name": "ABC", "valid_status_codes": [100, 599], "max_delivery_attempts": 1000,
               "delivery_attempt_timeout": 300, "retry_min_backoff": 5, "retry_max_backoff": 5,
               "url": "HTTPS://user:pw@[::1]:8443/p?q=1"}),
    );
    assert_eq!(created["max_delivery_attempts"], 1000);
}

#[test]
fn get_webhook_unknown_id_returns_404_code_5() {
    let app = TestApp::start("get_webhook_unknown");
    app.assert_error(
        "GET",
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        404,
        json!({"code": 5, "message": "webhook not found"}),
    );
}

#[test]
fn update_webhook_replaces_every_field_and_keeps_created_at() {
    let app = TestApp::start("update_webhook_replaces");
    let created = fixtures::webhook(&app, json!({}));
    let id = created["id"].as_str().unwrap();
    let replacement = merge(
        webhook_body(),
        json!({"name": "Renamed", "valid_status_codes": [200, 201, 204], "active": null, "secret_token": null}),
    );
    let response = app.put(&format!("/v1/webhooks/{id}"), &replacement);
    assert_eq!(response.status, 200, "{}", response.text());
    let updated = response.json();
    assert_eq!(
        without_times(updated.clone()),
        with_state_fields(merge(
            replacement,
            json!({"id": id, "active": false, "secret_token": "", "event_types": []})
        ))
    );
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).json(), updated);
}

#[test]
fn update_webhook_unknown_id_returns_404_code_5() {
    let app = TestApp::start("update_webhook_unknown");
    let response = app.put(
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        &webhook_body(),
    );
    assert_eq!(response.status, 404);
    assert_eq!(
        response.json(),
        json!({"code": 5, "message": "webhook not found"})
    );
}

#[test]
fn update_webhook_invalid_body_returns_400_before_lookup() {
    let app = TestApp::start("update_webhook_invalid");
    let path = "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d";
    assert_eq!(app.send("PUT", path, "{").json()["code"], 3);
    assert_eq!(app.send("PUT", path, "{}").json()["code"], 4);
}

#[test]
fn delete_webhook_cascades_and_second_delete_is_404() {
    let app = TestApp::start("delete_webhook_cascades");
    let webhook = fixtures::webhook(&app, json!({}));
    let id = webhook["id"].as_str().unwrap();
    let delivery = fixtures::delivery(&app, id, "{}");
    let delivery_uuid: uuid::Uuid = delivery["id"].as_str().unwrap().parse().unwrap();
    let mut client = app.db.client();
    // An attempt reaches its webhook through its delivery (migration 6 dropped the direct key).
    client
        .execute(
            "INSERT INTO delivery_attempts SELECT gen_random_uuid(), webhook_id, id, 'req', 'resp', \
             200, 1, true, '', now() FROM deliveries WHERE id = $1",
            &[&delivery_uuid],
        )
        .unwrap();
    let response = app.delete(&format!("/v1/webhooks/{id}"));
    assert_eq!(response.status, 204);
    let attempts: i64 = client
        .query_one("SELECT count(*) FROM delivery_attempts", &[])
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0, "the webhook's attempts went with it");
    assert!(response.body.is_empty());
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).status, 404);
    let delivery_id = delivery["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/deliveries/{delivery_id}")).status,
        404
    );
    app.assert_error(
        "DELETE",
        &format!("/v1/webhooks/{id}"),
        404,
        json!({"code": 5, "message": "webhook not found"}),
    );
}

fn names(response: &crate::common::Response) -> Vec<String> {
    response.json()["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_webhooks_orders_by_name_and_filters_active() {
    let app = TestApp::start("list_webhooks_filters");
    for (name, active) in [("Charlie", true), ("Alpha", false), ("Bravo", true)] {
        fixtures::webhook(&app, json!({"name": name, "active": active}));
    }
    let all = app.get("/v1/webhooks");
    assert_eq!(all.status, 200);
    assert_eq!(names(&all), ["Alpha", "Bravo", "Charlie"]);
    assert_eq!(all.json()["limit"], 50);
    assert_eq!(all.json()["offset"], 0);
    assert_eq!(
        names(&app.get("/v1/webhooks?active=true")),
        ["Bravo", "Charlie"]
    );
    assert_eq!(names(&app.get("/v1/webhooks?active=false")), ["Alpha"]);
    let page = app.get("/v1/webhooks?limit=1&offset=1");
    assert_eq!(names(&page), ["Bravo"]);
    assert_eq!(
        (page.json()["limit"].clone(), page.json()["offset"].clone()),
        (json!(1), json!(1))
    );
}

#[test]
fn list_webhooks_empty_is_an_empty_array() {
    let app = TestApp::start("list_webhooks_empty");
    assert_eq!(
        app.get("/v1/webhooks").json(),
        json!({"webhooks": [], "limit": 50, "offset": 0, "next_cursor": null})
    );
}

#[test]
fn list_webhooks_same_name_pages_by_id_without_skips_or_repeats() {
    let app = TestApp::start("list_webhooks_ties");
    let mut ids: Vec<String> = (0..7)
        .map(|_| fixtures::webhook_id(&app, json!({"name": "Same"})))
        .collect();
    ids.sort();
    let mut seen = Vec::new();
    for offset in (0..7).step_by(2) {
        let page = app
            .get(&format!("/v1/webhooks?limit=2&offset={offset}"))
            .json();
        for webhook in page["webhooks"].as_array().unwrap() {
            seen.push(webhook["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids);
}

#[test]
fn list_webhooks_created_at_filters() {
    let app = TestApp::start("list_webhooks_created_at");
    let first = fixtures::webhook(&app, json!({"name": "First"}));
    let second = fixtures::webhook(&app, json!({"name": "Second"}));
    let t1 = first["created_at"].as_str().unwrap();
    let t2 = second["created_at"].as_str().unwrap();
    assert_eq!(
        names(&app.get(&format!("/v1/webhooks?created_at.gt={t1}"))),
        ["Second"]
    );
    assert_eq!(
        names(&app.get(&format!("/v1/webhooks?created_at.gte={t1}"))),
        ["First", "Second"]
    );
    assert_eq!(
        names(&app.get(&format!("/v1/webhooks?created_at.lt={t2}"))),
        ["First"]
    );
    assert_eq!(
        names(&app.get(&format!("/v1/webhooks?created_at.lte={t2}"))),
        ["First", "Second"]
    );
    // An offset written with an unescaped '+' arrives as a space and is still understood.
    assert_eq!(
        names(&app.get("/v1/webhooks?created_at.gt=2000-01-01T00:00:00+01:00")),
        ["First", "Second"]
    );
}

#[test]
fn list_webhooks_bad_parameters_return_400_naming_each() {
    let app = TestApp::start("list_webhooks_bad_params");
    let cases = [
        (
            "limit=abc&active=true",
            "limit: must be an integer from 1 to 1000.",
        ),
        ("limit=0", "limit: must be an integer from 1 to 1000."),
        ("limit=1001", "limit: must be an integer from 1 to 1000."),
        ("limit=-1", "limit: must be an integer from 1 to 1000."),
        ("offset=-1", "offset: must be an integer from 0 to 1000000."),
        (
            "offset=1e2",
            "offset: must be an integer from 0 to 1000000.",
        ),
        ("active=null", "active: must be true or false."),
        ("active=", "active: must be true or false."),
        (
            "created_at.lt=yesterday",
            "created_at.lt: must be an RFC 3339 date-time.",
        ),
        (
            "limit=x&offset=y",
            "limit: must be an integer from 1 to 1000; offset: must be an integer from 0 to 1000000.",
        ),
    ];
    for (query, details) in cases {
        app.assert_error(
            "GET",
            &format!("/v1/webhooks?{query}"),
            400,
            json!({"code": 4, "message": "request validation failed", "details": details}),
        );
    }
}
