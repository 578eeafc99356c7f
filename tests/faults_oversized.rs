//! Requests too big to serve: a 1 MiB header value, 10,000 headers, 50 MiB bodies announced by
//! Content-Length (streamed or held), an endless chunked body, and Content-Length values near
//! usize::MAX, against the in-process API and, where a request could kill the process, the real
//! binary. They get a 413 (or are ignored) and the server goes on serving. Requests that are
//! merely slow belong in `faults_slow_clients`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::http::{self, HOST, assert_served, exchange, read_response, timed_get};
use crate::common::process::Postmand;
use crate::common::{TestApp, TestDb, wait_until};

/// Streams `total` bytes of `fill` (or, with `chunked`, 64 KiB chunks of it) after `head` from a
/// thread, until done, the server hangs up, or `stop`. Returns how many bytes went out and
/// whether a write failed.
fn stream_body(
    mut stream: TcpStream,
    head: Vec<u8>,
    total: usize,
    chunked: bool,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(usize, bool)> {
    thread::spawn(move || {
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        let chunk = vec![b'x'; 64 * 1024];
        let framed = if chunked {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            framed
        } else {
            chunk
        };
        let mut pending: Vec<u8> = head;
        let mut sent = 0;
        loop {
            if pending.is_empty() {
                if sent >= total {
                    return (sent, false);
                }
                pending = framed.clone();
            }
            if stop.load(Ordering::SeqCst) {
                return (sent, false);
            }
            match stream.write(&pending) {
                Ok(0) => return (sent, true),
                Ok(n) => {
                    pending.drain(..n);
                    sent += n;
                }
                Err(e) if http::is_timeout(&e) => {}
                Err(_) => return (sent, true),
            }
        }
    })
}

/// Asserts that `GET /v1/webhooks` with `headers` gets its 200 within `bound`, and logs how long
/// it took; `what` names the case.
fn assert_get_with_headers(
    addr: SocketAddr,
    headers: &[(String, String)],
    what: &str,
    bound: Duration,
) {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let started = Instant::now();
    let response = exchange(
        addr,
        &http::request_bytes(HOST, "GET", "/v1/webhooks", &headers, None, false),
        false,
        bound,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(response.status, 200, "{}", response.text());
    eprintln!("{what}: {} in {:?}", response.status, started.elapsed());
}

#[test]
fn oversized_headers_and_bodies_are_refused_without_harm() {
    let app = TestApp::start("faults_oversized");
    let bound = Duration::from_secs(10);

    // tiny_http reads a head of any size (a line at a time, no limit), so a 1 MiB header value
    // and 10,000 headers are simply a request with headers the API ignores.
    let big = vec![("X-Big".to_string(), "a".repeat(1024 * 1024))];
    assert_get_with_headers(app.api, &big, "1 MiB header value", bound);
    assert_served(app.api, "/v1/webhooks", "after a 1 MiB header");

    let many: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("X-Header-{i}"), format!("value {i}")))
        .collect();
    assert_get_with_headers(app.api, &many, "10,000 headers", bound);
    assert_served(app.api, "/v1/webhooks", "after 10,000 headers");

    // 50 MiB announced and streamed: 413 from the Content-Length alone, before the body is read.
    let stop = Arc::new(AtomicBool::new(false));
    let announced = 50 * 1024 * 1024;
    let mut stream = TcpStream::connect(app.api).unwrap();
    let head = http::post_head("/v1/webhooks", "Content-Length", announced);
    let started = Instant::now();
    let writer = stream_body(
        stream.try_clone().unwrap(),
        head,
        announced,
        false,
        Arc::clone(&stop),
    );
    let response =
        read_response(&mut stream, false, bound).unwrap_or_else(|e| panic!("50 MiB body: {e}"));
    let answered = started.elapsed();
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.json()["code"], 9);
    assert_served(app.api, "/v1/webhooks", "while a 50 MiB body streams");
    let (sent, failed) = writer.join().unwrap();
    eprintln!(
        "50 MiB by Content-Length, streamed: 413 after {answered:?}; the writer sent {sent} bytes in {:?} (write failed: {failed})",
        started.elapsed()
    );
    drop(stream);
    assert_served(app.api, "/v1/webhooks", "after a 50 MiB body");

    // 50 MiB announced, 64 KiB sent, the connection held open: the 413 still comes at once, and
    // the other API threads go on serving.
    let mut held = TcpStream::connect(app.api).unwrap();
    let mut bytes = http::post_head("/v1/webhooks", "Content-Length", announced);
    bytes.extend(std::iter::repeat_n(b'x', 64 * 1024));
    held.write_all(&bytes).unwrap();
    let started = Instant::now();
    let response =
        read_response(&mut held, false, bound).unwrap_or_else(|e| panic!("held 50 MiB body: {e}"));
    assert_eq!(response.status, 413, "{}", response.text());
    eprintln!(
        "50 MiB by Content-Length, 64 KiB sent and held: 413 after {:?}",
        started.elapsed()
    );
    assert_served(app.api, "/v1/webhooks", "while a 50 MiB body is held");
    drop(held);
    assert_served(app.api, "/v1/webhooks", "after the held body was dropped");

    // A chunked body that goes on past the limit: 413 once the limit is read; then the
    // connection closes (the request said Connection: close), which ends the writer.
    let mut stream = TcpStream::connect(app.api).unwrap();
    let head = http::post_head("/v1/webhooks", "Transfer-Encoding", "chunked");
    let started = Instant::now();
    let writer = stream_body(
        stream.try_clone().unwrap(),
        head,
        64 * 1024 * 1024,
        true,
        Arc::clone(&stop),
    );
    let response = read_response(&mut stream, false, bound)
        .unwrap_or_else(|e| panic!("endless chunked body: {e}"));
    let answered = started.elapsed();
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.json()["code"], 9);
    assert_served(app.api, "/v1/webhooks", "while a chunked body streams");
    wait_until("the chunked writer to end", || {
        if writer.is_finished() {
            Ok(())
        } else {
            Err("still writing")
        }
    });
    let (sent, failed) = writer.join().unwrap();
    eprintln!(
        "endless chunked body: 413 after {answered:?}; the writer sent {sent} bytes, write failed: {failed}, after {:?}",
        started.elapsed()
    );
    assert!(
        failed,
        "the server should hang up on the rest of the chunked body"
    );
    assert!(sent < 64 * 1024 * 1024, "{sent}");
    stop.store(true, Ordering::SeqCst);
    drop(stream);
    assert_served(app.api, "/v1/webhooks", "after everything");
}

// ---------------------------------------------------------------------------------------------
// The real binary: requests that can take a thread or the whole process down.

/// `postmand --role <role>` on `db`, both servers on free loopback ports, its log collected.
fn start_process(db: &TestDb, role: &str) -> Postmand {
    Postmand::start(
        &db.url,
        role,
        &[
            ("POSTMAND_HTTP_PORT", "0"),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
            ("POSTMAND_HTTP_THREADS", "2"),
            ("POSTMAND_WORKER_CONCURRENCY", "1"),
        ],
    )
}

/// The last lines of a log that say why a thread or the process died.
fn death_notes(log: &str) -> String {
    log.lines()
        .filter(|l| {
            l.contains("panicked")
                || l.contains("memory allocation")
                || l.contains("capacity overflow")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn huge_content_length_kills_neither_the_process_nor_its_threads() {
    // Upstream tiny_http "skips" the unread rest of a body by allocating a buffer of the
    // announced size when the request is dropped (EqualReader::drop): Content-Length near
    // usize::MAX panicked that thread (capacity overflow), 10^15 aborted the process. Patched
    // (vendor/tiny_http/PATCHES.md, patch 3); both servers answer 413 from the length alone.
    let db = TestDb::new("faults_huge_content_length");
    let mut problems = Vec::new();
    let cases: [(&str, &str, &str, &str, usize); 3] = [
        (
            "api",
            "http-server",
            "/v1/webhooks",
            "18446744073709551615",
            2,
        ),
        ("api", "http-server", "/v1/webhooks", "1000000000000000", 1),
        ("worker", "health-server", "/healthz", "1000000000000000", 1),
    ];
    for (role, server, path, length, times) in cases {
        let mut process = start_process(&db, role);
        let addr = process.addr(server);
        let health = process.addr("health-server");
        process.wait_ready(health);
        let case = format!("--role {role}, {times} x GET {path} with Content-Length: {length}");
        for _ in 0..times {
            let bytes = http::request_bytes(
                HOST,
                "GET",
                path,
                &[("Content-Length", length)],
                None,
                false,
            );
            match exchange(addr, &bytes, false, Duration::from_secs(2)) {
                Ok(response) if response.status == 413 => {}
                Ok(response) => problems.push(format!("{case}: answered {}", response.status)),
                Err(e) => problems.push(format!("{case}: not answered: {e}")),
            }
        }
        match timed_get(addr, path, Duration::from_secs(5)) {
            Ok((response, _)) if response.status == 200 => {}
            Ok((response, _)) => problems.push(format!(
                "{case}: then GET {path} answered {}: {}",
                response.status,
                response.text()
            )),
            Err(e) => problems.push(format!(
                "{case}: then GET {path} was not answered ({e}); process exited: {:?}; {}",
                process.exit_within(Duration::from_secs(2)),
                death_notes(&process.log())
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "huge Content-Length values took the server down:\n{}",
        problems.join("\n")
    );
}
