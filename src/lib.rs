//! postmand: webhook delivery on PostgreSQL, a drop-in successor of the Go postmand.
//!
//! Clients register **webhooks** and submit **deliveries** through the REST API (`api`); worker
//! dispatchers POST each delivery to its webhook until it is accepted or its attempts run out,
//! recording every **attempt** (`dispatch`). All state is in PostgreSQL (`store`, `db`).
//!
//! # Guarantees
//! A delivery is claimed, sent and recorded inside one database transaction, so a crash at any
//! point leaves it pending with its attempt count unchanged: at-least-once delivery.
//!
//! # Log levels
//! - `error`: a bug or a failure that loses a capability (a thread panicked, a migration failed).
//! - `warn`: the database or a port misbehaves; the process carries on or retries.
//! - `info`: one line per lifecycle event (start, stop, migration) and per webhook change.
//! - `debug`: one line per API request and per delivery created.
//!
//! Secrets (the database password, secret tokens) and payloads never reach a log line.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod health;
pub mod http;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod shutdown;
pub mod store;
pub mod tls_roots;
pub mod ui;
pub mod url;

/// `postmand/<version>`: what `--version` prints and the dispatcher's User-Agent.
pub const VERSION: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use api::ApiServer;
use cli::{Command, Role};
use config::Config;
use dispatch::Workers;
use health::HealthServer;
use liveness::Liveness;
use metrics::Metrics;
use shutdown::Shutdown;

/// Why the process could not start or run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The database is unreachable, misconfigured or could not be migrated.
    Db(db::Error),
    /// The schema is older than this binary needs.
    SchemaOutdated {
        /// The database's version.
        found: i64,
        /// The version this binary needs.
        needed: i64,
    },
    /// A port could not be bound.
    Bind {
        /// Which server.
        server: &'static str,
        /// The address it was to listen on.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A thread or the signal handler could not be started.
    Spawn(std::io::Error),
    /// `postmand healthcheck`: the health server did not answer 200.
    Unhealthy(health::CheckError),
    /// A dispatcher thread panicked; the process stopped rather than run with a gap.
    DispatcherPanicked,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(e) => e.fmt(f),
            Error::SchemaOutdated { found, needed } => write!(
                f,
                "database schema is at version {found}, this binary needs {needed}: \
                 run `postmand migrate` first"
            ),
            Error::Bind {
                server,
                addr,
                source,
            } => write!(f, "cannot listen for the {server} on {addr}: {source}"),
            Error::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            Error::Unhealthy(e) => write!(f, "unhealthy: {e}"),
            Error::DispatcherPanicked => f.write_str("a dispatcher panicked; see the log above"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The process's exit status for this error: 2 when the configuration is at fault (as for
    /// the errors found while reading it), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Db(e) if e.is_configuration() => 2,
            _ => 1,
        }
    }
}

impl From<db::Error> for Error {
    fn from(e: db::Error) -> Error {
        Error::Db(e)
    }
}

/// Runs a command to completion: a migration, or serving until SIGINT/SIGTERM.
pub fn run(command: Command, config: &Config) -> Result<(), Error> {
    match command {
        Command::Migrate => migrate(config).map(|_| ()),
        Command::Run(role) => {
            let shutdown = Shutdown::new();
            let _signals = shutdown.listen_for_signals().map_err(Error::Spawn)?;
            let running = start(role, config, &shutdown)?;
            shutdown.wait();
            if running.stop() {
                Ok(())
            } else {
                Err(Error::DispatcherPanicked)
            }
        }
        Command::Healthcheck => health::check(config).map_err(Error::Unhealthy),
        Command::Help | Command::Version => Ok(()),
    }
}

/// Applies pending migrations.
pub fn migrate(config: &Config) -> Result<db::migrate::Report, Error> {
    log::info!(
        "migration-started database={}",
        config.redacted_database_url()
    );
    let mut client = db::connect(&config.database_url, "postmand-migrate")?;
    let report = db::migrate::run(&mut client)?;
    log::info!(
        "migration-finished from_version={} to_version={}",
        report.from,
        report.to
    );
    Ok(report)
}

/// The servers and threads of a running process.
pub struct Running {
    api: Option<ApiServer>,
    workers: Option<Workers>,
    health: HealthServer,
}

impl Running {
    /// The API's address, when this role serves it.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(ApiServer::addr)
    }

    /// The API server, when this role serves it.
    pub fn api(&self) -> Option<&ApiServer> {
        self.api.as_ref()
    }

    /// The health server's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.addr()
    }

    /// Deliveries being attempted right now (0 without dispatchers).
    pub fn in_flight(&self) -> usize {
        self.workers.as_ref().map_or(0, Workers::in_flight)
    }

    /// Stops everything gracefully once shutdown was requested: in-flight requests and
    /// deliveries finish first. Returns false if a dispatcher had panicked.
    pub fn stop(self) -> bool {
        if let Some(api) = self.api {
            api.stop();
        }
        let clean = self.workers.is_none_or(Workers::join);
        self.health.stop();
        clean
    }
}

/// Starts the servers and threads of `role`. They run until `shutdown` is requested and
/// [`Running::stop`] is called.
///
/// Every listener is bound first, so a port that cannot be bound fails the start before
/// anything runs, and a `/healthz` that answers 200 implies the API accepts connections.
pub fn start(role: Role, config: &Config, shutdown: &Shutdown) -> Result<Running, Error> {
    let bind = |server: &'static str, port: u16| {
        let addr = SocketAddr::new(config.bind_address, port);
        http::bind(addr).map_err(|source| Error::Bind {
            server,
            addr,
            source,
        })
    };
    let health_listener = bind("health server", config.health_port)?;
    let api_listener = if role.runs_api() {
        Some(bind("API", config.http_port)?)
    } else {
        None
    };
    let mut size = 1;
    if role.runs_api() {
        // The create writers keep one each for good (api::creates).
        size += config.database_max_open_conns + api::creates::WRITERS as u32;
    }
    if role.runs_worker() {
        // Each dispatcher keeps one for good; retention borrows one now and then.
        size += config.worker_concurrency as u32 + 1;
    }
    let pool = db::pool(&config.database_url, "postmand", size)?;
    check_schema(&pool)?;
    // Only the API's lists read from a replica; a worker never opens one.
    let reads = match &config.database_read_url {
        Some(url) if role.runs_api() => Some(db::read_pool(
            url,
            "postmand-read",
            read_pool_size(config.database_max_open_conns),
        )?),
        _ => None,
    };
    let metrics = Arc::new(Metrics::default());
    let liveness = Arc::new(Liveness::default());
    let wake = dispatch::wake_channel(config);
    let local_wake =
        (role.runs_worker() && api_listener.is_some()).then(|| api::notify::LocalWake {
            sender: wake.0.clone(),
            tag: store::queue::new_sender_tag(),
        });
    let workers = if role.runs_worker() {
        let started = Workers::start(
            config,
            pool.clone(),
            shutdown,
            wake,
            local_wake.as_ref().map(|local| local.tag.clone()),
            Arc::clone(&metrics),
            &liveness,
        );
        // A failure midway may leave some threads started: stop them.
        Some(started.map_err(|e| {
            shutdown.request();
            match e {
                dispatch::StartError::Db(e) => Error::Db(e),
                dispatch::StartError::Spawn(e) => Error::Spawn(e),
            }
        })?)
    } else {
        None
    };
    let stop_workers = |workers: Option<Workers>| {
        shutdown.request();
        if let Some(workers) = workers {
            workers.join();
        }
    };
    let api = match api_listener {
        Some(listener) => {
            let dashboard = match ui::Dashboard::new(config.api_token.clone()) {
                Ok(dashboard) => dashboard,
                Err(e) => {
                    stop_workers(workers);
                    return Err(Error::Spawn(std::io::Error::other(format!(
                        "the dashboard's CSRF key: {e}"
                    ))));
                }
            };
            let started = ApiServer::start(
                config,
                listener,
                pool.clone(),
                shutdown,
                api::Attached {
                    local_wake,
                    front: Some(Arc::new(dashboard)),
                    reads: reads.clone(),
                },
                Arc::clone(&metrics),
                &liveness,
            );
            match started {
                Ok(api) => Some(api),
                Err(e) => {
                    stop_workers(workers);
                    return Err(Error::Spawn(e));
                }
            }
        }
        None => None,
    };
    let health = HealthServer::start(
        config,
        health_listener,
        pool,
        reads,
        shutdown,
        metrics,
        liveness,
    );
    let health = match health {
        Ok(health) => health,
        Err(e) => {
            if let Some(api) = api {
                shutdown.request();
                api.stop();
            }
            stop_workers(workers);
            return Err(Error::Spawn(e));
        }
    };
    Ok(Running {
        api,
        workers,
        health,
    })
}

/// The read replica's pool: half the API's (at least one), as only lists use it and each
/// request holds one connection at a time.
fn read_pool_size(max_open_conns: u32) -> u32 {
    (max_open_conns / 2).max(1)
}

fn check_schema(pool: &db::Pool) -> Result<(), Error> {
    let needed = db::migrate::latest_version();
    let mut client = db::checkout(pool)?;
    let found = db::migrate::current_version(&mut *client)?;
    if found < needed {
        return Err(Error::SchemaOutdated { found, needed });
    }
    Ok(())
}
