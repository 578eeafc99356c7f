//! What both tiny_http servers (the API and health) share: binding, the limits of their
//! connections, JSON replies with the security headers, and the error catalogue (`errors`).
//!
//! The listening socket has no timeout: tiny_http's accept loop (patched, see
//! `vendor/tiny_http/PATCHES.md`) blocks in `accept` until a connection or shutdown. Each
//! accepted connection gets `POSTMAND_HTTP_TIMEOUT` as its read and write timeout, so a client
//! that stops sending in a request head (408) or body, or stops reading a response, frees its
//! thread, and an idle keep-alive connection is closed. At most
//! `POSTMAND_HTTP_MAX_CONNECTIONS` connections are open per server; one past it is closed at
//! once while the open ones keep being served.

pub mod errors;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::liveness::Liveness;
use crate::shutdown::Shutdown;

use tiny_http::{ConnectionLimits, Header, Request, Response};

/// Headers on every JSON response (the original's `unrolled/secure` set).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-XSS-Protection", "1; mode=block"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
];

/// A JSON response with the security headers (and `Allow` for a 405, the challenge for a 401).
pub fn json_response(
    status: u16,
    body: Vec<u8>,
    allow: Option<&str>,
) -> Response<io::Cursor<Vec<u8>>> {
    let mut response = Response::from_data(body).with_status_code(status);
    response.add_header(header("Content-Type", "application/json; charset=utf-8"));
    for (name, value) in SECURITY_HEADERS {
        response.add_header(header(name, value));
    }
    if let Some(allow) = allow {
        response.add_header(header("Allow", allow));
    }
    if status == 401 {
        response.add_header(header("WWW-Authenticate", "Bearer"));
    }
    response
}

/// The response for an error of the catalogue.
pub fn error_response(error: &errors::ApiError) -> Response<io::Cursor<Vec<u8>>> {
    let allow = match error {
        errors::ApiError::MethodNotAllowed { allow } => Some(allow.join(", ")),
        _ => None,
    };
    json_response(error.status(), error.body().into_bytes(), allow.as_deref())
}

/// One server's request threads: `count` threads named `<name>-<n>` each run `serve` on the
/// shared tiny_http server until shutdown; the liveness part `part` counts them.
pub struct Serving {
    server: Arc<tiny_http::Server>,
    threads: Vec<thread::JoinHandle<()>>,
    addr: SocketAddr,
}

/// What starts one server's request threads (see [`Serving::start`]).
pub struct ServingPlan<'a> {
    /// Thread name prefix.
    pub name: &'static str,
    /// The liveness part the threads make whole.
    pub part: &'static str,
    /// How many request threads.
    pub threads: usize,
    /// `POSTMAND_HTTP_TIMEOUT`.
    pub timeout: Duration,
    /// `POSTMAND_HTTP_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// Where the part is registered.
    pub liveness: &'a Liveness,
    /// Cloned into every thread.
    pub shutdown: &'a Shutdown,
}

impl Serving {
    /// Starts the tiny_http server on `listener` and its request threads.
    pub fn start<C: Send + Sync + 'static>(
        plan: ServingPlan<'_>,
        listener: TcpListener,
        context: Arc<C>,
        serve: fn(&tiny_http::Server, &C, &Shutdown),
    ) -> io::Result<Serving> {
        let server = Arc::new(server(listener, plan.timeout, plan.max_connections)?);
        let addr = addr(&server)?;
        let part = plan.liveness.register(plan.part, plan.threads);
        let mut threads = Vec::with_capacity(plan.threads);
        for index in 0..plan.threads {
            let server = Arc::clone(&server);
            let context = Arc::clone(&context);
            let shutdown = plan.shutdown.clone();
            let running = part.running();
            threads.push(
                thread::Builder::new()
                    .name(format!("{}-{index}", plan.name))
                    .spawn(move || {
                        let _running = running;
                        serve(&server, &context, &shutdown)
                    })?,
            );
        }
        Ok(Serving {
            server,
            threads,
            addr,
        })
    }

    /// Where the server listens (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lets every thread finish the request it holds, then joins them.
    pub fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a request thread panicked addr={}", self.addr);
            }
        }
    }
}

/// Binds `addr`. Every listener of a role is bound before any server answers, so a `/healthz`
/// that says 200 means the API accepts connections too.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// A tiny_http server on `listener`.
fn server(
    listener: TcpListener,
    timeout: Duration,
    max_connections: usize,
) -> io::Result<tiny_http::Server> {
    let addr = listener.local_addr()?;
    let limits = ConnectionLimits {
        max_connections: Some(max_connections),
        read_timeout: Some(timeout),
        write_timeout: Some(timeout),
    };
    tiny_http::Server::from_listener_with_limits(listener, None, limits)
        .map_err(|e| io::Error::other(format!("{addr}: {e}")))
}

/// The server's IP address (a TCP listener always has one).
fn addr(server: &tiny_http::Server) -> io::Result<SocketAddr> {
    server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("server is not on an IP address"))
}

/// Whether the request announces a body over `limit` bytes. Such a request is answered at once
/// with [`Request::respond_and_close`]: its body is never read, and its connection is closed
/// rather than kept in step by reading it.
pub fn announces_body_over(request: &Request, limit: usize) -> bool {
    request.body_length().is_some_and(|n| n > limit)
}

/// A header from two strings known to be valid header text.
pub fn header(name: &str, value: &str) -> Header {
    // This unwrap is OK, because every name and value passed here is ASCII without CR or LF:
    // constants, the Allow lists, and the Content-Types.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

/// Compares two byte strings in time that depends only on their lengths: the API's bearer
/// token and the dashboard's login form check a secret with it.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}
