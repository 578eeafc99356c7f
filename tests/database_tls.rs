//! Issue 13: TLS to PostgreSQL with libpq's sslmode semantics, against a server of its own that
//! takes TCP connections over TLS only (tests/common/tls_postgres.rs).

use std::process::{Command, Output};

use crate::common::fixtures;
use crate::common::process::Postmand;
use crate::common::receiver::Receiver;
use crate::common::tls_postgres::TlsPostgres;
use crate::common::wait_until;

/// `postmand migrate` against `url`: its exit code and stderr.
fn migrate(url: &str) -> (i32, String) {
    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_postmand"))
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("POSTMAND_DATABASE_URL", url)
        .env("POSTMAND_LOG_LEVEL", "warn")
        .arg("migrate")
        .output()
        .expect("run postmand migrate");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn issue_13_every_sslmode_behaves_as_in_libpq() {
    let server = TlsPostgres::start("tls-modes");
    let ca = server.file("ca.crt");
    let other_ca = server.file("other-ca.crt");
    // The certificate names localhost only: verify-ca checks the chain, not the name.
    for (host, options) in [
        ("127.0.0.1", "sslmode=require".to_string()),
        ("127.0.0.1", "sslmode=prefer".to_string()),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}")),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}")),
    ] {
        let (code, stderr) = migrate(&server.url(host, &options));
        assert_eq!(code, 0, "{host} {options}: {stderr}");
    }

    let failures = [
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "sslmode=verify-full",
            "certificate not valid for name \"127.0.0.1\"",
        ),
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={other_ca}"),
            "sslmode=verify-full",
            "UnknownIssuer",
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={other_ca}"),
            "sslmode=verify-ca",
            "UnknownIssuer",
        ),
        // libpq: with a CA given, require verifies the chain too.
        (
            "127.0.0.1",
            format!("sslmode=require&sslrootcert={other_ca}"),
            "sslmode=require",
            "UnknownIssuer",
        ),
    ];
    for (host, options, mode, reason) in failures {
        let (code, stderr) = migrate(&server.url(host, &options));
        assert_eq!(code, 2, "{host} {options}: {stderr}");
        let line = stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {stderr}");
        assert!(
            line.contains(&format!(
                "TLS to database at {host}:{}/postgres failed ({mode})",
                server.port
            )) && line.contains(reason),
            "{host} {options}: {line}"
        );
    }

    // disable against hostssl-only rules: the server refuses, and the line says why.
    let (code, stderr) = migrate(&server.url("127.0.0.1", "sslmode=disable"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("(sslmode=disable)")
            && stderr.contains("no pg_hba.conf entry")
            && stderr.contains("no encryption"),
        "{stderr}"
    );
}

#[test]
fn issue_13_unusable_tls_options_exit_2_before_connecting() {
    let dir = std::env::temp_dir().join(format!("postmand-tls-options-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    // Port 9 on 127.0.0.1: nothing is ever contacted, the options fail first.
    for (options, expected) in [
        (
            "sslmode=verify_full".to_string(),
            "sslmode=verify_full is not one of",
        ),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".to_string(),
            "sslrootcert=/nonexistent/ca.pem: No such file",
        ),
        (
            format!("sslmode=verify-ca&sslrootcert={}", not_pem.display()),
            "holds no usable CA certificate",
        ),
    ] {
        let (code, stderr) = migrate(&format!("postgres://u:pw@127.0.0.1:9/db?{options}"));
        assert_eq!(code, 2, "{options}: {stderr}");
        assert!(
            stderr.contains("POSTMAND_DATABASE_URL") && stderr.contains(expected),
            "{options}: {stderr}"
        );
        assert!(!stderr.contains(":pw@"), "the password is hidden: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn issue_13_a_running_process_speaks_tls_on_every_connection() {
    let server = TlsPostgres::start("tls-process");
    let url = server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", server.file("ca.crt")),
    );
    let (code, stderr) = migrate(&url);
    assert_eq!(code, 0, "{stderr}");
    let receiver = Receiver::status(200);
    let mut process = Postmand::start(
        &url,
        "all",
        &[
            ("POSTMAND_HTTP_PORT", "0"),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
        ],
    );
    let health = process.addr("health-server");
    process.wait_ready(health);
    let api = process.addr("http-server");
    // The create goes through the pool and the notifier; the wake-up through the LISTEN
    // connection; the claim and the attempt through the dispatchers' sessions.
    fixtures::webhook_and_delivery(api, serde_json::json!({"url": receiver.url("/hook")}), "{}");
    receiver.next_arrival();

    let local = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.file(""),
        server.port
    );
    let mut admin = postgres::Client::connect(&local, postgres::NoTls).expect("socket connection");
    let connections: Vec<(String, bool)> = wait_until("postmand's connections to show", || {
        let rows = admin
            .query(
                "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'postmand%'",
                &[],
            )
            .expect("pg_stat_activity");
        let found: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let names = |prefix: &str| found.iter().any(|(name, _)| name.starts_with(prefix));
        if names("postmand-listener") && names("postmand-notifier") && found.len() >= 3 {
            Ok(found)
        } else {
            Err(found)
        }
    });
    assert!(
        connections.iter().all(|(_, ssl)| *ssl),
        "every connection is encrypted: {connections:?}"
    );
}
