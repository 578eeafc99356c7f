//! Issue 17: cursor paging. A walk by `next_cursor` visits every row that existed when it
//! started exactly once, in order, while new rows are inserted concurrently; the last page says
//! `null`; filters hold across pages; a malformed cursor is 400 code 18 and a cursor with an
//! offset 400 code 4.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{TestApp, assert_key_order, fixtures, http, wait_until};

const CURSOR_ERROR: &str =
    "cursor: must be the next_cursor of an earlier page of the same list, unchanged.";

/// Pages through `path` (a list path with its filters, without `limit` or `cursor`) `limit` rows
/// at a time by `next_cursor`, calling `between` before each page after the first. Returns the
/// ids in the order served. Checks that every page but the last is full and has a cursor, and
/// that the last has none.
fn walk(
    app: &TestApp,
    path: &str,
    items: &str,
    limit: usize,
    mut between: impl FnMut(),
) -> Vec<String> {
    let join = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}{join}limit={limit}"),
            Some(c) => {
                between();
                format!("{path}{join}limit={limit}&cursor={c}")
            }
        };
        let response = app.get(&url);
        assert_eq!(response.status, 200, "{url}: {}", response.text());
        let body = response.json();
        let page: Vec<String> = body[items]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: {body}"))
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(body["offset"], 0, "{url}");
        seen.extend(page.iter().cloned());
        match &body["next_cursor"] {
            Value::Null => return seen,
            Value::String(next) => {
                assert_eq!(page.len(), limit, "only a full page has a next one: {url}");
                cursor = Some(next.clone());
            }
            other => panic!("{url}: next_cursor {other}"),
        }
        assert!(seen.len() < 100_000, "the walk does not end: {url}");
    }
}

/// Rows of `sql` (one text column), in its order.
fn column(app: &TestApp, sql: &str) -> Vec<String> {
    app.db
        .client()
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs `walk` while a thread calls `insert` again and again. The thread starts after the
/// walk's first page, and `walk`'s `between` (called before each later page) waits until at
/// least one more insert has committed: every page after the first is read after rows newer
/// than the walk's start were added. Returns what `walk` returned and how many rows were added.
fn with_concurrent_inserts<T>(
    insert: impl FnMut() + Send,
    walk: impl FnOnce(&mut dyn FnMut()) -> T,
) -> (T, usize) {
    let stop = AtomicBool::new(false);
    let inserted = AtomicUsize::new(0);
    let (start, started) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let mut insert = insert;
        let (stop, inserted) = (&stop, &inserted);
        let inserter = scope.spawn(move || {
            // The walk ended before a second page (the sender is gone): nothing to do.
            if started.recv().is_err() {
                return;
            }
            while !stop.load(Ordering::SeqCst) {
                insert();
                inserted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let result = {
            let mut last = 0;
            let mut start = Some(start);
            let mut between = || {
                if let Some(start) = start.take() {
                    start.send(()).expect("the inserter waits");
                }
                last = wait_until("a concurrent insert", || {
                    let now = inserted.load(Ordering::SeqCst);
                    if now > last { Ok(now) } else { Err(now) }
                });
            };
            walk(&mut between)
        };
        stop.store(true, Ordering::SeqCst);
        inserter.join().expect("the inserter");
        (result, inserted.load(Ordering::SeqCst))
    })
}

#[test]
fn cursor_walk_of_deliveries_sees_every_row_once_while_newer_rows_arrive() {
    let app = TestApp::start("cursor_walk_deliveries");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    // 210 rows in the past, in groups of 7 that share a created_at (one per statement's now()),
    // so the id breaks ties inside pages and across page boundaries; 210 = 30 full pages of 7,
    // so the last page is full and must still say there is no next one.
    app.db
        .client()
        .batch_execute(&format!(
            "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
                 status, created_at, updated_at) \
             SELECT gen_random_uuid(), '{webhook}', 'x', now(), 0, 'pending', \
                 now() - (i / 7) * interval '1 minute', now() \
             FROM generate_series(0, 209) AS i"
        ))
        .unwrap();
    let expected = column(
        &app,
        "SELECT id::text FROM deliveries ORDER BY created_at DESC, id DESC",
    );
    assert_eq!(expected.len(), 210);
    let addr = app.api;
    let body = json!({"webhook_id": webhook, "payload": "new"});
    let (seen, inserted) = with_concurrent_inserts(
        || assert_eq!(http::post_json(addr, "/v1/deliveries", &body).status, 201),
        |between| walk(&app, "/v1/deliveries", "deliveries", 7, between),
    );
    assert_eq!(seen, expected);
    assert!(inserted >= 29, "{inserted} inserts during 30 pages");
    // The new rows are there, newer than the walk: a new walk starts with them.
    let fresh = walk(&app, "/v1/deliveries", "deliveries", 500, || {});
    assert_eq!(fresh.len(), 210 + inserted);
    assert_eq!(fresh[inserted..], expected[..]);
}

#[test]
fn cursor_walk_of_attempts_and_events_sees_every_row_once_while_newer_rows_arrive() {
    let app = TestApp::start("cursor_walk_attempts");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    let delivery = fixtures::delivery_id(&app, &webhook, "x");
    let arrange = format!(
        "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
             response_status_code, execution_duration, success, error, created_at) \
         SELECT gen_random_uuid(), '{webhook}', '{delivery}', 'req', 'resp', 200, 1, i % 3 <> 0, '', \
             now() - (i / 5) * interval '1 second' \
         FROM generate_series(0, 99) AS i;
         INSERT INTO events (id, event_type, payload, deliveries, created_at) \
         SELECT gen_random_uuid(), 'order.created', '{{}}', 0, now() - (i / 4) * interval '1 second' \
         FROM generate_series(0, 49) AS i"
    );
    app.db.client().batch_execute(&arrange).unwrap();

    let expected = column(
        &app,
        "SELECT id::text FROM delivery_attempts ORDER BY created_at DESC, id DESC",
    );
    let mut client = app.db.client();
    let insert_attempt = format!(
        "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
             response_status_code, execution_duration, success, error, created_at) \
         VALUES (gen_random_uuid(), '{webhook}', '{delivery}', 'req', 'resp', 500, 1, false, '', now())"
    );
    let (seen, _) = with_concurrent_inserts(
        || {
            client.batch_execute(&insert_attempt).unwrap();
        },
        |between| {
            walk(
                &app,
                "/v1/delivery-attempts",
                "delivery_attempts",
                9,
                between,
            )
        },
    );
    assert_eq!(seen, expected);

    let expected = column(
        &app,
        "SELECT id::text FROM events ORDER BY created_at DESC, id DESC",
    );
    let addr = app.api;
    let event = json!({"event_type": "order.created", "payload": "{}"});
    let (seen, _) = with_concurrent_inserts(
        || assert_eq!(http::post_json(addr, "/v1/events", &event).status, 201),
        |between| walk(&app, "/v1/events", "events", 4, between),
    );
    assert_eq!(seen, expected);
}

#[test]
fn cursor_walk_of_webhooks_by_name_pages_ties_by_id() {
    let app = TestApp::start("cursor_walk_webhooks");
    for name in [
        "Bravo", "Alpha", "Bravo", "Charlie", "Bravo", "Alpha", "Delta",
    ] {
        fixtures::webhook(&app, json!({"name": name}));
    }
    let expected = column(&app, "SELECT id::text FROM webhooks ORDER BY name, id");
    // New webhooks named to sort before every page after the first: a walk never goes back.
    let addr = app.api;
    let body = fixtures::merge(fixtures::webhook_body(), json!({"name": "AAA new"}));
    let (seen, _) = with_concurrent_inserts(
        || assert_eq!(http::post_json(addr, "/v1/webhooks", &body).status, 201),
        |between| walk(&app, "/v1/webhooks", "webhooks", 2, between),
    );
    assert_eq!(seen, expected);
}

#[test]
fn cursor_walk_keeps_the_filters() {
    let app = TestApp::start("cursor_walk_filters");
    let a = fixtures::webhook_id(&app, json!({"active": false}));
    let b = fixtures::webhook_id(&app, json!({"active": false}));
    app.db
        .client()
        .batch_execute(&format!(
            "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
                 status, created_at, updated_at) \
             SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN '{a}'::uuid ELSE '{b}'::uuid END, \
                 'x', now(), 1, CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'succeeded' END, \
                 now() - i * interval '1 second', now() \
             FROM generate_series(0, 59) AS i"
        ))
        .unwrap();
    let since = column(
        &app,
        "SELECT to_char((now() - interval '40 seconds') AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .remove(0);
    let expected = column(
        &app,
        &format!(
            "SELECT id::text FROM deliveries \
             WHERE webhook_id = '{a}' AND status = 'failed' AND created_at >= '{since}' \
             ORDER BY created_at DESC, id DESC"
        ),
    );
    assert!(expected.len() >= 5, "{expected:?}");
    let path = format!("/v1/deliveries?webhook_id={a}&status=failed&created_at.gte={since}");
    assert_eq!(walk(&app, &path, "deliveries", 2, || {}), expected);
}

#[test]
fn list_answers_end_with_next_cursor() {
    let app = TestApp::start("list_next_cursor");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    fixtures::delivery_id(&app, &webhook, "one");
    fixtures::delivery_id(&app, &webhook, "two");
    for (path, items) in [
        ("/v1/webhooks", "webhooks"),
        ("/v1/deliveries", "deliveries"),
        ("/v1/delivery-attempts", "delivery_attempts"),
        ("/v1/events", "events"),
    ] {
        let response = app.get(path);
        assert_key_order(&response.text(), &[items, "limit", "offset", "next_cursor"]);
        assert_eq!(response.json()["next_cursor"], Value::Null, "{path}");
    }
    let first = app.get("/v1/deliveries?limit=1").json();
    assert!(first["next_cursor"].is_string(), "{first}");
    let last = app.get("/v1/deliveries?limit=2").json();
    assert_eq!(last["next_cursor"], Value::Null, "exactly full: {last}");
    // Paging by offset answers next_cursor too: null on the last page.
    let by_offset = app.get("/v1/deliveries?limit=1&offset=1").json();
    assert_eq!(by_offset["next_cursor"], Value::Null, "{by_offset}");
}

#[test]
fn malformed_cursor_returns_400_code_18() {
    let app = TestApp::start("cursor_malformed");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    fixtures::webhook_id(&app, json!({"active": false}));
    fixtures::delivery_id(&app, &webhook, "one");
    fixtures::delivery_id(&app, &webhook, "two");
    let webhooks_cursor = app.get("/v1/webhooks?limit=1").json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let deliveries_cursor = app.get("/v1/deliveries?limit=1").json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let error = json!({"code": 18, "message": "invalid cursor", "details": CURSOR_ERROR});
    for (path, cursor) in [
        ("/v1/deliveries", "x"),
        ("/v1/deliveries", "!!!!"),
        ("/v1/deliveries", ""),
        ("/v1/deliveries", &format!("{deliveries_cursor}A")),
        (
            "/v1/deliveries",
            &deliveries_cursor[..deliveries_cursor.len() - 1],
        ),
        ("/v1/deliveries", &format!("{deliveries_cursor}%3D")),
        ("/v1/deliveries", &webhooks_cursor),
        ("/v1/delivery-attempts", &deliveries_cursor),
        ("/v1/events", &deliveries_cursor),
        ("/v1/webhooks", &deliveries_cursor),
        ("/v1/webhooks", "AQE"),
    ] {
        app.assert_error(
            "GET",
            &format!("{path}?cursor={cursor}"),
            400,
            error.clone(),
        );
    }
    // Each list takes its own.
    assert_eq!(
        app.get(&format!("/v1/deliveries?cursor={deliveries_cursor}"))
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/webhooks?cursor={webhooks_cursor}"))
            .status,
        200
    );
}

#[test]
fn cursor_with_offset_returns_400_naming_offset() {
    let app = TestApp::start("cursor_with_offset");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    fixtures::delivery_id(&app, &webhook, "one");
    fixtures::delivery_id(&app, &webhook, "two");
    let cursor = app.get("/v1/deliveries?limit=1").json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    app.assert_error(
        "GET",
        &format!("/v1/deliveries?cursor={cursor}&offset=1"),
        400,
        json!({"code": 4, "message": "request validation failed",
               "details": "offset: must be 0 or absent with a cursor."}),
    );
    // Together with a malformed cursor, the parameters' errors come first.
    app.assert_error(
        "GET",
        "/v1/events?cursor=x&offset=1&limit=0",
        400,
        json!({"code": 4, "message": "request validation failed",
               "details": "limit: must be an integer from 1 to 1000; offset: must be 0 or absent with a cursor."}),
    );
    let page = app.get(&format!("/v1/deliveries?cursor={cursor}&offset=0"));
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.json()["deliveries"].as_array().unwrap().len(), 1);
}

/// Cursors as the API would write them, for rows at the edges of what PostgreSQL and chrono
/// hold: kinds 2-4 (deliveries, attempts, events) at PostgreSQL's earliest time, the epoch and
/// chrono's latest; kind 1 (webhooks) with an empty, a non-ASCII and a very long name.
pub fn edge_cursors() -> Vec<String> {
    use base64::Engine;
    let id = uuid::Uuid::max();
    let encode = |kind: u8, key: &[u8]| {
        let mut bytes = vec![1, kind];
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(key);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let earliest: i64 = -211_813_488_000_000_000 + 946_684_800_000_000;
    let latest = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
    let mut cursors = Vec::new();
    for kind in 2..=4 {
        for micros in [earliest, 0, latest] {
            cursors.push(encode(kind, &micros.to_be_bytes()));
        }
    }
    for name in ["", "Ünïcode ✓ 'quoted' \\", &"z".repeat(1000)] {
        cursors.push(encode(1, name.as_bytes()));
    }
    cursors
}

#[test]
fn cursors_at_the_edges_of_time_and_names_are_answered() {
    let app = TestApp::start("cursor_edges");
    let webhook = fixtures::webhook_id(&app, json!({"active": false}));
    fixtures::delivery_id(&app, &webhook, "one");
    let cursors = edge_cursors();
    for (path, items, mine) in [
        ("/v1/deliveries", "deliveries", &cursors[0..3]),
        ("/v1/delivery-attempts", "delivery_attempts", &cursors[3..6]),
        ("/v1/events", "events", &cursors[6..9]),
        ("/v1/webhooks", "webhooks", &cursors[9..12]),
    ] {
        for cursor in mine {
            let response = app.get(&format!(
                "{path}?cursor={cursor}&created_at.gte=0001-01-01T00:00:00Z"
            ));
            assert_eq!(response.status, 200, "{path} {cursor}: {}", response.text());
            assert!(response.json()[items].is_array());
        }
    }
    // The latest time comes after every row, the earliest before every row.
    assert_eq!(
        app.get(&format!("/v1/deliveries?cursor={}", cursors[2]))
            .json()["deliveries"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        app.get(&format!("/v1/deliveries?cursor={}", cursors[0]))
            .json()["deliveries"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}
