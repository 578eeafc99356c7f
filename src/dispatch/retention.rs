//! Retention, a worker thread. It always deletes idempotency keys older than
//! `POSTMAND_IDEMPOTENCY_HOURS` (they are ignored once expired; this only keeps the table
//! small). With `POSTMAND_RETENTION_DAYS` set it also deletes succeeded and failed deliveries,
//! with their attempts, once they have been unchanged for that many days, and then events that
//! old which no delivery refers to any more. Pending deliveries are never touched.
//!
//! It deletes in batches of [`BATCH`] rows, each its own short transaction that skips rows
//! locked by others, with a pause between batches, so it never holds locks that the API or the
//! claim would wait on for long. Several workers may run it at once; they skip each other's rows.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::db::{self, Pool};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{self, deliveries, events, idempotency};

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

/// Starts the retention thread.
pub fn spawn(
    policy: Policy,
    pool: Pool,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
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
                        "retention-sweep deliveries={} events={} idempotency_keys={}",
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
    /// Finished deliveries (their attempts went with them).
    pub deliveries: u64,
    /// Events no delivery referred to.
    pub events: u64,
    /// Expired idempotency keys.
    pub keys: u64,
}

/// One sweep: deliveries, then the events they leave unreferenced, then expired keys.
pub fn sweep(policy: Policy, pool: &Pool, shutdown: &Shutdown) -> Deleted {
    let hours = i32::try_from(policy.idempotency_hours).unwrap_or(i32::MAX);
    let mut deleted = Deleted::default();
    if let Some(days) = policy.days {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
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
