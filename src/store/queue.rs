//! The queue: what dispatchers run many times a second, and what wakes them. The claim
//! ([`DUE_WEBHOOKS`], [`CLAIM_BATCH`]), the record ([`RECORD_ATTEMPTS`]), the planner settings
//! of a dispatcher's session, LISTEN/NOTIFY, and the queue gauges of `/metrics`. The CRUD of
//! deliveries is `deliveries.rs`.

use std::time::Instant;

use postgres::GenericClient;
use postgres::types::Type;
use uuid::Uuid;

use super::Error;
use crate::model::{DeliveryStatus, Exchange};

/// The channel the API notifies after queueing deliveries and idle dispatchers listen on.
pub const NOTIFY_CHANNEL: &str = "postmand_deliveries";

/// Wakes every listener. Sent on its own connection, never inside an insert's transaction:
/// a NOTIFY takes a database-wide lock at commit and would serialise every insert.
const NOTIFY: &str = "NOTIFY postmand_deliveries";

/// Subscribes to [`NOTIFY`]'s channel.
const LISTEN: &str = "LISTEN postmand_deliveries";

/// Active webhooks with due deliveries, the one whose earliest due delivery is earliest first,
/// with their settings; nothing is locked. A claim then locks a batch of the first one's
/// deliveries ([`CLAIM_BATCH`]), or of the next when all of the first's are taken.
///
/// How: for each active webhook not in `$2` (webhooks this worker already keeps busy enough), the
/// earliest due delivery is read from the partial index of pending rows (one index probe each,
/// so an inactive webhook's backlog is never read), and the `$3` earliest webhooks are returned.
/// `$1` is the time to judge "due" at; NULL means `now()`.
pub const DUE_WEBHOOKS: &str = "SELECT w.id, w.url, w.content_type, w.valid_status_codes, \
    w.secret_token, w.max_delivery_attempts, w.delivery_attempt_timeout, w.retry_min_backoff, \
    w.retry_max_backoff, \
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_token END \
        AS previous_secret_token \
    FROM webhooks w CROSS JOIN LATERAL ( \
        SELECT p.scheduled_at, p.id FROM deliveries p \
        WHERE p.webhook_id = w.id AND p.status = 'pending' \
          AND p.scheduled_at <= coalesce($1::timestamptz, now()) \
        ORDER BY p.scheduled_at, p.id LIMIT 1) head \
    WHERE w.active AND w.id <> ALL($2::uuid[]) \
    ORDER BY head.scheduled_at, head.id \
    LIMIT $3";

/// The usual claim in one statement (issue 14: one round trip fewer per batch): the first
/// webhook [`DUE_WEBHOOKS`] would return for `$1`/`$2`, and up to `$3` of its due rows locked as
/// [`CLAIM_BATCH`] locks them (one row for a webhook in `$4`, the probing ones). Each row carries
/// the webhook's settings and `others`: whether a second webhook had due work too. No row when
/// nothing is due; one row with NULL delivery columns when every due row of the first webhook
/// is held by other claimers: the dispatcher then falls back to [`DUE_WEBHOOKS`] and
/// [`CLAIM_BATCH`], which look further.
pub const CLAIM_NEXT: &str = "WITH due AS ( \
        SELECT w.id, w.url, w.content_type, w.valid_status_codes, w.secret_token, \
            w.max_delivery_attempts, w.delivery_attempt_timeout, w.retry_min_backoff, \
            w.retry_max_backoff, head.scheduled_at AS head_due, head.id AS head_id, \
            CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_token END \
                AS previous_secret_token \
        FROM webhooks w CROSS JOIN LATERAL ( \
            SELECT p.scheduled_at, p.id FROM deliveries p \
            WHERE p.webhook_id = w.id AND p.status = 'pending' \
              AND p.scheduled_at <= coalesce($1::timestamptz, now()) \
            ORDER BY p.scheduled_at, p.id LIMIT 1) head \
        WHERE w.active AND w.id <> ALL($2::uuid[]) \
        ORDER BY head.scheduled_at, head.id \
        LIMIT 2), \
    first AS (SELECT * FROM due ORDER BY head_due, head_id LIMIT 1) \
    SELECT f.id, f.url, f.content_type, f.valid_status_codes, f.secret_token, \
        f.max_delivery_attempts, f.delivery_attempt_timeout, f.retry_min_backoff, \
        f.retry_max_backoff, f.previous_secret_token, (SELECT count(*) FROM due) > 1 AS others, \
        d.id AS delivery_id, d.payload, d.delivery_attempts, \
        (SELECT e.event_type FROM events e WHERE e.id = d.event_id) AS event_type \
    FROM first f LEFT JOIN LATERAL ( \
        SELECT d.id, d.payload, d.delivery_attempts, d.event_id FROM deliveries d \
        WHERE d.webhook_id = f.id AND d.status = 'pending' \
          AND d.scheduled_at <= coalesce($1::timestamptz, now()) \
        ORDER BY d.scheduled_at, d.id \
        LIMIT CASE WHEN f.id = ANY($4::uuid[]) THEN 1 ELSE $3::bigint END \
        FOR UPDATE OF d SKIP LOCKED) d ON true";

/// What [`CLAIM_NEXT`] took: the webhook, its locked rows, and whether another webhook had
/// due work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextClaim {
    /// The webhook claimed from.
    pub webhook: DueWebhook,
    /// Its due rows, now locked; empty when other claimers hold them all.
    pub batch: Vec<Claimed>,
    /// Another webhook had due work as well.
    pub others: bool,
}

/// Webhooks with due work one claim looks at: when every due delivery of the first is held by
/// other claimers, the next is tried.
pub const WEBHOOKS_PER_CLAIM: i64 = 4;

/// Up to `$3` due deliveries of webhook `$1`, earliest first, locked until this transaction
/// ends; rows other claimers hold are skipped, so concurrent dispatchers take consecutive
/// batches of the same queue without waiting on each other. A row finished by another
/// transaction since this statement's snapshot is re-checked and skipped (it is no longer
/// pending). Only the delivery rows are locked (`FOR UPDATE OF d`): the original also locked the
/// webhook row, so creating a delivery or editing a webhook waited for an HTTP call (behaviour
/// spec 4.3). If the process dies, the rows are due again with their attempts unchanged.
pub const CLAIM_BATCH: &str = "SELECT d.id, d.payload, d.delivery_attempts, \
        (SELECT e.event_type FROM events e WHERE e.id = d.event_id) AS event_type \
    FROM deliveries d \
    WHERE d.webhook_id = $1 AND d.status = 'pending' \
      AND d.scheduled_at <= coalesce($2::timestamptz, now()) \
    ORDER BY d.scheduled_at, d.id \
    LIMIT $3 \
    FOR UPDATE OF d SKIP LOCKED";

/// Settings of a dispatcher's session (see [`Prepared::new`]), as (name, value).
///
/// The claim is planned once per connection (`force_generic_plan`): left to choose, PostgreSQL
/// re-planned it on every call (its generic cost looks high only because the LIMITs are
/// parameters), and planning took ~1 ms against 0.1 ms of execution: a third of the database's
/// CPU during a drain. The join, bitmap, sort and scan settings keep each plan index lookups
/// whatever the statistics say (a claim walks the per-webhook pending index, the only one that
/// yields a webhook's due rows in order without a sort; a record looks deliveries up by
/// primary key): the plan is made when the dispatcher connects or after an ANALYZE, often while
/// the queue is short.
///
/// `idle_in_transaction_session_timeout` is the backstop of a batch's time budget: a dispatcher
/// is idle in its transaction while it sends, and a legal batch ends within two attempt
/// timeouts (it starts no attempt once it would end past one; see `dispatch::dispatcher`), so a
/// session idle longer than [`IDLE_IN_TRANSACTION_LIMIT`] is a stuck one and PostgreSQL ends it,
/// releasing its rows.
///
/// These settings never leave the dispatcher: [`reset_dispatcher_session`] undoes them before
/// its connection goes back to the pool.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_sort", "off"),
    ("enable_seqscan", "off"),
    ("plan_cache_mode", "force_generic_plan"),
    (
        "idle_in_transaction_session_timeout",
        IDLE_IN_TRANSACTION_LIMIT,
    ),
];

/// Above the longest legal batch: two of the longest attempt timeouts
/// (`model::MAX_ATTEMPT_TIMEOUT_SECS`, 300 s), plus a minute.
pub const IDLE_IN_TRANSACTION_LIMIT: &str = "660s";

/// `SET` statements for [`SESSION_SETTINGS`].
fn session_sql(scope: &str) -> String {
    SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("SET {scope}{name} = '{value}';"))
        .collect()
}

/// Undoes [`SESSION_SETTINGS`] on a dispatcher's connection, so that the pool hands it to the
/// API with the defaults every pooled session has. Run before the connection goes back.
pub fn reset_dispatcher_session(client: &mut impl GenericClient) -> Result<(), Error> {
    let reset: String = SESSION_SETTINGS
        .iter()
        .map(|(name, _)| format!("RESET {name};"))
        .collect();
    client.batch_execute(&reset)?;
    Ok(())
}

/// Writes a batch of attempts and their deliveries' new states in one statement, from parallel
/// arrays. Guarded by `status = 'pending'`: only deliveries this transaction claimed can move.
/// Times come from the database clock: each attempt is dated when it ended (`$11` is how many
/// milliseconds before this statement that was), and a retry is due its backoff after that, as
/// the original counted the backoff from the end of the attempt. Returns the ids of the
/// deliveries that moved. `d.status || ''` keeps the partial index of pending rows out of the
/// plan: with statistics taken while the queue was short, PostgreSQL walked that index through
/// every pending row for each batch (measured: 13 ms per record on average and up to 3 s with
/// 170,000 rows queued for an inactive webhook), where it must look each delivery up by primary
/// key. A batch (one webhook's) that succeeded throughout stops its webhook's failure clock
/// (issue 16): a probe of a table that holds only failing webhooks, with no write for a healthy
/// one. A batch with a failure goes on with [`WEBHOOK_FAILED`].
pub const RECORD_ATTEMPTS: &str = "WITH input AS ( \
        SELECT i.*, clock_timestamp() - i.ended_ago_ms * interval '1 millisecond' AS ended_at \
        FROM unnest($1::uuid[], $2::varchar[], $3::bigint[], $4::uuid[], $5::text[], \
            $6::text[], $7::integer[], $8::integer[], $9::boolean[], $10::text[], $11::bigint[]) \
        AS i(delivery_id, status, retry_in_ms, attempt_id, raw_request, raw_response, \
            response_status_code, execution_duration, success, error, ended_ago_ms)), \
    moved AS ( \
        UPDATE deliveries d SET delivery_attempts = d.delivery_attempts + 1, status = i.status, \
            scheduled_at = CASE WHEN i.retry_in_ms IS NULL THEN d.scheduled_at \
                ELSE i.ended_at + i.retry_in_ms * interval '1 millisecond' END, \
            updated_at = clock_timestamp() \
        FROM input i \
        WHERE d.id = i.delivery_id AND d.status || '' = 'pending' \
        RETURNING d.id, d.webhook_id), \
    healed AS ( \
        DELETE FROM webhook_failures f \
        WHERE f.webhook_id IN (SELECT m.webhook_id FROM moved m) \
          AND (SELECT bool_and(i.success) FROM input i)) \
    INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
        response_status_code, execution_duration, success, error, created_at) \
    SELECT i.attempt_id, m.webhook_id, m.id, i.raw_request, i.raw_response, \
        i.response_status_code, i.execution_duration, i.success, i.error, i.ended_at \
    FROM moved m JOIN input i ON i.delivery_id = m.id \
    RETURNING delivery_id";

/// After a batch of webhook `$1` that ended with `$2` failed attempts (`$3`: after a success
/// in the same batch, which restarted the clock; `$4`: how many milliseconds ago the first of
/// them ended), in the batch's transaction: advances its failure clock and deactivates it when
/// `$6` names a reason (410 Gone), or when its attempts have all failed for `$5` hours (0: never)
/// with at least `$8` failed. Never the operational webhook `$7` itself. A deactivation queues
/// a `webhook.disabled` notice (delivery id `$9`) for `$7`, when it exists. Returns a row only
/// when it deactivated the webhook: the reason, the time, and whether a notice was queued.
///
/// Nothing happens while the webhook is being deleted (`gate`: its row is locked `FOR UPDATE`,
/// so `SKIP LOCKED` finds nothing): the delete's cascade waits for this transaction's delivery
/// locks, and waiting here for its webhook lock (the foreign key's check or the UPDATE) would
/// deadlock the two. Otherwise the key-share lock taken here is the one the foreign key's check
/// needs, and it does not conflict with other dispatchers' (or the UPDATE's own).
pub const WEBHOOK_FAILED: &str = "WITH gate AS ( \
        SELECT id FROM webhooks WHERE id = $1 FOR KEY SHARE SKIP LOCKED), \
    state AS ( \
        INSERT INTO webhook_failures AS f (webhook_id, failing_since, failures) \
        SELECT g.id, clock_timestamp() - $4::bigint * interval '1 millisecond', $2 FROM gate g \
        ON CONFLICT (webhook_id) DO UPDATE SET \
            failing_since = CASE WHEN $3 THEN EXCLUDED.failing_since ELSE f.failing_since END, \
            failures = CASE WHEN $3 THEN EXCLUDED.failures ELSE f.failures + EXCLUDED.failures END \
        RETURNING failing_since, failures), \
    verdict AS ( \
        SELECT CASE \
            WHEN $6::text IS NOT NULL THEN $6::text \
            WHEN $5::integer > 0 AND s.failures >= $8::integer \
                AND s.failing_since <= now() - $5::integer * interval '1 hour' \
            THEN format('every attempt failed for %s hours: %s failed attempts since %s', \
                $5::integer, s.failures, \
                to_char(s.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) \
            END AS reason \
        FROM state s), \
    disabled AS ( \
        UPDATE webhooks w SET active = false, disabled_reason = v.reason, disabled_at = now(), \
            updated_at = now() \
        FROM verdict v \
        WHERE w.id = $1 AND w.active AND v.reason IS NOT NULL \
          AND w.id IS DISTINCT FROM $7::uuid \
        RETURNING w.id, w.disabled_reason, w.disabled_at), \
    notice AS ( \
        INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
            status, created_at, updated_at) \
        SELECT $9::uuid, o.id, json_build_object('type', 'webhook.disabled', \
                'webhook_id', d.id, 'reason', d.disabled_reason, \
                'at', to_char(d.disabled_at AT TIME ZONE 'UTC', \
                    'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text, \
            now(), 0, 'pending', now(), now() \
        FROM disabled d \
        JOIN (SELECT id FROM webhooks WHERE id = $7::uuid FOR KEY SHARE SKIP LOCKED) o ON true \
        RETURNING id) \
    SELECT d.disabled_reason, d.disabled_at, EXISTS (SELECT 1 FROM notice) AS notified \
    FROM disabled d";

/// Failed attempts after which the failure-only span may deactivate a webhook.
pub const MIN_FAILURES_TO_DISABLE: i32 = 10;

/// What [`webhook_failed`] decides about a webhook whose batch ended in a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The webhook.
    pub webhook_id: Uuid,
    /// Failed attempts in the batch.
    pub failures: i32,
    /// A success came before them in the batch: the clock restarts.
    pub after_success: bool,
    /// When the first of them ended.
    pub first_failed_at: Instant,
    /// A reason to deactivate it now whatever the clock says (the endpoint answered 410).
    pub gone: Option<String>,
}

/// The rules of [`webhook_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// `POSTMAND_DISABLE_AFTER_HOURS`; 0 never.
    pub after_hours: u32,
    /// The operational webhook, which is never deactivated and gets the notices.
    pub operational_webhook: Option<Uuid>,
}

/// A deactivation [`webhook_failed`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivated {
    /// Why.
    pub reason: String,
    /// When (database clock).
    pub at: chrono::DateTime<chrono::Utc>,
    /// Whether a `webhook.disabled` notice was queued.
    pub notified: bool,
}

/// Runs [`WEBHOOK_FAILED`] in the transaction that records the batch.
pub fn webhook_failed(
    client: &mut impl GenericClient,
    failure: &Failure,
    policy: DisablePolicy,
) -> Result<Option<Deactivated>, Error> {
    let failed_ago_ms =
        i64::try_from(failure.first_failed_at.elapsed().as_millis()).unwrap_or(i64::MAX);
    let after_hours = i32::try_from(policy.after_hours).unwrap_or(i32::MAX);
    // Typed parameters: one round trip, no separate prepare.
    let row = client.query_typed_opt(
        WEBHOOK_FAILED,
        &[
            (&failure.webhook_id, Type::UUID),
            (&failure.failures, Type::INT4),
            (&failure.after_success, Type::BOOL),
            (&failed_ago_ms, Type::INT8),
            (&after_hours, Type::INT4),
            (&failure.gone, Type::TEXT),
            (&policy.operational_webhook, Type::UUID),
            (&MIN_FAILURES_TO_DISABLE, Type::INT4),
            (&Uuid::now_v7(), Type::UUID),
        ],
    )?;
    Ok(row.map(|row| Deactivated {
        reason: row.get("disabled_reason"),
        at: row.get("disabled_at"),
        notified: row.get("notified"),
    }))
}

/// An active webhook with due deliveries, and what sending to it needs, as it is now (re-read
/// on every claim, so an edit applies to the next batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWebhook {
    /// The webhook.
    pub id: Uuid,
    /// Where and how to send, and how to judge and retry.
    pub endpoint: Endpoint,
}

/// The part of a webhook's settings a dispatcher uses (not its name, not `active`: a claimed
/// webhook is active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to POST.
    pub url: String,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// Status codes that count as success.
    pub valid_status_codes: Vec<i32>,
    /// The signing secret; empty means unsigned.
    pub secret_token: String,
    /// The secret a rotation replaced, while it still signs (beside `secret_token`).
    pub previous_secret_token: Option<String>,
    /// Attempts after which a delivery fails.
    pub max_delivery_attempts: i32,
    /// Seconds one attempt may take.
    pub delivery_attempt_timeout: i32,
    /// Backoff after the first failure, in seconds.
    pub retry_min_backoff: i32,
    /// Longest backoff, in seconds.
    pub retry_max_backoff: i32,
}

/// A claimed delivery with what is needed to send it; its webhook is the batch's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The delivery.
    pub id: Uuid,
    /// The body to POST.
    pub payload: String,
    /// Attempts made before this one.
    pub delivery_attempts: i32,
    /// The type of the event it was made for (sent as `X-Postmand-Event`); `None` for a
    /// delivery created directly.
    pub event_type: Option<String>,
}

/// What one attempt changes: the attempt row and the delivery's next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery attempted.
    pub delivery_id: Uuid,
    /// Id of the new attempt row.
    pub attempt_id: Uuid,
    /// The delivery's status after this attempt.
    pub status: DeliveryStatus,
    /// For a delivery that stays pending: milliseconds until its next attempt.
    pub retry_in_ms: Option<i64>,
    /// What went over the wire and how it was judged.
    pub exchange: Exchange,
    /// When the attempt ended (the attempt row's time, and the start of its backoff).
    pub ended_at: Instant,
}

/// Active webhooks with due deliveries outside `excluded`, earliest head first, at most `limit`
/// (see [`DUE_WEBHOOKS`]). `now` is the time to judge "due" at; `None` means the database's.
pub fn due_webhooks(
    client: &mut impl GenericClient,
    now: Option<chrono::DateTime<chrono::Utc>>,
    excluded: &[Uuid],
    limit: i64,
) -> Result<Vec<DueWebhook>, Error> {
    let statement = client.prepare(DUE_WEBHOOKS)?;
    due_webhooks_with(client, &statement, now, excluded, limit)
}

fn due_webhooks_with(
    client: &mut impl GenericClient,
    statement: &postgres::Statement,
    now: Option<chrono::DateTime<chrono::Utc>>,
    excluded: &[Uuid],
    limit: i64,
) -> Result<Vec<DueWebhook>, Error> {
    let rows = client.query(statement, &[&now, &excluded, &limit])?;
    Ok(rows.iter().map(due_webhook).collect())
}

/// A webhook and its settings from a row of [`DUE_WEBHOOKS`] or [`CLAIM_NEXT`].
fn due_webhook(row: &postgres::Row) -> DueWebhook {
    DueWebhook {
        id: row.get("id"),
        endpoint: Endpoint {
            url: row.get("url"),
            content_type: row.get("content_type"),
            valid_status_codes: row.get("valid_status_codes"),
            secret_token: row.get("secret_token"),
            previous_secret_token: row.get("previous_secret_token"),
            max_delivery_attempts: row.get("max_delivery_attempts"),
            delivery_attempt_timeout: row.get("delivery_attempt_timeout"),
            retry_min_backoff: row.get("retry_min_backoff"),
            retry_max_backoff: row.get("retry_max_backoff"),
        },
    }
}

/// Locks and returns up to `limit` due deliveries of `webhook_id`, earliest first (see
/// [`CLAIM_BATCH`]); empty when every due one is held by another claimer.
pub fn claim_batch(
    client: &mut impl GenericClient,
    now: Option<chrono::DateTime<chrono::Utc>>,
    webhook_id: Uuid,
    limit: i64,
) -> Result<Vec<Claimed>, Error> {
    let statement = client.prepare(CLAIM_BATCH)?;
    claim_batch_with(client, &statement, now, webhook_id, limit)
}

fn claim_batch_with(
    client: &mut impl GenericClient,
    statement: &postgres::Statement,
    now: Option<chrono::DateTime<chrono::Utc>>,
    webhook_id: Uuid,
    limit: i64,
) -> Result<Vec<Claimed>, Error> {
    let rows = client.query(statement, &[&webhook_id, &now, &limit])?;
    Ok(rows.iter().filter_map(|row| claimed(row, "id")).collect())
}

/// A claimed delivery from a row of [`CLAIM_BATCH`] or [`CLAIM_NEXT`], whose id is in column
/// `id`; `None` when it is NULL (CLAIM_NEXT's row for a webhook whose rows are all held).
fn claimed(row: &postgres::Row, id: &str) -> Option<Claimed> {
    Some(Claimed {
        id: row.get::<_, Option<Uuid>>(id)?,
        payload: row.get("payload"),
        delivery_attempts: row.get("delivery_attempts"),
        event_type: row.get("event_type"),
    })
}

/// The claim and record statements prepared on one connection, so a dispatcher parses them once
/// and PostgreSQL can reuse their plans. Valid only on the connection that prepared them.
pub struct Prepared {
    claim_next: postgres::Statement,
    due_webhooks: postgres::Statement,
    claim_batch: postgres::Statement,
    record: postgres::Statement,
}

impl Prepared {
    /// Prepares the statements on `client`, a connection a dispatcher keeps for itself, with
    /// the settings of [`SESSION_SETTINGS`]. Given a hash or bitmap plan, or a
    /// sort of a webhook's whole history, PostgreSQL would read every pending row of every
    /// webhook on each claim (measured: healthy deliveries fell to 18/s beside 60,000 rows
    /// queued for an inactive webhook), and which plan it picks depends on statistics of the
    /// moment. These settings stay on the dispatcher's own connection.
    pub fn new(client: &mut impl GenericClient) -> Result<Prepared, Error> {
        client.batch_execute(&session_sql(""))?;
        Ok(Prepared {
            claim_next: client.prepare(CLAIM_NEXT)?,
            due_webhooks: client.prepare(DUE_WEBHOOKS)?,
            claim_batch: client.prepare(CLAIM_BATCH)?,
            record: client.prepare(RECORD_ATTEMPTS)?,
        })
    }

    /// [`CLAIM_NEXT`], judged at the database's time: `None` when nothing is due; an empty
    /// batch when the first due webhook's rows are all held by other claimers.
    pub fn claim_next(
        &self,
        client: &mut impl GenericClient,
        excluded: &[Uuid],
        probing: &[Uuid],
        limit: i64,
    ) -> Result<Option<NextClaim>, Error> {
        let now: Option<chrono::DateTime<chrono::Utc>> = None;
        let rows = client.query(&self.claim_next, &[&now, &excluded, &limit, &probing])?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(NextClaim {
            webhook: due_webhook(first),
            others: first.get("others"),
            batch: rows
                .iter()
                .filter_map(|row| claimed(row, "delivery_id"))
                .collect(),
        }))
    }

    /// [`due_webhooks`] with the prepared statement, judged at the database's time.
    pub fn due_webhooks(
        &self,
        client: &mut impl GenericClient,
        excluded: &[Uuid],
        limit: i64,
    ) -> Result<Vec<DueWebhook>, Error> {
        due_webhooks_with(client, &self.due_webhooks, None, excluded, limit)
    }

    /// [`claim_batch`] with the prepared statement, judged at the database's time.
    pub fn claim_batch(
        &self,
        client: &mut impl GenericClient,
        webhook_id: Uuid,
        limit: i64,
    ) -> Result<Vec<Claimed>, Error> {
        claim_batch_with(client, &self.claim_batch, None, webhook_id, limit)
    }

    /// Records attempts and moves their deliveries, all in one statement ([`RECORD_ATTEMPTS`]).
    /// Returns the ids of the deliveries that moved: one missing was not pending (not claimed
    /// by this transaction).
    pub fn record_attempts(
        &self,
        client: &mut impl GenericClient,
        records: &[AttemptRecord],
    ) -> Result<Vec<Uuid>, Error> {
        let delivery_ids: Vec<Uuid> = records.iter().map(|r| r.delivery_id).collect();
        let statuses: Vec<&str> = records.iter().map(|r| r.status.as_str()).collect();
        let retry_in_ms: Vec<Option<i64>> = records.iter().map(|r| r.retry_in_ms).collect();
        let attempt_ids: Vec<Uuid> = records.iter().map(|r| r.attempt_id).collect();
        let raw_requests: Vec<&str> = records
            .iter()
            .map(|r| r.exchange.raw_request.as_str())
            .collect();
        let raw_responses: Vec<&str> = records
            .iter()
            .map(|r| r.exchange.raw_response.as_str())
            .collect();
        let status_codes: Vec<i32> = records
            .iter()
            .map(|r| r.exchange.response_status_code)
            .collect();
        let durations: Vec<i32> = records
            .iter()
            .map(|r| r.exchange.execution_duration)
            .collect();
        let successes: Vec<bool> = records.iter().map(|r| r.exchange.success).collect();
        let errors: Vec<&str> = records.iter().map(|r| r.exchange.error.as_str()).collect();
        let ended_ago_ms: Vec<i64> = records
            .iter()
            .map(|r| i64::try_from(r.ended_at.elapsed().as_millis()).unwrap_or(i64::MAX))
            .collect();
        let rows = client.query(
            &self.record,
            &[
                &delivery_ids,
                &statuses,
                &retry_in_ms,
                &attempt_ids,
                &raw_requests,
                &raw_responses,
                &status_codes,
                &durations,
                &successes,
                &errors,
                &ended_ago_ms,
            ],
        )?;
        Ok(rows.iter().map(|row| row.get("delivery_id")).collect())
    }
}

/// The plans of a claim as PostgreSQL ran them (`EXPLAIN ANALYZE`, with the dispatchers'
/// settings and generic plans): [`CLAIM_NEXT`], [`DUE_WEBHOOKS`], then [`CLAIM_BATCH`] for the
/// first webhook it returned, inside a transaction that is rolled back so nothing stays locked. For tests and for
/// diagnosing a slow claim.
pub fn explain_claim(client: &mut postgres::Client, batch: i64) -> Result<String, Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&session_sql("LOCAL "))?;
    let no_exclusions: &[Uuid] = &[];
    let mut plan = explain(
        &mut tx,
        CLAIM_NEXT,
        &[
            &None::<chrono::DateTime<chrono::Utc>>,
            &no_exclusions,
            &batch,
            &no_exclusions,
        ],
    )?;
    plan.push('\n');
    plan += &explain(
        &mut tx,
        DUE_WEBHOOKS,
        &[
            &None::<chrono::DateTime<chrono::Utc>>,
            &no_exclusions,
            &8i64,
        ],
    )?;
    if let Some(first) = due_webhooks(&mut tx, None, no_exclusions, 1)?.first() {
        plan.push('\n');
        plan.push_str(&explain(
            &mut tx,
            CLAIM_BATCH,
            &[&first.id, &None::<chrono::DateTime<chrono::Utc>>, &batch],
        )?);
    }
    tx.rollback()?;
    Ok(plan)
}

fn explain(
    client: &mut impl GenericClient,
    statement: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<String, Error> {
    let rows = client.query(
        format!("EXPLAIN (ANALYZE, COSTS OFF) {statement}").as_str(),
        params,
    )?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The `application_name` of a listener's connection: with the tag of its process's
/// notifications when the process has one (`--role all`), so that process's notifier can tell
/// its own listener from the others' (see [`others_listening`]).
pub fn listener_name(tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("{LISTENER_NAME}-{tag}"),
        None => LISTENER_NAME.to_string(),
    }
}

/// What every listener's `application_name` starts with.
const LISTENER_NAME: &str = "postmand-listener";

/// Whether a listener other than `own` (a [`listener_name`]) is connected to this database: a
/// NOTIFY no one else hears is skipped (issue 14: in a lone `--role all` process it cost 5% of
/// PostgreSQL's CPU per message, the listener's wake-up included). `application_name` is shown
/// to every role in `pg_stat_activity`, unlike the query and `backend_type` (NULL for another
/// role's sessions: a worker running as another database user must still count).
const OTHER_LISTENERS: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
    WHERE datname = current_database() \
      AND application_name LIKE 'postmand-listener%' AND application_name <> $1)";

/// See [`OTHER_LISTENERS`]. `own` is this process's listener's name, or empty when it has none.
pub fn others_listening(client: &mut impl GenericClient, own: &str) -> Result<bool, Error> {
    Ok(client.query_one(OTHER_LISTENERS, &[&own])?.get(0))
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

/// Wakes idle dispatchers in every worker process (see [`NOTIFY`]). `sender` (hex, from
/// [`new_sender_tag`]) becomes the payload, so the listener of the same process can tell its own
/// notification, whose dispatchers were woken directly, from another process's.
pub fn notify(client: &mut impl GenericClient, sender: Option<&str>) -> Result<(), Error> {
    match sender {
        Some(tag) if tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            client.batch_execute(&format!("{NOTIFY}, '{tag}'"))?
        }
        _ => client.batch_execute(NOTIFY)?,
    }
    Ok(())
}

/// A tag for one process's notifications: 32 hex digits.
pub fn new_sender_tag() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Queue gauges for metrics, read through the partial index of pending rows only (its size is
/// the queue's, not the history's); the total is the planner's estimate, not a count.
pub const QUEUE_STATS: &str = "SELECT count(*)::bigint AS pending, \
    count(*) FILTER (WHERE scheduled_at <= now())::bigint AS due, \
    coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE scheduled_at <= now())), 0)::float8 \
        AS oldest_due_age_secs, \
    (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'deliveries'::regclass) AS estimate, \
    (WITH p AS (SELECT lower_bound, upper_bound FROM postmand_attempt_partitions()) \
     SELECT coalesce(extract(epoch FROM min(p.upper_bound) - now()), 0)::float8 FROM p \
     WHERE p.upper_bound > now() \
       AND EXISTS (SELECT 1 FROM p c WHERE (c.lower_bound IS NULL OR c.lower_bound <= now()) \
           AND (c.upper_bound IS NULL OR c.upper_bound > now())) \
       AND NOT EXISTS (SELECT 1 FROM p n WHERE n.lower_bound = p.upper_bound)) \
        AS partitions_ahead_secs \
    FROM deliveries WHERE status = 'pending'";

/// The queue gauges of `/metrics` ([`QUEUE_STATS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    /// Pending deliveries, due or not.
    pub pending: i64,
    /// Pending deliveries due now.
    pub due: i64,
    /// Seconds since the oldest due delivery became due (0 when none is).
    pub oldest_due_age_secs: f64,
    /// The planner's estimate of all delivery rows.
    pub deliveries_estimate: i64,
    /// Seconds until the first time after now that no partition of `delivery_attempts` covers
    /// (issue 17): an attempt made then has nowhere to go; 0 when none covers now. Partitions
    /// beyond a missing day do not count. Workers keep it about a week.
    pub partitions_ahead_secs: f64,
}

/// The queue gauges.
pub fn queue_stats(client: &mut impl GenericClient) -> Result<QueueStats, Error> {
    let row = client.query_one(QUEUE_STATS, &[])?;
    Ok(QueueStats {
        pending: row.get("pending"),
        due: row.get("due"),
        oldest_due_age_secs: row.get("oldest_due_age_secs"),
        deliveries_estimate: row.get("estimate"),
        partitions_ahead_secs: row.get("partitions_ahead_secs"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_in_transaction_backstop_is_above_the_longest_legal_batch() {
        let limit: i64 = IDLE_IN_TRANSACTION_LIMIT
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(limit > 2 * crate::model::MAX_ATTEMPT_TIMEOUT_SECS);
    }

    #[test]
    fn every_session_setting_is_reset() {
        let set = session_sql("");
        for (name, _) in SESSION_SETTINGS {
            assert!(set.contains(&format!("SET {name} = ")), "{name}");
        }
    }
}
