//! Every statement that touches `deliveries`.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Page};
use crate::model::{Delivery, DeliveryStatus};

/// Queues a delivery, due now. The client never sets attempts, status or times (seed defect 4).
const INSERT: &str = "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, \
    delivery_attempts, status, created_at, updated_at) \
    VALUES ($1, $2, $3, now(), 0, 'pending', now(), now()) \
    RETURNING scheduled_at, created_at, updated_at";

/// One delivery by id; columns in the order [`from_row`] reads them.
const GET: &str = "SELECT id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at FROM deliveries WHERE id = $1";

/// Deletes a delivery and its attempts (ON DELETE CASCADE).
const DELETE: &str = "DELETE FROM deliveries WHERE id = $1";

/// Newest first, ties broken by id so paging never skips or repeats a row. A NULL filter
/// parameter means "no filter".
const LIST: &str = "SELECT id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at FROM deliveries \
    WHERE ($1::uuid IS NULL OR webhook_id = $1) \
    AND ($2::varchar IS NULL OR status = $2) \
    AND ($3::timestamptz IS NULL OR created_at > $3) \
    AND ($4::timestamptz IS NULL OR created_at >= $4) \
    AND ($5::timestamptz IS NULL OR created_at < $5) \
    AND ($6::timestamptz IS NULL OR created_at <= $6) \
    ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8";

/// Sends a finished delivery round again: pending, due now, a fresh attempt budget. Its
/// attempts stay. Only finished deliveries move; a pending one may be in flight right now.
const RETRY: &str = "UPDATE deliveries SET status = 'pending', delivery_attempts = 0, \
    scheduled_at = now(), updated_at = now() \
    WHERE id = $1 AND status IN ('succeeded', 'failed') \
    RETURNING id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at";

/// Filters of the delivery list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only deliveries of this webhook.
    pub webhook_id: Option<Uuid>,
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Creation-time bounds.
    pub created: CreatedRange,
}

/// What [`retry`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The delivery is pending again.
    Requeued(Delivery),
    /// The delivery is still pending; it was left alone.
    StillPending,
    /// No delivery has that id.
    NotFound,
}

fn from_row(row: &Row) -> Result<Delivery, Error> {
    let status: String = row.get(5);
    Ok(Delivery {
        id: row.get(0),
        webhook_id: row.get(1),
        payload: row.get(2),
        scheduled_at: row.get(3),
        delivery_attempts: row.get(4),
        // The CHECK constraint of migration 2 admits only the three known names.
        status: status.parse().map_err(Error::UnknownStatus)?,
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

/// Queues a payload for a webhook. A webhook that does not exist is a foreign-key violation
/// (see [`Error::is_foreign_key_violation`]).
pub fn insert(
    client: &mut impl GenericClient,
    webhook_id: Uuid,
    payload: String,
) -> Result<Delivery, Error> {
    let id = Uuid::new_v4();
    let row = client.query_typed_one(
        INSERT,
        &[
            (&id, Type::UUID),
            (&webhook_id, Type::UUID),
            (&payload, Type::TEXT),
        ],
    )?;
    Ok(Delivery {
        id,
        webhook_id,
        payload,
        scheduled_at: row.get(0),
        delivery_attempts: 0,
        status: DeliveryStatus::Pending,
        created_at: row.get(1),
        updated_at: row.get(2),
    })
}

/// One delivery by id.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Delivery>, Error> {
    client
        .query_opt(GET, &[&id])?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Deletes a delivery and its attempts. Returns whether it existed.
pub fn delete(client: &mut impl GenericClient, id: Uuid) -> Result<bool, Error> {
    Ok(client.execute_typed(DELETE, &[(&id, Type::UUID)])? == 1)
}

/// One page of deliveries, newest first.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
) -> Result<Vec<Delivery>, Error> {
    let c = &filter.created;
    let status = filter.status.map(DeliveryStatus::as_str);
    let rows = client.query_typed(
        LIST,
        &[
            (&filter.webhook_id, Type::UUID),
            (&status, Type::VARCHAR),
            (&c.gt, Type::TIMESTAMPTZ),
            (&c.gte, Type::TIMESTAMPTZ),
            (&c.lt, Type::TIMESTAMPTZ),
            (&c.lte, Type::TIMESTAMPTZ),
            (&page.limit, Type::INT8),
            (&page.offset, Type::INT8),
        ],
    )?;
    rows.iter().map(from_row).collect()
}

/// Puts a succeeded or failed delivery back in the queue.
pub fn retry(client: &mut impl GenericClient, id: Uuid) -> Result<RetryOutcome, Error> {
    if let Some(row) = client.query_typed_opt(RETRY, &[(&id, Type::UUID)])? {
        return Ok(RetryOutcome::Requeued(from_row(&row)?));
    }
    Ok(match get(client, id)? {
        Some(_) => RetryOutcome::StillPending,
        None => RetryOutcome::NotFound,
    })
}

/// The channel the API notifies after queueing deliveries and idle dispatchers listen on.
pub const NOTIFY_CHANNEL: &str = "postmand_deliveries";

/// Wakes every listener. Sent on its own connection, never inside an insert's transaction:
/// a NOTIFY takes a database-wide lock at commit and would serialise every insert.
const NOTIFY: &str = "NOTIFY postmand_deliveries";

/// Subscribes to [`NOTIFY`]'s channel.
const LISTEN: &str = "LISTEN postmand_deliveries";

/// At most one due delivery of an active webhook, with its webhook's settings, locked until this
/// transaction ends; concurrent claimers skip it. If the process dies, the row is due again with
/// its attempts unchanged.
///
/// How: for each active webhook not in `$2` (webhooks this worker already keeps busy enough), its
/// `$3` earliest due deliveries are read from the partial index of pending rows (an index range
/// each, so an inactive webhook's backlog is never read); the `$4` earliest of those become an
/// ordered array of candidates, and the first one not locked by another claimer is locked and
/// returned. Going through the array (primary-key lookups in array order) keeps the plan the same
/// whatever the statistics say; `d.status || ''` keeps the partial index of pending rows out of
/// that lookup (with stale statistics the planner scanned it whole for every candidate). Only
/// the delivery row is locked (`FOR UPDATE OF d`): the original also locked the webhook row, so
/// creating a delivery or editing a webhook waited for an HTTP call (behaviour spec 4.3). `$1` is the time to judge "due" at; NULL means `now()`.
const CLAIM_DUE: &str = "SELECT d.id, d.webhook_id, d.payload, d.delivery_attempts, \
    w.url, w.content_type, w.valid_status_codes, w.secret_token, w.max_delivery_attempts, \
    w.delivery_attempt_timeout, w.retry_min_backoff, w.retry_max_backoff \
    FROM unnest(ARRAY( \
        SELECT c.id FROM webhooks aw CROSS JOIN LATERAL ( \
            SELECT p.id, p.scheduled_at FROM deliveries p \
            WHERE p.webhook_id = aw.id AND p.status = 'pending' \
              AND p.scheduled_at <= coalesce($1::timestamptz, now()) \
            ORDER BY p.scheduled_at, p.id LIMIT $3) c \
        WHERE aw.active AND aw.id <> ALL($2::uuid[]) \
        ORDER BY c.scheduled_at, c.id LIMIT $4)) WITH ORDINALITY AS candidate(id, position) \
    JOIN deliveries d ON d.id = candidate.id \
    JOIN webhooks w ON w.id = d.webhook_id \
    WHERE d.status || '' = 'pending' AND d.scheduled_at <= coalesce($1::timestamptz, now()) \
    ORDER BY candidate.position \
    LIMIT 1 \
    FOR UPDATE OF d SKIP LOCKED";

/// Planner settings of a dispatcher's connection (see [`Prepared::new`]). The claim is planned
/// once per connection (`force_generic_plan`): left to choose, PostgreSQL re-planned it on every
/// call (its generic cost looks high only because the LIMITs are parameters), and planning took
/// ~1 ms against 0.1 ms of execution: a third of the database's CPU during a drain. The join
/// settings keep that one plan a walk of the per-webhook index whatever the statistics say.
const CLAIM_SESSION_SETTINGS: &str = "SET enable_hashjoin = off; SET enable_mergejoin = off; \
    SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan";

/// Writes an attempt and the delivery's new state in one statement. Guarded by
/// `status = 'pending'`: only a delivery this transaction claimed can move. The retry time and
/// the attempt's time come from the database clock at the end of the attempt
/// (`clock_timestamp()`), as the original counted the backoff from the end of the attempt.
const RECORD_ATTEMPT: &str = "WITH moved AS ( \
        UPDATE deliveries SET delivery_attempts = delivery_attempts + 1, status = $2, \
            scheduled_at = CASE WHEN $3::bigint IS NULL THEN scheduled_at \
                ELSE clock_timestamp() + $3::bigint * interval '1 millisecond' END, \
            updated_at = clock_timestamp() \
        WHERE id = $1 AND status = 'pending' \
        RETURNING id, webhook_id) \
    INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
        response_status_code, execution_duration, success, error, created_at) \
    SELECT $4, webhook_id, id, $5, $6, $7, $8, $9, $10, clock_timestamp() FROM moved";

/// A claimed delivery with everything needed to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The delivery.
    pub id: Uuid,
    /// Its webhook.
    pub webhook_id: Uuid,
    /// The body to POST.
    pub payload: String,
    /// Attempts made before this one.
    pub delivery_attempts: i32,
    /// The webhook's settings as they are now (re-read on every attempt).
    pub webhook: crate::model::WebhookSettings,
}

/// What one attempt changes: the attempt row and the delivery's next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Id of the new attempt row.
    pub attempt_id: Uuid,
    /// The delivery's status after this attempt.
    pub status: DeliveryStatus,
    /// For a delivery that stays pending: milliseconds until its next attempt.
    pub retry_in_ms: Option<i64>,
    /// The request dump.
    pub raw_request: String,
    /// The response dump.
    pub raw_response: String,
    /// The response's status code, 0 without one.
    pub response_status_code: i32,
    /// Milliseconds to the response headers.
    pub execution_duration: i32,
    /// Whether the status code was a valid one.
    pub success: bool,
    /// Transport error text, empty with a response.
    pub error: String,
}

/// How many candidates the claim considers: per webhook, and in all. Each must exceed the
/// deliveries in flight at once (per webhook, and in all, across processes) plus those finished
/// while a claim runs, or claimers find nothing while work waits behind the locked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Candidates per webhook.
    pub per_webhook: i64,
    /// Candidates in all.
    pub total: i64,
}

/// Locks and returns the earliest due delivery (see [`CLAIM_DUE`]), or `None` when nothing is
/// due outside `excluded`.
pub fn claim_due(
    client: &mut impl GenericClient,
    now: Option<chrono::DateTime<chrono::Utc>>,
    excluded: &[Uuid],
    depth: Depth,
) -> Result<Option<Claimed>, Error> {
    let statement = client.prepare(CLAIM_DUE)?;
    claim_with(client, &statement, now, excluded, depth)
}

fn claim_with(
    client: &mut impl GenericClient,
    statement: &postgres::Statement,
    now: Option<chrono::DateTime<chrono::Utc>>,
    excluded: &[Uuid],
    depth: Depth,
) -> Result<Option<Claimed>, Error> {
    let row = client.query_opt(
        statement,
        &[&now, &excluded, &depth.per_webhook, &depth.total],
    )?;
    Ok(row.map(|row| Claimed {
        id: row.get(0),
        webhook_id: row.get(1),
        payload: row.get(2),
        delivery_attempts: row.get(3),
        webhook: crate::model::WebhookSettings {
            name: String::new(),
            url: row.get(4),
            content_type: row.get(5),
            valid_status_codes: row.get(6),
            secret_token: row.get(7),
            active: true,
            max_delivery_attempts: row.get(8),
            delivery_attempt_timeout: row.get(9),
            retry_min_backoff: row.get(10),
            retry_max_backoff: row.get(11),
        },
    }))
}

/// The claim and record statements prepared on one connection, so a dispatcher parses them once
/// and PostgreSQL can reuse their plans. Valid only on the connection that prepared them.
pub struct Prepared {
    claim: postgres::Statement,
    record: postgres::Statement,
}

impl Prepared {
    /// Prepares both statements on `client`, a connection a dispatcher keeps for itself.
    ///
    /// The claim must look up its candidates by primary key, one by one, in order. Given a
    /// hash or bitmap plan instead, PostgreSQL scans every pending row of every webhook on each
    /// claim (measured: healthy deliveries fell to 18/s beside 60,000 rows queued for an
    /// inactive webhook), and which plan it picks depends on statistics of the moment. These
    /// settings stay on the dispatcher's own connection; its other statement is a primary-key
    /// update.
    pub fn new(client: &mut impl GenericClient) -> Result<Prepared, Error> {
        client.batch_execute(CLAIM_SESSION_SETTINGS)?;
        Ok(Prepared {
            claim: client.prepare(CLAIM_DUE)?,
            record: client.prepare(RECORD_ATTEMPT)?,
        })
    }

    /// [`claim_due`] with the prepared statement.
    pub fn claim_due(
        &self,
        client: &mut impl GenericClient,
        excluded: &[Uuid],
        depth: Depth,
    ) -> Result<Option<Claimed>, Error> {
        claim_with(client, &self.claim, None, excluded, depth)
    }

    /// [`record_attempt`] with the prepared statement.
    pub fn record_attempt(
        &self,
        client: &mut impl GenericClient,
        delivery_id: Uuid,
        record: &AttemptRecord,
    ) -> Result<bool, Error> {
        record_with(client, &self.record, delivery_id, record)
    }
}

/// Records an attempt and moves the delivery. Returns whether the delivery was still pending
/// (false only if it was not claimed by this transaction).
pub fn record_attempt(
    client: &mut impl GenericClient,
    delivery_id: Uuid,
    record: &AttemptRecord,
) -> Result<bool, Error> {
    let statement = client.prepare(RECORD_ATTEMPT)?;
    record_with(client, &statement, delivery_id, record)
}

fn record_with(
    client: &mut impl GenericClient,
    statement: &postgres::Statement,
    delivery_id: Uuid,
    record: &AttemptRecord,
) -> Result<bool, Error> {
    let rows = client.execute(
        statement,
        &[
            &delivery_id,
            &record.status.as_str(),
            &record.retry_in_ms,
            &record.attempt_id,
            &record.raw_request,
            &record.raw_response,
            &record.response_status_code,
            &record.execution_duration,
            &record.success,
            &record.error,
        ],
    )?;
    Ok(rows == 1)
}

/// The plan of [`CLAIM_DUE`] as PostgreSQL ran it (`EXPLAIN ANALYZE`), inside a transaction
/// that is rolled back so nothing stays locked. For tests and for diagnosing a slow claim.
pub fn explain_claim(client: &mut postgres::Client, depth: Depth) -> Result<String, Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&CLAIM_SESSION_SETTINGS.replace("SET ", "SET LOCAL "))?;
    let no_exclusions: &[Uuid] = &[];
    let rows = tx.query(
        format!("EXPLAIN (ANALYZE, COSTS OFF) {CLAIM_DUE}").as_str(),
        &[
            &None::<chrono::DateTime<chrono::Utc>>,
            &no_exclusions,
            &depth.per_webhook,
            &depth.total,
        ],
    )?;
    tx.rollback()?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Subscribes a listener's connection to [`NOTIFY_CHANNEL`].
pub fn listen(client: &mut postgres::Client) -> Result<(), Error> {
    client.batch_execute(LISTEN)?;
    Ok(())
}

/// Readies the notifier's own connection: a NOTIFY commits a transaction, and waiting for its
/// WAL flush buys nothing, since a lost wake-up only costs one polling interval.
pub fn prepare_notifier(client: &mut postgres::Client) -> Result<(), Error> {
    client.batch_execute("SET synchronous_commit = off")?;
    Ok(())
}

/// Wakes idle dispatchers in every worker process (see [`NOTIFY`]).
pub fn notify(client: &mut impl GenericClient) -> Result<(), Error> {
    client.batch_execute(NOTIFY)?;
    Ok(())
}

/// Queue gauges for metrics, read through the partial index of pending rows only (its size is
/// the queue's, not the history's); the total is the planner's estimate, not a count.
const QUEUE_STATS: &str = "SELECT count(*)::bigint, \
    count(*) FILTER (WHERE scheduled_at <= now())::bigint, \
    coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE scheduled_at <= now())), 0)::float8, \
    (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'deliveries'::regclass) \
    FROM deliveries WHERE status = 'pending'";

/// Pending, due, the oldest due delivery's wait in seconds, and the estimated row count.
pub fn queue_stats(client: &mut impl GenericClient) -> Result<(i64, i64, f64, i64), Error> {
    let row = client.query_one(QUEUE_STATS, &[])?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
}

/// Deletes up to `$2` finished deliveries (their attempts go with them) last changed more than
/// `$1` days ago. Rows locked by someone else (a retry request) are skipped, so retention never
/// waits on the API and the API never waits long on retention.
const DELETE_FINISHED: &str = "DELETE FROM deliveries WHERE id IN ( \
    SELECT id FROM deliveries \
    WHERE status IN ('succeeded', 'failed') \
      AND updated_at < now() - $1::integer * interval '1 day' \
    ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// One retention batch; returns how many deliveries it deleted.
pub fn delete_finished_before(
    client: &mut impl GenericClient,
    days: i32,
    batch: i64,
) -> Result<u64, Error> {
    Ok(client.execute(DELETE_FINISHED, &[&days, &batch])?)
}
