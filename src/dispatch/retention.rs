//! Retention (`POSTMAND_RETENTION_DAYS`): a worker thread that deletes succeeded and failed
//! deliveries, with their attempts, once they have been unchanged for that many days. Pending
//! deliveries are never touched.
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
use crate::store::deliveries;

/// Deliveries deleted per statement.
pub const BATCH: i64 = 500;

/// Pause between two batches of one sweep.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// Pause between sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Starts the retention thread.
pub fn spawn(
    days: u32,
    pool: Pool,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            log::info!("retention-started days={days}");
            loop {
                let deleted = sweep(days, &pool, &shutdown);
                metrics.retention_deleted(deleted);
                if deleted > 0 {
                    log::info!("retention-sweep deleted={deleted} days={days}");
                }
                if shutdown.wait_timeout(SWEEP_EVERY) {
                    return;
                }
            }
        })
}

/// Deletes batches until one comes back short; returns how many deliveries went.
pub fn sweep(days: u32, pool: &Pool, shutdown: &Shutdown) -> u64 {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let mut total = 0;
    while !shutdown.is_requested() {
        let batch = db::checkout(pool)
            .map_err(|e| e.to_string())
            .and_then(|mut client| {
                deliveries::delete_finished_before(&mut *client, days, BATCH)
                    .map_err(|e| e.to_string())
            });
        match batch {
            Ok(n) => {
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                log::warn!("retention-error error={e}");
                break;
            }
        }
        if shutdown.wait_timeout(BATCH_PAUSE) {
            break;
        }
    }
    total
}
