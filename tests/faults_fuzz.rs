//! Fuzzed requests against the in-process API: generated from the router's paths and the
//! OpenAPI document (any method, id, query, header and body, valid or not), none may get a 5xx,
//! every 4xx must carry an error object, and the API must still serve afterwards. Generated
//! requests of other kinds (slow, oversized) belong in `faults_slow_clients` and
//! `faults_oversized`.
//!
//! Generated cases come from a seeded PRNG (SplitMix64): `POSTMAND_FUZZ_SEED=<u64>` replays a
//! run, and a failing run prints its seed.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::common::http::{self, assert_served, exchange, lossy};
use crate::common::{Response, TestApp, fixtures, test_timeout};

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
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        http::request_bytes(
            http::HOST,
            &self.method,
            &self.target,
            &headers,
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
            "cursor" => rng.pick(&crate::api_cursors::edge_cursors()).clone(),
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
