//! Real HTTP receivers on 127.0.0.1:0 for the dispatcher to deliver to.
//!
//! [`Receiver`] is a tiny_http server that records every request (headers, body, arrival time)
//! and answers from a script; each request gets its own thread, so held requests do not block
//! others. [`RawReceiver`] answers with exact bytes over a plain socket, for hostile responses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver as Rx, Sender as Tx};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Request path and query.
    pub url: String,
    /// Header names lowercased, with values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer one request.
#[derive(Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Wait for a message (or disconnection) on this channel before answering.
    pub hold: Option<Rx<()>>,
}

impl Answer {
    /// Answer `status` at once.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            hold: None,
        }
    }
}

type Script = dyn Fn(usize, &Recorded) -> Answer + Send + Sync;

/// A scripted HTTP receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    /// Every request so far, in arrival order.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Each request, as it arrives.
    pub arrivals: Rx<Recorded>,
    /// Requests being answered right now.
    pub in_progress: Arc<AtomicUsize>,
    /// The most requests ever answered at the same time.
    pub max_in_progress: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// A receiver answering every request with `status`.
    pub fn status(status: u16) -> Receiver {
        Receiver::start(move |_, _| Answer::status(status))
    }

    /// A receiver answering the n-th request (from 0) with `script(n, request)`.
    pub fn start(script: impl Fn(usize, &Recorded) -> Answer + Send + Sync + 'static) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
        let addr = server.server_addr().to_ip().expect("receiver address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (arrival_tx, arrivals): (Tx<Recorded>, Rx<Recorded>) = crossbeam_channel::unbounded();
        let in_progress = Arc::new(AtomicUsize::new(0));
        let max_in_progress = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            let in_progress = Arc::clone(&in_progress);
            let max_in_progress = Arc::clone(&max_in_progress);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let counter = AtomicUsize::new(0);
                while let Ok(mut request) = server.recv() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let recorded = Recorded {
                        url: request.url().to_string(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| {
                                (
                                    h.field.as_str().as_str().to_ascii_lowercase(),
                                    h.value.as_str().to_string(),
                                )
                            })
                            .collect(),
                        body,
                    };
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    requests.lock().unwrap().push(recorded.clone());
                    let _ = arrival_tx.send(recorded.clone());
                    let answer = script(n, &recorded);
                    let now = in_progress.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_progress.fetch_max(now, Ordering::SeqCst);
                    let in_progress = Arc::clone(&in_progress);
                    thread::spawn(move || {
                        if let Some(hold) = &answer.hold {
                            let _ = hold.recv();
                        }
                        if !answer.delay.is_zero() {
                            thread::sleep(answer.delay);
                        }
                        let mut response =
                            tiny_http::Response::from_string("ok").with_status_code(answer.status);
                        for (name, value) in &answer.headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        let _ = request.respond(response);
                        in_progress.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        Receiver {
            addr,
            server,
            requests,
            arrivals,
            in_progress,
            max_in_progress,
            stop,
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The next arrival, or a panic after the test timeout.
    pub fn next_arrival(&self) -> Recorded {
        self.arrivals
            .recv_timeout(super::test_timeout())
            .expect("a request to arrive at the receiver")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
    }
}

/// A receiver that answers every connection with the bytes `respond(n)` returns (after reading
/// the request), optionally writing them `drip` bytes at a time with a pause between writes.
pub struct RawReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl RawReceiver {
    /// Starts answering with `response` bytes; `pause` between writes of `chunk` bytes.
    pub fn start(response: Vec<u8>, chunk: usize, pause: Duration) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw receiver");
        let addr = listener.local_addr().expect("raw receiver address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let response = Arc::new(response);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = Arc::clone(&response);
                thread::spawn(move || answer_raw(stream, &response, chunk, pause));
            }
        });
        RawReceiver { addr, connections }
    }

    /// `http://127.0.0.1:port/raw`.
    pub fn url(&self) -> String {
        format!("http://{}/raw", self.addr)
    }

    /// Connections so far.
    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn answer_raw(mut stream: TcpStream, response: &[u8], chunk: usize, pause: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    // Read the head, then as much body as Content-Length says.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(whole) = request_len(&request) {
            while request.len() < whole {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            break;
        }
    }
    for part in response.chunks(chunk.max(1)) {
        if stream.write_all(part).is_err() {
            return;
        }
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    let _ = stream.flush();
}

/// The length of the whole request `received` starts with (its head, then as much body as its
/// Content-Length says), once the head is complete.
pub fn request_len(received: &[u8]) -> Option<usize> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(end + 4 + length)
}
