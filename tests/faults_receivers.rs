//! The dispatcher against hostile endpoints: receivers that close mid-response, send headers for
//! ever, drip the status line, or answer with status lines no client should accept. One try must
//! always be exactly one stored attempt and one connection, end within the webhook's timeout
//! (plus a margin), and move the delivery out of `pending`.
//!
//! Webhooks allow one attempt, so one try decides the delivery; polling is slowed to a minute so
//! nothing but the creation's wake-up sends a delivery.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::receiver::request_len;
use crate::common::{TestApp, fixtures, wait_until};

/// Polling so slow that only the creation's wake-up explains an attempt.
const NO_POLL: (&str, &str) = ("POSTMAND_POLLING_INTERVAL", "60000");

/// What a hostile receiver does with one connection once it has read the request.
type Behaviour = dyn Fn(&mut TcpStream, &AtomicBool) + Send + Sync;

/// A receiver on 127.0.0.1:0 that reads each request, then hands the socket to a behaviour
/// running on a thread of its own. Dropping it stops and joins every thread it started.
struct Hostile {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Hostile {
    fn start(behaviour: impl Fn(&mut TcpStream, &AtomicBool) + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile receiver");
        let addr = listener.local_addr().expect("hostile receiver address");
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let acceptor = {
            let connections = Arc::clone(&connections);
            let stop = Arc::clone(&stop);
            let threads = Arc::clone(&threads);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { break };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let behaviour = Arc::clone(&behaviour);
                    let stop = Arc::clone(&stop);
                    let handle = thread::spawn(move || {
                        if read_request(&mut stream, &stop) {
                            behaviour(&mut stream, &stop);
                        }
                    });
                    threads.lock().unwrap().push(handle);
                }
            })
        };
        Hostile {
            addr,
            connections,
            stop,
            threads,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hostile", self.addr)
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A connection of our own wakes the acceptor, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let handles: Vec<JoinHandle<()>> = self.threads.lock().unwrap().drain(..).collect();
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// Reads the request head and as much body as Content-Length says; false when the peer went away
/// or the receiver is stopping.
fn read_request(stream: &mut TcpStream, stop: &AtomicBool) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let mut wanted = None;
    loop {
        if let Some(wanted) = wanted
            && request.len() >= wanted
        {
            return true;
        }
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => request.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
        if wanted.is_none() {
            wanted = request_len(&request);
        }
    }
}

/// Writes all of `bytes`, riding out write timeouts until the receiver stops; false once the
/// peer is gone (or the receiver stops).
fn send(stream: &mut TcpStream, mut bytes: &[u8], stop: &AtomicBool) -> bool {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    while !bytes.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Sleeps `pause` in small steps; false when the receiver stops meanwhile.
fn pause(pause: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Writes `bytes` and closes the connection.
fn then_close(bytes: &'static [u8]) -> impl Fn(&mut TcpStream, &AtomicBool) + Send + Sync {
    move |stream, stop| {
        send(stream, bytes, stop);
        let _ = stream.flush();
    }
}

fn webhook(app: &TestApp, url: &str, timeout_secs: u64) -> String {
    let body = json!({
        "url": url,
        "max_delivery_attempts": 1,
        "delivery_attempt_timeout": timeout_secs,
        "valid_status_codes": [200],
    });
    fixtures::webhook_id(app, body)
}

fn deliver(app: &TestApp, webhook_id: &str) -> String {
    fixtures::delivery_id(app, webhook_id, "{\"hostile\": true}")
}

/// Waits until the delivery leaves `pending`; returns it and the time since `since`.
fn finished(app: &TestApp, id: &str, since: Instant) -> (Value, Duration) {
    (app.finished(id), since.elapsed())
}

fn attempts(app: &TestApp, delivery_id: &str) -> Vec<Value> {
    let response = app.get(&format!("/v1/delivery-attempts?delivery_id={delivery_id}"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["delivery_attempts"]
        .as_array()
        .unwrap()
        .clone()
}

/// One try against `receiver`: the delivery, its single attempt and how long it stayed pending.
/// Asserts one attempt row, one delivery attempt counted and one connection at the receiver.
fn one_try(app: &TestApp, receiver: &Hostile, timeout_secs: u64) -> (Value, Value, Duration) {
    let webhook_id = webhook(app, &receiver.url(), timeout_secs);
    let started = Instant::now();
    let id = deliver(app, &webhook_id);
    let (delivery, pending_for) = finished(app, &id, started);
    let attempts = attempts(app, &id);
    assert_eq!(attempts.len(), 1, "one attempt row per try: {attempts:#?}");
    assert_eq!(delivery["delivery_attempts"], 1, "{delivery}");
    assert_eq!(receiver.count(), 1, "one connection per try");
    let attempt = attempts.into_iter().next().unwrap();
    assert_eq!(attempt["delivery_id"], json!(id));
    assert_eq!(attempt["webhook_id"], json!(webhook_id));
    // The row is storable and came back whole: the request dump is always kept.
    assert!(
        attempt["raw_request"]
            .as_str()
            .unwrap()
            .starts_with("POST /hostile HTTP/1.1\r\n"),
        "{attempt}"
    );
    eprintln!(
        "{}: status={} success={} code={} duration={}ms pending_for={:?} error={:?} raw_response={:?}",
        receiver.url(),
        delivery["status"],
        attempt["success"],
        attempt["response_status_code"],
        attempt["execution_duration"],
        pending_for,
        attempt["error"],
        attempt["raw_response"],
    );
    (delivery, attempt, pending_for)
}

#[test]
fn receiver_closing_mid_response_is_one_stored_attempt() {
    // Status line and headers, then the connection closes before the blank line ends the head.
    let mid_head = Hostile::start(then_close(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Partial: yes\r\n",
    ));
    // A complete head announcing 1000 bytes, 10 of them, then the connection closes. ureq hands
    // over the response at the end of the head, so the status code is known; the body read fails.
    let mid_body = Hostile::start(then_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789",
    ));
    let app = TestApp::start_all("faults_close_mid_response", &[NO_POLL]);

    let (delivery, attempt, _) = one_try(&app, &mid_head, 2);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(attempt["success"], false);
    assert_eq!(attempt["response_status_code"], 0);
    assert_eq!(attempt["raw_response"], "");
    let error = attempt["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("Post \"{}\": ", mid_head.url())),
        "{error}"
    );

    // Whether this counts as delivered is receiver_cutting_the_body_short_fails_the_attempt's
    // question; here: one row, storable, with what did arrive and a note on what went wrong.
    let (delivery, attempt, _) = one_try(&app, &mid_body, 2);
    assert_ne!(delivery["status"], "pending");
    assert_eq!(attempt["response_status_code"], 200);
    let raw = attempt["raw_response"].as_str().unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw:?}");
    assert!(raw.contains("\r\n\r\n0123456789"), "{raw:?}");
    assert!(
        raw.contains("[postmand: reading the body failed: "),
        "{raw:?}"
    );
}

#[test]
fn receiver_cutting_the_body_short_fails_the_attempt() {
    // See: reference/postmand-behaviour.md 4.5 ("Transport errors, timeouts, and failures to read
    // the body are failures"). A 200 whose body breaks off (closed early, or still dripping when
    // the timeout ends the exchange) is not a delivered webhook.
    let closed = Hostile::start(then_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789",
    ));
    let dripping = Hostile::start(|stream, stop| {
        if !send(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            stop,
        ) {
            return;
        }
        for _ in 0..100 {
            if !send(stream, b"z", stop) || !pause(Duration::from_millis(100), stop) {
                return;
            }
        }
    });
    let app = TestApp::start_all("faults_body_cut_short", &[NO_POLL]);
    let mut problems = Vec::new();
    for (name, receiver) in [("closed", &closed), ("dripping", &dripping)] {
        let (delivery, attempt, pending_for) = one_try(&app, receiver, 2);
        if attempt["success"] != false || delivery["status"] != "failed" {
            problems.push(format!(
                "{name}: success={} status={} error={:?} (after {pending_for:?})",
                attempt["success"], delivery["status"], attempt["error"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "a body that could not be read counted as delivered:\n{}",
        problems.join("\n")
    );
}

#[test]
fn receiver_sending_endless_headers_is_bounded() {
    let ended_by_error = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let ended_by_error = Arc::clone(&ended_by_error);
        let written = Arc::clone(&written);
        Hostile::start(move |stream, stop| {
            let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
            if !send(stream, b"HTTP/1.1 200 OK\r\n", stop) {
                return;
            }
            // Bounded by the socket erroring, the receiver stopping, or 1 GiB, whichever is first.
            for _ in 0..1_000_000 {
                if !send(stream, line.as_bytes(), stop) {
                    break;
                }
                written.fetch_add(line.len(), Ordering::SeqCst);
            }
            ended_by_error.store(!stop.load(Ordering::SeqCst), Ordering::SeqCst);
        })
    };
    let app = TestApp::start_all("faults_endless_headers", &[NO_POLL]);
    let timeout = Duration::from_secs(2);
    let margin = Duration::from_secs(3);
    let (delivery, attempt, pending_for) = one_try(&app, &receiver, timeout.as_secs());
    assert_eq!(delivery["status"], "failed");
    assert_eq!(attempt["success"], false);
    assert_eq!(attempt["response_status_code"], 0);
    assert!(!attempt["error"].as_str().unwrap().is_empty(), "{attempt}");
    let duration = Duration::from_millis(attempt["execution_duration"].as_u64().unwrap());
    assert!(duration <= timeout + margin, "{duration:?}");
    assert!(pending_for <= timeout + margin, "{pending_for:?}");
    // The dispatcher hung up: the receiver's writes failed without being told to stop.
    wait_until("the endless writer to hit a closed socket", || {
        if ended_by_error.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(written.load(Ordering::SeqCst))
        }
    });
    eprintln!(
        "endless headers: {} bytes written before the dispatcher hung up",
        written.load(Ordering::SeqCst)
    );
}

#[test]
fn receiver_answering_one_byte_per_second_times_out() {
    let receiver = Hostile::start(|stream, stop| {
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
            if !send(stream, &[*byte], stop) || !pause(Duration::from_secs(1), stop) {
                return;
            }
        }
    });
    let app = TestApp::start_all("faults_one_byte_per_second", &[NO_POLL]);
    let (delivery, attempt, pending_for) = one_try(&app, &receiver, 2);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(attempt["success"], false);
    assert_eq!(attempt["response_status_code"], 0);
    assert_eq!(attempt["raw_response"], "");
    let error = attempt["error"].as_str().unwrap();
    assert!(error.contains("timeout"), "{error}");
    let duration = attempt["execution_duration"].as_u64().unwrap();
    assert!((1900..=3500).contains(&duration), "{duration} ms");
    assert!(pending_for < Duration::from_secs(5), "{pending_for:?}");
}

#[test]
fn receiver_returning_invalid_status_line_or_huge_status_is_one_attempt() {
    let weird = Hostile::start(then_close(
        b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok",
    ));
    let letters = Hostile::start(then_close(b"HTTP/1.1 abc\r\n\r\n"));
    let huge = Hostile::start(then_close(
        b"HTTP/1.1 99999999999999999999 Huge\r\nContent-Length: 0\r\n\r\n",
    ));
    let below_100 = Hostile::start(then_close(b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"));
    let app = TestApp::start_all("faults_invalid_status", &[NO_POLL]);

    // 999 parses (three digits) and is stored as it came, but no webhook can list it as valid.
    let (delivery, attempt, _) = one_try(&app, &weird, 2);
    assert_eq!(delivery["status"], "failed");
    assert_eq!(attempt["success"], false);
    assert_eq!(attempt["response_status_code"], 999);
    assert_eq!(attempt["error"], "");
    let raw = attempt["raw_response"].as_str().unwrap();
    assert!(raw.starts_with("HTTP/1.1 999"), "{raw:?}");
    assert!(raw.ends_with("\r\n\r\nok"), "{raw:?}");

    // The rest are not HTTP status lines at all: no response, a transport error.
    for receiver in [&letters, &huge, &below_100] {
        let (delivery, attempt, _) = one_try(&app, receiver, 2);
        assert_eq!(delivery["status"], "failed", "{}", receiver.url());
        assert_eq!(attempt["success"], false);
        assert_eq!(attempt["response_status_code"], 0);
        assert_eq!(attempt["raw_response"], "");
        let error = attempt["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("Post \"{}\": ", receiver.url())),
            "{error}"
        );
    }
}
