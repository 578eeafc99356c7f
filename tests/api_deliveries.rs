use serde_json::json;

use crate::common::TestApp;
use crate::common::fixtures;

#[test]
fn create_delivery_returns_201_pending_due_now() {
    let app = TestApp::start("create_delivery_201");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let response = app.post(
        "/v1/deliveries",
        &json!({"webhook_id": webhook_id, "payload": "{\"success\": true}"}),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    crate::common::assert_key_order(
        &response.text(),
        &[
            "id",
            "webhook_id",
            "payload",
            "scheduled_at",
            "delivery_attempts",
            "status",
            "created_at",
            "updated_at",
            // Issue 15, after the seed fields.
            "event_id",
        ],
    );
    let body = response.json();
    assert_eq!(body["event_id"], serde_json::Value::Null);
    assert_eq!(body["webhook_id"], json!(webhook_id));
    assert_eq!(body["payload"], "{\"success\": true}");
    assert_eq!(body["delivery_attempts"], 0);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["scheduled_at"], body["created_at"]);
    let id = body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/deliveries/{id}")).json(), body);
}

#[test]
fn create_delivery_ignores_client_attempts_status_and_schedule() {
    // See: seed defect 4 (client-set delivery_attempts changed the retry budget).
    let app = TestApp::start("create_delivery_ignores");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = app
        .post(
            "/v1/deliveries",
            &json!({"webhook_id": webhook_id, "payload": "x", "delivery_attempts": 4,
                    "status": "failed", "scheduled_at": "2000-01-01T00:00:00Z", "id": webhook_id}),
        )
        .json();
    assert_eq!(body["delivery_attempts"], 0);
    assert_eq!(body["status"], "pending");
    assert_ne!(body["scheduled_at"], "2000-01-01T00:00:00Z");
    assert_ne!(body["id"], json!(webhook_id));
}

#[test]
fn create_delivery_empty_payload_is_accepted() {
    let app = TestApp::start("create_delivery_empty_payload");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let body = app
        .post("/v1/deliveries", &json!({"webhook_id": webhook_id}))
        .json();
    assert_eq!(body["payload"], "");
}

#[test]
fn create_delivery_for_unknown_webhook_returns_400() {
    let app = TestApp::start("create_delivery_unknown_webhook");
    let response = app.post(
        "/v1/deliveries",
        &json!({"webhook_id": "a6e9a525-ac5a-488c-b118-bd7327ce6d8d", "payload": "x"}),
    );
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json(),
        json!({"code": 4, "message": "request validation failed", "details": "webhook_id: webhook does not exist."})
    );
}

#[test]
fn create_delivery_validation_messages() {
    let app = TestApp::start("create_delivery_validation");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let cases = [
        (json!({}), "webhook_id: must be a valid UUID v4."),
        (
            json!({"webhook_id": "nope"}),
            "webhook_id: must be a valid UUID v4.",
        ),
        (
            json!({"webhook_id": "00000000-0000-0000-0000-000000000000"}),
            "webhook_id: must be a valid UUID v4.",
        ),
        (
            json!({"webhook_id": "a6e9a525-ac5a-188c-b118-bd7327ce6d8d"}),
            "webhook_id: must be a valid UUID v4.",
        ),
        (
            json!({"webhook_id": webhook_id, "payload": "a\u{0}b"}),
            "payload: must not contain NUL characters.",
        ),
    ];
    for (body, details) in cases {
        let response = app.post("/v1/deliveries", &body);
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(
            response.json(),
            json!({"code": 4, "message": "request validation failed", "details": details}),
            "{body}"
        );
    }
    for body in ["{", r#"{"payload":{"a":1}}"#, r#"{"webhook_id":5}"#, "null"] {
        let response = app.send("POST", "/v1/deliveries", body);
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(
            response.json(),
            json!({"code": 3, "message": "malformed request body"})
        );
    }
}

#[test]
fn get_delivery_unknown_id_returns_404_code_6() {
    let app = TestApp::start("get_delivery_unknown");
    app.assert_error(
        "GET",
        "/v1/deliveries/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        404,
        json!({"code": 6, "message": "delivery not found"}),
    );
}

#[test]
fn delete_delivery_then_404() {
    let app = TestApp::start("delete_delivery");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let id = fixtures::delivery_id(&app, &webhook_id, "x");
    let response = app.delete(&format!("/v1/deliveries/{id}"));
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    assert_eq!(app.get(&format!("/v1/deliveries/{id}")).status, 404);
    app.assert_error(
        "DELETE",
        &format!("/v1/deliveries/{id}"),
        404,
        json!({"code": 6, "message": "delivery not found"}),
    );
}

fn ids(response: &crate::common::Response) -> Vec<String> {
    crate::common::ids_in(response, "deliveries")
}

#[test]
fn list_deliveries_newest_first_with_filters() {
    let app = TestApp::start("list_deliveries_filters");
    let a = fixtures::webhook_id(&app, json!({}));
    let b = fixtures::webhook_id(&app, json!({}));
    let first = fixtures::delivery(&app, &a, "1");
    let second = fixtures::delivery(&app, &b, "2");
    let third = fixtures::delivery(&app, &a, "3");
    let id = |d: &serde_json::Value| d["id"].as_str().unwrap().to_string();
    app.db
        .client()
        .execute(
            "UPDATE deliveries SET status = 'succeeded' WHERE id = $1",
            &[&uuid::Uuid::parse_str(&id(&second)).unwrap()],
        )
        .unwrap();
    assert_eq!(
        ids(&app.get("/v1/deliveries")),
        [id(&third), id(&second), id(&first)]
    );
    assert_eq!(
        ids(&app.get(&format!("/v1/deliveries?webhook_id={a}"))),
        [id(&third), id(&first)]
    );
    assert_eq!(
        ids(&app.get("/v1/deliveries?status=succeeded")),
        [id(&second)]
    );
    assert_eq!(
        ids(&app.get("/v1/deliveries?status=pending")),
        [id(&third), id(&first)]
    );
    assert_eq!(
        ids(&app.get("/v1/deliveries?status=failed")),
        Vec::<String>::new()
    );
    let t2 = second["created_at"].as_str().unwrap();
    assert_eq!(
        ids(&app.get(&format!("/v1/deliveries?created_at.gte={t2}"))),
        [id(&third), id(&second)]
    );
    assert_eq!(
        ids(&app.get(&format!("/v1/deliveries?created_at.lt={t2}"))),
        [id(&first)]
    );
    assert_eq!(
        ids(&app.get("/v1/deliveries?limit=1&offset=1")),
        [id(&second)]
    );
    // A page past an offset reads the skipped rows from an index and fetches its own by id
    // (deliveries::LIST_PAST_OFFSET): the same filters and order.
    assert_eq!(
        ids(&app.get("/v1/deliveries?status=pending&limit=5&offset=1")),
        [id(&first)]
    );
    assert_eq!(
        ids(&app.get(&format!(
            "/v1/deliveries?created_at.gte={t2}&limit=5&offset=1"
        ))),
        [id(&second)]
    );
    assert_eq!(
        ids(&app.get("/v1/deliveries?offset=3")),
        Vec::<String>::new()
    );
}

#[test]
fn list_deliveries_same_created_at_pages_by_id() {
    let app = TestApp::start("list_deliveries_ties");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let mut client = app.db.client();
    // One transaction: every row gets the same now().
    client
        .batch_execute(&format!(
            "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at)
             SELECT gen_random_uuid(), '{webhook_id}', 'x', now(), 0, 'pending', now(), now() FROM generate_series(1, 9)"
        ))
        .unwrap();
    let mut expected: Vec<String> = client
        .query("SELECT id::text FROM deliveries", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    expected.sort();
    expected.reverse();
    let mut seen = Vec::new();
    for offset in (0..9).step_by(4) {
        seen.extend(ids(
            &app.get(&format!("/v1/deliveries?limit=4&offset={offset}"))
        ));
    }
    assert_eq!(seen, expected);
}

#[test]
fn list_deliveries_bad_parameters_return_400() {
    let app = TestApp::start("list_deliveries_bad_params");
    for (query, details) in [
        ("webhook_id=nope", "webhook_id: must be a valid UUID."),
        (
            "status=done",
            "status: must be one of pending, succeeded, failed.",
        ),
        (
            "created_at.gt=2021-13-01T00:00:00Z",
            "created_at.gt: must be an RFC 3339 date-time.",
        ),
    ] {
        let response = app.get(&format!("/v1/deliveries?{query}"));
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.json()["details"], details, "{query}");
    }
}

#[test]
fn retry_finished_delivery_requeues_with_fresh_budget() {
    let app = TestApp::start("retry_delivery_requeues");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let created = fixtures::delivery(&app, &webhook_id, "x");
    let id = created["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    let mut client = app.db.client();
    client
        .execute(
            "UPDATE deliveries SET status = 'failed', delivery_attempts = 5, scheduled_at = now() - interval '1 hour' WHERE id = $1",
            &[&uuid],
        )
        .unwrap();
    let response = app.send("POST", &format!("/v1/deliveries/{id}/retry"), "");
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["delivery_attempts"], 0);
    let due: bool = client
        .query_one("SELECT scheduled_at <= now() AND scheduled_at > now() - interval '1 minute' FROM deliveries WHERE id = $1", &[&uuid])
        .unwrap()
        .get(0);
    assert!(due);
}

#[test]
fn retry_pending_delivery_returns_409() {
    let app = TestApp::start("retry_delivery_pending");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let id = fixtures::delivery_id(&app, &webhook_id, "x");
    let response = app.send("POST", &format!("/v1/deliveries/{id}/retry"), "");
    assert_eq!(response.status, 409);
    assert_eq!(
        response.json(),
        json!({"code": 14, "message": "delivery is pending", "details": "only a succeeded or failed delivery can be retried"})
    );
}

#[test]
fn retry_unknown_delivery_returns_404() {
    let app = TestApp::start("retry_delivery_unknown");
    let response = app.send(
        "POST",
        "/v1/deliveries/a6e9a525-ac5a-488c-b118-bd7327ce6d8d/retry",
        "",
    );
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["code"], 6);
}

#[test]
fn concurrent_creates_each_get_their_own_answer_and_row() {
    // Creates that arrive together are written together (api/creates.rs): a batch that mixes
    // good creates with ones naming an unknown webhook answers each on its own.
    let app = TestApp::start("concurrent_creates");
    let webhook_id = fixtures::webhook_id(&app, json!({}));
    let unknown = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";
    let answers: Vec<(usize, u16, serde_json::Value)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (app, webhook_id) = (&app, &webhook_id);
                scope.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let n = t * 10 + i;
                            let target = if n % 3 == 0 {
                                unknown
                            } else {
                                webhook_id.as_str()
                            };
                            let response = app.post(
                                "/v1/deliveries",
                                &json!({"webhook_id": target, "payload": format!("n{n}")}),
                            );
                            (n, response.status, response.json())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let mut created = Vec::new();
    for (n, status, body) in &answers {
        if n % 3 == 0 {
            assert_eq!(*status, 400, "{body}");
            assert_eq!(body["details"], "webhook_id: webhook does not exist.");
        } else {
            assert_eq!(*status, 201, "{body}");
            assert_eq!(body["payload"], format!("n{n}"));
            assert_eq!(body["webhook_id"], json!(webhook_id));
            let stored = app.get(&format!("/v1/deliveries/{}", body["id"].as_str().unwrap()));
            assert_eq!(stored.json()["payload"], format!("n{n}"));
            created.push(body["id"].as_str().unwrap().to_string());
        }
    }
    let mut client = app.db.client();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM deliveries", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, created.len());
    assert_eq!(created.len(), 160 - 54);
}

#[test]
fn create_for_a_webhook_deleted_meanwhile_is_400_and_others_still_commit() {
    let app = TestApp::start("create_webhook_deleted_meanwhile");
    let doomed = fixtures::webhook_id(&app, json!({}));
    let kept = fixtures::webhook_id(&app, json!({}));
    // An uncommitted delete of the webhook: a create naming it waits on the row lock, then
    // fails its foreign key when the delete commits.
    let mut deleter = app.db.client();
    let mut tx = deleter.transaction().unwrap();
    tx.execute("DELETE FROM webhooks WHERE id = $1::text::uuid", &[&doomed])
        .unwrap();
    let (doomed_answer, kept_answers) = std::thread::scope(|scope| {
        let doomed_create = scope.spawn(|| {
            app.post(
                "/v1/deliveries",
                &json!({"webhook_id": doomed, "payload": "doomed"}),
            )
        });
        // Once that create is blocked on the lock, others queue behind it (or, if they come
        // after the commit, go in the next batch: either way each gets its own answer).
        let mut watcher = app.db.client();
        crate::common::wait_until("the create to wait on the webhook's lock", || {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO deliveries%'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 { Ok(()) } else { Err(waiting) }
        });
        let kept_creates: Vec<_> = (0..4)
            .map(|i| {
                let kept = &kept;
                let app = &app;
                scope.spawn(move || {
                    app.post(
                        "/v1/deliveries",
                        &json!({"webhook_id": kept, "payload": format!("kept{i}")}),
                    )
                })
            })
            .collect();
        tx.commit().unwrap();
        (
            doomed_create.join().unwrap(),
            kept_creates
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(doomed_answer.status, 400, "{}", doomed_answer.text());
    assert_eq!(
        doomed_answer.json()["details"],
        "webhook_id: webhook does not exist."
    );
    for answer in &kept_answers {
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let mut client = app.db.client();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM deliveries", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 4);
}
