use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use crate::common::process::free_port;
use crate::common::{TestDb, http, wait_until};

/// The real binary with a clean environment, run from a directory without a `.env`.
fn postmand(envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postmand"));
    command.env_clear().current_dir(std::env::temp_dir());
    command.env("POSTMAND_LOG_LEVEL", "info");
    for (name, value) in envs {
        command.env(name, value);
    }
    command
}

fn output(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run postmand");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn schema_version(db: &TestDb) -> i64 {
    db.client()
        .query_one("SELECT version FROM schema_migrations", &[])
        .unwrap()
        .get(0)
}

#[test]
fn help_and_version_need_no_database() {
    let (code, stdout, _) = output(postmand(&[]).arg("--help"));
    assert_eq!(code, 0);
    assert!(stdout.contains("postmand migrate"), "{stdout}");
    assert!(stdout.contains("POSTMAND_DATABASE_URL"), "{stdout}");
    let (code, stdout, _) = output(postmand(&[]).arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("postmand/{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_argument_exits_2() {
    let (code, _, stderr) = output(postmand(&[]).args(["--role", "cron"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown role \"cron\""), "{stderr}");
}

#[test]
fn invalid_configuration_exits_2_naming_the_variable() {
    let (code, _, stderr) = output(
        postmand(&[
            ("POSTMAND_DATABASE_URL", "postgres://x"),
            ("POSTMAND_HTTP_PORT", "http"),
        ])
        .arg("migrate"),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("POSTMAND_HTTP_PORT=\"http\" is invalid"),
        "{stderr}"
    );
    let (code, _, stderr) = output(&mut postmand(&[]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("POSTMAND_DATABASE_URL is not set"),
        "{stderr}"
    );
    // See: issue 13. Another database's URL exited 1, at connect time; the password stays
    // hidden in the message.
    let (code, _, stderr) =
        output(postmand(&[("POSTMAND_DATABASE_URL", "mysql://u:hunter2@db/x")]).arg("migrate"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("POSTMAND_DATABASE_URL="), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn unreachable_database_exits_1_naming_host_not_password() {
    let port = free_port();
    let url = format!("postgres://user:hunter2@127.0.0.1:{port}/postmand");
    for args in [&["migrate"][..], &["--role", "api"][..]] {
        let (code, _, stderr) = output(postmand(&[("POSTMAND_DATABASE_URL", &url)]).args(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}/postmand")),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert_eq!(
            stderr
                .trim()
                .lines()
                .filter(|l| l.starts_with("postmand:"))
                .count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn migrate_twice_is_a_no_op() {
    let db = TestDb::empty("migrate_twice");
    for _ in 0..2 {
        let (code, _, stderr) =
            output(postmand(&[("POSTMAND_DATABASE_URL", &db.url)]).arg("migrate"));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(schema_version(&db), postmand::db::migrate::latest_version());
        // Issue 13: the migrations' NOTICEs ("... already exists, skipping") are not shown.
        assert!(stderr.contains("migration-finished"), "{stderr}");
        assert!(!stderr.contains("NOTICE"), "{stderr}");
    }
    let rows: i64 = db
        .client()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[test]
fn migrate_upgrades_a_database_of_the_original() {
    let db = TestDb::empty("migrate_original");
    let mut client = db.client();
    client
        .batch_execute(include_str!("../sql/001_initial_schema.sql"))
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (1, false);
             INSERT INTO webhooks VALUES ('a6e9a525-ac5a-488c-b118-bd7327ce6d8d', 'Old', 'http://127.0.0.1:9/', 'application/json',
                 '{200,201}', '', true, 5, 1, 10, 60, now(), now());",
        )
        .unwrap();
    let (code, _, stderr) = output(postmand(&[("POSTMAND_DATABASE_URL", &db.url)]).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(schema_version(&db), postmand::db::migrate::latest_version());
    let row = client
        .query_one(
            "SELECT name, valid_status_codes, max_delivery_attempts FROM webhooks",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Old");
    assert_eq!(row.get::<_, Vec<i32>>(1), vec![200, 201]);
    assert_eq!(row.get::<_, i32>(2), 5);
    // Issue 15: the original's webhook subscribes to every event type, and its rows (written
    // the original's way, without the new columns) still go in.
    let (event_types, existing): (Vec<String>, i64) = {
        let row = client
            .query_one(
                "SELECT event_types, (SELECT count(*) FROM deliveries WHERE event_id IS NOT NULL) \
                 FROM webhooks",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(event_types.is_empty());
    assert_eq!(existing, 0);
    client
        .batch_execute(
            "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active, \
                 max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, \
                 created_at, updated_at) \
             VALUES (gen_random_uuid(), 'Older', 'http://127.0.0.1:9/', 'text/plain', '{200}', '', true, \
                 5, 1, 10, 60, now(), now()); \
             INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
                 created_at, updated_at) \
             VALUES (gen_random_uuid(), 'a6e9a525-ac5a-488c-b118-bd7327ce6d8d', 'x', now(), 0, 'pending', \
                 now(), now());",
        )
        .unwrap();
    let event =
        postmand::store::events::insert_many(&mut client, &[("invoice.paid", "{}")]).unwrap()[0].id;
    let fanned: i64 = client
        .query_one(
            "SELECT count(*) FROM deliveries WHERE event_id = $1",
            &[&event],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        fanned, 2,
        "both webhooks of the original's shape receive every event"
    );
}

#[test]
fn migrate_on_dirty_database_exits_1() {
    let db = TestDb::empty("migrate_dirty");
    db.client()
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (1, true);",
        )
        .unwrap();
    let (code, _, stderr) = output(postmand(&[("POSTMAND_DATABASE_URL", &db.url)]).arg("migrate"));
    assert_eq!(code, 1);
    assert!(stderr.contains("dirty database version 1"), "{stderr}");
}

#[test]
fn serving_an_unmigrated_database_exits_1_asking_for_migrate() {
    let db = TestDb::empty("serve_unmigrated");
    let (code, _, stderr) =
        output(postmand(&[("POSTMAND_DATABASE_URL", &db.url)]).args(["--role", "api"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("run `postmand migrate` first"), "{stderr}");
}

fn spawn(db: &TestDb, api_port: u16, health_port: u16, args: &[&str]) -> Child {
    postmand(&[
        ("POSTMAND_DATABASE_URL", &db.url),
        ("POSTMAND_HTTP_PORT", &api_port.to_string()),
        ("POSTMAND_HEALTH_CHECK_HTTP_PORT", &health_port.to_string()),
        ("POSTMAND_BIND_ADDRESS", "127.0.0.1"),
    ])
    .args(args)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn postmand")
}

#[test]
fn port_in_use_exits_1() {
    let db = TestDb::new("port_in_use");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let child = spawn(&db, port, free_port(), &["--role", "api"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for the API on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let db = TestDb::new("sigterm_exit_0");
    let (api_port, health_port) = (free_port(), free_port());
    let mut child = spawn(&db, api_port, health_port, &["server"]);
    let api: std::net::SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    wait_until("the API to answer", || {
        std::net::TcpStream::connect(api)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert_eq!(
        http::request(api, "GET", "/v1/webhooks", &[], None).status,
        200
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_until("postmand to exit", || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn issue_13_no_secret_or_payload_reaches_the_log_even_at_trace() {
    // See: issue 13. tokio_postgres logs every statement's parameters at debug: a webhook's
    // secret_token, payloads and signature headers.
    use crate::common::process::Postmand;
    use crate::common::receiver::Receiver;
    let receiver = Receiver::status(200);
    let db = TestDb::new("binary_log_secrets");
    for (variable, level) in [("POSTMAND_LOG_LEVEL", "debug"), ("RUST_LOG", "trace")] {
        let mut process = Postmand::start(
            &db.url,
            "all",
            &[
                ("POSTMAND_HTTP_PORT", "0"),
                ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
                (variable, level),
            ],
        );
        let api = process.addr("http-server");
        let secret = format!("secret-token-{level}-7f3a");
        let payload = format!("payload-marker-{level}-91c2");
        crate::common::fixtures::webhook_and_delivery(
            api,
            serde_json::json!({"url": receiver.url("/hook"), "secret_token": secret}),
            &payload,
        );
        let arrived = receiver.next_arrival();
        let signature = arrived
            .header("x-hub-signature")
            .expect("signed")
            .to_string();
        process.wait_for_log("worker-delivery-attempt-created");
        let log = process.log();
        assert!(
            log.contains("request-completed"),
            "{variable}={level} logs at debug"
        );
        for secret_text in [&secret, &payload, &signature] {
            assert!(
                !log.contains(secret_text.as_str()),
                "{variable}={level}: the log shows {secret_text:?}"
            );
        }
    }
}

#[test]
fn issue_13_an_attempt_error_is_logged_with_the_endpoint_origin_only() {
    // See: issue 13. Slack-style URLs keep their secret in the path and query; the INFO line
    // of a failed attempt showed the whole URL.
    use crate::common::process::Postmand;
    let db = TestDb::new("binary_log_origin");
    let (closed, _refusing) = crate::common::process::refusing_port();
    let mut process = Postmand::start(
        &db.url,
        "all",
        &[
            ("POSTMAND_HTTP_PORT", "0"),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
        ],
    );
    let api = process.addr("http-server");
    let url = format!("http://127.0.0.1:{closed}/services/T0/B0/PATHSECRET?token=QUERYSECRET");
    let (webhook_id, _) = crate::common::fixtures::webhook_and_delivery(
        api,
        serde_json::json!({"url": url, "max_delivery_attempts": 1}),
        "{}",
    );
    process.wait_for_log("worker-delivery-attempt-created");
    let log = process.log();
    let line = log
        .lines()
        .find(|l| l.contains("worker-delivery-attempt-created"))
        .expect("the attempt's line");
    assert!(
        line.contains(&format!("http://127.0.0.1:{closed}")),
        "{line}"
    );
    assert!(
        !log.contains("PATHSECRET") && !log.contains("QUERYSECRET"),
        "{line}"
    );
    // The stored attempt keeps the endpoint it failed on (credentials never).
    let attempts = http::request(
        api,
        "GET",
        &format!("/v1/delivery-attempts?webhook_id={webhook_id}"),
        &[],
        None,
    );
    assert!(
        attempts.text().contains("PATHSECRET"),
        "{}",
        attempts.text()
    );
}

#[test]
fn issue_13_healthcheck_exits_0_while_serving_and_1_when_not() {
    // See: issue 13: the Docker image's HEALTHCHECK runs `postmand healthcheck`.
    use crate::common::process::Postmand;
    let db = TestDb::new("binary_healthcheck");
    let health_port = free_port().to_string();
    let envs = [
        ("POSTMAND_HTTP_PORT", "0"),
        ("POSTMAND_HEALTH_CHECK_HTTP_PORT", health_port.as_str()),
    ];
    let mut process = Postmand::start(&db.url, "all", &envs);
    let health = process.addr("health-server");
    process.wait_ready(health);
    let check = || {
        output(
            postmand(&[
                ("POSTMAND_DATABASE_URL", db.url.as_str()),
                ("POSTMAND_HEALTH_CHECK_HTTP_PORT", health_port.as_str()),
            ])
            .arg("healthcheck"),
        )
    };
    let (code, _, stderr) = check();
    assert_eq!(code, 0, "{stderr}");
    process.kill();
    let (code, _, stderr) = check();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/healthz"), "{stderr}");
}

#[test]
fn issue_13_json_logs_are_one_object_per_line_with_the_ids_as_fields() {
    use crate::common::process::Postmand;
    let db = TestDb::new("binary_log_json");
    let (api_port, health_port) = (free_port(), free_port());
    let (closed, _refusing) = crate::common::process::refusing_port();
    let mut process = Postmand::start(
        &db.url,
        "all",
        &[
            ("POSTMAND_HTTP_PORT", &api_port.to_string()),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", &health_port.to_string()),
            ("POSTMAND_LOG_FORMAT", "json"),
            ("POSTMAND_LOG_LEVEL", "debug"),
        ],
    );
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    process.wait_listening(api);
    let (webhook_id, delivery_id) = crate::common::fixtures::webhook_and_delivery(
        api,
        serde_json::json!({"url": format!("http://127.0.0.1:{closed}/"), "max_delivery_attempts": 1}),
        "{}",
    );
    process.wait_for_log("worker-delivery-attempt-created");
    let log = process.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for key in ["time", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let event = |name: &str| {
        lines
            .iter()
            .find(|l| l["message"] == name)
            .unwrap_or_else(|| panic!("no {name} line in {log}"))
    };
    assert_eq!(event("http-server-listen-and-serve")["level"], "INFO");
    let attempt = event("worker-delivery-attempt-created");
    assert_eq!(attempt["delivery_id"], delivery_id.as_str(), "{attempt}");
    assert_eq!(attempt["webhook_id"], webhook_id.as_str(), "{attempt}");
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("127.0.0.1:{closed}"))),
        "{attempt}"
    );
    assert_eq!(event("delivery-created")["level"], "DEBUG");
}
