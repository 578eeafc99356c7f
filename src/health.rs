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

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tiny_http::Response;

use crate::config::Config;
use crate::db::Pool;
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
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    max_body_bytes: usize,
}

/// The running health server.
pub struct HealthServer {
    serving: http::Serving,
}

impl HealthServer {
    /// Starts answering on `listener` (bound by the caller, before any server starts).
    pub fn start(
        config: &Config,
        listener: TcpListener,
        pool: Pool,
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
                let (status, body) = if healthy(context) {
                    (200, r#"{"success":true}"#)
                } else {
                    (503, r#"{"success":false}"#)
                };
                http::json_response(status, body.as_bytes().to_vec(), None)
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

/// Every part whole and the database answering.
fn healthy(context: &Context) -> bool {
    let missing = context.liveness.missing();
    if !missing.is_empty() {
        log::warn!("health-check-failed missing={}", missing.join(","));
        return false;
    }
    ping(&context.pool)
}

/// The queue gauges, or `None` when the database does not answer in time.
fn queue_stats(pool: &Pool) -> Option<QueueStats> {
    let mut client = pool.get_timeout(PING_TIMEOUT).ok()?;
    match queue::queue_stats(&mut *client) {
        Ok((pending, due, oldest_due_age_secs, deliveries_estimate)) => Some(QueueStats {
            pending,
            due,
            oldest_due_age_secs,
            deliveries_estimate,
        }),
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
