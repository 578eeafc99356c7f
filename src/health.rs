//! The health server on `POSTMAND_HEALTH_CHECK_HTTP_PORT`, in every role: `GET /healthz`
//! answers `{"success":true}` (200) when the process can do its work and `{"success":false}`
//! (503) when it cannot, and `GET /metrics` renders the Prometheus metrics. Both stay open when
//! an API token is set.
//!
//! "Can do its work" means: every part registered in [`Liveness`] for the role is whole (the
//! API's request threads and create writer, the dispatchers, the LISTEN connection, this
//! server's own threads) and the database answers a ping within [`PING_TIMEOUT`]. Every
//! listener of the role is bound before the parts can be whole, so the first 200 comes only
//! once the API accepts connections.
//!
//! With a read replica (`POSTMAND_DATABASE_READ_URL`, API roles), the answer also says whether
//! it answers, `"read_replica":"up"` or `"down"`, without deciding the status: lists fall back to
//! the primary while it is down, so the process still does its work (issue 17).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tiny_http::Response;

use crate::config::Config;
use crate::db::{Pool, ReadPool};
use crate::http::errors::ApiError;
use crate::http::{self, header};
use crate::liveness::Liveness;
use crate::metrics::{Metrics, QueueStats};
use crate::shutdown::Shutdown;
use crate::store::queue;

/// A ping that takes longer than this counts as a failure, so a probe never hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Threads answering health requests; two, so one slow ping does not block the next probe.
const THREADS: usize = 2;

/// What the health threads read.
struct Context {
    pool: Pool,
    /// The read replica's pool, reported on but never making the process unhealthy.
    reads: Option<ReadPool>,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    max_body_bytes: usize,
}

/// The running health server.
pub struct HealthServer {
    serving: http::Serving,
}

impl HealthServer {
    /// Starts answering on `listener` (bound by the caller, before any server starts); `reads`
    /// is the read replica's pool, when the role has one.
    pub fn start(
        config: &Config,
        listener: TcpListener,
        pool: Pool,
        reads: Option<ReadPool>,
        shutdown: &Shutdown,
        metrics: Arc<Metrics>,
        liveness: Arc<Liveness>,
    ) -> io::Result<HealthServer> {
        let parts = Arc::clone(&liveness);
        let plan = http::ServingPlan {
            name: "health",
            part: "health-server",
            threads: THREADS,
            timeout: config.http_timeout,
            max_connections: config.http_max_connections,
            liveness: &parts,
            shutdown,
        };
        let context = Arc::new(Context {
            pool,
            reads,
            metrics,
            liveness,
            max_body_bytes: config.max_body_bytes,
        });
        let serving = http::Serving::start(plan, listener, context, serve)?;
        let addr = serving.addr();
        log::info!("health-server-listen-and-serve addr={addr}");
        Ok(HealthServer { serving })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Finishes the probes in progress and joins the threads.
    pub fn stop(self) {
        self.serving.stop();
    }
}

fn serve(server: &tiny_http::Server, context: &Context, shutdown: &Shutdown) {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if shutdown.is_requested() => return,
            Err(e) => {
                log::warn!("health-server-receive-error error={e}");
                continue;
            }
        };
        if http::announces_body_over(&request, context.max_body_bytes) {
            let error = ApiError::BodyTooLarge {
                limit: context.max_body_bytes,
            };
            if let Err(e) = request.respond_and_close(http::error_response(&error)) {
                log::debug!("health-response-not-sent error={e}");
            }
            continue;
        }
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method().as_str(), path) {
            ("GET", "/metrics") => {
                let queue = queue_stats(&context.pool);
                let text = context.metrics.render(queue, &context.liveness.parts());
                Response::from_data(text.into_bytes()).with_header(header(
                    "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8",
                ))
            }
            ("GET", "/healthz") => {
                let success = healthy(context);
                let replica = context.reads.as_ref().map(ReadPool::is_up);
                let status = if success { 200 } else { 503 };
                http::json_response(status, healthz_body(success, replica).into_bytes(), None)
            }
            (_, "/healthz" | "/metrics") => {
                http::error_response(&ApiError::MethodNotAllowed { allow: vec!["GET"] })
            }
            _ => http::error_response(&ApiError::RouteNotFound),
        };
        if let Err(e) = request.respond(response) {
            log::debug!("health-response-not-sent error={e}");
        }
    }
}

/// `{"success":…}`, with `"read_replica":"up"` or `"down"` when there is one.
fn healthz_body(success: bool, replica: Option<bool>) -> String {
    match replica {
        None => format!(r#"{{"success":{success}}}"#),
        Some(up) => format!(
            r#"{{"success":{success},"read_replica":"{}"}}"#,
            if up { "up" } else { "down" }
        ),
    }
}

/// Every part whole and the database answering.
fn healthy(context: &Context) -> bool {
    let missing = context.liveness.missing();
    if !missing.is_empty() {
        log::warn!("health-check-failed missing={}", missing.join(","));
        return false;
    }
    ping(&context.pool)
}

/// Longest `postmand healthcheck` waits for each step (connect, send, answer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `postmand healthcheck` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// No answer from the health server (not listening, or too slow).
    Unreachable {
        /// Where it was asked.
        addr: SocketAddr,
        /// The operating system's reason.
        source: io::Error,
    },
    /// It answered, with another status than 200 (503: a part is missing or the database is
    /// down; see the process's log).
    Status {
        /// Where it was asked.
        addr: SocketAddr,
        /// The status line it sent.
        line: String,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Unreachable { addr, source } => {
                write!(f, "no answer from http://{addr}/healthz: {source}")
            }
            CheckError::Status { addr, line } => {
                write!(f, "http://{addr}/healthz answered {line:?}")
            }
        }
    }
}

impl std::error::Error for CheckError {}

/// `postmand healthcheck`: `GET /healthz` on this host's health port (loopback when the server
/// listens on every address); `Ok` only for a 200. A plain socket, so the image needs no curl.
pub fn check(config: &Config) -> Result<(), CheckError> {
    let ip = match config.bind_address {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, config.health_port);
    let unreachable = |source| CheckError::Unreachable { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, CHECK_TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(CHECK_TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(CHECK_TIMEOUT))
        .map_err(unreachable)?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(unreachable)?;
    let line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    if line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(CheckError::Status { addr, line })
    }
}

/// The queue gauges, or `None` when the database does not answer in time.
fn queue_stats(pool: &Pool) -> Option<QueueStats> {
    let mut client = pool.get_timeout(PING_TIMEOUT).ok()?;
    match queue::queue_stats(&mut *client) {
        Ok(stats) => Some(stats),
        Err(e) => {
            log::warn!("metrics-queue-error error={e}");
            None
        }
    }
}

fn ping(pool: &Pool) -> bool {
    match pool.get_timeout(PING_TIMEOUT) {
        Ok(mut client) => match crate::db::ping(&mut client) {
            Ok(_) => true,
            Err(e) => {
                log::warn!("database-ping-error error={}", crate::db::describe(&e));
                false
            }
        },
        Err(e) => {
            log::warn!("database-ping-error error={e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::healthz_body;

    #[test]
    fn healthz_body_names_the_replica_only_when_there_is_one() {
        assert_eq!(healthz_body(true, None), r#"{"success":true}"#);
        assert_eq!(healthz_body(false, None), r#"{"success":false}"#);
        assert_eq!(
            healthz_body(true, Some(false)),
            r#"{"success":true,"read_replica":"down"}"#
        );
        assert_eq!(
            healthz_body(false, Some(true)),
            r#"{"success":false,"read_replica":"up"}"#
        );
    }
}
