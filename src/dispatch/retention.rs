//! Retention, a worker thread. It always keeps the daily partitions of `delivery_attempts`
//! ready a week ahead (`store::partitions`), and deletes idempotency keys older than
//! `POSTMAND_IDEMPOTENCY_HOURS` (they are ignored once expired; this only keeps the table
//! small). With `POSTMAND_RETENTION_DAYS` set it also drops the attempt partitions whose every
//! row is older than that, whole; then deletes succeeded and failed deliveries, with their
//! remaining attempts, once they have been unchanged for that many days, and then events that
//! old which no delivery refers to any more. Pending deliveries are never deleted, though their
//! attempts older than the retention period go with their day's partition.
//!
//! It deletes in batches of [`BATCH`] rows, each its own short transaction that skips rows
//! locked by others, with a pause between batches, so it never holds locks that the API or the
//! claim would wait on for long. Several workers may run it at once; they skip each other's rows.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::db::{self, Pool};
use crate::liveness::Part;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{self, deliveries, events, idempotency, partitions};

/// Rows deleted per statement.
pub const BATCH: i64 = 500;

/// Pause between two batches of one sweep.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// Pause between sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `POSTMAND_RETENTION_DAYS`: finished deliveries and events; `None` keeps them for good.
    pub days: Option<u32>,
    /// `POSTMAND_IDEMPOTENCY_HOURS`: idempotency keys.
    pub idempotency_hours: u32,
}

/// Starts the retention thread, counted in `part` while it runs.
pub fn spawn(
    policy: Policy,
    pool: Pool,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    part: Arc<Part>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            // The dispatchers depend on this thread's partitions ahead: /healthz shows it gone.
            let _running = part.running();
            log::info!(
                "retention-started days={} idempotency_hours={}",
                policy.days.map_or("off".to_string(), |d| d.to_string()),
                policy.idempotency_hours
            );
            loop {
                let deleted = sweep(policy, &pool, &shutdown);
                metrics.retention_deleted(deleted.deliveries);
                if deleted != Deleted::default() {
                    log::info!(
                        "retention-sweep attempt_partitions={} deliveries={} events={} \
                         idempotency_keys={}",
                        deleted.attempt_partitions,
                        deleted.deliveries,
                        deleted.events,
                        deleted.keys
                    );
                }
                if shutdown.wait_timeout(SWEEP_EVERY) {
                    return;
                }
            }
        })
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Whole days of attempts (partitions of `delivery_attempts`).
    pub attempt_partitions: u64,
    /// Finished deliveries (their attempts went with them).
    pub deliveries: u64,
    /// Events no delivery referred to.
    pub events: u64,
    /// Expired idempotency keys.
    pub keys: u64,
}

/// One sweep: the attempt partitions ahead, then whole days of old attempts, deliveries, the
/// events they leave unreferenced, and expired keys.
pub fn sweep(policy: Policy, pool: &Pool, shutdown: &Shutdown) -> Deleted {
    let hours = i32::try_from(policy.idempotency_hours).unwrap_or(i32::MAX);
    let mut deleted = Deleted::default();
    upkeep("create-partitions", pool, |client| {
        let created = partitions::create_ahead(client, partitions::DAYS_AHEAD)?;
        if created > 0 {
            log::info!("attempt-partitions-created count={created}");
        }
        Ok(())
    });
    if let Some(days) = policy.days {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        upkeep("drop-partitions", pool, |client| {
            for dropped in partitions::drop_older_than(client, days)? {
                log::info!(
                    "attempt-partition-dropped partition={} approximate_rows={}",
                    dropped.name,
                    dropped.approximate_rows
                );
                deleted.attempt_partitions += 1;
            }
            Ok(())
        });
        deleted.deliveries = in_batches("deliveries", pool, shutdown, |client| {
            deliveries::delete_finished_before(client, days, BATCH)
        });
        deleted.events = in_batches("events", pool, shutdown, |client| {
            events::delete_unreferenced_before(client, days, BATCH)
        });
    }
    deleted.keys = in_batches("idempotency_keys", pool, shutdown, |client| {
        idempotency::delete_expired(client, hours, BATCH)
    });
    deleted
}

/// Runs one upkeep step on a pooled connection; a failure (a lock not granted in time, the
/// database away) is logged and the step runs again at the next sweep.
fn upkeep(
    step: &str,
    pool: &Pool,
    run: impl FnOnce(&mut postgres::Client) -> Result<(), store::Error>,
) {
    let done = db::checkout(pool)
        .map_err(|e| e.to_string())
        .and_then(|mut client| run(&mut client).map_err(|e| e.to_string()));
    if let Err(e) = done {
        log::warn!("retention-error step={step} error={e}");
    }
}

/// Runs `batch` until it deletes fewer than [`BATCH`] rows; returns how many went.
fn in_batches(
    table: &str,
    pool: &Pool,
    shutdown: &Shutdown,
    batch: impl Fn(&mut postgres::Client) -> Result<u64, store::Error>,
) -> u64 {
    let mut total = 0;
    while !shutdown.is_requested() {
        let deleted = db::checkout(pool)
            .map_err(|e| e.to_string())
            .and_then(|mut client| batch(&mut client).map_err(|e| e.to_string()));
        match deleted {
            Ok(n) => {
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                log::warn!("retention-error table={table} error={e}");
                break;
            }
        }
        if shutdown.wait_timeout(BATCH_PAUSE) {
            break;
        }
    }
    total
}
