//! Issue 17: the time to drop a day of history, whichever shape `delivery_attempts` has.
//!
//! Partitioned by day (migration 010: `delivery_attempts_pYYYYMMDD`, one per UTC day), the
//! seeded days get their partitions before the seed, and a day goes with `DROP TABLE` of the
//! oldest partition. A plain table loses a day the way retention does today: the statement
//! `dispatch::retention` runs (`store::deliveries::DELETE_FINISHED`, its attempts going by the
//! foreign key's cascade) in batches of `retention::BATCH` until a batch comes back short,
//! leaving dead rows for VACUUM to clear (the vacuum debt, `n_dead_tup`). The batches run back
//! to back, without the 50 ms pause retention leaves between them: the database's time alone. This file is all of
//! it; when `store::partitions` lands, its functions can replace the SQL here.

use super::*;

/// What dropping one day cost.
pub(crate) struct Dropped {
    /// How: "DROP TABLE <partition>" or "DELETE in batches of 500".
    pub(crate) how: String,
    pub(crate) ms: f64,
    /// Deliveries and attempts gone (a partition drop leaves deliveries alone).
    pub(crate) deliveries: u64,
    pub(crate) attempts: u64,
    /// What it added to `n_dead_tup` of deliveries and delivery_attempts (all partitions),
    /// read right afterwards: the vacuum debt.
    pub(crate) dead_rows: i64,
}

/// Whether `delivery_attempts` is a partitioned table (`relkind = 'p'`).
pub(crate) fn partitioned(client: &mut postgres::Client) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT coalesce((SELECT relkind = 'p' FROM pg_class \
             WHERE oid = to_regclass('delivery_attempts')), false)",
            &[],
        )?
        .get(0))
}

/// With a partitioned `delivery_attempts`, makes the daily partitions of the last `days` days
/// (and today's and tomorrow's) that do not exist yet, so the seed and the figures' messages
/// have somewhere to go.
pub(crate) fn prepare(client: &mut postgres::Client, days: i32) -> Result<()> {
    if !partitioned(client)? {
        return Ok(());
    }
    let rows = client.query(
        "SELECT to_char(d, 'YYYYMMDD'), to_char(d, 'YYYY-MM-DD'), \
                to_char(d + interval '1 day', 'YYYY-MM-DD') \
         FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - $1::integer * interval '1 day', \
                              date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day', \
                              interval '1 day') AS d",
        &[&days],
    )?;
    for r in rows {
        let (name, from, to): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS delivery_attempts_p{name} PARTITION OF delivery_attempts \
             FOR VALUES FROM ('{from} 00:00+00') TO ('{to} 00:00+00')"
        ))?;
    }
    Ok(())
}

/// Drops the oldest day of a database seeded over `days` days, by partition or by retention's
/// batched DELETE.
pub(crate) fn drop_oldest_day(client: &mut postgres::Client, days: i32) -> Result<Dropped> {
    let dead_before = dead_rows(client)?;
    let mut dropped = if partitioned(client)? {
        drop_partition(client)?
    } else {
        delete_day(client, days)?
    };
    dropped.dead_rows = dead_rows(client)? - dead_before;
    Ok(dropped)
}

/// `n_dead_tup` of deliveries and every delivery_attempts table. Counts reach
/// pg_stat_user_tables when a backend goes idle, at most once a second unless forced
/// (PostgreSQL 15's pg_stat_force_next_flush; an older server just lags).
fn dead_rows(client: &mut postgres::Client) -> Result<i64> {
    let _ = client.batch_execute("SELECT pg_stat_force_next_flush()");
    Ok(client
        .query_one(
            "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables \
             WHERE relname = 'deliveries' OR relname LIKE 'delivery_attempts%'",
            &[],
        )?
        .get(0))
}

/// Drops the partition of the oldest whole day: the day after the one of the oldest attempt
/// (the seed starts at this time of day, `days` days ago), so a day's worth goes, as with
/// [`delete_day`].
fn drop_partition(client: &mut postgres::Client) -> Result<Dropped> {
    let oldest: String = client
        .query_one(
            "SELECT 'delivery_attempts_p' || to_char(date_trunc('day', min(created_at) \
                 AT TIME ZONE 'UTC') + interval '1 day', 'YYYYMMDD') \
             FROM delivery_attempts",
            &[],
        )?
        .try_get::<_, Option<String>>(0)?
        .ok_or("delivery_attempts is empty")?;
    let attempts: i64 = client
        .query_one(&format!("SELECT count(*) FROM {oldest}"), &[])?
        .get(0);
    let started = Instant::now();
    client.batch_execute(&format!("DROP TABLE {oldest}"))?;
    Ok(Dropped {
        how: format!("DROP TABLE {oldest}"),
        ms: started.elapsed().as_secs_f64() * 1000.0,
        deliveries: 0,
        attempts: attempts as u64,
        dead_rows: 0,
    })
}

fn delete_day(client: &mut postgres::Client, days: i32) -> Result<Dropped> {
    use postmand::dispatch::retention::BATCH;
    use postmand::store::deliveries::DELETE_FINISHED;
    // The seed spreads rows over `days` days up to now: older than `days - 1` days is its
    // oldest day.
    let keep_days = days - 1;
    let count = |client: &mut postgres::Client, table: &str| -> Result<i64> {
        Ok(client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get(0))
    };
    let attempts_before = count(client, "delivery_attempts")?;
    let statement = client.prepare(DELETE_FINISHED)?;
    let started = Instant::now();
    let mut deliveries = 0;
    loop {
        let n = client.execute(&statement, &[&keep_days, &BATCH])?;
        deliveries += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let attempts = attempts_before - count(client, "delivery_attempts")?;
    Ok(Dropped {
        how: format!("DELETE in batches of {BATCH}"),
        ms,
        deliveries,
        attempts: attempts as u64,
        dead_rows: 0,
    })
}
