//! The optional read pool (`POSTMAND_DATABASE_READ_URL`, issue 17): connections to a streaming
//! standby of the primary, for the list endpoints only, and what happens while it is away.
//!
//! A standby replays the primary's WAL a little behind it, so what it answers may lag: fine for
//! a list, wrong for anything that must see a write just made (a GET by id after its create,
//! every write). Callers choose: `api::Context::read_client` is used by the list handlers alone.
//! Migrations never run here; a standby refuses writes by itself (`default_transaction_read_only`
//! is implied in recovery), so nothing needs setting.
//!
//! While the standby cannot be reached, [`ReadPool::checkout`] answers `None` and the caller uses
//! the primary instead. A failed checkout marks the standby down for [`RETRY_AFTER`]: until then
//! every caller goes to the primary at once, then one caller (a list, or a thread that a
//! `/healthz` probe starts) tries the standby again while the others keep skipping it, so only
//! that one waits up to [`CHECKOUT_TIMEOUT`]. A WARN says the standby is unavailable at most once per [`WARN_EVERY`],
//! and an INFO line says when it answers again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use r2d2_postgres::PostgresConnectionManager;

use super::{Error, Pool, PooledClient, SessionSettings, describe, target};

/// How long a list waits for a standby connection before it takes the primary's. Shorter than
/// the primary's wait (`db::CHECKOUT_TIMEOUT`): the primary is there to fall back to.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a standby that failed a checkout is skipped before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The least time between two `read-replica-unavailable` WARN lines.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// A pool of connections to the read replica, and whether it is reachable. Clones share both.
#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `host:port/dbname` of the standby, for log lines.
    target: String,
    /// The zero of the millisecond clocks below.
    epoch: Instant,
    /// Whether the last checkout (or the start-up connection) failed.
    down: AtomicBool,
    /// Until when (ms since `epoch`) callers skip the standby without trying it.
    skip_until_ms: AtomicU64,
    /// When (ms since `epoch`, plus one) the last WARN was logged; 0 for never.
    warned_at_ms: AtomicU64,
}

/// Logs a failed connection attempt of the read pool at debug only: the read pool's own
/// rate-limited WARN says the standby is away, and r2d2 retries each attempt several times.
#[derive(Debug)]
struct DebugOnError;

impl r2d2::HandleError<postgres::Error> for DebugOnError {
    fn handle_error(&self, error: postgres::Error) {
        log::debug!("read-replica-connect-error error={}", describe(&error));
    }
}

/// Builds the read pool of at most `size` connections. Like [`super::pool`], it opens one
/// connection first; a configuration error (unusable TLS options, a failed handshake) stops the
/// start, but an unreachable standby does not: it is marked down, and lists use the primary until
/// it answers.
pub fn read_pool(url: &str, application_name: &str, size: u32) -> Result<ReadPool, Error> {
    let target = target(url, application_name)?;
    let unreachable = match target.config.connect(target.connector.clone()) {
        Ok(client) => {
            drop(client);
            None
        }
        Err(e) => match target.connect_error(&e) {
            error if error.is_configuration() => return Err(error),
            error => Some(error),
        },
    };
    let name = target.name.clone();
    let manager = PostgresConnectionManager::new(target.config, target.connector);
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(CHECKOUT_TIMEOUT)
        // Unlike the primary's pool, each checkout is tested (one empty query): a connection the
        // standby dropped (a restart, a failover) would otherwise fail the list it was handed to
        // with a 503, where a failed test lets it fall back to the primary.
        .test_on_check_out(true)
        .connection_customizer(Box::new(SessionSettings))
        .error_handler(Box::new(DebugOnError))
        .build(manager)
        .map_err(Error::Checkout)?;
    let reads = ReadPool {
        inner: Arc::new(Inner {
            pool,
            target: name,
            epoch: Instant::now(),
            down: AtomicBool::new(false),
            skip_until_ms: AtomicU64::new(0),
            warned_at_ms: AtomicU64::new(0),
        }),
    };
    match unreachable {
        Some(error) => reads.mark_down(&error.to_string()),
        None => log::info!("read-replica-connected target={}", reads.inner.target),
    }
    Ok(reads)
}

impl ReadPool {
    /// A connection to the standby, or `None` when it is marked down or does not answer within
    /// [`CHECKOUT_TIMEOUT`]: the caller then uses the primary.
    pub fn checkout(&self) -> Option<PooledClient> {
        let inner = &self.inner;
        let now = inner.now_ms();
        let skip_until = inner.skip_until_ms.load(Ordering::Acquire);
        if now < skip_until {
            return None;
        }
        // A standby that was down gets one prober at a time: the others keep skipping it while
        // the probe runs, and the probe's own failure moves the window on.
        if inner.down.load(Ordering::Acquire) {
            let probing_until = now + millis(RETRY_AFTER + CHECKOUT_TIMEOUT);
            let claimed = inner.skip_until_ms.compare_exchange(
                skip_until,
                probing_until,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if claimed.is_err() {
                return None;
            }
        }
        match inner.pool.get_timeout(CHECKOUT_TIMEOUT) {
            Ok(client) => {
                if inner.down.swap(false, Ordering::AcqRel) {
                    inner.skip_until_ms.store(0, Ordering::Release);
                    log::info!("read-replica-available target={}", inner.target);
                }
                Some(client)
            }
            Err(e) => {
                self.mark_down(&e.to_string());
                None
            }
        }
    }

    /// Whether the standby answered its last checkout (for `/healthz`). It never waits on the
    /// standby, which may hang rather than refuse: while it is marked down, a probe (the one of
    /// [`ReadPool::checkout`]) runs on a thread of its own, and a later call sees its outcome.
    pub fn is_up(&self) -> bool {
        let inner = &self.inner;
        if inner.down.load(Ordering::Acquire)
            && inner.now_ms() >= inner.skip_until_ms.load(Ordering::Acquire)
        {
            let reads = self.clone();
            let probe = std::thread::Builder::new()
                .name("read-replica-probe".into())
                .spawn(move || drop(reads.checkout()));
            if let Err(e) = probe {
                log::debug!("read-replica-probe-not-started error={e}");
            }
        }
        !inner.down.load(Ordering::Acquire)
    }

    /// Skips the standby for [`RETRY_AFTER`] and logs why, at most once per [`WARN_EVERY`].
    fn mark_down(&self, error: &str) {
        let inner = &self.inner;
        let now = inner.now_ms();
        inner.down.store(true, Ordering::Release);
        inner
            .skip_until_ms
            .store(now + millis(RETRY_AFTER), Ordering::Release);
        let warned = inner.warned_at_ms.load(Ordering::Acquire);
        let due = warned == 0 || now + 1 >= warned + millis(WARN_EVERY);
        if due
            && inner
                .warned_at_ms
                .compare_exchange(warned, now + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            log::warn!(
                "read-replica-unavailable target={} fallback=primary retry_after_secs={} \
                 error=\"{error}\"",
                inner.target,
                RETRY_AFTER.as_secs()
            );
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    /// A port on 127.0.0.1 that refuses connections: bound, noted, released.
    fn refused_port() -> u16 {
        // This unwrap is OK, because binding port 0 on loopback is the test's own setup.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // This unwrap is OK, because a bound listener has an address.
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn unreachable_replica_at_start_up_is_skipped_without_waiting() {
        let url = format!("postgres://postgres@127.0.0.1:{}/postmand", refused_port());
        let reads =
            read_pool(&url, "t", 1).expect("an unreachable replica does not stop the start");
        let started = Instant::now();
        for _ in 0..3 {
            assert!(reads.checkout().is_none());
        }
        assert!(!reads.is_up());
        assert!(
            started.elapsed() < CHECKOUT_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn unusable_tls_options_stop_the_start() {
        let url = "postgres://postgres@127.0.0.1:1/postmand?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt";
        assert!(matches!(
            read_pool(url, "t", 1).map(|_| ()),
            Err(Error::InvalidUrl { .. })
        ));
    }
}
