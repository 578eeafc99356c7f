//! Clients that are slow or stop halfway, against the in-process API: request heads dripped a
//! byte at a time, bodies that never finish, a connection left open after a complete body. They
//! may hold a connection or an API thread for a while (up to the socket read timeout), never
//! keep the others from being served. Heads and bodies that are too big belong in
//! `faults_oversized`.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::http::{self, HOST, PROMPT, assert_served, exchange, read_response, timed_get};
use crate::common::{TestApp, TestDb, fixtures, wait_until};

/// Connections that send a request head one byte per `tick` and never finish it, from one
/// background thread: the even ones from its first byte, the odd ones after sending all of
/// `head` at once (so they sit in a header value that never ends). Dropping it stops the thread
/// and closes them.
struct Drip {
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicUsize>,
    broken: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drip {
    fn start(addr: SocketAddr, connections: usize, head: &'static [u8], tick: Duration) -> Drip {
        let mut streams: Vec<(Option<TcpStream>, usize)> = (0..connections)
            .map(|i| {
                let mut stream = TcpStream::connect(addr).expect("connect a slow client");
                let start = if i % 2 == 0 { 0 } else { head.len() };
                stream
                    .write_all(&head[..start])
                    .expect("send a head's start");
                (Some(stream), start)
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, ticks, broken) =
                (Arc::clone(&stop), Arc::clone(&ticks), Arc::clone(&broken));
            thread::spawn(move || {
                // At most ten minutes of dripping, should the test forget to stop it.
                for i in 0..6000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    for (slot, start) in &mut streams {
                        // The head's next byte, then a header value that never ends.
                        let byte = head.get(*start + i).copied().unwrap_or(b'a');
                        if let Some(stream) = slot
                            && stream.write_all(&[byte]).is_err()
                        {
                            *slot = None;
                            broken.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    ticks.store(i + 1, Ordering::SeqCst);
                    thread::sleep(tick);
                }
            })
        };
        Drip {
            stop,
            ticks,
            broken,
            thread: Some(thread),
        }
    }
}

impl Drop for Drip {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Latencies as "min/median/max".
fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    format!(
        "min {:?} / median {:?} / max {:?}",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    )
}

#[test]
fn slow_clients_do_not_block_others() {
    let app = TestApp::start("faults_slowloris");
    let drip = Drip::start(
        app.api,
        50,
        b"POST /v1/webhooks HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nX-Slow: ",
        Duration::from_millis(100),
    );
    // Every connection has dripped a few bytes (half of them are in the request line, half in
    // a header value) before the others come.
    wait_until("the slow clients to start", || {
        let ticks = drip.ticks.load(Ordering::SeqCst);
        if ticks >= 3 { Ok(()) } else { Err(ticks) }
    });
    let mut latencies = Vec::new();
    let body = fixtures::webhook_body().to_string();
    for i in 0..20 {
        latencies.push(assert_served(
            app.api,
            "/v1/webhooks",
            "beside 50 slow clients",
        ));
        let started = Instant::now();
        let bytes = http::request_bytes(
            HOST,
            "POST",
            "/v1/webhooks",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
            false,
        );
        match exchange(app.api, &bytes, false, PROMPT) {
            Ok(response) => assert_eq!(response.status, 201, "POST #{i}: {}", response.text()),
            Err(e) => {
                panic!("POST #{i} beside 50 slow clients not answered within {PROMPT:?}: {e}")
            }
        }
        latencies.push(started.elapsed());
    }
    let ticks = drip.ticks.load(Ordering::SeqCst);
    let broken = drip.broken.load(Ordering::SeqCst);
    eprintln!(
        "slowloris: 40 requests beside 50 slow clients ({ticks} bytes each so far, {broken} dropped by the server): {}",
        summary(&mut latencies)
    );
    drop(drip);
    assert_served(app.api, "/v1/webhooks", "after the slow clients left");
    let listed = app.get("/v1/webhooks?limit=1000").json();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 20, "{listed}");
}

/// Request bodies that never finish hold API threads: tiny_http reads a body of more than 1 KiB
/// on the thread that answers (in `read_body`, and again when the request is dropped, to skip
/// the unread rest of a refused body). The sockets' read timeout (POSTMAND_HTTP_TIMEOUT, 2 s
/// here) bounds how long.
#[test]
fn unfinished_request_bodies_hold_threads_only_until_the_read_timeout() {
    let db = TestDb::new("faults_unfinished_bodies");
    let config = db.config_with(&[("POSTMAND_HTTP_TIMEOUT", "2")]);
    let app = TestApp::start_with(db, &config, postmand::cli::Role::Api);
    // Twice as many connections as the API has threads (4 in the test configuration): two
    // kinds, both sent at once and then left hanging.
    let mut held = Vec::new();
    for i in 0..8 {
        let mut stream = TcpStream::connect(app.api).unwrap();
        let (length, sent) = if i % 2 == 0 {
            // Refused by length (413), then the rest is "skipped" by reading it.
            (50 * 1024 * 1024, 1024)
        } else {
            // Within the limit: read_body waits for the other 1990 bytes.
            (2000, 10)
        };
        let mut bytes = http::post_head("/v1/webhooks", "Content-Length", length);
        bytes.extend(std::iter::repeat_n(b'{', sent));
        stream.write_all(&bytes).unwrap();
        held.push(stream);
    }
    let outcome = timed_get(app.api, "/v1/webhooks", Duration::from_secs(5));
    // Closing the held connections frees the threads again (EOF ends their reads).
    for stream in &held {
        let _ = stream.shutdown(Shutdown::Both);
    }
    drop(held);
    match outcome {
        Ok((response, took)) => {
            assert_eq!(response.status, 200, "{}", response.text());
            eprintln!("GET beside 8 unfinished bodies: {took:?}");
        }
        Err(e) => panic!(
            "with 8 connections holding unfinished bodies, GET /v1/webhooks was not answered within 5 s: {e}"
        ),
    }
    assert_served(
        app.api,
        "/v1/webhooks",
        "after the unfinished bodies were dropped",
    );
}

#[test]
fn connection_upgrade_with_a_complete_body_is_answered() {
    // With `Connection: Upgrade`, tiny_http hands the handler the raw socket as the body reader,
    // Content-Length or not, so reading "the body" goes on past its end until the client closes.
    let app = TestApp::start("faults_upgrade_body");
    let body = br#"{"name": 1}"#;
    let bytes = http::request_bytes(
        HOST,
        "POST",
        "/v1/webhooks",
        &[
            ("Content-Type", "application/json"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
        ],
        Some(body),
        false,
    );
    let mut stream = TcpStream::connect(app.api).unwrap();
    stream.write_all(&bytes).unwrap();
    let outcome = read_response(&mut stream, false, Duration::from_secs(5));
    // Half-closing ends the server's read, so the thread is free again whatever happened.
    let _ = stream.shutdown(Shutdown::Write);
    let late = read_response(&mut stream, false, Duration::from_secs(5));
    drop(stream);
    match outcome {
        Ok(response) => {
            assert_eq!(response.status, 400, "{}", response.text());
            assert_eq!(response.json()["code"], 3);
        }
        Err(e) => panic!(
            "a complete {}-byte body with Connection: Upgrade got no answer within 5 s ({e}); \
             after the client half-closed: {:?}",
            body.len(),
            late.map(|r| (r.status, r.text()))
        ),
    }
    assert_served(app.api, "/v1/webhooks", "after the upgrade request");
}
