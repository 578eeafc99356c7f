//! One HTTP exchange with a webhook's endpoint: build the signed request, POST it under the
//! webhook's timeout, read a capped response, and describe whatever happened as an
//! [`AttemptResult`]. A remote failure is data, not an error: this module has no `Result`.
//!
//! Redirects are not followed (SPEC: a 3xx is judged like any other status, and the original
//! forwarded the signature to wherever a redirect pointed). ureq stays in this file and in
//! `egress.rs`, which gives the agent its trusted roots and its deny-list resolver.

use std::io::Read;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::egress::{self, Denied};
use super::{dump, signature};
use crate::VERSION;
use crate::config::Config;
use crate::url::EndpointUrl;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The delivery id, sent as `webhook-id`.
    pub delivery_id: Uuid,
    /// The webhook's URL.
    pub url: &'a str,
    /// The webhook's content type.
    pub content_type: &'a str,
    /// The webhook's secret; empty means unsigned.
    pub secret: &'a str,
    /// The secret a rotation replaced, while it still signs: `Webhook-Signature` then carries
    /// a signature by each, the new one first (the Standard Webhooks way to rotate).
    pub previous_secret: Option<&'a str>,
    /// The body.
    pub payload: &'a [u8],
    /// The type of the event the delivery was made for, sent as `X-Postmand-Event`.
    pub event_type: Option<&'a str>,
    /// The whole exchange must end within this.
    pub timeout: Duration,
}

/// What happened, ready to become an attempt row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The request as sent (kept even when sending failed).
    pub raw_request: String,
    /// The response as received; empty without one.
    pub raw_response: String,
    /// The response's status code; 0 without one.
    pub status_code: i32,
    /// Milliseconds from sending to the response headers (or to the failure).
    pub duration_ms: i32,
    /// Why the exchange failed on the wire: no response arrived, or its body could not be
    /// read; `None` when a response arrived whole (whatever its status).
    pub error: Option<TransportError>,
    /// The response's `Retry-After`, as a wait from now (see [`retry_after`]); `None` without
    /// one or when it is malformed.
    pub retry_after: Option<Duration>,
}

/// A `Retry-After` value as a wait from `now`: delay-seconds (`120`) or an HTTP-date (`Wed, 21
/// Oct 2015 07:28:00 GMT`; one in the past is no wait). Anything else is `None`, and ignored.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a number too large for u64 is still a wait longer than any cap.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// How an exchange failed below HTTP semantics, sorted by what went wrong (for metrics and
/// logs). Its `Display` is the text stored in the attempt's `error` column:
/// `Post "<url>": <cause>`, or `Post "<url>": reading the response body: <cause>` for
/// [`TransportError::Body`]; the URL is shown without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The webhook's timeout expired before the response headers arrived: while resolving the
    /// host, connecting, in the TLS handshake, sending the request, or waiting for the answer.
    Timeout(Cause),
    /// No connection could be made: nothing listens on the port (connection refused), or the
    /// host or its network cannot be reached.
    Refused(Cause),
    /// The TLS handshake or the encrypted stream failed: an invalid, expired or untrusted
    /// certificate, a fatal alert from the peer, or a peer that does not speak TLS.
    Tls(Cause),
    /// The host name did not resolve to an address (DNS: no such host, or the lookup failed).
    Dns(Cause),
    /// The response headers exceeded the size ureq accepts (64 KiB by default).
    TooLarge(Cause),
    /// Anything else: a malformed response (bad status line, headers or chunking), the
    /// connection reset or closed before the response headers, a redirect ureq could not
    /// follow, or a URL ureq refused.
    Protocol(Cause),
    /// The response headers arrived, but reading the body failed: it broke off, was malformed,
    /// or the webhook's timeout expired meanwhile. The status code is kept in the attempt.
    Body(Cause),
    /// Every address the host resolved to is in `POSTMAND_ENDPOINT_DENY`: nothing was
    /// connected to. The message is [`Denied`]'s, naming the address and the rule.
    Denied(Cause),
}

/// The text of a [`TransportError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The webhook's URL without `user:password@`.
    pub url: String,
    /// What the HTTP client said.
    pub message: String,
}

impl TransportError {
    /// Sorts a failure of `send` (no response): ureq 3 reports most connection failures as
    /// `Error::Io`, so its kind (and, for DNS and TLS, its origin) decides.
    fn from_ureq(e: &ureq::Error, url: &str) -> TransportError {
        use std::io::ErrorKind;
        use ureq::Error as E;
        let url = EndpointUrl::new(url);
        if let Some(denied) = Denied::from_ureq(e) {
            return TransportError::Denied(Cause {
                url: url.without_userinfo().into_owned(),
                message: denied.to_string(),
            });
        }
        let cause = Cause {
            url: url.without_userinfo().into_owned(),
            message: e.to_string(),
        };
        match e {
            E::Timeout(_) => TransportError::Timeout(cause),
            E::HostNotFound => TransportError::Dns(cause),
            E::ConnectionFailed => TransportError::Refused(cause),
            E::Tls(_) | E::Rustls(_) | E::Pem(_) | E::TlsRequired => TransportError::Tls(cause),
            E::LargeResponseHeader(..) | E::BodyExceedsLimit(_) => TransportError::TooLarge(cause),
            E::Io(io) => match io.kind() {
                ErrorKind::TimedOut => TransportError::Timeout(cause),
                ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NetworkDown
                | ErrorKind::AddrNotAvailable => TransportError::Refused(cause),
                // rustls reports handshake and record failures as InvalidData (ureq's only
                // other source of it is a SOCKS proxy's malformed reply).
                ErrorKind::InvalidData if url.is_https() => TransportError::Tls(cause),
                // The resolver's failure (std's getaddrinfo error) has no kind of its own.
                _ if io
                    .to_string()
                    .starts_with("failed to lookup address information") =>
                {
                    TransportError::Dns(cause)
                }
                _ => TransportError::Protocol(cause),
            },
            _ => TransportError::Protocol(cause),
        }
    }

    /// The URL and message, whatever the variant.
    pub fn cause(&self) -> &Cause {
        match self {
            TransportError::Timeout(cause)
            | TransportError::Refused(cause)
            | TransportError::Tls(cause)
            | TransportError::Dns(cause)
            | TransportError::TooLarge(cause)
            | TransportError::Protocol(cause)
            | TransportError::Body(cause)
            | TransportError::Denied(cause) => cause,
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Cause { url, message } = self.cause();
        match self {
            TransportError::Body(_) => {
                write!(f, "Post {url:?}: reading the response body: {message}")
            }
            _ => write!(f, "Post {url:?}: {message}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Sends deliveries; one per process, shared by the dispatchers (ureq pools connections).
pub struct Sender {
    agent: ureq::Agent,
    dump_cap: usize,
}

impl Sender {
    /// A sender trusting the system's roots and `config.ca_file`, refusing the addresses of
    /// `config.endpoint_deny`, and cutting dumps at `config.dump_max_bytes`.
    pub fn new(config: &Config) -> Sender {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(VERSION)
            .tls_config(egress::tls_config(config.ca_file.as_ref()))
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::new(),
            egress::DenyingResolver::new(config.endpoint_deny.clone()),
        );
        Sender {
            agent,
            dump_cap: config.dump_max_bytes,
        }
    }

    /// POSTs one delivery and describes the outcome.
    pub fn send(&self, out: &Outgoing<'_>) -> AttemptResult {
        let headers = request_headers(out, chrono::Utc::now().timestamp());
        let raw_request = dump::dump(
            &format!(
                "POST {} HTTP/1.1",
                EndpointUrl::new(out.url).request_target()
            ),
            &headers,
            out.payload,
            true,
            self.dump_cap,
        );
        let mut request = self
            .agent
            .post(out.url)
            .config()
            .timeout_global(Some(out.timeout))
            .build();
        for (name, value) in &headers[1..] {
            request = request.header(name.as_str(), value.as_slice());
        }
        let started = Instant::now();
        let response = request.send(out.payload);
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let mut response = match response {
            Ok(response) => response,
            Err(e) => {
                return AttemptResult {
                    raw_request,
                    raw_response: String::new(),
                    status_code: 0,
                    duration_ms,
                    error: Some(TransportError::from_ureq(&e, out.url)),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, chrono::Utc::now()));
        let first_line = format!(
            "{:?} {} {}",
            response.version(),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut response_headers: Vec<(String, Vec<u8>)> = response
            .headers()
            .iter()
            .map(|(name, value)| (canonical(name.as_str()), value.as_bytes().to_vec()))
            .collect();
        response_headers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut body = Vec::new();
        let read = response
            .body_mut()
            .as_reader()
            .take(self.dump_cap as u64 + 1)
            .read_to_end(&mut body);
        // Cut by us only when more arrived than the cap; a broken body is noted separately.
        let complete = body.len() <= self.dump_cap;
        let mut raw_response = dump::dump(
            first_line.trim_end(),
            &response_headers,
            &body,
            complete,
            self.dump_cap,
        );
        // A body that breaks off or times out makes the attempt a failure whatever the status
        // (behaviour spec 4.5: failures to read the body are failures); the status is kept.
        let error = match read {
            Ok(_) => None,
            Err(e) => {
                raw_response.push_str(&format!("\n[postmand: reading the body failed: {e}]"));
                Some(TransportError::Body(Cause {
                    url: EndpointUrl::new(out.url).without_userinfo().into_owned(),
                    message: e.to_string(),
                }))
            }
        };
        AttemptResult {
            raw_request,
            raw_response,
            status_code: i32::from(status.as_u16()),
            duration_ms,
            error,
            retry_after,
        }
    }
}

/// The headers postmand sets, `Host` first (for the dump only; ureq writes its own), the rest
/// sorted by name as the original dumped them.
fn request_headers(out: &Outgoing<'_>, timestamp: i64) -> Vec<(String, Vec<u8>)> {
    let id = out.delivery_id.to_string();
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            out.content_type.as_bytes().to_vec(),
        ),
        ("User-Agent".to_string(), VERSION.as_bytes().to_vec()),
        ("Webhook-Id".to_string(), id.as_bytes().to_vec()),
        (
            "Webhook-Timestamp".to_string(),
            timestamp.to_string().into_bytes(),
        ),
    ];
    if !out.secret.is_empty() {
        let mut signatures = signature::standard_signature(out.secret, &id, timestamp, out.payload);
        if let Some(previous) = out.previous_secret.filter(|p| !p.is_empty()) {
            signatures.push(' ');
            signatures.push_str(&signature::standard_signature(
                previous,
                &id,
                timestamp,
                out.payload,
            ));
        }
        headers.push(("Webhook-Signature".to_string(), signatures.into_bytes()));
        headers.push((
            "X-Hub-Signature".to_string(),
            signature::hub_signature(out.secret, out.payload).into_bytes(),
        ));
        headers.push((
            "X-Hub-Signature-256".to_string(),
            signature::hub_signature_256(out.secret, out.payload).into_bytes(),
        ));
    }
    if let Some(event_type) = out.event_type {
        headers.push((
            "X-Postmand-Event".to_string(),
            event_type.as_bytes().to_vec(),
        ));
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    headers.insert(
        0,
        (
            "Host".to_string(),
            EndpointUrl::new(out.url).host_port().as_bytes().to_vec(),
        ),
    );
    headers
}

/// `Content-Type` from `content-type`: how the original's dumps spelled header names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_target(url: &str) -> String {
        EndpointUrl::new(url).request_target().into_owned()
    }

    fn host_of(url: &str) -> &str {
        EndpointUrl::new(url).host_port()
    }

    fn without_userinfo(url: &str) -> String {
        EndpointUrl::new(url).without_userinfo().into_owned()
    }

    #[test]
    fn request_target_and_host() {
        assert_eq!(request_target("https://httpbin.org/post"), "/post");
        assert_eq!(request_target("http://h:1"), "/");
        assert_eq!(request_target("http://h:1?x=1#frag"), "/?x=1");
        assert_eq!(request_target("http://h/a/b?c=d#e"), "/a/b?c=d");
        assert_eq!(host_of("http://u:p@h.example:8080/x"), "h.example:8080");
        assert_eq!(without_userinfo("https://u:p@h:1/x?y"), "https://h:1/x?y");
        assert_eq!(without_userinfo("http://h/x@y"), "http://h/x@y");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:20:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(480))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        for malformed in ["", "-5", "1.5", "soon", "2015-10-21T07:28:00Z", "120s"] {
            assert_eq!(retry_after(malformed, now), None, "{malformed:?}");
        }
    }

    #[test]
    fn signed_request_headers_in_dump_order() {
        let out = Outgoing {
            delivery_id: Uuid::nil(),
            url: "https://httpbin.org/post",
            content_type: "application/json",
            secret: "my-secret-token",
            previous_secret: None,
            payload: br#"{"success": true}"#,
            event_type: Some("invoice.paid"),
            timeout: Duration::from_secs(1),
        };
        let names: Vec<String> = request_headers(&out, 1)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "Host",
                "Content-Type",
                "User-Agent",
                "Webhook-Id",
                "Webhook-Signature",
                "Webhook-Timestamp",
                "X-Hub-Signature",
                "X-Hub-Signature-256",
                "X-Postmand-Event"
            ]
        );
    }

    #[test]
    fn ureq_errors_sort_into_transport_errors() {
        use std::io::{Error as Io, ErrorKind};
        type Variant = fn(Cause) -> TransportError;
        let http = "http://h:1/x";
        let https = "https://h:1/x";
        let kind =
            |e: ureq::Error, url: &str| std::mem::discriminant(&TransportError::from_ureq(&e, url));
        let of = |variant: Variant| {
            std::mem::discriminant(&variant(Cause {
                url: String::new(),
                message: String::new(),
            }))
        };
        let cases: Vec<(ureq::Error, &str, Variant)> = vec![
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                http,
                TransportError::Timeout,
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::Connect),
                https,
                TransportError::Timeout,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::TimedOut, "t")),
                http,
                TransportError::Timeout,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::ConnectionRefused, "Connection refused")),
                http,
                TransportError::Refused,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::NetworkUnreachable, "n")),
                http,
                TransportError::Refused,
            ),
            (ureq::Error::ConnectionFailed, http, TransportError::Refused),
            (ureq::Error::HostNotFound, http, TransportError::Dns),
            (
                ureq::Error::Io(Io::other(
                    "failed to lookup address information: Name or service not known",
                )),
                https,
                TransportError::Dns,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::InvalidData, "invalid peer certificate")),
                https,
                TransportError::Tls,
            ),
            (
                ureq::Error::Tls("Rustls invalid dns name error"),
                https,
                TransportError::Tls,
            ),
            (ureq::Error::TlsRequired, https, TransportError::Tls),
            (
                ureq::Error::LargeResponseHeader(70_000, 65_536),
                http,
                TransportError::TooLarge,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::UnexpectedEof, "Peer disconnected")),
                http,
                TransportError::Protocol,
            ),
            (
                ureq::Error::Io(Io::new(ErrorKind::InvalidData, "not TLS")),
                http,
                TransportError::Protocol,
            ),
            (
                ureq::Error::BadUri("x".to_string()),
                http,
                TransportError::Protocol,
            ),
            (
                ureq::Error::TooManyRedirects,
                http,
                TransportError::Protocol,
            ),
        ];
        for (error, url, variant) in cases {
            let text = error.to_string();
            assert_eq!(kind(error, url), of(variant), "{text} for {url}");
        }
    }

    #[test]
    fn transport_error_text_is_the_stored_text() {
        let e = TransportError::from_ureq(
            &ureq::Error::Timeout(ureq::Timeout::Global),
            "https://u:p@h.example:1/x?y",
        );
        assert_eq!(
            e.to_string(),
            "Post \"https://h.example:1/x?y\": timeout: global"
        );
        let e = TransportError::from_ureq(
            &ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            )),
            "http://h:1",
        );
        assert_eq!(e.to_string(), "Post \"http://h:1\": io: Connection refused");
        let e = TransportError::Body(Cause {
            url: "http://h:1/".to_string(),
            message: "Peer disconnected".to_string(),
        });
        assert_eq!(
            e.to_string(),
            "Post \"http://h:1/\": reading the response body: Peer disconnected"
        );
    }

    #[test]
    fn denied_address_is_a_denied_error_naming_the_rule() {
        let denied = Denied {
            address: "169.254.169.254".parse().unwrap(),
            rule: "169.254.0.0/16".parse().unwrap(),
        };
        let e = TransportError::from_ureq(
            &ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                denied,
            )),
            "http://u:p@169.254.169.254:80/latest/meta-data",
        );
        assert!(matches!(e, TransportError::Denied(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Post \"http://169.254.169.254:80/latest/meta-data\": address 169.254.169.254 is \
             denied by POSTMAND_ENDPOINT_DENY rule 169.254.0.0/16"
        );
    }

    #[test]
    fn canonical_header_names() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-hub-signature-256"), "X-Hub-Signature-256");
    }
}
