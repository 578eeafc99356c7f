//! Hostile clients against the API: generated requests that must never get a 5xx, slow clients
//! holding connections open, oversized heads and bodies, and bodies that never arrive. Most run
//! against the in-process API; a request that can kill the process runs against the real binary.
//!
//! Generated cases come from a seeded PRNG (SplitMix64): `POSTMAND_FUZZ_SEED=<u64>` replays a
//! run, and a failing run prints its seed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::common::process::Postmand;
use crate::common::{Response, TestApp, TestDb, fixtures, test_timeout, wait_until};

/// How long a plain request may take while hostile clients are at work and still count as
/// answered promptly (generous: the suite runs tests in parallel on small machines).
const PROMPT: Duration = Duration::from_secs(2);

/// The API's body limit in the test configuration (`POSTMAND_MAX_BODY_BYTES` default).
const BODY_LIMIT: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// A seeded PRNG.

/// The seed when `POSTMAND_FUZZ_SEED` is unset.
const DEFAULT_SEED: u64 = 20_240_531;

/// SplitMix64: tiny, deterministic and good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True once in `n` times on average.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A version 4 UUID from the generator, so a seed replays the same ids.
fn random_uuid(rng: &mut Rng) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `POSTMAND_FUZZ_SEED` (decimal or 0x-hex), else [`DEFAULT_SEED`].
fn fuzz_seed() -> u64 {
    let Ok(text) = std::env::var("POSTMAND_FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    let trimmed = text.trim();
    let parsed = match trimmed.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => trimmed.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("POSTMAND_FUZZ_SEED={text:?} is not a u64"))
}

/// Prints the seed when the test fails, so the run can be replayed.
struct SeedReport(u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("replay this run with POSTMAND_FUZZ_SEED={}", self.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bytes on the wire.

/// A request head with `headers` (and `Connection: close` unless they say otherwise), then
/// `body` framed by Content-Length, or as one chunk when `chunked`.
fn request_bytes(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    chunked: bool,
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: postmand.test\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        head.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Some(_) if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Some(body) => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        None => {}
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

/// Sends `bytes` on a new connection and reads one response, or says why there is none.
fn exchange(
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
fn timed_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(Response, Duration), String> {
    let started = Instant::now();
    let response = exchange(
        addr,
        &request_bytes("GET", path, &[], None, false),
        false,
        timeout,
    )?;
    Ok((response, started.elapsed()))
}

/// Asserts that a plain request gets its 200 within [`PROMPT`].
fn assert_served(addr: SocketAddr, path: &str, when: &str) -> Duration {
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
fn read_response(
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

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The first response in `received`, `None` while it is incomplete.
fn parse_response(received: &[u8], head: bool, eof: bool) -> Option<Result<Response, String>> {
    let mut start = 0;
    loop {
        let rest = &received[start..];
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let Some(status) = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
        else {
            return Some(Err(format!("bad status line {status_line:?}")));
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
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
                Some(body) => body,
                None if eof => return Some(Err("chunked body cut short".to_string())),
                None => return None,
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

/// A complete chunked body, decoded; `None` while incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// At most `max` bytes of `bytes` as text, for messages.
fn lossy(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if bytes.len() > max {
        text.push_str(&format!("…({} bytes)", bytes.len()));
    }
    text
}

/// Why a 4xx body is not an error object (`{"code": integer, "message": string, ...}`).
fn error_object_problem(response: &Response) -> Option<String> {
    let value: Value = match serde_json::from_slice(&response.body) {
        Ok(value) => value,
        Err(e) => return Some(format!("body is not JSON ({e}): {:?}", response.text())),
    };
    if !value["code"].is_u64() || !value["message"].is_string() {
        return Some(format!("not an error object: {value}"));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Generated requests.

/// Ids of rows that exist (or existed) in the fuzzed database.
struct Known {
    webhooks: Vec<String>,
    deliveries: Vec<String>,
    attempts: Vec<String>,
}

/// One generated request.
struct Case {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    chunked: bool,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        request_bytes(
            &self.method,
            &self.target,
            &self.headers,
            self.body.as_deref(),
            self.chunked,
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} {} headers={:?} chunked={} body={}",
            self.method,
            lossy(self.target.as_bytes(), 300),
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", lossy(v.as_bytes(), 80)))
                .collect::<Vec<_>>(),
            self.chunked,
            match &self.body {
                Some(body) => format!("{:?}", lossy(body, 300)),
                None => "none".to_string(),
            }
        )
    }
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO",
];

/// Paths no route has, or that only look like one.
const ODD_PATHS: &[&str] = &[
    "/",
    "/v1",
    "/v1/",
    "/v2/webhooks",
    "/v1/webhooks//",
    "/v1//webhooks",
    "/V1/WEBHOOKS",
    "/v1/webhooks/%2F",
    "/v1/deliveries/00000000-0000-4000-8000-000000000000/retry/x",
    "/v1/delivery-attempts/../webhooks",
    "/swagger/",
    "/swagger/index.html",
    "/swagger/doc.json",
    "/swagger/../Cargo.toml",
    "/swagger/%2e%2e/Cargo.toml",
    "/healthz",
    "/metrics",
    "*",
    "http://postmand.test/v1/webhooks",
];

const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json;",
    "application/json ; charset=latin1",
    "application/json, text/plain",
    "application/jsonx",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/merge-patch+json",
    "json",
    ";",
    "*/*",
];

/// A path id: of a row that exists, of another kind of row, random, or not an id at all.
fn path_id(rng: &mut Rng, known: &Known, kind: &str) -> String {
    let own = match kind {
        "webhook_id" => &known.webhooks,
        "delivery_id" => &known.deliveries,
        _ => &known.attempts,
    };
    let any = [&known.webhooks, &known.deliveries, &known.attempts];
    let existing = |rng: &mut Rng| {
        let list = if rng.one_in(4) { *rng.pick(&any) } else { own };
        if list.is_empty() {
            random_uuid(rng).to_string()
        } else {
            rng.pick(list).clone()
        }
    };
    match rng.below(20) {
        0..=7 => existing(rng),
        8 => existing(rng).to_uppercase(),
        9 => format!("{{{}}}", existing(rng)),
        10 => format!("%7B{}%7D", existing(rng)),
        11 => format!("urn:uuid:{}", existing(rng)),
        12 => existing(rng).replace('-', ""),
        13 => random_uuid(rng).to_string(),
        14 => rng
            .pick(&[
                "00000000-0000-0000-0000-000000000000",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "d9428888-122b-11e1-b85c-61cd3cbb3210",
            ])
            .to_string(),
        15 => String::new(),
        16 => "a".repeat(1 + rng.below(8000)),
        17 => format!(
            "{}{}",
            existing(rng),
            rng.pick(&["%20", "x", "-", "0", "%00", "/"])
        ),
        _ => rng
            .pick(&[
                "nope",
                "123",
                "%00",
                "%zz",
                "%ff",
                "%C3%A4",
                "..",
                ".",
                "%2e%2e",
                "null",
                "-1",
                "{}",
                "urn:uuid:",
                "0x1",
            ])
            .to_string(),
    }
}

/// The query keys the OpenAPI document lists for `path`'s GET, if any.
fn documented_query_keys(document: &Value, path: &str) -> Vec<String> {
    document["paths"][path]["get"]["parameters"]
        .as_array()
        .map(|params| {
            params
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A query string: documented keys, odd keys, and values of every shape, escapes included.
fn query_string(rng: &mut Rng, known: &Known, keys: &[String]) -> String {
    if !keys.is_empty() && rng.one_in(3) {
        return valid_query(rng, known, keys);
    }
    let mut pairs = Vec::new();
    for _ in 0..rng.below(7) {
        let key = if !keys.is_empty() && !rng.one_in(5) {
            rng.pick(keys).clone()
        } else {
            rng.pick(&[
                "",
                "%zz",
                "%ff",
                "a%00b",
                "limit%00",
                "LIMIT",
                "created_at",
                "created_at.eq",
                "%6C%69%6D%69%74",
                "x[]",
                "=",
            ])
            .to_string()
        };
        let value = query_value(rng, known);
        pairs.push(match rng.below(12) {
            0 => key,
            1 => format!("{key}="),
            _ => format!("{key}={value}"),
        });
        if rng.one_in(6) {
            // The same key again: the first value wins.
            let again = query_value(rng, known);
            pairs.push(format!(
                "{}={again}",
                pairs.last().unwrap().split('=').next().unwrap()
            ));
        }
    }
    let separator = if rng.one_in(10) { "&&" } else { "&" };
    pairs.join(separator)
}

/// Documented keys with values they accept, extremes included, so the query reaches the
/// database.
fn valid_query(rng: &mut Rng, known: &Known, keys: &[String]) -> String {
    let mut pairs = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let key = rng.pick(keys).clone();
        let value = match key.as_str() {
            "limit" => rng.pick(&["1", "1000", "50", "07"]).to_string(),
            "offset" => rng.pick(&["0", "1", "999999", "1000000"]).to_string(),
            "active" | "success" => rng.pick(&["true", "false"]).to_string(),
            "status" => rng.pick(&["pending", "succeeded", "failed"]).to_string(),
            "webhook_id" | "delivery_id" => {
                let ids = [&known.webhooks, &known.deliveries];
                let list = *rng.pick(&ids);
                if list.is_empty() {
                    random_uuid(rng).to_string()
                } else {
                    rng.pick(list).to_uppercase()
                }
            }
            _ => rng
                .pick(&[
                    "2021-03-08T20:41:25Z",
                    "0000-01-01T00:00:00Z",
                    "0000-01-01T00:00:00%2B23:59",
                    "9999-12-31T23:59:59.999999999-23:59",
                    "9999-12-31T23:59:59.999999999Z",
                    "2016-12-31T23:59:60.5Z",
                    "2021-03-08T20:41:25.433671+03:00",
                    "1970-01-01T00:00:00.000000001Z",
                ])
                .to_string(),
        };
        pairs.push(format!("{key}={value}"));
    }
    pairs.join("&")
}

fn query_value(rng: &mut Rng, known: &Known) -> String {
    let id = known
        .deliveries
        .first()
        .cloned()
        .unwrap_or_else(|| random_uuid(rng).to_string());
    match rng.below(8) {
        0 => rng
            .pick(&[
                "0",
                "1",
                "-1",
                "50",
                "1000",
                "1001",
                "1000000",
                "1000001",
                "-0",
                "05",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775809",
                "99999999999999999999",
                "1e3",
                "%2B5",
                "0x10",
                "5.0",
                "%205",
            ])
            .to_string(),
        1 => rng
            .pick(&["true", "false", "TRUE", "yes", "1", "t", "%74rue"])
            .to_string(),
        2 => rng
            .pick(&[
                "pending",
                "succeeded",
                "failed",
                "PENDING",
                "cancelled",
                "pending%00",
            ])
            .to_string(),
        3 => match rng.below(5) {
            0 => id,
            1 => format!("%7B{id}%7D"),
            2 => format!("urn:uuid:{id}"),
            3 => random_uuid(rng).to_string(),
            _ => "not-a-uuid".to_string(),
        },
        4 => rng
            .pick(&[
                "2021-03-08T20:41:25Z",
                "2021-03-08T20:41:25.433671+03:00",
                "2021-03-08T20:41:25%2B03:00",
                "2021-03-08T20:41:25.433671-03:00",
                "0000-01-01T00:00:00Z",
                "0000-01-01T00:00:00%2B23:59",
                "9999-12-31T23:59:59.999999999-23:59",
                "2016-12-31T23:59:60Z",
                "2021-02-30T00:00:00Z",
                "2021-03-08T20:41:25.1234567891234Z",
                "2021-03-08",
                "yesterday",
                "1615236085",
            ])
            .to_string(),
        5 => rng
            .pick(&[
                "%zz",
                "%ff",
                "%",
                "%2",
                "%00",
                "%C3%A4",
                "%E2%82",
                "%ED%A0%80",
                "a+b",
                "%%",
                "%g0",
            ])
            .to_string(),
        6 => "9".repeat(1 + rng.below(10_000)),
        _ => String::new(),
    }
}

/// A JSON value as text, including texts no JSON library would write (1e400, lone surrogates).
fn json_value(rng: &mut Rng, known: &Known) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    match rng.below(12) {
        0 => rng
            .pick(&[
                "null",
                "true",
                "false",
                "0",
                "-1",
                "1",
                "-0",
                "1.5",
                "1e400",
                "-1e400",
                "1e-400",
                "18446744073709551616",
                "9223372036854775807",
                "-9223372036854775809",
                "2147483648",
                "32768",
                "1000",
                "1001",
                "300",
                "301",
                "86401",
                "604801",
                "1E2",
            ])
            .to_string(),
        1 => quoted(&"x".repeat(rng.below(300))),
        2 => quoted(&"é".repeat(rng.below(5000))),
        3 => rng
            .pick(&[
                r#""""#,
                r#""\u0000""#,
                r#""a\u0000b""#,
                r#""\ud800""#,
                r#""\udc00\ud800""#,
                r#""\ud83d\ude00 emoji""#,
                r#""h\u00e9llo \u2028 \u0007""#,
                "\"raw \u{1F600} and \u{FEFF}\"",
                r#""\n\r\t""#,
                r#""a\"b\\c""#,
            ])
            .to_string(),
        4 => rng
            .pick(&[
                "{}",
                r#"{"a":1}"#,
                "[]",
                "[200]",
                "[200,201]",
                "[99]",
                "[600]",
                "[200,200]",
                "[-1]",
                "[1e400]",
                r#"["200"]"#,
                "[null]",
                "[[200]]",
                "[200.0]",
            ])
            .to_string(),
        5 => format!(
            "[{}]",
            (0..400 + rng.below(200))
                .map(|i| (100 + i % 500).to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        6 => rng
            .pick(&[
                r#""http://127.0.0.1:9/x""#,
                r#""https://[::1]:8080/""#,
                r#""http://ä.example/""#,
                r#""HTTP://EXAMPLE.COM""#,
                r#""ftp://x.example/""#,
                r#""http://""#,
                r#""http://h:99999/""#,
                r#""http://h:/""#,
                r#""javascript:alert(1)""#,
                r#""http://a b/""#,
                r#""http://[::1/""#,
                r#""http://u:p@h/#f""#,
            ])
            .to_string(),
        7 => quoted(&format!(
            "http://h.example/{}",
            "p".repeat(2050 + rng.below(60))
        )),
        8 => rng
            .pick(&[
                r#""whsec_""#,
                r#""whsec_!!!""#,
                r#""whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw""#,
                r#""text/plain""#,
                r#""a\u0001b""#,
                r#""application/json; charset=ütf""#,
            ])
            .to_string(),
        9 => {
            let id = known
                .webhooks
                .first()
                .cloned()
                .unwrap_or_else(|| random_uuid(rng).to_string());
            match rng.below(4) {
                0 => quoted(&id),
                1 => quoted(&format!("{{{id}}}")),
                2 => quoted(&id.to_uppercase()),
                _ => quoted("d9428888-122b-11e1-b85c-61cd3cbb3210"),
            }
        }
        10 => {
            let depth = *rng.pick(&[2, 50, 127, 128, 129, 5000]);
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
        _ => r#"{"nested":{"a":[1,{"b":null}]}}"#.to_string(),
    }
}

/// An object from `(key, JSON text)` pairs, in order, duplicates kept.
fn object(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A body for `path`: valid, mutated, duplicated, truncated, garbage, or another JSON shape.
fn body(rng: &mut Rng, known: &Known, path: &str) -> Vec<u8> {
    let base: Vec<(String, String)> = if path.starts_with("/v1/deliveries") {
        let webhook_id = if known.webhooks.is_empty() || rng.one_in(8) {
            random_uuid(rng).to_string()
        } else {
            rng.pick(&known.webhooks).clone()
        };
        let payload = if rng.one_in(150) {
            // Near the body limit, still under it.
            "p".repeat(BODY_LIMIT - 1024)
        } else {
            "{\"fuzz\": true}".to_string()
        };
        vec![
            (
                "webhook_id".to_string(),
                serde_json::to_string(&webhook_id).unwrap(),
            ),
            (
                "payload".to_string(),
                serde_json::to_string(&payload).unwrap(),
            ),
        ]
    } else {
        match fixtures::webhook_body() {
            Value::Object(map) => map.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
            _ => unreachable!("the fixture is an object"),
        }
    };
    let mut fields = base;
    let extra_keys = [
        "id",
        "status",
        "delivery_attempts",
        "created_at",
        "unknown",
        "",
        "NAME",
        "name\u{0}",
        "__proto__",
    ];
    match rng.below(10) {
        0 => {}
        1..=4 => {
            for _ in 0..1 + rng.below(3) {
                let value = json_value(rng, known);
                if rng.one_in(4) {
                    fields.push((rng.pick(&extra_keys).to_string(), value));
                } else {
                    let i = rng.below(fields.len());
                    fields[i].1 = value;
                }
            }
        }
        5 => {
            // A key twice.
            let i = rng.below(fields.len());
            let value = json_value(rng, known);
            fields.push((fields[i].0.clone(), value));
        }
        6 => {
            let text = object(&fields);
            let cut = rng.below(text.len().max(1));
            return text.as_bytes()[..cut].to_vec();
        }
        7 => return (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        8 => {
            return rng
                .pick(&[
                    "",
                    "null",
                    "[]",
                    "[{}]",
                    "\"str\"",
                    "1",
                    "{}",
                    "{\"a\":",
                    "{,}",
                    "{\"a\" 1}",
                    "\u{FEFF}{}",
                    "{} {}",
                    "{}garbage",
                    " \t\r\n{} ",
                    "{\"name\":\"a\"}\u{0}",
                ])
                .as_bytes()
                .to_vec();
        }
        _ => {
            if rng.one_in(30) {
                // Over the limit.
                return format!("{{\"name\":\"{}\"}}", "x".repeat(BODY_LIMIT)).into_bytes();
            }
            // Delete fields.
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(fields.len());
                fields.remove(i);
                if fields.is_empty() {
                    break;
                }
            }
        }
    }
    object(&fields).into_bytes()
}

/// One request: any route (or none), any method, any id, any query, any body.
fn generate(rng: &mut Rng, known: &Known, document: &Value) -> Case {
    let paths = postmand::api::router::PATHS;
    let (target, allowed): (String, &[&str]) = if rng.one_in(12) {
        (rng.pick(ODD_PATHS).to_string(), &["GET"])
    } else {
        let (pattern, allowed) = *rng.pick(paths);
        let mut path = String::new();
        for segment in pattern.split('/').skip(1) {
            path.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(kind) => path.push_str(&path_id(rng, known, kind)),
                None => path.push_str(segment),
            }
        }
        if !pattern.contains('{') && rng.one_in(8) {
            path.push('/');
        }
        let keys = documented_query_keys(document, pattern);
        if (!keys.is_empty() && !rng.one_in(4)) || rng.one_in(20) {
            let query = query_string(rng, known, &keys);
            path.push('?');
            path.push_str(&query);
        }
        (path, allowed)
    };
    let method = if rng.one_in(4) {
        rng.pick(METHODS).to_string()
    } else {
        rng.pick(allowed).to_string()
    };
    let wants_body = matches!(method.as_str(), "POST" | "PUT") && !target.ends_with("/retry");
    let path = target.split('?').next().unwrap_or("").to_string();
    let body = if (wants_body && !rng.one_in(15)) || rng.one_in(15) {
        Some(body(rng, known, &path))
    } else {
        None
    };
    let mut headers = Vec::new();
    if body.is_some() || rng.one_in(10) {
        if rng.one_in(5) {
            if !rng.one_in(4) {
                headers.push((
                    "Content-Type".to_string(),
                    rng.pick(CONTENT_TYPES).to_string(),
                ));
            }
        } else {
            headers.push(("Content-Type".to_string(), "application/json".to_string()));
        }
    }
    if body.as_ref().is_some_and(|b| b.len() > 1024) && rng.one_in(5) {
        headers.push(("Expect".to_string(), "100-continue".to_string()));
    }
    if rng.one_in(10) {
        headers.push((
            "Accept".to_string(),
            rng.pick(&["*/*", "text/html", "application/xml"])
                .to_string(),
        ));
    }
    if rng.one_in(10) {
        headers.push(("Authorization".to_string(), "Bearer nope".to_string()));
    }
    let chunked = body.is_some() && rng.one_in(8);
    Case {
        method,
        target,
        headers,
        body,
        chunked,
    }
}

/// Webhooks, deliveries (one of them finished, so it can be retried) and attempt rows, made
/// before the fuzzing starts so generated ids hit real rows.
fn seed_rows(app: &TestApp) -> Known {
    let mut known = Known {
        webhooks: Vec::new(),
        deliveries: Vec::new(),
        attempts: Vec::new(),
    };
    let mut client = app.db.client();
    for i in 0..3 {
        let webhook = fixtures::webhook(app, serde_json::json!({"name": format!("fuzz {i}")}));
        let webhook_id = webhook["id"].as_str().unwrap().to_string();
        for j in 0..2 {
            let delivery = fixtures::delivery(app, &webhook_id, &format!("payload {j}"));
            let delivery_id = delivery["id"].as_str().unwrap().to_string();
            let attempt = Uuid::new_v4();
            client
                .execute(
                    "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response,
                         response_status_code, execution_duration, success, error)
                     VALUES ($1, $2, $3, 'POST / HTTP/1.1\r\n\r\n', '', 0, 12, false, 'refused')",
                    &[
                        &attempt,
                        &Uuid::parse_str(&webhook_id).unwrap(),
                        &Uuid::parse_str(&delivery_id).unwrap(),
                    ],
                )
                .unwrap();
            if j == 0 {
                client
                    .execute(
                        "UPDATE deliveries SET status = 'failed', delivery_attempts = 1 WHERE id = $1",
                        &[&Uuid::parse_str(&delivery_id).unwrap()],
                    )
                    .unwrap();
            }
            known.deliveries.push(delivery_id);
            known.attempts.push(attempt.to_string());
        }
        known.webhooks.push(webhook_id);
    }
    known
}

#[test]
fn api_fuzz_finds_no_5xx() {
    let seed = fuzz_seed();
    let _report = SeedReport(seed);
    let mut rng = Rng(seed);
    let app = TestApp::start("faults_api_fuzz");
    let mut known = seed_rows(&app);
    let document = postmand::api::openapi::document();
    let budget = Duration::from_secs(20);
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut sent = 0;
    while sent < 2000 && started.elapsed() < budget && failures.len() < 20 {
        let case = generate(&mut rng, &known, &document);
        sent += 1;
        let head = case.method == "HEAD";
        let response = match exchange(app.api, &case.bytes(), head, test_timeout()) {
            Ok(response) => response,
            Err(e) => {
                failures.push(format!("#{sent} no response ({e}) to {}", case.describe()));
                continue;
            }
        };
        *statuses.entry(response.status).or_default() += 1;
        if response.status >= 500 {
            failures.push(format!(
                "#{sent} {} {:?} to {}",
                response.status,
                lossy(&response.body, 300),
                case.describe()
            ));
        } else if (400..500).contains(&response.status) && !head {
            if let Some(problem) = error_object_problem(&response) {
                failures.push(format!(
                    "#{sent} {} {problem} to {}",
                    response.status,
                    case.describe()
                ));
            }
        } else if response.status == 201 {
            let id = response.json()["id"].as_str().unwrap_or("").to_string();
            if case.target.starts_with("/v1/webhooks") {
                known.webhooks.push(id);
            } else if case.target.starts_with("/v1/deliveries") {
                known.deliveries.push(id);
            }
        }
    }
    let took = started.elapsed();
    eprintln!(
        "api fuzz: seed {seed}, {sent} requests in {took:?}, statuses {statuses:?}, {} webhooks and {} deliveries known",
        known.webhooks.len(),
        known.deliveries.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent >= 500, "only {sent} requests within {budget:?}");
    assert_served(app.api, "/v1/webhooks", "after the fuzzing");
}

// ---------------------------------------------------------------------------------------------
// Slow clients.

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
        let bytes = request_bytes(
            "POST",
            "/v1/webhooks",
            &[("Content-Type".to_string(), "application/json".to_string())],
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

// ---------------------------------------------------------------------------------------------
// Oversized heads and bodies.

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
                Err(e) if is_timeout(&e) => {}
                Err(_) => return (sent, true),
            }
        }
    })
}

/// The head of a `POST /v1/webhooks` with a JSON body framed by the header `framing: value`
/// (Content-Length or Transfer-Encoding); the body is the caller's to send.
fn post_webhooks_head(framing: &str, value: impl ToString) -> Vec<u8> {
    request_bytes(
        "POST",
        "/v1/webhooks",
        &[
            ("Content-Type".to_string(), "application/json".to_string()),
            (framing.to_string(), value.to_string()),
        ],
        None,
        false,
    )
}

/// Asserts that `GET /v1/webhooks` with `headers` gets its 200 within `bound`, and logs how long
/// it took; `what` names the case.
fn assert_get_with_headers(
    addr: SocketAddr,
    headers: &[(String, String)],
    what: &str,
    bound: Duration,
) {
    let started = Instant::now();
    let response = exchange(
        addr,
        &request_bytes("GET", "/v1/webhooks", headers, None, false),
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
    let head = post_webhooks_head("Content-Length", announced);
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
    let mut bytes = post_webhooks_head("Content-Length", announced);
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
    let head = post_webhooks_head("Transfer-Encoding", "chunked");
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
        let mut bytes = post_webhooks_head("Content-Length", length);
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
    let bytes = request_bytes(
        "POST",
        "/v1/webhooks",
        &[
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".to_string(), "Upgrade".to_string()),
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
            let bytes = request_bytes(
                "GET",
                path,
                &[("Content-Length".to_string(), length.to_string())],
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
