//! The health server on `POSTMAND_HEALTH_CHECK_HTTP_PORT`, in every role: `GET /healthz` pings
//! the database and answers `{"success":true}` (200) or `{"success":false}` (500), and
//! `GET /metrics` renders the Prometheus metrics. Both stay open when an API token is set.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tiny_http::Response;

use crate::api::header;
use crate::config::Config;
use crate::db::Pool;
use crate::metrics::{Metrics, QueueStats};
use crate::shutdown::Shutdown;
use crate::store::deliveries;

/// A ping that takes longer than this counts as a failure, so a probe never hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Threads answering health requests; two, so one slow ping does not block the next probe.
const THREADS: usize = 2;

/// The running health server.
pub struct HealthServer {
    server: Arc<tiny_http::Server>,
    threads: Vec<thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl HealthServer {
    /// Binds the health port and starts answering.
    pub fn start(
        config: &Config,
        pool: Pool,
        shutdown: &Shutdown,
        metrics: Arc<Metrics>,
    ) -> io::Result<HealthServer> {
        let bind = SocketAddr::new(config.bind_address, config.health_port);
        let server = crate::listen::server(bind, config.http_timeout)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("health server is not on an IP address"))?;
        let server = Arc::new(server);
        let mut threads = Vec::with_capacity(THREADS);
        for index in 0..THREADS {
            let server = Arc::clone(&server);
            let pool = pool.clone();
            let shutdown = shutdown.clone();
            let metrics = Arc::clone(&metrics);
            threads.push(
                thread::Builder::new()
                    .name(format!("health-{index}"))
                    .spawn(move || serve(&server, &pool, &shutdown, &metrics))?,
            );
        }
        log::info!("health-server-listen-and-serve addr={addr}");
        Ok(HealthServer {
            server,
            threads,
            addr,
        })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Finishes the probes in progress and joins the threads.
    pub fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a health thread panicked");
            }
        }
    }
}

fn serve(server: &tiny_http::Server, pool: &Pool, shutdown: &Shutdown, metrics: &Metrics) {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if shutdown.is_requested() => return,
            // accept() timing out on the listening socket's timeout (listen.rs): nothing new.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                log::warn!("health-server-accept-error error={e}");
                continue;
            }
        };
        // See ABSURD_BODY_BYTES in api/mod.rs: tiny_http would allocate the announced size.
        if request.body_length().is_some_and(|n| n > 1 << 30) {
            log::warn!("health-request-abandoned reason=\"Content-Length over 1 GiB\"");
            std::mem::forget(request);
            continue;
        }
        let path = request.url().split('?').next().unwrap_or("");
        let mut content_type = "application/json; charset=utf-8";
        let mut allow = None;
        let (status, body) = match (request.method().as_str(), path) {
            ("GET", "/metrics") => {
                content_type = "text/plain; version=0.0.4; charset=utf-8";
                (200, metrics.render(queue_stats(pool)))
            }
            ("GET", "/healthz") => {
                if ping(pool) {
                    (200, r#"{"success":true}"#.to_string())
                } else {
                    (500, r#"{"success":false}"#.to_string())
                }
            }
            (_, "/healthz" | "/metrics") => {
                allow = Some("GET");
                (
                    405,
                    r#"{"code":12,"message":"method not allowed","details":"allowed: GET"}"#.into(),
                )
            }
            _ => (
                404,
                r#"{"code":13,"message":"route not found"}"#.to_string(),
            ),
        };
        let mut response = Response::from_string(body).with_status_code(status);
        response.add_header(header("Content-Type", content_type));
        if let Some(allow) = allow {
            response.add_header(header("Allow", allow));
        }
        if let Err(e) = request.respond(response) {
            log::debug!("health-response-not-sent error={e}");
        }
    }
}

/// The queue gauges, or `None` when the database does not answer in time.
fn queue_stats(pool: &Pool) -> Option<QueueStats> {
    let mut client = pool.get_timeout(PING_TIMEOUT).ok()?;
    match deliveries::queue_stats(&mut *client) {
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
