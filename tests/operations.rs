//! Running it: metrics, the API token, retention, the OpenAPI document and Swagger UI.

use std::collections::HashMap;

use serde_json::json;
use uuid::Uuid;

use crate::common::receiver::Receiver;
use crate::common::{TestApp, TestDb, fixtures, http, wait_until};

/// Parses Prometheus text into `name{labels}` -> value, checking every line's shape.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            key.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "{line:?}"
        );
        samples.insert(key.to_string(), value);
    }
    samples
}

fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = http::request(app.health, "GET", "/metrics", &[], None);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(&response.text())
}

#[test]
fn metrics_move_as_deliveries_flow() {
    let receiver = Receiver::start(|n, _| {
        crate::common::receiver::Answer::status(if n == 0 { 200 } else { 500 })
    });
    let app = TestApp::start_all("metrics_flow", &[("POSTMAND_POLLING_INTERVAL", "60000")]);
    let before = scrape(&app);
    assert_eq!(before["postmand_database_up"], 1.0);
    assert_eq!(before["postmand_dispatchers"], 4.0);
    assert_eq!(before["postmand_attempts_total{outcome=\"success\"}"], 0.0);
    // Issue 17: the attempt partitions reach about a week ahead (to the end of the UTC day 7
    // days from now).
    let ahead = before["postmand_attempt_partitions_ahead_seconds"];
    assert!(
        (6.0 * 86_400.0..=8.0 * 86_400.0).contains(&ahead),
        "{ahead}"
    );
    let inactive =
        fixtures::webhook(&app, json!({"active": false, "url": receiver.url("/")}))["id"]
            .as_str()
            .unwrap()
            .to_string();
    let waiting = fixtures::delivery(&app, &inactive, "waits");
    let queued = scrape(&app);
    assert_eq!(queued["postmand_deliveries_pending"], 1.0);
    assert_eq!(queued["postmand_queue_depth"], 1.0);
    assert!(queued["postmand_queue_oldest_due_age_seconds"] >= 0.0);
    assert_eq!(queued["postmand_deliveries_created_total"], 1.0);
    let active = fixtures::webhook(
        &app,
        json!({"url": receiver.url("/"), "max_delivery_attempts": 1}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = fixtures::delivery(&app, &active, "ok")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = fixtures::delivery(&app, &active, "bad")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [&ok, &bad] {
        wait_until("delivery to finish", || {
            let d = app.get(&format!("/v1/deliveries/{id}")).json();
            if d["status"] != "pending" {
                Ok(())
            } else {
                Err(d)
            }
        });
    }
    let after = scrape(&app);
    assert_eq!(after["postmand_attempts_total{outcome=\"success\"}"], 1.0);
    assert_eq!(after["postmand_attempts_total{outcome=\"rejected\"}"], 1.0);
    for failure in [
        "timeout",
        "refused",
        "tls",
        "dns",
        "too_large",
        "protocol",
        "body",
    ] {
        assert_eq!(
            after[format!("postmand_attempts_total{{outcome=\"{failure}\"}}").as_str()],
            0.0
        );
    }
    assert_eq!(
        after["postmand_deliveries_finished_total{status=\"succeeded\"}"],
        1.0
    );
    assert_eq!(
        after["postmand_deliveries_finished_total{status=\"failed\"}"],
        1.0
    );
    assert_eq!(after["postmand_attempt_duration_seconds_count"], 2.0);
    assert_eq!(
        after["postmand_attempt_duration_seconds_bucket{le=\"+Inf\"}"],
        2.0
    );
    assert_eq!(after["postmand_deliveries_created_total"], 3.0);
    assert_eq!(
        after["postmand_deliveries_pending"], 1.0,
        "only {} waits",
        waiting["id"]
    );
    assert_eq!(after["postmand_dispatchers_busy"], 0.0);
    assert_eq!(
        after["postmand_http_requests_total{route=\"POST /v1/deliveries\",code=\"201\"}"],
        3.0
    );
    assert!(
        after["postmand_http_requests_total{route=\"GET /v1/deliveries/{delivery_id}\",code=\"200\"}"]
            >= 2.0
    );
}

#[test]
fn api_token_guards_every_v1_route_but_not_health_metrics_or_swagger() {
    let db = TestDb::new("api_token");
    let config = db.config_with(&[("POSTMAND_API_TOKEN", "s3cret-token")]);
    let app = TestApp::start_with(db, &config, postmand::cli::Role::Api);
    app.wait_healthy();
    let id = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";
    let routes = [
        ("GET", "/v1/webhooks".to_string()),
        ("POST", "/v1/webhooks".to_string()),
        ("GET", format!("/v1/webhooks/{id}")),
        ("PUT", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("GET", "/v1/deliveries".to_string()),
        ("POST", "/v1/deliveries".to_string()),
        ("GET", format!("/v1/deliveries/{id}")),
        ("DELETE", format!("/v1/deliveries/{id}")),
        ("POST", format!("/v1/deliveries/{id}/retry")),
        ("GET", "/v1/delivery-attempts".to_string()),
        ("GET", format!("/v1/delivery-attempts/{id}")),
        ("GET", "/v1/nonexistent".to_string()),
    ];
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic czNjcmV0LXRva2Vu"),
            Some("Bearer s3cret-token-longer"),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let response = http::request(app.api, method, path, &headers, None);
            assert_eq!(response.status, 401, "{method} {path} {auth:?}");
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
            assert_eq!(
                response.json(),
                json!({"code": 8, "message": "unauthorized", "details": "send the API token as Authorization: Bearer <token>"})
            );
        }
        let response = http::request(
            app.api,
            method,
            path,
            &[("Authorization", "Bearer s3cret-token")],
            None,
        );
        assert_ne!(response.status, 401, "{method} {path} with the token");
    }
    let created = http::request(
        app.api,
        "POST",
        "/v1/webhooks",
        &[
            ("Authorization", "bearer s3cret-token"),
            ("Content-Type", "application/json"),
        ],
        Some(fixtures::webhook_body().to_string().as_bytes()),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        http::request(app.health, "GET", "/healthz", &[], None).status,
        200
    );
    assert_eq!(
        http::request(app.health, "GET", "/metrics", &[], None).status,
        200
    );
    assert_eq!(
        http::request(app.api, "GET", "/swagger/doc.json", &[], None).status,
        200
    );
    assert_eq!(
        http::request(app.api, "GET", "/swagger", &[], None).status,
        302
    );
}

#[test]
fn retention_deletes_only_old_finished_deliveries() {
    let db = TestDb::new("retention_deletes");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO webhooks VALUES ($1, 'Ret', 'http://127.0.0.1:9/', 'text/plain', '{200}', '', false, 1, 1, 1, 1, now(), now())",
            &[&webhook],
        )
        .unwrap();
    // (status, age in days) for each delivery; each gets one attempt.
    let rows = [
        ("succeeded", 10),
        ("failed", 10),
        ("pending", 10),
        ("succeeded", 2),
        ("failed", 2),
        ("pending", 2),
    ];
    let mut ids = Vec::new();
    for _ in 0..300 {
        for (status, days) in rows {
            let id = Uuid::new_v4();
            client
                .execute(
                    "INSERT INTO deliveries VALUES ($1, $2, 'x', now(), 1, $3, now(), now() - $4::integer * interval '1 day')",
                    &[&id, &webhook, &status, &days],
                )
                .unwrap();
            client
                .execute(
                    "INSERT INTO delivery_attempts VALUES (gen_random_uuid(), $2, $1, '', '', 200, 1, true, '', now())",
                    &[&id, &webhook],
                )
                .unwrap();
            ids.push((id, status, days));
        }
    }
    let config = db.config_with(&[("POSTMAND_RETENTION_DAYS", "7")]);
    let _app = TestApp::start_with(db, &config, postmand::cli::Role::Worker);
    wait_until("retention to delete 600 deliveries", || {
        let n: i64 = client
            .query_one("SELECT count(*) FROM deliveries", &[])
            .unwrap()
            .get(0);
        if n == 1200 { Ok(()) } else { Err(n) }
    });
    let remaining: Vec<(String, i32)> = client
        .query(
            "SELECT status, round(extract(epoch FROM now() - updated_at) / 86400)::integer FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        remaining,
        [
            ("failed".to_string(), 2),
            ("pending".to_string(), 2),
            ("pending".to_string(), 10),
            ("succeeded".to_string(), 2)
        ]
    );
    let attempts: i64 = client
        .query_one("SELECT count(*) FROM delivery_attempts", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        attempts, 1200,
        "attempts of deleted deliveries go with them"
    );
}

#[test]
fn swagger_ui_and_document_are_served_from_the_binary() {
    let app = TestApp::start("swagger_served");
    let index = app.get("/swagger/index.html");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(index.text().contains("url: \"./doc.json\","));
    let bundle = app.get("/swagger/swagger-ui-bundle.js");
    assert_eq!(bundle.status, 200);
    assert_eq!(
        bundle.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert!(bundle.body.len() > 1_000_000, "{}", bundle.body.len());
    let css = app.get("/swagger/swagger-ui.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let doc = app.get("/swagger/doc.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/deliveries/{delivery_id}/retry"]["post"].is_object());
    for path in [
        "/swagger/nope.js",
        "/swagger/swagger-ui-standalone-preset.js",
        "/swagger/../Cargo.toml",
        "/swagger/%2e%2e/Cargo.toml",
        "/swagger/%2E%2E%2FCargo.toml",
        "/swagger//index.html",
        "/swagger/index.html/",
    ] {
        let response = app.get(path);
        assert_eq!(
            (response.status, response.json()),
            (404, json!({"code": 13, "message": "route not found"})),
            "{path}"
        );
    }
}

#[test]
fn swagger_root_with_or_without_slash_redirects_to_the_page() {
    let app = TestApp::start("swagger_redirect");
    for path in [
        "/swagger",
        "/swagger/",
        "/swagger?url=http://127.0.0.1:1/evil.json",
        "/swagger/?configUrl=http://127.0.0.1:1/evil.json",
    ] {
        let response = app.get(path);
        assert_eq!(
            (
                response.status,
                response.header("location"),
                response.text()
            ),
            (302, Some("/swagger/index.html"), String::new()),
            "{path}"
        );
    }
    let page = app.get("/swagger/index.html");
    assert_eq!(page.status, 200);
    // Only GET is served: other methods fall through to the router, which knows no /swagger.
    let posted = http::request(app.api, "POST", "/swagger", &[], None);
    assert_eq!(posted.status, 404);
}

// See: https://nvd.nist.gov/vuln/detail/CVE-2021-46708 (a query string choosing the document).
#[test]
fn swagger_page_ignores_configuration_from_the_query_string() {
    let app = TestApp::start("swagger_query_off");
    let plain = app.get("/swagger/index.html");
    assert_eq!(plain.status, 200);
    let page = plain.text();
    for option in [
        "url: \"./doc.json\",",
        "queryConfigEnabled: false,",
        "validatorUrl: null,",
    ] {
        assert!(page.contains(option), "{option} in {page}");
    }
    assert!(!page.contains("configUrl"), "{page}");
    for query in [
        "url=http://127.0.0.1:1/evil.json",
        "configUrl=http://127.0.0.1:1/evil.json",
        "config=http://127.0.0.1:1/evil.json",
        "queryConfigEnabled=true&url=http://127.0.0.1:1/evil.json",
    ] {
        let response = app.get(&format!("/swagger/index.html?{query}"));
        assert_eq!(
            (response.status, response.text()),
            (200, page.clone()),
            "{query}"
        );
    }
}
