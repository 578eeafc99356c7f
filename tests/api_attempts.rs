use serde_json::json;
use uuid::Uuid;

use crate::common::TestApp;
use crate::common::fixtures;

/// Inserts an attempt row as the dispatcher would, `seconds_ago` in the past.
fn insert_attempt(
    app: &TestApp,
    webhook_id: &str,
    delivery_id: &str,
    success: bool,
    seconds_ago: i32,
) -> String {
    let id = Uuid::new_v4();
    app.db
        .client()
        .execute(
            "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response,
                 response_status_code, execution_duration, success, error, created_at)
             VALUES ($1, $2, $3, 'POST / HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\n\r\n', 200, 40000, $4, '',
                 now() - make_interval(secs => $5))",
            &[
                &id,
                &Uuid::parse_str(webhook_id).unwrap(),
                &Uuid::parse_str(delivery_id).unwrap(),
                &success,
                &(seconds_ago as f64),
            ],
        )
        .unwrap();
    id.to_string()
}

fn ids(response: &crate::common::Response) -> Vec<String> {
    crate::common::ids_in(response, "delivery_attempts")
}

#[test]
fn get_attempt_returns_every_field_in_order() {
    let app = TestApp::start("get_attempt_fields");
    let webhook = fixtures::webhook_id(&app, json!({}));
    let delivery = fixtures::delivery_id(&app, &webhook, "x");
    let id = insert_attempt(&app, &webhook, &delivery, true, 0);
    let response = app.get(&format!("/v1/delivery-attempts/{id}"));
    assert_eq!(response.status, 200);
    crate::common::assert_key_order(
        &response.text(),
        &[
            "id",
            "webhook_id",
            "delivery_id",
            "raw_request",
            "raw_response",
            "response_status_code",
            "execution_duration",
            "success",
            "error",
            "created_at",
        ],
    );
    let mut body = response.json();
    body.as_object_mut().unwrap().remove("created_at");
    assert_eq!(
        body,
        json!({"id": id, "webhook_id": webhook, "delivery_id": delivery,
               "raw_request": "POST / HTTP/1.1\r\n\r\n", "raw_response": "HTTP/1.1 200 OK\r\n\r\n",
               "response_status_code": 200, "execution_duration": 40000, "success": true, "error": ""})
    );
}

#[test]
fn get_attempt_unknown_id_returns_404_code_7() {
    let app = TestApp::start("get_attempt_unknown");
    app.assert_error(
        "GET",
        "/v1/delivery-attempts/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        404,
        json!({"code": 7, "message": "delivery attempt not found"}),
    );
}

#[test]
fn list_attempts_newest_first_with_filters() {
    let app = TestApp::start("list_attempts_filters");
    let w1 = fixtures::webhook_id(&app, json!({}));
    let w2 = fixtures::webhook_id(&app, json!({}));
    let d1 = fixtures::delivery_id(&app, &w1, "x");
    let d2 = fixtures::delivery_id(&app, &w2, "y");
    let oldest = insert_attempt(&app, &w1, &d1, false, 30);
    let middle = insert_attempt(&app, &w2, &d2, true, 20);
    let newest = insert_attempt(&app, &w1, &d1, true, 10);
    assert_eq!(
        ids(&app.get("/v1/delivery-attempts")),
        [newest.as_str(), middle.as_str(), oldest.as_str()]
    );
    assert_eq!(
        ids(&app.get(&format!("/v1/delivery-attempts?webhook_id={w1}"))),
        [newest.as_str(), oldest.as_str()]
    );
    assert_eq!(
        ids(&app.get(&format!("/v1/delivery-attempts?delivery_id={d2}"))),
        [middle.as_str()]
    );
    assert_eq!(
        ids(&app.get("/v1/delivery-attempts?success=false")),
        [oldest.as_str()]
    );
    assert_eq!(
        ids(&app.get("/v1/delivery-attempts?success=true&limit=1")),
        [newest.as_str()]
    );
    let list = app.get("/v1/delivery-attempts?limit=2&offset=1").json();
    assert_eq!(
        (list["limit"].clone(), list["offset"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(list["delivery_attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/v1/delivery-attempts?success=maybe").json(),
        json!({"code": 4, "message": "request validation failed", "details": "success: must be true or false."})
    );
    assert_eq!(
        app.get("/v1/delivery-attempts?delivery_id=").json()["details"],
        "delivery_id: must be a valid UUID."
    );
}
