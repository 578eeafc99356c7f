//! Configuration: the one table of environment variables, their defaults and bounds, and the
//! validation that turns raw strings into a typed [`Config`].
//!
//! Two stages, as in ripgrep's low/high args: [`SETTINGS`] lists every variable once (name,
//! default, documentation), and [`Config::from_lookup`] reads them through any lookup function so
//! tests need not touch the process environment. A `.env` file in the working directory fills in
//! variables the real environment does not set (it never overrides one), as in the original.
//!
//! Unlike the original, a value that does not parse is an error that names the variable, not a
//! silent fallback to the default: a typo in a deployment should stop the process, not change it.

mod ca_file;
mod dotenv;
mod redact;

pub use ca_file::CaFile;
pub use redact::redact_url;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::cidr::{self, Cidr};

/// One environment variable the service reads.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The variable's name.
    pub name: &'static str,
    /// The default as the user would write it; empty when the variable is unset by default.
    pub default: &'static str,
    /// One line for `--help` and the README's configuration table.
    pub doc: &'static str,
}

/// Every variable, in the order `--help` and README.md list them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "POSTMAND_DATABASE_URL",
        default: "",
        doc: "PostgreSQL URL (postgres://user:pass@host:5432/db) or key=value DSN. Required. TLS as \
              in libpq: `sslmode` = `disable`, `prefer` (default: TLS when offered, unverified), \
              `require`, `verify-ca` or `verify-full`, and `sslrootcert` = a PEM file of CAs or \
              `system`; see Deploying.",
    },
    Setting {
        name: "POSTMAND_DATABASE_READ_URL",
        default: "",
        doc: "When set, a read replica (a streaming standby of the primary) for the list endpoints \
              only, in the forms and with the TLS options of POSTMAND_DATABASE_URL; lists fall back \
              to the primary while it is unreachable. See Read replica.",
    },
    Setting {
        name: "POSTMAND_DATABASE_MAX_OPEN_CONNS",
        default: "16",
        doc: "Connections in the API's pool (1-1000). Dispatchers hold one connection each on top.",
    },
    Setting {
        name: "POSTMAND_POLLING_INTERVAL",
        default: "1000",
        doc: "Milliseconds between polls for due deliveries when no wake-up arrives (10-3600000).",
    },
    Setting {
        name: "POSTMAND_HTTP_PORT",
        default: "8000",
        doc: "Port of the REST API.",
    },
    Setting {
        name: "POSTMAND_HEALTH_CHECK_HTTP_PORT",
        default: "8001",
        doc: "Port of /healthz (every role).",
    },
    Setting {
        name: "POSTMAND_BIND_ADDRESS",
        default: "0.0.0.0",
        doc: "IP address both servers listen on.",
    },
    Setting {
        name: "POSTMAND_HTTP_THREADS",
        default: "64",
        doc: "Threads serving API requests (1-256); a create holds its thread until its batch commits, so this also bounds how many creates one commit can carry.",
    },
    Setting {
        name: "POSTMAND_HTTP_TIMEOUT",
        default: "10",
        doc: "Seconds the servers wait for a client's next bytes or for it to take a response (1-3600); idle keep-alive connections close after it.",
    },
    Setting {
        name: "POSTMAND_HTTP_MAX_CONNECTIONS",
        default: "1024",
        doc: "Connections each server (API, health) keeps open at most (1-65536); one past it is closed at once, the open ones keep being served.",
    },
    Setting {
        name: "POSTMAND_MAX_BODY_BYTES",
        default: "1048576",
        doc: "Largest accepted request body in bytes; larger bodies get 413 (1-67108864).",
    },
    Setting {
        name: "POSTMAND_WORKER_CONCURRENCY",
        default: "16",
        doc: "Dispatcher threads per worker process (1-256).",
    },
    Setting {
        name: "POSTMAND_WORKER_BATCH_SIZE",
        default: "8",
        doc: "Due deliveries of one webhook a dispatcher sends in one transaction (1-100); also the most a crash can make it send twice.",
    },
    Setting {
        name: "POSTMAND_WEBHOOK_MAX_IN_FLIGHT",
        default: "0",
        doc: "Deliveries of one webhook in flight per worker; 0 means 3/4 of POSTMAND_WORKER_CONCURRENCY.",
    },
    Setting {
        name: "POSTMAND_DUMP_MAX_BYTES",
        default: "65536",
        doc: "Cap of each stored raw request and raw response, in bytes (1024-16777216).",
    },
    Setting {
        name: "POSTMAND_CA_FILE",
        default: "",
        doc: "PEM file of CA certificates trusted for https endpoints on top of the system's roots (SSL_CERT_FILE, SSL_CERT_DIR or the distribution's bundle).",
    },
    Setting {
        name: "POSTMAND_ENDPOINT_DENY",
        default: DEFAULT_ENDPOINT_DENY,
        doc: "Comma-separated CIDRs (a bare IP is one host) endpoints may not connect to, checked after DNS resolution; set it empty to deny nothing.",
    },
    Setting {
        name: "POSTMAND_API_TOKEN",
        default: "",
        doc: "When set, every /v1 request needs Authorization: Bearer <token> (401 otherwise).",
    },
    Setting {
        name: "POSTMAND_RETENTION_DAYS",
        default: "",
        doc: "When set, workers drop each day of attempts older than this many days and delete succeeded and failed deliveries (with their attempts) unchanged for this many days (1-36500).",
    },
    Setting {
        name: "POSTMAND_IDEMPOTENCY_HOURS",
        default: "24",
        doc: "How long the first answer to an `Idempotency-Key` is replayed (1-8760 hours); workers delete expired keys.",
    },
    Setting {
        name: "POSTMAND_DISABLE_AFTER_HOURS",
        default: "120",
        doc: "Workers deactivate a webhook whose attempts have all failed for this many hours, with at least 10 failed attempts (0-8760; 0 turns it off).",
    },
    Setting {
        name: "POSTMAND_OPERATIONAL_WEBHOOK_URL",
        default: "",
        doc: "When set, an http(s) URL that receives a signed `webhook.disabled` notice, through the queue, whenever postmand deactivates a webhook.",
    },
    Setting {
        name: "POSTMAND_OPERATIONAL_WEBHOOK_SECRET",
        default: "",
        doc: "The signing secret of those notices (like a webhook's `secret_token`; `whsec_` + base64 for Standard Webhooks); required with the URL.",
    },
    Setting {
        name: "POSTMAND_LOG_LEVEL",
        default: "info",
        doc: "error, warn, info, debug or trace; RUST_LOG, when set, wins.",
    },
    Setting {
        name: "POSTMAND_LOG_FORMAT",
        default: "text",
        doc: "`text` (one line per event: `[time LEVEL target] event key=value ...`) or `json` (one JSON object per line: time, level, target, message and each key=value as a field).",
    },
];

/// The link-local ranges, where cloud metadata services answer (169.254.169.254), and nothing
/// else: private networks are where internal webhooks live. (AWS's IPv6 metadata address,
/// fd00:ec2::254, is unique-local, not link-local: README.md tells operators to add it.)
const DEFAULT_ENDPOINT_DENY: &str = "169.254.0.0/16,fe80::/10";

/// Inclusive bounds for every integer setting, checked in [`Config::from_lookup`].
const MAX_OPEN_CONNS: (u64, u64) = (1, 1000);
const POLLING_INTERVAL_MS: (u64, u64) = (10, 3_600_000);
const PORT: (u64, u64) = (0, 65535);
const HTTP_THREADS: (u64, u64) = (1, 256);
const HTTP_TIMEOUT_SECS: (u64, u64) = (1, 3600);
const HTTP_MAX_CONNECTIONS: (u64, u64) = (1, 65536);
const MAX_BODY_BYTES: (u64, u64) = (1, 64 * 1024 * 1024);
const WORKER_CONCURRENCY: (u64, u64) = (1, 256);
const WEBHOOK_MAX_IN_FLIGHT: (u64, u64) = (0, 256);
const WORKER_BATCH_SIZE: (u64, u64) = (1, 100);
const DUMP_MAX_BYTES: (u64, u64) = (1024, 16 * 1024 * 1024);
const RETENTION_DAYS: (u64, u64) = (1, 36_500);
const IDEMPOTENCY_HOURS: (u64, u64) = (1, 8760);
const DISABLE_AFTER_HOURS: (u64, u64) = (0, 8760);

/// Where postmand's own notices go (`POSTMAND_OPERATIONAL_WEBHOOK_*`).
#[derive(Clone, PartialEq, Eq)]
pub struct OperationalWebhook {
    /// An http or https URL.
    pub url: String,
    /// The signing secret.
    pub secret: String,
}

impl fmt::Debug for OperationalWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationalWebhook")
            .field("url", &redact_url(&self.url))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The validated configuration of one process.
#[derive(Clone)]
pub struct Config {
    /// `POSTMAND_DATABASE_URL`: where the database is. Required; no default.
    pub database_url: String,
    /// `POSTMAND_DATABASE_READ_URL`: a read replica for the list endpoints. Unset (everything on
    /// the primary) by default; never migrated.
    pub database_read_url: Option<String>,
    /// `POSTMAND_DATABASE_MAX_OPEN_CONNS`: size of the API's connection pool. Defaults to 16.
    pub database_max_open_conns: u32,
    /// `POSTMAND_POLLING_INTERVAL` (ms): fallback poll period of idle dispatchers. Defaults to 1 s.
    pub polling_interval: Duration,
    /// `POSTMAND_HTTP_PORT`: API port. Defaults to 8000; 0 picks a free port.
    pub http_port: u16,
    /// `POSTMAND_HEALTH_CHECK_HTTP_PORT`: health port. Defaults to 8001; 0 picks a free port.
    pub health_port: u16,
    /// `POSTMAND_BIND_ADDRESS`: listening address of both servers. Defaults to 0.0.0.0.
    pub bind_address: IpAddr,
    /// `POSTMAND_HTTP_THREADS`: API request threads. Defaults to 64: a create holds its thread
    /// until its batch commits, so the threads bound the batch; with 256 wrk clients on 2 cores
    /// 64 threads gave 20,500 creates/s against 14,900 with 16 (32 clients: the same).
    pub http_threads: usize,
    /// `POSTMAND_HTTP_TIMEOUT` (s): read and write timeout of every connection to both
    /// servers. Defaults to 10 s.
    pub http_timeout: Duration,
    /// `POSTMAND_HTTP_MAX_CONNECTIONS`: open connections per server. Defaults to 1024.
    pub http_max_connections: usize,
    /// `POSTMAND_MAX_BODY_BYTES`: request body cap. Defaults to 1 MiB.
    pub max_body_bytes: usize,
    /// `POSTMAND_WORKER_CONCURRENCY`: dispatcher threads. Defaults to 16.
    pub worker_concurrency: usize,
    /// `POSTMAND_WORKER_BATCH_SIZE`: deliveries of one webhook a dispatcher claims, sends and
    /// commits together. Defaults to 8.
    pub worker_batch_size: usize,
    /// `POSTMAND_WEBHOOK_MAX_IN_FLIGHT`: per-webhook dispatcher cap; 0 (the default) means
    /// three quarters of `worker_concurrency`. See [`Config::webhook_max_in_flight`].
    pub webhook_max_in_flight: usize,
    /// `POSTMAND_DUMP_MAX_BYTES`: cap of each raw dump. Defaults to 64 KiB.
    pub dump_max_bytes: usize,
    /// `POSTMAND_CA_FILE`: certificates https endpoints may chain to besides the system's
    /// roots, read at start-up. Unset by default.
    pub ca_file: Option<CaFile>,
    /// `POSTMAND_ENDPOINT_DENY`: networks no delivery may connect to, matched against every
    /// address an endpoint's host resolves to. Defaults to `169.254.0.0/16,fe80::/10`; an empty
    /// value (set, but to nothing) denies nothing.
    pub endpoint_deny: Vec<Cidr>,
    /// `POSTMAND_API_TOKEN`: bearer token every `/v1` request must carry. Unset by default.
    pub api_token: Option<String>,
    /// `POSTMAND_RETENTION_DAYS`: age in days after which finished deliveries are deleted.
    /// Unset (retention off) by default.
    pub retention_days: Option<u32>,
    /// `POSTMAND_IDEMPOTENCY_HOURS`: how long an idempotency key's answer is replayed.
    pub idempotency_hours: u32,
    /// `POSTMAND_DISABLE_AFTER_HOURS`: failure-only span after which a webhook is deactivated;
    /// 0 never.
    pub disable_after_hours: u32,
    /// `POSTMAND_OPERATIONAL_WEBHOOK_URL` and `_SECRET`: where notices of disabled webhooks go.
    pub operational_webhook: Option<OperationalWebhook>,
    /// `POSTMAND_LOG_LEVEL`: the logger's filter. Defaults to `info`.
    pub log_level: String,
    /// `POSTMAND_LOG_FORMAT`: JSON lines instead of text. Defaults to text.
    pub log_json: bool,
}

impl Default for Config {
    /// The defaults of [`SETTINGS`], with an empty database URL.
    fn default() -> Config {
        // This unwrap is OK, because every default in SETTINGS is valid (a unit test checks it).
        Config::from_lookup(|name| {
            (name == "POSTMAND_DATABASE_URL").then(|| String::from("host=localhost"))
        })
        .map(|mut c| {
            c.database_url.clear();
            c
        })
        .unwrap()
    }
}

/// Why the configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A required variable is unset or empty.
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable is set to something that does not parse or is out of bounds.
    Invalid {
        /// The variable.
        name: &'static str,
        /// What was given.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A variable names a file that cannot be read or does not hold what it should.
    File {
        /// The variable.
        name: &'static str,
        /// The file, as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `.env` file exists but cannot be read or has a line that is not `KEY=value`.
    DotEnv {
        /// Which line (1-based), or 0 when the file could not be read at all.
        line: usize,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing { name } => write!(f, "{name} is not set"),
            Error::Invalid {
                name,
                value,
                expected,
            } => write!(f, "{name}={value:?} is invalid: expected {expected}"),
            Error::File { name, path, reason } => write!(f, "{name}={path:?}: {reason}"),
            Error::DotEnv { line: 0, reason } => write!(f, ".env: {reason}"),
            Error::DotEnv { line, reason } => write!(f, ".env line {line}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl Config {
    /// Reads the process environment, then `.env` in the working directory for what is unset.
    pub fn from_env() -> Result<Config, Error> {
        let dotenv = dotenv::read(std::path::Path::new(".env"))?;
        Config::from_lookup(|name| {
            std::env::var(name)
                .ok()
                .or_else(|| dotenv.get(name).cloned())
        })
    }

    /// Builds a configuration from `lookup(name)`, applying defaults and checking every bound.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let raw = |name: &'static str| -> String {
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => v.trim().to_string(),
                _ => default_of(name).to_string(),
            }
        };
        let database_url = raw("POSTMAND_DATABASE_URL");
        if database_url.is_empty() {
            return Err(Error::Missing {
                name: "POSTMAND_DATABASE_URL",
            });
        }
        database_url_valid("POSTMAND_DATABASE_URL", &database_url)?;
        let database_read_url = Some(raw("POSTMAND_DATABASE_READ_URL")).filter(|u| !u.is_empty());
        if let Some(url) = &database_read_url {
            database_url_valid("POSTMAND_DATABASE_READ_URL", url)?;
        }
        let bind_value = raw("POSTMAND_BIND_ADDRESS");
        let bind_address = bind_value.parse().map_err(|_| Error::Invalid {
            name: "POSTMAND_BIND_ADDRESS",
            value: bind_value.clone(),
            expected: "an IP address such as 0.0.0.0 or 127.0.0.1".into(),
        })?;
        let log_level = raw("POSTMAND_LOG_LEVEL").to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&log_level.as_str()) {
            return Err(Error::Invalid {
                name: "POSTMAND_LOG_LEVEL",
                value: log_level,
                expected: "one of error, warn, info, debug, trace, off".into(),
            });
        }
        let log_json = match raw("POSTMAND_LOG_FORMAT").to_ascii_lowercase().as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(Error::Invalid {
                    name: "POSTMAND_LOG_FORMAT",
                    value: other.to_string(),
                    expected: "text or json".into(),
                });
            }
        };
        let int = |name: &'static str, bounds: (u64, u64)| bounded(name, &raw(name), bounds);
        let api_token = Some(raw("POSTMAND_API_TOKEN")).filter(|t| !t.is_empty());
        if let Some(token) = &api_token
            && !token.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(Error::Invalid {
                name: "POSTMAND_API_TOKEN",
                value: "<redacted>".into(),
                expected: "printable ASCII without spaces".into(),
            });
        }
        let ca_file = match raw("POSTMAND_CA_FILE") {
            path if path.is_empty() => None,
            path => Some(ca_file::read(std::path::Path::new(&path))?),
        };
        // Unlike the others, set but empty is a value here: the empty list.
        let deny =
            lookup("POSTMAND_ENDPOINT_DENY").unwrap_or_else(|| DEFAULT_ENDPOINT_DENY.to_string());
        let endpoint_deny = cidr::parse_list(&deny).map_err(|e| Error::Invalid {
            name: "POSTMAND_ENDPOINT_DENY",
            value: deny.trim().to_string(),
            expected: format!(
                "comma-separated CIDRs or IP addresses, such as {DEFAULT_ENDPOINT_DENY} ({e})"
            ),
        })?;
        let operational_webhook = operational_webhook(&raw)?;
        let retention = raw("POSTMAND_RETENTION_DAYS");
        let retention_days = if retention.is_empty() {
            None
        } else {
            Some(bounded("POSTMAND_RETENTION_DAYS", &retention, RETENTION_DAYS)? as u32)
        };
        Ok(Config {
            database_url,
            database_read_url,
            database_max_open_conns: int("POSTMAND_DATABASE_MAX_OPEN_CONNS", MAX_OPEN_CONNS)?
                as u32,
            polling_interval: Duration::from_millis(int(
                "POSTMAND_POLLING_INTERVAL",
                POLLING_INTERVAL_MS,
            )?),
            http_port: int("POSTMAND_HTTP_PORT", PORT)? as u16,
            health_port: int("POSTMAND_HEALTH_CHECK_HTTP_PORT", PORT)? as u16,
            bind_address,
            http_threads: int("POSTMAND_HTTP_THREADS", HTTP_THREADS)? as usize,
            http_timeout: Duration::from_secs(int("POSTMAND_HTTP_TIMEOUT", HTTP_TIMEOUT_SECS)?),
            http_max_connections: int("POSTMAND_HTTP_MAX_CONNECTIONS", HTTP_MAX_CONNECTIONS)?
                as usize,
            max_body_bytes: int("POSTMAND_MAX_BODY_BYTES", MAX_BODY_BYTES)? as usize,
            worker_concurrency: int("POSTMAND_WORKER_CONCURRENCY", WORKER_CONCURRENCY)? as usize,
            worker_batch_size: int("POSTMAND_WORKER_BATCH_SIZE", WORKER_BATCH_SIZE)? as usize,
            webhook_max_in_flight: int("POSTMAND_WEBHOOK_MAX_IN_FLIGHT", WEBHOOK_MAX_IN_FLIGHT)?
                as usize,
            dump_max_bytes: int("POSTMAND_DUMP_MAX_BYTES", DUMP_MAX_BYTES)? as usize,
            ca_file,
            endpoint_deny,
            api_token,
            retention_days,
            idempotency_hours: int("POSTMAND_IDEMPOTENCY_HOURS", IDEMPOTENCY_HOURS)? as u32,
            disable_after_hours: int("POSTMAND_DISABLE_AFTER_HOURS", DISABLE_AFTER_HOURS)? as u32,
            operational_webhook,
            log_level,
            log_json,
        })
    }

    /// Deliveries of one webhook a worker process attempts at once: the setting, or three
    /// quarters of the dispatchers (at least one) when it is 0, so a slow endpoint leaves a
    /// quarter of them to the others while a single busy endpoint still gets most of them.
    pub fn webhook_max_in_flight(&self) -> usize {
        match self.webhook_max_in_flight {
            0 => (self.worker_concurrency - self.worker_concurrency / 4).max(1),
            n => n,
        }
    }

    /// `endpoint_deny` as the variable would spell it (`169.254.0.0/16,fe80::/10`).
    pub fn endpoint_deny_text(&self) -> String {
        let rules: Vec<String> = self.endpoint_deny.iter().map(Cidr::to_string).collect();
        rules.join(",")
    }

    /// The database URL with any password replaced, fit for logs and error messages.
    pub fn redacted_database_url(&self) -> String {
        redact_url(&self.database_url)
    }

    /// The read replica's URL, if any, with any password replaced.
    pub fn redacted_database_read_url(&self) -> Option<String> {
        self.database_read_url.as_deref().map(redact_url)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.redacted_database_url())
            .field("database_read_url", &self.redacted_database_read_url())
            .field("database_max_open_conns", &self.database_max_open_conns)
            .field("polling_interval", &self.polling_interval)
            .field("http_port", &self.http_port)
            .field("health_port", &self.health_port)
            .field("bind_address", &self.bind_address)
            .field("http_threads", &self.http_threads)
            .field("http_timeout", &self.http_timeout)
            .field("http_max_connections", &self.http_max_connections)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("worker_batch_size", &self.worker_batch_size)
            .field("webhook_max_in_flight", &self.webhook_max_in_flight)
            .field("dump_max_bytes", &self.dump_max_bytes)
            .field("ca_file", &self.ca_file)
            .field("endpoint_deny", &self.endpoint_deny_text())
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("retention_days", &self.retention_days)
            .field("idempotency_hours", &self.idempotency_hours)
            .field("disable_after_hours", &self.disable_after_hours)
            .field("operational_webhook", &self.operational_webhook)
            .field("log_level", &self.log_level)
            .field("log_json", &self.log_json)
            .finish()
    }
}

/// Checks a database URL (`name` is its variable) the way every connection will read it.
fn database_url_valid(name: &'static str, url: &str) -> Result<(), Error> {
    crate::db::validate_url(url).map_err(|e| {
        let reason = match e {
            crate::db::Error::InvalidUrl { reason } => reason,
            other => other.to_string(),
        };
        Error::Invalid {
            name,
            value: redact_url(url),
            expected: format!(
                "a PostgreSQL URL (postgres://user:password@host:5432/db?sslmode=...) or \
                 key=value DSN ({reason})"
            ),
        }
    })
}

fn default_of(name: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .map_or("", |s| s.default)
}

/// `POSTMAND_OPERATIONAL_WEBHOOK_URL` and `_SECRET`: both or neither.
fn operational_webhook(
    raw: &impl Fn(&'static str) -> String,
) -> Result<Option<OperationalWebhook>, Error> {
    let url = raw("POSTMAND_OPERATIONAL_WEBHOOK_URL");
    let secret = raw("POSTMAND_OPERATIONAL_WEBHOOK_SECRET");
    if url.is_empty() {
        return Ok(None);
    }
    if url.len() > 2083 || !crate::url::EndpointUrl::new(&url).is_valid() {
        return Err(Error::Invalid {
            name: "POSTMAND_OPERATIONAL_WEBHOOK_URL",
            value: redact_url(&url),
            expected: "an http or https URL with a host".into(),
        });
    }
    let valid_secret = !secret.is_empty()
        && secret.len() <= 1024
        && !secret.contains('\0')
        && !matches!(crate::model::whsec_key(&secret), Some(Err(_)));
    if !valid_secret {
        return Err(Error::Invalid {
            name: "POSTMAND_OPERATIONAL_WEBHOOK_SECRET",
            value: "<redacted>".into(),
            expected: "a secret of 1-1024 bytes (whsec_ + base64 for Standard Webhooks), \
                       required with POSTMAND_OPERATIONAL_WEBHOOK_URL"
                .into(),
        });
    }
    Ok(Some(OperationalWebhook { url, secret }))
}

fn bounded(name: &'static str, value: &str, (min, max): (u64, u64)) -> Result<u64, Error> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::Invalid {
            name,
            value: value.to_string(),
            expected: format!("an integer from {min} to {max}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = Config::default();
        assert_eq!(c.http_port, 8000);
        assert_eq!(c.health_port, 8001);
        assert_eq!(c.polling_interval, Duration::from_millis(1000));
        assert_eq!(c.worker_concurrency, 16);
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert!(SETTINGS.iter().all(|s| !s.doc.is_empty()));
    }

    #[test]
    fn readme_configuration_table_matches_settings() {
        let readme = include_str!("../../README.md");
        for setting in SETTINGS {
            let default = match setting.default {
                "" if setting.name == "POSTMAND_DATABASE_URL" => "(required)",
                "" => "(unset)",
                default => default,
            };
            let row = format!("| `{}` | {} | {} |", setting.name, default, setting.doc);
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn missing_database_url_is_an_error() {
        assert_eq!(
            Config::from_lookup(lookup(&[])).unwrap_err(),
            Error::Missing {
                name: "POSTMAND_DATABASE_URL"
            }
        );
    }

    #[test]
    fn unparsable_integer_names_the_variable() {
        let err = Config::from_lookup(lookup(&[
            ("POSTMAND_DATABASE_URL", "postgres://x"),
            ("POSTMAND_HTTP_PORT", "eighty"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTMAND_HTTP_PORT=\"eighty\" is invalid: expected an integer from 0 to 65535"
        );
    }

    #[test]
    fn out_of_range_integer_is_an_error() {
        let err = Config::from_lookup(lookup(&[
            ("POSTMAND_DATABASE_URL", "postgres://x"),
            ("POSTMAND_WORKER_CONCURRENCY", "0"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            Error::Invalid {
                name: "POSTMAND_WORKER_CONCURRENCY",
                ..
            }
        ));
    }

    fn config_with(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        let mut all = vec![("POSTMAND_DATABASE_URL", "postgres://x")];
        all.extend_from_slice(pairs);
        Config::from_lookup(lookup(&all))
    }

    #[test]
    fn endpoint_deny_defaults_to_link_local_and_may_be_emptied() {
        assert_eq!(
            Config::default().endpoint_deny_text(),
            "169.254.0.0/16,fe80::/10"
        );
        let empty = config_with(&[("POSTMAND_ENDPOINT_DENY", "")]).unwrap();
        assert_eq!(empty.endpoint_deny, vec![]);
        let blank = config_with(&[("POSTMAND_ENDPOINT_DENY", "  ")]).unwrap();
        assert_eq!(blank.endpoint_deny, vec![]);
        let set = config_with(&[("POSTMAND_ENDPOINT_DENY", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(set.endpoint_deny_text(), "10.0.0.0/8,::1/128");
    }

    #[test]
    fn invalid_endpoint_deny_names_the_variable_and_the_item() {
        let err =
            config_with(&[("POSTMAND_ENDPOINT_DENY", "10.0.0.0/8,169.254.0.0/33")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTMAND_ENDPOINT_DENY=\"10.0.0.0/8,169.254.0.0/33\" is invalid: expected \
             comma-separated CIDRs or IP addresses, such as 169.254.0.0/16,fe80::/10 \
             (\"169.254.0.0/33\": the prefix length must be 0-32 for IPv4, 0-128 for IPv6)"
        );
        let err = config_with(&[("POSTMAND_ENDPOINT_DENY", "metadata.internal")]).unwrap_err();
        assert!(matches!(
            err,
            Error::Invalid {
                name: "POSTMAND_ENDPOINT_DENY",
                ..
            }
        ));
    }

    #[test]
    fn unreadable_ca_file_is_an_error_naming_the_file() {
        assert_eq!(Config::default().ca_file, None);
        let err = config_with(&[("POSTMAND_CA_FILE", "/nonexistent/postmand-ca.pem")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTMAND_CA_FILE=\"/nonexistent/postmand-ca.pem\": cannot read it: \
             No such file or directory (os error 2)"
        );
        // A directory cannot be read as a file either.
        let err = config_with(&[("POSTMAND_CA_FILE", "/")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("POSTMAND_CA_FILE=\"/\": cannot read it: "),
            "{err}"
        );
    }

    #[test]
    fn debug_redacts_the_password_and_token() {
        let c = Config::from_lookup(lookup(&[
            (
                "POSTMAND_DATABASE_URL",
                "postgres://user:s3cret@db:5432/postmand?sslmode=disable",
            ),
            (
                "POSTMAND_DATABASE_READ_URL",
                "host=replica user=reader password='r3ad s3cret' dbname=postmand",
            ),
            ("POSTMAND_API_TOKEN", "t0ken"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("t0ken"), "{shown}");
        assert!(shown.contains("postgres://user:***@db:5432/postmand?sslmode=disable"));
        assert!(
            shown.contains("host=replica user=reader password=*** dbname=postmand"),
            "{shown}"
        );
    }

    #[test]
    fn read_url_is_optional_and_checked_like_the_primary() {
        assert_eq!(Config::default().database_read_url, None);
        let blank = config_with(&[("POSTMAND_DATABASE_READ_URL", " ")]).unwrap();
        assert_eq!(blank.database_read_url, None);
        let set = config_with(&[(
            "POSTMAND_DATABASE_READ_URL",
            "postgres://reader:pw@replica:5433/postmand?sslmode=require",
        )])
        .unwrap();
        assert_eq!(
            set.redacted_database_read_url().as_deref(),
            Some("postgres://reader:***@replica:5433/postmand?sslmode=require")
        );
        let err = config_with(&[(
            "POSTMAND_DATABASE_READ_URL",
            "postgres://reader:pw@replica:5433/postmand?sslmode=verify-everything",
        )])
        .unwrap_err();
        let Error::Invalid { name, value, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*name, "POSTMAND_DATABASE_READ_URL");
        assert!(!value.contains("pw"), "{value}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}
