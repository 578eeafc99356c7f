//! The connection pool and what every connection is set up with.
//!
//! r2d2 stays in this module: the rest of the crate sees [`Pool`], [`PooledClient`] and
//! [`Error`]. One pool serves a process; a worker's dispatchers check their connections out of it
//! for good at start-up, so its size counts them (see `lib.rs`). An API may have a second,
//! smaller one for its lists on a read replica ([`ReadPool`], `replica.rs`).

pub mod migrate;
mod replica;
pub mod tls;

use std::fmt;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;

use tls::{Connector, SslMode};

pub use replica::{ReadPool, read_pool};

/// A pool of PostgreSQL connections.
pub type Pool = r2d2::Pool<PostgresConnectionManager<Connector>>;

/// A connection checked out of a [`Pool`]; it goes back on drop.
pub type PooledClient = r2d2::PooledConnection<PostgresConnectionManager<Connector>>;

/// How long a caller waits for a free connection before the database counts as unavailable.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// A statement running longer than this is cancelled, so a stuck query cannot hold an API
/// thread or a dispatcher for ever.
const STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// Why the database could not be reached or set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `POSTMAND_DATABASE_URL` does not parse as a URL or key=value DSN, or its TLS options
    /// (`sslmode`, `sslrootcert`) cannot be used.
    InvalidUrl {
        /// The parser's complaint.
        reason: String,
    },
    /// No connection could be made (refused, unknown host, bad password, no such database).
    Unreachable {
        /// `host:port/dbname` of the attempt, never the password.
        target: String,
        /// The connection's `sslmode`.
        mode: SslMode,
        /// The driver's message.
        cause: String,
    },
    /// The TLS handshake failed (an untrusted or misnamed certificate), or the server does not
    /// offer TLS that `sslmode` requires.
    Tls {
        /// `host:port/dbname` of the attempt, never the password.
        target: String,
        /// The connection's `sslmode`.
        mode: SslMode,
        /// The TLS layer's reason.
        cause: String,
    },
    /// A connection could not be checked out in time (all busy, or the database went away).
    Checkout(r2d2::Error),
    /// A migration failed; nothing of it was applied.
    Migration {
        /// The migration's version number.
        version: i64,
        /// The migration's file name.
        name: &'static str,
        /// The database's message.
        cause: postgres::Error,
    },
    /// `schema_migrations` says an earlier migration run (of the original postmand) died midway.
    Dirty {
        /// The version marked dirty.
        version: i64,
    },
    /// The migration bookkeeping itself failed.
    Bookkeeping(postgres::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl { reason } => write!(f, "invalid POSTMAND_DATABASE_URL: {reason}"),
            Error::Unreachable {
                target,
                mode,
                cause,
            } => write!(
                f,
                "cannot connect to database at {target} (sslmode={mode}): {cause}"
            ),
            Error::Tls {
                target,
                mode,
                cause,
            } => write!(
                f,
                "TLS to database at {target} failed (sslmode={mode}): {cause}"
            ),
            Error::Checkout(e) => write!(f, "no database connection available: {e}"),
            Error::Migration {
                version,
                name,
                cause,
            } => write!(
                f,
                "migration {version} ({name}) failed: {}",
                describe(cause)
            ),
            Error::Dirty { version } => write!(
                f,
                "dirty database version {version}: a previous migration did not finish; fix the \
                 schema by hand, then set schema_migrations.dirty to false"
            ),
            Error::Bookkeeping(e) => write!(f, "schema_migrations: {}", describe(e)),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Whether the configuration, not the database's state, is at fault: an unreadable URL or
    /// TLS options, or a TLS handshake that will fail the same way on every try.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Error::InvalidUrl { .. } | Error::Tls { .. })
    }
}

/// The most useful text of a driver error: the server's message when there is one.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Everything a connection is made from.
struct Target {
    config: postgres::Config,
    connector: Connector,
    mode: SslMode,
    /// `host:port/dbname` for messages, never the password.
    name: String,
}

/// Checks `url` the way every connection will read it: the driver's parser, then the TLS
/// options and CA file. Configuration runs it, so a mistake there exits at start-up.
pub fn validate_url(url: &str) -> Result<(), Error> {
    target(url, "postmand").map(|_| ())
}

/// The `sslmode` of a URL that configuration accepted.
pub fn sslmode_of(url: &str) -> SslMode {
    tls::split(url).map(|split| split.mode).unwrap_or_default()
}

/// Parses the URL and its TLS options, and sets the connection defaults.
fn target(url: &str, application_name: &str) -> Result<Target, Error> {
    let invalid = |reason: String| Error::InvalidUrl { reason };
    let split = tls::split(url).map_err(|e| invalid(e.to_string()))?;
    let mut config: postgres::Config = split
        .rest
        .parse()
        .map_err(|e: postgres::Error| invalid(e.to_string()))?;
    config.ssl_mode(split.mode.driver_mode());
    config.application_name(application_name);
    // The driver logs a NOTICE ("relation ... already exists, skipping") at info; to an
    // operator it is noise, so it goes to debug under our own target.
    config.notice_callback(|notice| {
        log::debug!(
            "database-notice severity={} message=\"{}\"",
            notice.severity(),
            notice.message()
        )
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    // A server (or standby) that vanishes without a word, a dropped network path rather than a
    // closed connection, is noticed in about 30 s rather than after the system's defaults (two
    // hours idle before the first keepalive; some 15 minutes of retransmissions): probes from
    // 15 s idle, every 5 s, and a connection whose sent data or probes go unacknowledged for
    // 30 s is closed. A URL's own `keepalives_idle` or `tcp_user_timeout` wins.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(15));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    let connector = tls::connector(&split).map_err(|e| invalid(e.to_string()))?;
    let name = target_name(&config);
    Ok(Target {
        config,
        connector,
        mode: split.mode,
        name,
    })
}

/// Names a connection's target for messages: `host:port/dbname`, no password.
fn target_name(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}:{}/{}",
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
        port,
        config.get_dbname().unwrap_or("")
    )
}

impl Target {
    fn connect_error(&self, e: &postgres::Error) -> Error {
        let (target, mode, cause) = (self.name.clone(), self.mode, describe(e));
        if tls::is_tls_failure(e) {
            // The driver's "error performing TLS handshake" says less than the line around it.
            let cause = std::error::Error::source(e).map_or(cause, |reason| reason.to_string());
            Error::Tls {
                target,
                mode,
                cause,
            }
        } else {
            Error::Unreachable {
                target,
                mode,
                cause,
            }
        }
    }
}

/// Opens one connection outside any pool (migrations, LISTEN). Fails fast with a message that
/// names the host and never the password.
pub fn connect(url: &str, application_name: &str) -> Result<postgres::Client, Error> {
    let target = target(url, application_name)?;
    target
        .config
        .connect(target.connector.clone())
        .map_err(|e| target.connect_error(&e))
}

/// [`connect`], then `setup` on the new connection (LISTEN, session settings): a connection of
/// its own for a long-lived thread. The error is text for that thread's one log line.
pub fn connect_with<E: fmt::Display>(
    url: &str,
    application_name: &str,
    setup: impl FnOnce(&mut postgres::Client) -> Result<(), E>,
) -> Result<postgres::Client, String> {
    let mut client = connect(url, application_name).map_err(|e| e.to_string())?;
    setup(&mut client).map_err(|e| e.to_string())?;
    Ok(client)
}

/// Sets every pooled connection to UTC and a statement timeout when it is opened, and turns
/// JIT compilation off: postmand's statements are short index lookups, and a generic plan's
/// cost estimate crossed `jit_above_cost`, so each claim spent ~150 ms compiling code that ran
/// for 0.1 ms.
#[derive(Debug)]
struct SessionSettings;

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for SessionSettings {
    fn on_acquire(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        client.batch_execute(&format!(
            "SET TIME ZONE 'UTC'; SET statement_timeout = {STATEMENT_TIMEOUT_MS}; SET jit = off"
        ))
    }
}

/// Logs a failed connection attempt of the pool at `warn`: an unreachable database is a
/// condition the process rides out (callers answer 503 or back off), not a bug. r2d2's default
/// handler logs it at `error`, once per attempt.
#[derive(Debug)]
struct WarnOnError;

impl r2d2::HandleError<postgres::Error> for WarnOnError {
    fn handle_error(&self, error: postgres::Error) {
        log::warn!("database-connect-error error={}", describe(&error));
    }
}

/// Builds a pool of at most `size` connections. One connection is opened first, directly, so an
/// unreachable database is reported at once with its real cause instead of a pool timeout.
pub fn pool(url: &str, application_name: &str, size: u32) -> Result<Pool, Error> {
    drop(connect(url, application_name)?);
    let target = target(url, application_name)?;
    let manager = PostgresConnectionManager::new(target.config, target.connector);
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(CHECKOUT_TIMEOUT)
        // No test query on every checkout: it doubled the round trips of a create. A connection
        // that died is found by its first statement (the caller answers 503 or retries) and
        // r2d2 drops it when it comes back broken.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSettings))
        .error_handler(Box::new(WarnOnError))
        .build(manager)
        .map_err(Error::Checkout)
}

/// The cheapest statement that proves the database answers (the health check's ping).
pub fn ping(client: &mut postgres::Client) -> Result<(), postgres::Error> {
    client.simple_query("SELECT 1").map(|_| ())
}

/// Checks a connection out of the pool, waiting at most [`CHECKOUT_TIMEOUT`].
pub fn checkout(pool: &Pool) -> Result<PooledClient, Error> {
    pool.get().map_err(Error::Checkout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_host_port_and_database_but_not_password() {
        let target = target("postgres://u:secret@db.internal:6543/postmand", "t").unwrap();
        assert_eq!(target.name, "db.internal:6543/postmand");
    }

    #[test]
    fn a_silent_server_is_noticed_in_seconds_unless_the_url_says_otherwise() {
        let ours = target("postgres://u@h/db", "t").unwrap().config;
        assert_eq!(ours.get_keepalives_idle(), Duration::from_secs(15));
        assert_eq!(ours.get_keepalives_interval(), Some(Duration::from_secs(5)));
        assert_eq!(ours.get_keepalives_retries(), Some(3));
        assert_eq!(ours.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        let theirs = target(
            "postgres://u@h/db?keepalives_idle=60&tcp_user_timeout=90",
            "t",
        )
        .unwrap()
        .config;
        assert_eq!(theirs.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(
            theirs.get_tcp_user_timeout(),
            Some(&Duration::from_secs(90))
        );
    }

    #[test]
    fn unparsable_url_is_invalid() {
        assert!(matches!(
            target("postgres://u@h:notaport/x", "t").map(|t| t.name),
            Err(Error::InvalidUrl { .. })
        ));
    }
}
