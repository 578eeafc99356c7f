//! Issue 18: the dashboard at /ui/. What a browser would get, over real HTTP from the service
//! in-process: hostile text shown as text, the security headers on every answer, the login
//! and its cookie, CSRF refusals, the retry and webhook actions through the API's rules, and
//! 404 pages. (scripts/check-ui.sh drives the same pages in headless Chromium.)

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::common::http::{Response, request};
use crate::common::receiver::RawReceiver;
use crate::common::{TestApp, fixtures, wait_until};

/// Markers a script in a payload, a dump or a name would run if they reached the page as HTML.
const SCRIPT: &str = "<script>document.title='pwned'</script>";
const IMG: &str = "<img src=x onerror=\"document.title='pwned'\">";

fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    request(app.api, "GET", path, &headers, None)
}

fn post_form(app: &TestApp, path: &str, form: &str, cookie: Option<&str>) -> Response {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    request(app.api, "POST", path, &headers, Some(form.as_bytes()))
}

/// The CSRF token in the forms of `page`.
fn csrf_of(page: &Response) -> String {
    let html = page.text();
    let at = html
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of the value")].to_string()
}

fn status_of(app: &TestApp, delivery: &str) -> (String, i32) {
    let row = app
        .db
        .client()
        .query_one(
            "SELECT status, delivery_attempts FROM deliveries WHERE id = $1",
            &[&Uuid::parse_str(delivery).unwrap()],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// A delivery of a webhook that is not called (the API role runs no dispatcher), marked
/// failed as if its attempts had run out.
fn failed_delivery(app: &TestApp) -> (String, String) {
    let webhook = fixtures::webhook_id(app, json!({}));
    let delivery = fixtures::delivery_id(app, &webhook, "{\"a\":1}");
    app.db
        .client()
        .execute(
            "UPDATE deliveries SET status = 'failed', delivery_attempts = 5 WHERE id = $1",
            &[&Uuid::parse_str(&delivery).unwrap()],
        )
        .unwrap();
    (webhook, delivery)
}

#[test]
fn ui_shows_hostile_payloads_responses_names_and_errors_as_text() {
    let body = format!("{SCRIPT}{IMG}");
    let response = format!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nX-Evil: {SCRIPT}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let receiver = RawReceiver::start(response.into_bytes(), usize::MAX, Duration::ZERO);
    let app = TestApp::start_all("ui_hostile_text", &[]);
    let webhook = fixtures::webhook_id(
        &app,
        json!({
            "name": format!("hook {SCRIPT}{IMG}"),
            "url": receiver.url(),
            "max_delivery_attempts": 1,
        }),
    );
    let payload = json!({"html": SCRIPT, "img": IMG}).to_string();
    let delivery = fixtures::delivery_id(&app, &webhook, &payload);
    wait_until("the delivery to fail", || {
        let (status, _) = status_of(&app, &delivery);
        if status == "failed" {
            Ok(())
        } else {
            Err(status)
        }
    });
    // A transport error's text names the URL, markers and all.
    app.db
        .client()
        .execute(
            "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, \
                 raw_response, response_status_code, execution_duration, success, error, created_at) \
             VALUES (gen_random_uuid(), $1, $2, $3, '', 0, 3, false, $3, now())",
            &[
                &Uuid::parse_str(&webhook).unwrap(),
                &Uuid::parse_str(&delivery).unwrap(),
                &format!("Post \"http://x/{SCRIPT}\": {IMG}"),
            ],
        )
        .unwrap();
    let pages = [
        "/ui/".to_string(),
        "/ui/webhooks".to_string(),
        format!("/ui/webhooks/{webhook}"),
        format!("/ui/deliveries/{delivery}"),
    ];
    for page in &pages {
        let response = get(&app, page, None);
        assert_eq!(response.status, 200, "{page}: {}", response.text());
        let html = response.text();
        // The dashboard has no script and no image of its own: any here came from the data.
        assert!(!html.contains("<script"), "{page}: {html}");
        assert!(!html.contains("<img"), "{page}: {html}");
        assert!(html.contains("&lt;script&gt;"), "{page}: {html}");
    }
    let html = get(&app, &format!("/ui/deliveries/{delivery}"), None).text();
    // The payload (pretty-printed JSON), the response's header and body, and the error.
    for shown in [
        "&quot;html&quot;: &quot;&lt;script&gt;document.title='pwned'&lt;/script&gt;&quot;",
        "X-Evil: &lt;script&gt;document.title='pwned'&lt;/script&gt;",
        "&lt;img src=x onerror=&quot;document.title='pwned'&quot;&gt;",
        "HTTP/1.1 500 Internal Server Error",
    ] {
        assert!(html.contains(shown), "{shown} in {html}");
    }
    assert!(html.contains("<details>"), "the raw exchange folds away");
}

#[test]
fn ui_responses_carry_csp_and_frame_headers() {
    let app = TestApp::start("ui_headers");
    let (webhook, delivery) = failed_delivery(&app);
    let csrf = csrf_of(&get(&app, &format!("/ui/webhooks/{webhook}"), None));
    let answers = [
        get(&app, "/ui/", None),
        get(&app, "/ui", None),
        get(&app, "/ui/webhooks", None),
        get(&app, &format!("/ui/webhooks/{webhook}"), None),
        get(&app, &format!("/ui/deliveries/{delivery}"), None),
        get(&app, "/ui/ui.css", None),
        get(&app, "/ui/nope", None),
        get(&app, &format!("/ui/deliveries/{delivery}/retry"), None),
        post_form(&app, &format!("/ui/deliveries/{delivery}/retry"), "", None),
        post_form(
            &app,
            &format!("/ui/deliveries/{delivery}/retry"),
            &format!("csrf={csrf}"),
            None,
        ),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 303, 200, 200, 200, 200, 404, 405, 403, 303]);
    for answer in &answers {
        assert_eq!(
            answer.header("content-security-policy"),
            Some("default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        );
        assert_eq!(answer.header("x-frame-options"), Some("DENY"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(
        answers[0].header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(answers[0].header("cache-control"), Some("no-store"));
    assert_eq!(
        answers[5].header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(answers[7].header("allow"), Some("POST"));
    // The pages link the stylesheet, and carry no inline style or script the CSP would block.
    let html = answers[3].text();
    assert!(html.contains(r#"<link rel="stylesheet" href="/ui/ui.css">"#));
    for page in [&answers[0], &answers[2], &answers[3], &answers[4]] {
        let html = page.text();
        assert!(
            !html.contains("<script") && !html.contains("style="),
            "{html}"
        );
        assert!(!html.contains("<style"), "{html}");
    }
}

#[test]
fn ui_with_a_token_asks_for_it_once_and_sets_a_strict_http_only_cookie() {
    let db = crate::common::TestDb::new("ui_login");
    let config = db.config_with(&[("POSTMAND_API_TOKEN", "t0ken-of-the-day")]);
    let app = TestApp::start_with(db, &config, postmand::cli::Role::Api);

    let page = get(&app, "/ui/webhooks?active=true", None);
    assert_eq!(page.status, 303);
    let login = page.header("location").unwrap().to_string();
    assert_eq!(login, "/ui/login?next=%2Fui%2Fwebhooks%3Factive%3Dtrue");
    for path in ["/ui/", "/ui", "/ui/find?id=x"] {
        assert_eq!(get(&app, path, None).status, 303, "{path}");
    }
    let form = get(&app, &login, None);
    assert_eq!(form.status, 200);
    assert!(form.text().contains(r#"name="token""#));
    assert!(form.text().contains(r#"value="/ui/webhooks?active=true""#));
    // The stylesheet is open: the login form uses it.
    assert_eq!(get(&app, "/ui/ui.css", None).status, 200);

    let wrong = post_form(&app, "/ui/login", "token=guess&next=%2Fui%2F", None);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains("That is not the API token."));

    let right = post_form(
        &app,
        "/ui/login",
        "token=t0ken-of-the-day&next=%2Fui%2Fwebhooks%3Factive%3Dtrue",
        None,
    );
    assert_eq!(right.status, 303, "{}", right.text());
    assert_eq!(right.header("location"), Some("/ui/webhooks?active=true"));
    let set_cookie = right
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let attributes: Vec<&str> = set_cookie.split("; ").collect();
    assert!(
        attributes[0].starts_with("postmand_ui_session="),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(
            attributes.contains(&attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("t0ken-of-the-day"),
        "the token itself is not the cookie"
    );
    let cookie = attributes[0];
    assert_eq!(
        get(&app, "/ui/webhooks?active=true", Some(cookie)).status,
        200
    );
    assert_eq!(get(&app, "/ui/", Some(cookie)).status, 200);

    // The API still wants its bearer token; a dashboard cookie is not one.
    let api = get(&app, "/v1/webhooks", Some(cookie));
    assert_eq!(api.status, 401);

    // A cookie made with another token, or tampered with, is no session.
    let (expiry, mac) = cookie["postmand_ui_session=".len()..]
        .split_once('.')
        .unwrap();
    let later = expiry.parse::<i64>().unwrap() + 60;
    for forged in [
        format!("postmand_ui_session={later}.{mac}"),
        "postmand_ui_session=1.abc".to_string(),
    ] {
        assert_eq!(get(&app, "/ui/", Some(&forged)).status, 303, "{forged}");
    }

    // Log out: the cookie is cleared and the form is next.
    let page = get(&app, "/ui/", Some(cookie));
    let out = post_form(
        &app,
        "/ui/logout",
        &format!("csrf={}", csrf_of(&page)),
        Some(cookie),
    );
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("/ui/login"));
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[test]
fn ui_refuses_a_post_without_its_csrf_token_with_403() {
    let app = TestApp::start("ui_csrf");
    let (webhook, delivery) = failed_delivery(&app);
    let page = get(&app, &format!("/ui/deliveries/{delivery}"), None);
    let csrf = csrf_of(&page);
    let retry = format!("/ui/deliveries/{delivery}/retry");
    let deactivate = format!("/ui/webhooks/{webhook}/deactivate");
    for (path, form) in [
        (&retry, String::new()),
        (&retry, "csrf=".to_string()),
        (&retry, format!("csrf={}", csrf.replace(&csrf[..1], "x"))),
        (&retry, format!("token={csrf}")),
        (&deactivate, "x=1".to_string()),
    ] {
        let refused = post_form(&app, path, &form, None);
        assert_eq!(refused.status, 403, "{path} {form}");
        let html = refused.text();
        assert!(html.contains("Form refused"), "{html}");
        assert!(html.contains("CSRF token"), "{html}");
    }
    assert_eq!(status_of(&app, &delivery), ("failed".to_string(), 5));
    let active = app.get(&format!("/v1/webhooks/{webhook}")).json()["active"].clone();
    assert_eq!(active, true);
    // A form sent as another type is refused too, token or not.
    let json = request(
        app.api,
        "POST",
        &retry,
        &[("Content-Type", "application/json")],
        Some(format!("{{\"csrf\":\"{csrf}\"}}").as_bytes()),
    );
    assert_eq!(json.status, 415);
    assert_eq!(status_of(&app, &delivery), ("failed".to_string(), 5));
}

#[test]
fn ui_retry_requeues_a_finished_delivery_and_refuses_a_pending_one() {
    let app = TestApp::start("ui_retry");
    let (_, delivery) = failed_delivery(&app);
    let page = get(&app, &format!("/ui/deliveries/{delivery}"), None);
    assert!(
        page.text()
            .contains(r#"<span class="badge failed">failed</span>"#)
    );
    let form = format!("csrf={}", csrf_of(&page));
    let retry = format!("/ui/deliveries/{delivery}/retry");

    let requeued = post_form(&app, &retry, &form, None);
    assert_eq!(requeued.status, 303, "{}", requeued.text());
    let back = format!("/ui/deliveries/{delivery}?done=requeued");
    assert_eq!(requeued.header("location"), Some(back.as_str()));
    assert_eq!(status_of(&app, &delivery), ("pending".to_string(), 0));
    let page = get(&app, &back, None).text();
    assert!(page.contains("Sent back to the queue"), "{page}");
    assert!(page.contains(r#"<button type="submit" disabled>Retry now</button>"#));

    // The API's rule: a pending delivery is not retried.
    let refused = post_form(&app, &retry, &form, None);
    assert_eq!(refused.status, 409);
    assert!(
        refused.text().contains("delivery is pending"),
        "{}",
        refused.text()
    );
}

#[test]
fn ui_webhook_actions_go_through_the_apis_rules() {
    let app = TestApp::start("ui_webhook_actions");
    let (webhook, delivery) = failed_delivery(&app);
    let path = format!("/ui/webhooks/{webhook}");
    let csrf = csrf_of(&get(&app, &path, None));
    app.db
        .client()
        .execute(
            "UPDATE webhooks SET active = false, disabled_reason = 'endpoint answered 410 Gone', \
             disabled_at = now() WHERE id = $1",
            &[&Uuid::parse_str(&webhook).unwrap()],
        )
        .unwrap();
    let html = get(&app, &path, None).text();
    assert!(html.contains("endpoint answered 410 Gone"), "{html}");

    let activated = post_form(
        &app,
        &format!("{path}/activate"),
        &format!("csrf={csrf}"),
        None,
    );
    assert_eq!(activated.status, 303);
    let json = app.get(&format!("/v1/webhooks/{webhook}")).json();
    assert_eq!(
        (json["active"].clone(), json["disabled_reason"].clone()),
        (json!(true), json!(null))
    );

    let form = format!("csrf={csrf}&since=2000-01-01T00%3A00%3A00Z&until=");
    let recovered = post_form(&app, &format!("{path}/recover"), &form, None);
    assert_eq!(recovered.status, 303);
    let location = recovered.header("location").unwrap().to_string();
    assert_eq!(location, format!("{path}?done=recovered&n=1&more=false"));
    assert!(
        get(&app, &location, None)
            .text()
            .contains("1 failed deliveries went back to pending.")
    );
    assert_eq!(status_of(&app, &delivery), ("pending".to_string(), 0));

    // Validation is the API's, message and all.
    let bad = post_form(
        &app,
        &format!("{path}/recover"),
        &format!("csrf={csrf}&since=yesterday"),
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("since: must be an RFC 3339 date-time."),
        "{}",
        bad.text()
    );

    // A generated secret is shown once, on the answer to the rotation.
    let rotated = post_form(
        &app,
        &format!("{path}/rotate-secret"),
        &format!("csrf={csrf}&secret_token=&previous_valid_for=60"),
        None,
    );
    assert_eq!(rotated.status, 200);
    let secret = app.get(&format!("/v1/webhooks/{webhook}")).json()["secret_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"));
    assert!(rotated.text().contains(&secret));
    assert!(
        !get(&app, &path, None).text().contains(&secret),
        "the webhook page never shows it"
    );

    let deactivated = post_form(
        &app,
        &format!("{path}/deactivate"),
        &format!("csrf={csrf}"),
        None,
    );
    assert_eq!(deactivated.status, 303);
    assert_eq!(
        app.get(&format!("/v1/webhooks/{webhook}")).json()["active"],
        json!(false)
    );
}

#[test]
fn ui_unknown_ids_and_paths_are_404_pages() {
    let app = TestApp::start("ui_not_found");
    let missing = Uuid::new_v4();
    let webhook = fixtures::webhook_id(&app, json!({}));
    for (path, says) in [
        (format!("/ui/deliveries/{missing}"), "delivery not found"),
        (format!("/ui/webhooks/{missing}"), "webhook not found"),
        (
            "/ui/deliveries/not-an-id".to_string(),
            "No page of the dashboard",
        ),
        ("/ui/nope".to_string(), "No page of the dashboard"),
        (
            format!("/ui/find?id={missing}"),
            "No delivery, webhook or attempt",
        ),
    ] {
        let response = get(&app, &path, None);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(
            response.text().contains(says),
            "{path}: {}",
            response.text()
        );
    }
    let retry = post_form(
        &app,
        &format!("/ui/deliveries/{missing}/retry"),
        &format!(
            "csrf={}",
            csrf_of(&get(&app, &format!("/ui/webhooks/{webhook}"), None))
        ),
        None,
    );
    assert_eq!(retry.status, 404);
    assert!(retry.text().contains("delivery not found"));
    // A bad filter is the API's 400, naming the parameter.
    let bad = get(&app, "/ui/webhooks?limit=0", None);
    assert_eq!(bad.status, 400);
    assert!(
        bad.text()
            .contains("limit: must be an integer from 1 to 1000."),
        "{}",
        bad.text()
    );
}
