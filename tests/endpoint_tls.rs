//! Outbound trust and network policy (issue 13): https endpoints behind a private CA with and
//! without `POSTMAND_CA_FILE`, and `POSTMAND_ENDPOINT_DENY` refusing addresses after DNS.
//!
//! The HTTPS receiver is rustls on a plain `TcpListener`, serving a certificate for
//! `localhost` and 127.0.0.1 issued by a CA each test makes with rcgen. Nothing here connects
//! anywhere but 127.0.0.1: the metadata address is only ever refused, never reached.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use crate::common::receiver::{Receiver, request_len};
use crate::common::{TestApp, fixtures, http, wait_until};

/// A private CA and a server certificate it issued for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "postmand test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let mut server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        Pki {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        }
    }

    /// Writes the CA certificate to a file of this test's own; removed on drop.
    fn ca_file(&self, test: &str) -> TempFile {
        TempFile::new(test, self.ca_pem.as_bytes())
    }
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(test: &str, contents: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("postmand-{}-{test}.pem", std::process::id()));
        std::fs::write(&path, contents).expect("write temporary file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An HTTPS receiver on 127.0.0.1: completes the handshake, reads one request, answers 200
/// `ok` and closes. Counts requests read whole, and keeps each failed handshake's error.
struct TlsReceiver {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    handshake_errors: Arc<Mutex<Vec<String>>>,
}

impl TlsReceiver {
    fn start(pki: &Pki) -> TlsReceiver {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .expect("server TLS config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS receiver");
        let addr = listener.local_addr().expect("TLS receiver address");
        let requests = Arc::new(AtomicUsize::new(0));
        let handshake_errors = Arc::new(Mutex::new(Vec::new()));
        {
            let requests = Arc::clone(&requests);
            let handshake_errors = Arc::clone(&handshake_errors);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { break };
                    let config = Arc::clone(&config);
                    let requests = Arc::clone(&requests);
                    let handshake_errors = Arc::clone(&handshake_errors);
                    thread::spawn(move || {
                        if let Err(e) = serve_tls(config, stream, &requests) {
                            handshake_errors.lock().unwrap().push(e.to_string());
                        }
                    });
                }
            });
        }
        TlsReceiver {
            addr,
            requests,
            handshake_errors,
        }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/hook", self.addr.port())
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_tls(
    config: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buf[..n]);
        if request_len(&received).is_some_and(|whole| received.len() >= whole) {
            break;
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// A webhook posting to `url`: one attempt, unsigned, 5 s timeout, unless `overrides` says.
fn webhook(app: &TestApp, url: &str, overrides: Value) -> String {
    let body = fixtures::merge(
        json!({"url": url, "max_delivery_attempts": 1, "secret_token": "",
               "delivery_attempt_timeout": 5}),
        overrides,
    );
    fixtures::webhook(app, body)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Queues a delivery, waits until it is no longer pending, and returns it with its attempts
/// (oldest first).
fn deliver_and_finish(app: &TestApp, webhook_id: &str) -> (Value, Vec<Value>) {
    let id = fixtures::delivery_id(app, webhook_id, "{\"success\": true}");
    (app.finished(&id), app.attempts(&id))
}

/// The value of one series in the health server's `/metrics`.
fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = http::request(app.health, "GET", "/metrics", &[], None).text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn private_ca_endpoint_fails_without_ca_file_as_unknown_issuer() {
    let pki = Pki::new();
    let receiver = TlsReceiver::start(&pki);
    let app = TestApp::start_all("tls_without_ca_file", &[]);
    let url = receiver.url("127.0.0.1");
    let webhook_id = webhook(&app, &url, json!({}));
    let (delivery, attempts) = deliver_and_finish(&app, &webhook_id);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["response_status_code"], 0);
    assert_eq!(
        attempts[0]["error"],
        format!("Post \"{url}\": io: invalid peer certificate: UnknownIssuer")
    );
    assert_eq!(
        metric(&app, "postmand_attempts_total{outcome=\"tls\"}"),
        Some(1.0)
    );
    // The client hung up in the handshake: the receiver read no request.
    wait_until("the receiver to see the failed handshake", || {
        let errors = receiver.handshake_errors.lock().unwrap().clone();
        if errors.is_empty() {
            Err(errors)
        } else {
            Ok(())
        }
    });
    assert_eq!(receiver.count(), 0);
}

#[test]
fn private_ca_endpoint_succeeds_with_ca_file_by_name_and_by_ip() {
    let pki = Pki::new();
    let ca_file = pki.ca_file("tls_with_ca_file");
    let receiver = TlsReceiver::start(&pki);
    let app = TestApp::start_all("tls_with_ca_file", &[("POSTMAND_CA_FILE", ca_file.path())]);
    for (n, host) in ["localhost", "127.0.0.1"].into_iter().enumerate() {
        let webhook_id = webhook(&app, &receiver.url(host), json!({}));
        let (delivery, attempts) = deliver_and_finish(&app, &webhook_id);
        assert_eq!(delivery["status"], "succeeded", "{host}: {attempts:?}");
        assert_eq!(attempts.len(), 1, "{host}");
        assert_eq!(attempts[0]["error"], "", "{host}");
        assert_eq!(attempts[0]["response_status_code"], 200, "{host}");
        assert!(
            attempts[0]["raw_response"]
                .as_str()
                .unwrap()
                .ends_with("\r\n\r\nok"),
            "{host}: {}",
            attempts[0]["raw_response"]
        );
        assert_eq!(receiver.count(), n + 1, "{host}");
    }
}

#[test]
fn metadata_address_is_denied_by_default_before_connecting_and_retried_as_usual() {
    let app = TestApp::start_all("deny_metadata_default", &[]);
    // Two attempts a second apart: a denial is a failed attempt like any other.
    let url = "http://169.254.169.254:80/latest/meta-data";
    let webhook_id = webhook(
        &app,
        url,
        json!({"max_delivery_attempts": 2, "retry_min_backoff": 1, "retry_max_backoff": 1}),
    );
    let (delivery, attempts) = deliver_and_finish(&app, &webhook_id);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["delivery_attempts"], 2);
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        // The resolver's words, not a connection's: nothing was connected to.
        assert_eq!(
            attempt["error"],
            "Post \"http://169.254.169.254:80/latest/meta-data\": address 169.254.169.254 is \
             denied by POSTMAND_ENDPOINT_DENY rule 169.254.0.0/16"
        );
        assert_eq!(attempt["response_status_code"], 0);
        assert_eq!(attempt["success"], false);
        assert!(
            attempt["raw_request"]
                .as_str()
                .unwrap()
                .starts_with("POST /latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254:80\r\n"),
            "{}",
            attempt["raw_request"]
        );
    }
    assert_eq!(
        metric(&app, "postmand_attempts_total{outcome=\"denied\"}"),
        Some(2.0)
    );

    // The same address in IPv6's IPv4-mapped form is judged by the IPv4 rule.
    let mapped = webhook(&app, "http://[::ffff:169.254.169.254]:80/", json!({}));
    let (_, attempts) = deliver_and_finish(&app, &mapped);
    assert_eq!(
        attempts[0]["error"],
        "Post \"http://[::ffff:169.254.169.254]:80/\": address ::ffff:169.254.169.254 is \
         denied by POSTMAND_ENDPOINT_DENY rule 169.254.0.0/16"
    );
}

#[test]
fn deny_list_judges_the_resolved_address_not_the_host_name() {
    // `localhost` is a name: only after resolving it does anything know it is loopback.
    let receiver = Receiver::status(200);
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let app = TestApp::start_all(
        "deny_after_dns",
        &[("POSTMAND_ENDPOINT_DENY", "127.0.0.0/8,::1")],
    );
    let webhook_id = webhook(&app, &url, json!({}));
    let (delivery, attempts) = deliver_and_finish(&app, &webhook_id);
    assert_eq!(delivery["status"], "failed");
    let error = attempts[0]["error"].as_str().unwrap();
    let denied = [
        format!(
            "Post \"{url}\": address 127.0.0.1 is denied by POSTMAND_ENDPOINT_DENY rule \
             127.0.0.0/8"
        ),
        format!("Post \"{url}\": address ::1 is denied by POSTMAND_ENDPOINT_DENY rule ::1/128"),
    ];
    assert!(denied.contains(&error.to_string()), "{error}");
    drop(app);
    assert_eq!(receiver.count(), 0);

    // The default list and an empty one both let the same receiver have it.
    for (test, overrides) in [
        ("deny_default_loopback", vec![]),
        ("deny_empty_loopback", vec![("POSTMAND_ENDPOINT_DENY", "")]),
    ] {
        let before = receiver.count();
        let app = TestApp::start_all(test, &overrides);
        let webhook_id = webhook(&app, &url, json!({}));
        let (delivery, attempts) = deliver_and_finish(&app, &webhook_id);
        assert_eq!(delivery["status"], "succeeded", "{test}: {attempts:?}");
        assert_eq!(receiver.count(), before + 1, "{test}");
    }
}

/// Runs the binary with only `envs` set; returns its exit code and standard error.
fn run_postmand(envs: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postmand"));
    command
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("POSTMAND_DATABASE_URL", "postgres://127.0.0.1:1/none")
        .args(["--role", "worker"]);
    for (name, value) in envs {
        command.env(name, value);
    }
    let Output { status, stderr, .. } = command.output().expect("run postmand");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn bad_deny_list_or_ca_file_stops_start_up_with_exit_2() {
    let (code, stderr) = run_postmand(&[("POSTMAND_ENDPOINT_DENY", "169.254.0.0/16,10.0.0.0/40")]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "postmand: configuration: POSTMAND_ENDPOINT_DENY=\"169.254.0.0/16,10.0.0.0/40\" is \
         invalid: expected comma-separated CIDRs or IP addresses, such as \
         169.254.0.0/16,fe80::/10 (\"10.0.0.0/40\": the prefix length must be 0-32 for IPv4, \
         0-128 for IPv6)"
    );

    let (code, stderr) = run_postmand(&[("POSTMAND_CA_FILE", "/nonexistent/ca.pem")]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "postmand: configuration: POSTMAND_CA_FILE=\"/nonexistent/ca.pem\": cannot read it: \
         No such file or directory (os error 2)"
    );

    let no_certificate = TempFile::new("no_certificate", b"not a certificate\n");
    let (code, stderr) = run_postmand(&[("POSTMAND_CA_FILE", no_certificate.path())]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "postmand: configuration: POSTMAND_CA_FILE={:?}: no PEM certificate (BEGIN \
             CERTIFICATE) in it",
            no_certificate.path()
        )
    );
}
