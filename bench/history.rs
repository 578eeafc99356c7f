//! Issue 17: the time to drop a day of history, the way retention does it.
//!
//! `delivery_attempts` is partitioned by UTC day (migration 10); the seeded days get their
//! partitions before the seed (`postmand_create_attempt_partitions`). A day then goes in
//! retention's two steps, each timed: its attempts with `DROP TABLE` of its partition
//! (`store::partitions::drop_older_than`), then its finished deliveries, with whatever attempts
//! remain, in retention's batches (`store::deliveries::delete_finished_before`), back to back
//! without retention's 50 ms pause: the database's time alone. Dead rows are what each step
//! leaves for VACUUM (`n_dead_tup`): the vacuum debt.

use super::*;

/// What one step of dropping a day cost.
pub(crate) struct Dropped {
    /// Which step: "attempts (DROP TABLE of its partition)" or "deliveries (DELETE in batches
    /// of 500)".
    pub(crate) how: String,
    pub(crate) ms: f64,
    /// Rows gone.
    pub(crate) rows: u64,
    /// What it added to `n_dead_tup` of deliveries and delivery_attempts (all partitions),
    /// read right afterwards: the vacuum debt.
    pub(crate) dead_rows: i64,
}

/// Makes the daily partitions of the last `days` days (and up to tomorrow) that do not exist
/// yet, so the seed and the figures' messages have somewhere to go.
pub(crate) fn prepare(client: &mut postgres::Client, days: i32) -> Result<()> {
    client.execute(
        "SELECT postmand_create_attempt_partitions(now() - $1::integer * interval '1 day', \
             now() + interval '1 day')",
        &[&days],
    )?;
    Ok(())
}

/// Drops the oldest whole day of a database seeded over `days` days (up to now, from this time
/// of day `days` days ago): first, untimed, the part-day before it; then, timed, the whole
/// day's attempts and its deliveries.
pub(crate) fn drop_oldest_day(client: &mut postgres::Client, days: i32) -> Result<[Dropped; 2]> {
    use postmand::dispatch::retention::BATCH;
    use postmand::store::{deliveries, partitions};
    let count = |client: &mut postgres::Client, table: &str| -> Result<i64> {
        Ok(client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get(0))
    };
    let delete_deliveries = |client: &mut postgres::Client, keep_days: i32| -> Result<u64> {
        let mut n = 0;
        loop {
            let batch = deliveries::delete_finished_before(client, keep_days, BATCH)?;
            n += batch;
            if batch < BATCH as u64 {
                return Ok(n);
            }
        }
    };
    // Upkeep waits 500 ms for its table lock and otherwise tries again at the next sweep, as
    // here: autovacuum, woken by the deletes below, can hold the partition that long (it yields
    // to a waiting lock only after deadlock_timeout, 1 s). The time is the successful try's.
    let drop_older_than = |client: &mut postgres::Client, days: i32| {
        let mut tries = 0;
        loop {
            let started = Instant::now();
            match partitions::drop_older_than(client, days) {
                Err(e) if e.is_lock_timeout() && tries < 20 => {
                    tries += 1;
                    eprintln!("bench: partition drop: lock timeout, trying again ({tries})");
                }
                other => return Ok::<_, postmand::store::Error>((other?, started.elapsed())),
            }
        }
    };
    // Retention at `days - 1` days takes the part-day; at `days - 2` the whole day after it.
    drop_older_than(client, days - 1)?;
    delete_deliveries(client, days - 1)?;

    let attempts_before = count(client, "delivery_attempts")?;
    let dead_before = dead_rows(client)?;
    let (gone, took) = drop_older_than(client, days - 2)?;
    let ms = took.as_secs_f64() * 1000.0;
    let attempts = Dropped {
        how: format!(
            "attempts (DROP TABLE {})",
            gone.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ms,
        rows: (attempts_before - count(client, "delivery_attempts")?) as u64,
        dead_rows: dead_rows_added(&dead_before, &dead_rows(client)?),
    };

    let dead_before = dead_rows(client)?;
    let started = Instant::now();
    let rows = delete_deliveries(client, days - 2)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let deliveries = Dropped {
        how: format!("deliveries (DELETE in batches of {BATCH})"),
        ms,
        rows,
        dead_rows: dead_rows_added(&dead_before, &dead_rows(client)?),
    };
    Ok([attempts, deliveries])
}

/// `n_dead_tup` of deliveries and of each delivery_attempts table, by table. Counts reach
/// pg_stat_user_tables when a backend goes idle, at most once a second unless forced
/// (PostgreSQL 15's pg_stat_force_next_flush; an older server just lags).
fn dead_rows(client: &mut postgres::Client) -> Result<std::collections::HashMap<String, i64>> {
    let _ = client.batch_execute("SELECT pg_stat_force_next_flush()");
    Ok(client
        .query(
            "SELECT relname::text, n_dead_tup FROM pg_stat_user_tables \
             WHERE relname = 'deliveries' OR relname LIKE 'delivery\\_attempts%'",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The dead rows a step added to the tables that remain after it (a dropped table takes its
/// dead rows with it).
fn dead_rows_added(
    before: &std::collections::HashMap<String, i64>,
    after: &std::collections::HashMap<String, i64>,
) -> i64 {
    after
        .iter()
        .map(|(table, dead)| dead - before.get(table).copied().unwrap_or(0))
        .sum()
}
