//! The dashboard's aggregates (`ui`): what the API's lists do not already answer. Each reads a
//! bounded slice through an index, never a whole table: the newest deliveries by the
//! creation-time index, an hour or a day of attempts by its creation-time indexes (index-only
//! counts where the index has every column), and `webhook_failures`, which holds a row per
//! failing webhook only. `tests/ui_plans.rs` checks every plan on a seeded database.

use chrono::{DateTime, Utc};
use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::Error;

/// The webhooks failing right now, longest first, with the state of each.
pub const FAILING: &str = "SELECT w.id, w.name, w.url, w.active, w.disabled_reason, \
    f.failing_since, f.failures \
    FROM webhook_failures f JOIN webhooks w ON w.id = f.webhook_id \
    ORDER BY f.failing_since, w.id LIMIT $1";

/// The status of the newest `$1` deliveries, counted: read down the creation-time index, so
/// the cost is `$1` rows however large the table. (An exact count by status would read the
/// whole table; the pending count comes from the queue's partial index instead.)
pub const RECENT_STATUSES: &str = "SELECT r.status, count(*)::bigint AS deliveries, \
    min(r.created_at) AS oldest \
    FROM (SELECT status, created_at FROM deliveries \
          ORDER BY created_at DESC, id DESC LIMIT $1) r \
    GROUP BY r.status";

/// Attempts per minute over the hour before `$1` (the database's `now()`, read by [`clock`])
/// from `$2` (an hour before it), and how many failed: two index-only counts, one down the
/// creation-time index of every attempt and one down the partial index of failed ones. The
/// bound is a value, not `now() - interval`, so that the planner leaves out every older day's
/// partition: with `now()`, this statement planned all of them (56 ms at 373 partitions, a year
/// with retention off, against 0.6 ms). `ago` is whole minutes before `$1` (0 = the last
/// 60 s); `date_part` is a float, which PostgreSQL computes several times faster than
/// `extract`'s numeric.
pub const ATTEMPTS_PER_MINUTE: &str = "SELECT a.ago, a.attempts, coalesce(f.failed, 0) AS failed \
    FROM (SELECT floor(date_part('epoch', $1::timestamptz - created_at) / 60)::integer AS ago, \
                 count(*)::bigint AS attempts \
          FROM delivery_attempts WHERE created_at > $2::timestamptz GROUP BY 1) a \
    LEFT JOIN (SELECT floor(date_part('epoch', $1::timestamptz - created_at) / 60)::integer AS ago, \
                      count(*)::bigint AS failed \
               FROM delivery_attempts \
               WHERE created_at > $2::timestamptz AND NOT success GROUP BY 1) f \
    USING (ago)";

/// Success per hour over the 24 h before `$3` (the database's `now()`, read by [`clock`]) of
/// each webhook in `$1`, measured on at most the latest `$2` attempts of each hour: one short
/// walk down the webhook's creation-time index per webhook and hour, so a page costs at most
/// webhooks x 24 x `$2` rows, however busy the day was. (Exact counts read every attempt of
/// the day: 0.5 s for 50 webhooks at 12,000 attempts an hour.) `$4`, a day before `$3`, is a
/// value the planner leaves out older days' partitions by (see [`ATTEMPTS_PER_MINUTE`]). An hour
/// with no more attempts than the sample is counted exactly. `ago` is whole hours before `$3`;
/// hours without attempts are absent.
pub const HOURLY_SUCCESS: &str = "SELECT w.id AS webhook_id, h.ago, s.attempts, s.failed \
    FROM unnest($1::uuid[]) AS w(id) \
    CROSS JOIN generate_series(0, 23) AS h(ago) \
    CROSS JOIN LATERAL ( \
        SELECT count(*)::bigint AS attempts, \
               count(*) FILTER (WHERE NOT a.success)::bigint AS failed \
        FROM (SELECT success FROM delivery_attempts \
              WHERE webhook_id = w.id \
                AND created_at > $4::timestamptz \
                AND created_at <= $3::timestamptz - h.ago * interval '1 hour' \
                AND created_at > $3::timestamptz - (h.ago + 1) * interval '1 hour' \
              ORDER BY created_at DESC LIMIT $2) a) s \
    WHERE s.attempts > 0";

/// The database's `now()`, and `$1` before it.
const CLOCK: &str = "SELECT now(), now() - $1::interval";

/// The database's clock now, and `back` (an interval, e.g. `1 hour`) before it: the times the
/// aggregates count from, passed as values.
pub fn clock(
    client: &mut impl GenericClient,
    back: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let row = client.query_typed_one(CLOCK, &[(&back, Type::TEXT)])?;
    Ok((row.get(0), row.get(1)))
}

/// Since when one webhook has been failing, and how many failed attempts.
const FAILURE: &str = "SELECT failing_since, failures FROM webhook_failures WHERE webhook_id = $1";

/// How many webhooks there are, and how many are active (a small table).
const WEBHOOK_COUNTS: &str = "SELECT count(*)::bigint AS webhooks, \
    count(*) FILTER (WHERE active)::bigint AS active FROM webhooks";

/// A webhook whose latest attempts all failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The webhook.
    pub webhook_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Whether it is still active.
    pub active: bool,
    /// Why postmand disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// Since when (its first failure after its last success).
    pub failing_since: DateTime<Utc>,
    /// Failed attempts since then.
    pub failures: i32,
}

/// Deliveries of one status among the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// `pending`, `succeeded` or `failed` (the CHECK constraint's names).
    pub status: String,
    /// How many.
    pub deliveries: i64,
    /// When the oldest of them was created.
    pub oldest: DateTime<Utc>,
}

/// Attempts in one whole minute or hour `ago` units before now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Units before now: 0 is the latest.
    pub ago: i32,
    /// Every attempt.
    pub attempts: i64,
    /// Those that failed.
    pub failed: i64,
}

/// The webhooks failing right now, at most `limit`, longest failing first.
pub fn failing(client: &mut impl GenericClient, limit: i64) -> Result<Vec<Failing>, Error> {
    let rows = client.query_typed(FAILING, &[(&limit, Type::INT8)])?;
    Ok(rows
        .iter()
        .map(|row| Failing {
            webhook_id: row.get("id"),
            name: row.get("name"),
            url: row.get("url"),
            active: row.get("active"),
            disabled_reason: row.get("disabled_reason"),
            failing_since: row.get("failing_since"),
            failures: row.get("failures"),
        })
        .collect())
}

/// The newest `newest` deliveries counted by status.
pub fn recent_statuses(
    client: &mut impl GenericClient,
    newest: i64,
) -> Result<Vec<StatusCount>, Error> {
    let rows = client.query_typed(RECENT_STATUSES, &[(&newest, Type::INT8)])?;
    Ok(rows
        .iter()
        .map(|row| StatusCount {
            status: row.get("status"),
            deliveries: row.get("deliveries"),
            oldest: row.get("oldest"),
        })
        .collect())
}

fn bucket(row: &Row) -> Bucket {
    Bucket {
        ago: row.get("ago"),
        attempts: row.get("attempts"),
        failed: row.get("failed"),
    }
}

/// Attempts per minute over the last hour (minutes without attempts are absent).
pub fn attempts_per_minute(client: &mut impl GenericClient) -> Result<Vec<Bucket>, Error> {
    let (now, hour_ago) = clock(client, "1 hour")?;
    Ok(client
        .query_typed(
            ATTEMPTS_PER_MINUTE,
            &[(&now, Type::TIMESTAMPTZ), (&hour_ago, Type::TIMESTAMPTZ)],
        )?
        .iter()
        .map(bucket)
        .collect())
}

/// Success per hour over the last day of each of `webhooks`, from at most `sample` attempts
/// of each hour (see [`HOURLY_SUCCESS`]; hours without attempts are absent).
pub fn hourly_success(
    client: &mut impl GenericClient,
    webhooks: &[Uuid],
    sample: i64,
) -> Result<Vec<(Uuid, Bucket)>, Error> {
    let (now, day_ago) = clock(client, "24 hours")?;
    let rows = client.query_typed(
        HOURLY_SUCCESS,
        &[
            (&webhooks, Type::UUID_ARRAY),
            (&sample, Type::INT8),
            (&now, Type::TIMESTAMPTZ),
            (&day_ago, Type::TIMESTAMPTZ),
        ],
    )?;
    Ok(rows
        .iter()
        .map(|row| (row.get("webhook_id"), bucket(row)))
        .collect())
}

/// Since when webhook `id` has been failing and how many failed attempts, if it is.
pub fn failure(
    client: &mut impl GenericClient,
    id: Uuid,
) -> Result<Option<(DateTime<Utc>, i32)>, Error> {
    let row = client.query_typed_opt(FAILURE, &[(&id, Type::UUID)])?;
    Ok(row.map(|row| (row.get("failing_since"), row.get("failures"))))
}

/// How many webhooks, and how many of them active.
pub fn webhook_counts(client: &mut impl GenericClient) -> Result<(i64, i64), Error> {
    let row = client.query_typed_one(WEBHOOK_COUNTS, &[])?;
    Ok((row.get("webhooks"), row.get("active")))
}
