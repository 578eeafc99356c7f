use serde_json::json;

use crate::common::{Response, TestApp, http};

#[test]
fn unknown_route_returns_404_error_object() {
    let app = TestApp::start("unknown_route_404");
    for path in [
        "/",
        "/v2/webhooks",
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d/",
    ] {
        app.assert_error(
            "GET",
            path,
            404,
            json!({"code": 13, "message": "route not found"}),
        );
    }
}

#[test]
fn wrong_method_returns_405_with_allow_header() {
    let app = TestApp::start("wrong_method_405");
    let response = app.send(
        "PATCH",
        "/v1/webhooks/a6e9a525-ac5a-488c-b118-bd7327ce6d8d",
        "{}",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, PUT, DELETE"));
    assert_eq!(
        response.json(),
        json!({"code": 12, "message": "method not allowed", "details": "allowed: GET, PUT, DELETE"})
    );
    let delete_list = app.delete("/v1/delivery-attempts");
    assert_eq!(delete_list.status, 405);
    assert_eq!(delete_list.header("allow"), Some("GET"));
}

#[test]
fn bad_path_id_returns_404_code_2() {
    let app = TestApp::start("bad_path_id_404");
    for path in [
        "/v1/webhooks/nope",
        "/v1/deliveries/123",
        "/v1/delivery-attempts/x",
        "/v1/deliveries/zz/retry",
    ] {
        let method = if path.ends_with("retry") {
            "POST"
        } else {
            "GET"
        };
        app.assert_error(
            method,
            path,
            404,
            json!({"code": 2, "message": "invalid id"}),
        );
    }
}

// See: issue 15 (a path id is percent-decoded, so every UUID form works however it is escaped).
#[test]
fn issue_15_escaped_path_ids_are_decoded() {
    let app = TestApp::start("escaped_path_ids");
    let webhook_id = crate::common::fixtures::webhook_id(&app, json!({}));
    for form in [
        format!("%7B{webhook_id}%7D"),
        format!("urn%3Auuid%3A{webhook_id}"),
        webhook_id.replacen('-', "%2D", 4),
    ] {
        let response = app.get(&format!("/v1/webhooks/{form}"));
        assert_eq!(response.status, 200, "{form}: {}", response.text());
        assert_eq!(response.json()["id"], json!(webhook_id), "{form}");
    }
    app.assert_error(
        "GET",
        "/v1/webhooks/%7Bnope%7D",
        404,
        json!({"code": 2, "message": "invalid id"}),
    );
}

// See: issue 15 (tiny_http closed the connection without an answer at a byte past 0x7F).
#[test]
fn issue_15_a_request_line_outside_ascii_gets_400() {
    let app = TestApp::start("request_line_non_ascii");
    let response = http::raw(
        app.api,
        b"GET /v1/webhooks/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    let name = http::raw(
        app.api,
        b"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nX-Caf\xc3\xa9: 1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(name.status, 400);
    http::assert_served(app.api, "/v1/webhooks", "after heads outside ASCII");
}

#[test]
fn body_without_json_content_type_returns_415() {
    let app = TestApp::start("non_json_body_415");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        let response = http::request(app.api, "POST", "/v1/webhooks", &headers, Some(b"{}"));
        assert_eq!(response.status, 415, "{content_type:?}");
        assert_eq!(
            response.json(),
            json!({"code": 10, "message": "unsupported media type", "details": "a request body must have Content-Type: application/json"})
        );
    }
    assert_eq!(app.get("/v1/webhooks").status, 200);
    assert_eq!(app.get("/v1/webhooks").json()["webhooks"], json!([]));
}

#[test]
fn json_content_type_with_parameters_is_accepted() {
    let app = TestApp::start("json_content_type_params");
    for content_type in [
        "application/json; charset=utf-8",
        "application/json ; charset=utf-8",
        "Application/JSON",
    ] {
        let response = http::request(
            app.api,
            "POST",
            "/v1/webhooks",
            &[("Content-Type", content_type)],
            Some(b"{}"),
        );
        assert_eq!(response.status, 400, "{content_type}: validation, not 415");
        assert_eq!(response.json()["code"], 4);
    }
}

/// `POST /v1/webhooks` with `body` as `application/json`, sent in chunks of `chunk` bytes (the
/// last one may be shorter).
fn post_chunked(app: &TestApp, body: &[u8], chunk: usize) -> Response {
    let mut chunked = Vec::new();
    for part in body.chunks(chunk) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    http::request(
        app.api,
        "POST",
        "/v1/webhooks",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
        Some(&chunked),
    )
}

#[test]
fn body_over_limit_returns_413_by_length_and_by_chunks() {
    let app = TestApp::start("body_over_limit_413");
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(1024 * 1024));
    let response = app.send("POST", "/v1/webhooks", &big);
    assert_eq!(response.status, 413);
    assert_eq!(
        response.json(),
        json!({"code": 9, "message": "request body too large", "details": "the limit is 1048576 bytes"})
    );
    let response = post_chunked(&app, big.as_bytes(), 64 * 1024);
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["code"], 9);
}

#[test]
fn chunked_body_under_limit_is_read() {
    let app = TestApp::start("chunked_body_ok");
    let body = crate::common::fixtures::webhook_body().to_string();
    let response = post_chunked(&app, body.as_bytes(), body.len());
    assert_eq!(response.status, 201, "{}", response.text());
}

#[test]
fn every_response_has_json_type_and_security_headers() {
    let app = TestApp::start("security_headers");
    for response in [
        app.get("/v1/webhooks"),
        app.get("/nope"),
        app.send("POST", "/v1/webhooks", "{"),
    ] {
        assert_eq!(
            response.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("x-xss-protection"), Some("1; mode=block"));
        assert_eq!(
            response.header("content-security-policy"),
            Some("frame-ancestors 'none'")
        );
    }
}

#[test]
fn healthz_reports_database_up_then_down_with_503() {
    let app = TestApp::start("healthz_up_down");
    let up = http::request(app.health, "GET", "/healthz", &[], None);
    assert_eq!(up.status, 200);
    assert_eq!(up.text(), r#"{"success":true}"#);
    drop_database(&app.db.name);
    let down = http::request(app.health, "GET", "/healthz", &[], None);
    assert_eq!(down.status, 503);
    assert_eq!(down.text(), r#"{"success":false}"#);
}

#[test]
fn database_gone_returns_503_error_object() {
    let app = TestApp::start("database_gone_503");
    assert_eq!(app.get("/v1/webhooks").status, 200);
    drop_database(&app.db.name);
    for response in [
        app.get("/v1/webhooks"),
        app.post("/v1/webhooks", &crate::common::fixtures::webhook_body()),
    ] {
        assert_eq!(response.status, 503, "{}", response.text());
        assert_eq!(
            response.json(),
            json!({"code": 11, "message": "service unavailable", "details": "the database is unavailable; try again"})
        );
    }
}

fn drop_database(name: &str) {
    let mut admin =
        postgres::Client::connect(&crate::common::admin_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .unwrap();
}
