//! The REST API server's lifecycle: `POSTMAND_HTTP_THREADS` threads share one tiny_http server
//! and hand each request to `request.rs` (auth, body checks, routing, the handler, one reply and
//! one access-log line). On shutdown each thread finishes the request it holds and exits;
//! [`ApiServer::stop`] joins them, then the create writer and the notifier.
//!
//! Every response is JSON (`application/json; charset=utf-8`) with the original's security
//! headers; every failure is exactly one error object from the catalogue (`http::errors`).

mod attempts;
pub mod creates;
pub(crate) mod cursor;
pub(crate) mod deliveries;
mod events;
pub mod idempotency;
pub mod json;
pub mod notify;
pub mod openapi;
pub mod patterns;
pub(crate) mod query;
mod request;
pub mod router;
mod swagger_ui;
pub(crate) mod webhooks;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;

use serde::Serialize;

use crate::config::Config;
use crate::db::{self, Pool, PooledClient, ReadPool};
use crate::http;
pub use crate::http::errors;
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use errors::ApiError;

/// What every handler can reach.
pub struct Context {
    /// Connections for handlers; each request checks one out for its statements.
    pool: Pool,
    /// Connections to the read replica (`POSTMAND_DATABASE_READ_URL`), for lists only.
    reads: Option<ReadPool>,
    /// `POSTMAND_MAX_BODY_BYTES`.
    max_body_bytes: usize,
    /// Writes new deliveries, several per commit.
    creates: creates::Creates,
    /// Wakes dispatchers after deliveries are queued.
    notifier: notify::Notifier,
    /// `POSTMAND_API_TOKEN`.
    api_token: Option<String>,
    /// Request counters.
    metrics: Arc<Metrics>,
    /// Idempotency keys whose first request this process is answering.
    in_flight: idempotency::InFlight,
    /// `POSTMAND_IDEMPOTENCY_HOURS`.
    idempotency_hours: i32,
    /// The front end served beside the API (the dashboard), if any.
    front: Option<Arc<dyn Front>>,
}

impl Context {
    /// A pooled connection, or 503 when none frees up in time.
    pub(crate) fn client(&self) -> Result<PooledClient, ApiError> {
        Ok(db::checkout(&self.pool)?)
    }

    /// A connection for a read that may lag the primary (a list): the read replica's when one is
    /// configured and answers, else the primary's ([`Context::client`]). Never for a read that
    /// must see a write just made, such as a GET by id after its create. See: issue 17.
    pub(crate) fn read_client(&self) -> Result<PooledClient, ApiError> {
        match self.reads.as_ref().and_then(ReadPool::checkout) {
            Some(client) => Ok(client),
            None => self.client(),
        }
    }
}

/// A front end the API server also serves, on its port and under its own paths, ahead of the
/// bearer-token check (it keeps its own sessions): the dashboard, `crate::ui`. The wiring in
/// `lib` hands it over at start, so `api` never imports it; it reaches the database, the
/// handlers' shared steps and the notifier through [`Context`].
pub trait Front: Send + Sync {
    /// Whether `path` (without its query string) is the front end's.
    fn serves(&self, path: &str) -> bool;
    /// Answers the request; returns the route name it counts under and the status it sent.
    fn answer(&self, api: &Context, request: tiny_http::Request) -> (&'static str, u16);
}

/// A handler's successful answer.
pub struct Reply {
    status: u16,
    body: Vec<u8>,
    /// The stored answer to an earlier request with the same `Idempotency-Key`.
    replayed: bool,
}

impl Reply {
    /// `status` with `value` as compact JSON.
    fn json(status: u16, value: &impl Serialize) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| {
            log::error!("cannot serialise response: {e}");
            ApiError::Internal
        })?;
        Ok(Reply {
            status,
            body,
            replayed: false,
        })
    }

    /// 204 with an empty body.
    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: Vec::new(),
            replayed: false,
        }
    }
}

/// The running API server.
pub struct ApiServer {
    serving: http::Serving,
    /// Kept to reach the create writer's test hook; dropped at stop so the writer can finish.
    context: Arc<Context>,
    writer: thread::JoinHandle<()>,
    notifier: thread::JoinHandle<()>,
}

/// What the rest of the process attaches to its API server.
#[derive(Default)]
pub struct Attached {
    /// The wake channel of this process's dispatchers, if it runs any.
    pub local_wake: Option<notify::LocalWake>,
    /// The front end served beside the API (the dashboard), if any.
    pub front: Option<Arc<dyn Front>>,
    /// The read replica's pool, for lists, if `POSTMAND_DATABASE_READ_URL` is set.
    pub reads: Option<ReadPool>,
}

impl ApiServer {
    /// Starts the request threads on `listener` (bound by the caller, before any server
    /// starts).
    pub fn start(
        config: &Config,
        listener: TcpListener,
        pool: Pool,
        shutdown: &Shutdown,
        attached: Attached,
        metrics: Arc<Metrics>,
        liveness: &Liveness,
    ) -> io::Result<ApiServer> {
        let Attached {
            local_wake,
            front,
            reads,
        } = attached;
        let (notifier, notifier_thread) =
            notify::spawn(config.database_url.clone(), local_wake, shutdown.clone())?;
        let writer_part = liveness.register("create-writer", creates::WRITERS);
        let idempotency_hours = i32::try_from(config.idempotency_hours).unwrap_or(i32::MAX);
        let (creates, writer) =
            creates::Creates::start(pool.clone(), writer_part, idempotency_hours)?;
        let context = Arc::new(Context {
            creates,
            pool,
            reads,
            max_body_bytes: config.max_body_bytes,
            notifier,
            api_token: config.api_token.clone(),
            metrics,
            in_flight: idempotency::InFlight::default(),
            idempotency_hours,
            front,
        });
        let plan = http::ServingPlan {
            name: "api",
            part: "api-server",
            threads: config.http_threads,
            timeout: config.http_timeout,
            max_connections: config.http_max_connections,
            liveness,
            shutdown,
        };
        let serving = http::Serving::start(plan, listener, Arc::clone(&context), serve)?;
        let addr = serving.addr();
        log::info!("http-server-listen-and-serve addr={addr}");
        Ok(ApiServer {
            serving,
            context,
            writer,
            notifier: notifier_thread,
        })
    }

    /// Test hook: the create writer panics (see `creates`); its supervisor replaces it.
    #[doc(hidden)]
    pub fn panic_create_writer(&self) {
        self.context.creates.panic_writer();
    }

    /// Where the server listens (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Lets every thread finish its current request, then joins them.
    pub fn stop(self) {
        let addr = self.serving.addr();
        log::info!("http-server-shutdown-started addr={addr}");
        self.serving.stop();
        // With the request threads gone, this is the last handle of the create queue: the
        // writer finishes what is queued and stops.
        drop(self.context);
        if self.writer.join().is_err() {
            log::error!("the create writer's supervisor panicked");
        }
        if self.notifier.join().is_err() {
            log::error!("the notifier thread panicked");
        }
        log::info!("http-server-shutdown-finished addr={addr}");
    }
}

/// One request thread: take, answer, repeat until unblocked at shutdown.
fn serve(server: &tiny_http::Server, context: &Context, shutdown: &Shutdown) {
    loop {
        match server.recv() {
            Ok(request) => request::answer(context, request),
            Err(_) if shutdown.is_requested() => return,
            Err(e) => log::warn!("http-server-receive-error error={e}"),
        }
    }
}
