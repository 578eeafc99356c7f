//! A minimal HTTP/1.1 client over a raw socket, so tests control every byte they send (missing
//! Content-Type, chunked bodies, oversized bodies, fuzzed requests) and see every header they
//! get back. [`request`] and [`raw`] read to the end of the connection; [`exchange`] and
//! [`read_response`] read one response by its framing within a deadline and say why there is
//! none, for servers under attack.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The Host of requests built without the server's address (the servers route by path alone).
pub const HOST: &str = "postmand.test";

/// How long a plain request may take while hostile clients are at work and still count as
/// answered promptly (generous: the suite runs tests in parallel on small machines).
pub const PROMPT: Duration = Duration::from_secs(2);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    raw(
        addr,
        &request_bytes(&addr.to_string(), method, path, headers, body, false),
    )
}

/// [`request`], with a refused connection or an incomplete answer as an error instead of a
/// panic (for polling a server that may not listen yet).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    try_request_on(stream, addr, method, path, headers, body)
}

/// [`try_request`] on a connection made within `connect_timeout`: while a server's backlog is
/// full the kernel drops the handshake, and a plain connect retries it only after a second.
pub fn try_request_connecting_within(
    addr: SocketAddr,
    connect_timeout: Duration,
    method: &str,
    path: &str,
) -> Result<Response, String> {
    let stream =
        TcpStream::connect_timeout(&addr, connect_timeout).map_err(|e| format!("connect: {e}"))?;
    try_request_on(stream, addr, method, path, &[], None)
}

fn try_request_on(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let bytes = request_bytes(&addr.to_string(), method, path, headers, body, false);
    stream
        .set_read_timeout(Some(super::test_timeout()))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&bytes)
        .map_err(|e| format!("write: {e}"))?;
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    if !received.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "incomplete answer: {:?}",
            String::from_utf8_lossy(&received)
        ));
    }
    Ok(parse(&received))
}

/// The bytes of a request: its line, `Host: host`, `Connection: close` unless `headers` name a
/// Connection, `headers`, then `body` framed by Content-Length, or with `chunked` as one chunk
/// and the last chunk. A body beside a Transfer-Encoding in `headers` goes as it is (the caller
/// framed it).
pub fn request_bytes(
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    chunked: bool,
) -> Vec<u8> {
    let named = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    if !named("connection") {
        head.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Some(_) if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Some(body) if !named("transfer-encoding") => {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        _ => {}
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    match body {
        Some(body) if chunked => {
            if !body.is_empty() {
                bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                bytes.extend_from_slice(body);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        Some(body) => bytes.extend_from_slice(body),
        None => {}
    }
    bytes
}

/// The head of a `POST path` with a JSON body framed by the header `framing: value`
/// (Content-Length or Transfer-Encoding); the body is the caller's to send.
pub fn post_head(path: &str, framing: &str, value: impl ToString) -> Vec<u8> {
    let value = value.to_string();
    request_bytes(
        HOST,
        "POST",
        path,
        &[("Content-Type", "application/json"), (framing, &value)],
        None,
        false,
    )
}

/// `POST path` with `body` as `application/json`.
pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Response {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

/// Writes `bytes` as they are and parses what comes back.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to server");
    stream
        .set_read_timeout(Some(super::test_timeout()))
        .expect("set timeout");
    // The server may answer (413) and close before reading everything; that is fine.
    let _ = stream.write_all(bytes);
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    parse(&received)
}

/// Parses a whole response (everything after the head is its body, de-chunked when it says
/// so); panics when there is none.
pub fn parse(received: &[u8]) -> Response {
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response: {:?}",
                String::from_utf8_lossy(received)
            )
        });
    let (status, headers) = parse_head(&received[..split]).unwrap_or_else(|e| panic!("{e}"));
    let mut body = received[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        // A body cut short keeps what arrived.
        body = dechunk(&body).unwrap_or_else(|partial| partial);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Sends `bytes` on a new connection and reads one response within `timeout` (see
/// [`read_response`]), or says why there is none.
pub fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    head: bool,
    timeout: Duration,
) -> Result<Response, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_write_timeout(Some(timeout));
    // The server may answer and close before reading everything (413); the answer still counts.
    let _ = stream.write_all(bytes);
    read_response(&mut stream, head, timeout)
}

/// A plain `GET path` that must be answered within `timeout`; returns the response and how long
/// it took.
pub fn timed_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(Response, Duration), String> {
    let started = Instant::now();
    let response = exchange(
        addr,
        &request_bytes(HOST, "GET", path, &[], None, false),
        false,
        timeout,
    )?;
    Ok((response, started.elapsed()))
}

/// Asserts that a plain request gets its 200 within [`PROMPT`]; returns how long it took.
pub fn assert_served(addr: SocketAddr, path: &str, when: &str) -> Duration {
    match timed_get(addr, path, PROMPT) {
        Ok((response, took)) => {
            assert_eq!(
                response.status,
                200,
                "GET {path} {when}: {}",
                response.text()
            );
            took
        }
        Err(e) => panic!("GET {path} {when} was not answered within {PROMPT:?}: {e}"),
    }
}

/// Reads one response (skipping 1xx interim ones) within `timeout`: the head, then the body by
/// Content-Length, by chunks, or to the end of the connection. `head` means no body follows.
pub fn read_response(
    stream: &mut TcpStream,
    head: bool,
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut received: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut eof = false;
    loop {
        if let Some(result) = parse_response(&received, head, eof) {
            return result;
        }
        if eof {
            return Err(format!(
                "connection closed after {} bytes: {:?}",
                received.len(),
                lossy(&received, 300)
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete response within {timeout:?}; got {:?}",
                lossy(&received, 300)
            ));
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf) {
            Ok(0) => eof = true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(e) if received.is_empty() => return Err(format!("read: {e}")),
            Err(_) => eof = true,
        }
    }
}

/// Whether `e` is a socket timeout.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// At most `max` bytes of `bytes` as text, for messages.
pub fn lossy(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if bytes.len() > max {
        text.push_str(&format!("…({} bytes)", bytes.len()));
    }
    text
}

/// The status and headers of a response head (the text before the blank line).
fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// The first response in `received` (after any 1xx ones), its body framed as it says; `None`
/// while it is incomplete. `eof` means no more bytes come.
fn parse_response(received: &[u8], head: bool, eof: bool) -> Option<Result<Response, String>> {
    let mut start = 0;
    loop {
        let rest = &received[start..];
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let (status, headers) = match parse_head(&rest[..end]) {
            Ok(parsed) => parsed,
            Err(e) => return Some(Err(e)),
        };
        let body_start = start + end + 4;
        if (100..200).contains(&status) {
            start = body_start;
            continue;
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = &received[body_start..];
        let body = if head || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(length) = header("content-length") {
            let Ok(length) = length.parse::<usize>() else {
                return Some(Err(format!("bad Content-Length {length:?}")));
            };
            if body.len() < length {
                if eof {
                    return Some(Err(format!("body cut at {} of {length} bytes", body.len())));
                }
                return None;
            }
            body[..length].to_vec()
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match dechunk(body) {
                Ok(body) => body,
                Err(_) if eof => return Some(Err("chunked body cut short".to_string())),
                Err(_) => return None,
            }
        } else if eof {
            body.to_vec()
        } else {
            return None;
        };
        return Some(Ok(Response {
            status,
            headers,
            body,
        }));
    }
}

/// A chunked body, decoded: `Ok` once the last chunk is read, else `Err` with what came before
/// the first incomplete or malformed chunk and as much of that chunk as there is.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Err(out);
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            return Err(out);
        };
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return Err(out);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
