//! Every statement that reads or changes a delivery on behalf of the API or retention: create,
//! read, list, delete, retry. The dispatchers' hot path (claim, record, NOTIFY, queue gauges)
//! is `queue.rs`.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Listed, Page, TimeMark, by_id, page_of};
use crate::model::{Delivery, DeliveryStatus};

/// Several new deliveries in one statement, from parallel arrays; a row whose webhook does not
/// exist is left out (the caller answers its request with 400). The rows of one call share
/// their timestamps (one transaction).
const INSERT_MANY: &str = "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, \
    delivery_attempts, status, created_at, updated_at) \
    SELECT i.id, i.webhook_id, i.payload, now(), 0, 'pending', now(), now() \
    FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS i(id, webhook_id, payload) \
    WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = i.webhook_id) \
    RETURNING id, scheduled_at, created_at, updated_at";

/// Settings of the create writer's session (`api::creates`): a create waits at most this long
/// for a lock on its webhook's row (held only by a delete in progress), so one webhook's
/// delete cannot stall the creates of every other webhook queued behind it.
const WRITER_SESSION: &str = "SET lock_timeout = '200ms'";

/// Undoes [`WRITER_SESSION`] before the writer's connection goes back to the pool.
const WRITER_SESSION_RESET: &str = "RESET lock_timeout";

/// Readies the create writer's own connection (see [`WRITER_SESSION`]).
pub fn prepare_writer_session(client: &mut impl GenericClient) -> Result<(), Error> {
    client.batch_execute(WRITER_SESSION)?;
    Ok(())
}

/// Undoes [`prepare_writer_session`].
pub fn reset_writer_session(client: &mut impl GenericClient) -> Result<(), Error> {
    client.batch_execute(WRITER_SESSION_RESET)?;
    Ok(())
}

/// One delivery by id; columns in the order [`from_row`] reads them.
const GET: &str = "SELECT id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at, event_id FROM deliveries WHERE id = $1";

/// Deletes a delivery; [`DELETE_ATTEMPTS_OF`] then deletes its attempts. Also returns the end
/// of the legacy partition, for [`attempts_since`].
const DELETE: &str =
    "DELETE FROM deliveries WHERE id = $1 RETURNING created_at, postmand_attempt_legacy_end()";

/// Deletes the attempts of delivery `$1` made since `$2` (NULL: whenever). Attempts have no
/// foreign key to deliveries since migration 10 (its cascade probed every daily partition for
/// each deleted delivery), so each delete of deliveries deletes their attempts itself, in its
/// transaction, and in a statement of its own: that statement's snapshot sees an attempt
/// committed by a dispatcher the delete had waited for. The time bound keeps it to the
/// partitions from the delivery's creation on.
const DELETE_ATTEMPTS_OF: &str = "DELETE FROM delivery_attempts \
    WHERE delivery_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)";

/// How much earlier than its delivery's (or webhook's) creation an attempt may be stamped and
/// still be found by the deletes that bound attempts by creation time: postmand stamps both
/// from the same database clock, so this only covers that clock being set back.
pub const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The `WHERE` of [`LIST`] and [`LIST_PAST_OFFSET`]; a NULL filter parameter means "no filter".
macro_rules! list_where {
    () => {
        concat!(
            "WHERE ($1::uuid IS NULL OR webhook_id = $1) \
            AND ($2::varchar IS NULL OR status = $2) \
            AND ($3::uuid IS NULL OR event_id = $3) ",
            created_range_and_mark!()
        )
    };
}

/// Newest first, ties broken by id so paging never skips or repeats a row; `$8` rows after
/// skipping `$9`. See `list_where!` for the filters and [`list_statement`] for which of this
/// and [`LIST_PAST_OFFSET`] a page uses.
pub const LIST: &str = concat!(
    "SELECT id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at, event_id FROM deliveries ",
    list_where!(),
    " ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
);

/// [`LIST`] for a page past an offset: the skipped rows are read as (created_at, id) from the
/// index alone, where [`LIST`] would read each one's row from the table, and only the page's
/// rows are then fetched by id. At offset 100,000 of 2M rows that is 5.6-6.3 ms against
/// 13.9-15.6 ms (pgbench, same run; README "Running at scale").
pub const LIST_PAST_OFFSET: &str = concat!(
    "WITH page AS (SELECT created_at, id FROM deliveries ",
    list_where!(),
    " ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9) \
    SELECT d.id, d.webhook_id, d.payload, d.scheduled_at, d.delivery_attempts, d.status, \
    d.created_at, d.updated_at, d.event_id FROM page JOIN deliveries d ON d.id = page.id \
    ORDER BY page.created_at DESC, page.id DESC"
);

/// The list statement for a page that skips `offset` rows: [`LIST_PAST_OFFSET`] when it skips
/// any, else [`LIST`] (which reads no row twice: on a first page or after a cursor, the
/// deferred fetch would only add a probe per row).
pub fn list_statement(offset: i64) -> &'static str {
    if offset > 0 { LIST_PAST_OFFSET } else { LIST }
}

/// Sends a finished delivery round again: pending, due now, a fresh attempt budget. Its
/// attempts stay. Only finished deliveries move; a pending one may be in flight right now.
const RETRY: &str = "UPDATE deliveries SET status = 'pending', delivery_attempts = 0, \
    scheduled_at = now(), updated_at = now() \
    WHERE id = $1 AND status IN ('succeeded', 'failed') \
    RETURNING id, webhook_id, payload, scheduled_at, delivery_attempts, status, \
    created_at, updated_at, event_id";

/// Filters of the delivery list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only deliveries of this webhook.
    pub webhook_id: Option<Uuid>,
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries made for this event.
    pub event_id: Option<Uuid>,
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
    let status: String = row.get("status");
    Ok(Delivery {
        id: row.get("id"),
        webhook_id: row.get("webhook_id"),
        payload: row.get("payload"),
        scheduled_at: row.get("scheduled_at"),
        delivery_attempts: row.get("delivery_attempts"),
        // The CHECK constraint of migration 2 admits only the three known names.
        status: status.parse().map_err(Error::UnknownStatus)?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        event_id: row.get("event_id"),
    })
}

/// Queues several deliveries in one statement (and, outside a transaction, one commit). Each
/// result is `None` when that delivery's webhook does not exist; the others are queued. A
/// webhook deleted while the statement runs fails it as a foreign-key violation.
pub fn insert_many(
    client: &mut impl GenericClient,
    new: &[(Uuid, String)],
) -> Result<Vec<Option<Delivery>>, Error> {
    // Time-ordered ids (UUIDv7): each insert lands at the right edge of the primary key, so a
    // checkpoint costs one full-page image per index rather than one per row (issue 14).
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let webhook_ids: Vec<Uuid> = new.iter().map(|(webhook_id, _)| *webhook_id).collect();
    let payloads: Vec<&str> = new.iter().map(|(_, payload)| payload.as_str()).collect();
    let rows = client.query_typed(
        INSERT_MANY,
        &[
            (&ids, Type::UUID_ARRAY),
            (&webhook_ids, Type::UUID_ARRAY),
            (&payloads, Type::TEXT_ARRAY),
        ],
    )?;
    let mut inserted: std::collections::HashMap<Uuid, &Row> =
        rows.iter().map(|row| (row.get("id"), row)).collect();
    Ok(new
        .iter()
        .zip(ids)
        .map(|((webhook_id, payload), id)| {
            inserted.remove(&id).map(|row| Delivery {
                id,
                webhook_id: *webhook_id,
                payload: payload.clone(),
                scheduled_at: row.get("scheduled_at"),
                delivery_attempts: 0,
                status: DeliveryStatus::Pending,
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
                event_id: None,
            })
        })
        .collect())
}

/// One delivery by id.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Delivery>, Error> {
    by_id(client, GET, id, from_row)
}

/// Deletes a delivery and its attempts, in one transaction. Returns whether it existed.
pub fn delete(client: &mut impl GenericClient, id: Uuid) -> Result<bool, Error> {
    delete_with_attempts(client, (DELETE, DELETE_ATTEMPTS_OF), id)
}

/// Runs `delete` (`$1`: an id; returns the row's `created_at` and the end of the legacy
/// partition), then, when it deleted a row, `attempts` (`$1`: the id;
/// `$2`: the earliest time its attempts can have, NULL for a row that may be the original's),
/// in one transaction. Returns whether a row was deleted.
pub(super) fn delete_with_attempts(
    client: &mut impl GenericClient,
    (delete, attempts): (&str, &str),
    id: Uuid,
) -> Result<bool, Error> {
    let mut tx = client.transaction()?;
    let Some(row) = tx.query_typed_opt(delete, &[(&id, Type::UUID)])? else {
        return Ok(false);
    };
    let since = attempts_since(row.get(0), row.get(1));
    tx.execute_typed(attempts, &[(&id, Type::UUID), (&since, Type::TIMESTAMPTZ)])?;
    tx.commit()?;
    Ok(true)
}

/// The creation time of delivery `$1`, and the end of the legacy partition (as [`DELETE`]).
pub(super) const CREATED_AT: &str =
    "SELECT created_at, postmand_attempt_legacy_end() FROM deliveries WHERE id = $1";

/// The earliest creation time the attempts of row `id` can have, `created_at` being the
/// statement that reads the row's creation time and the legacy partition's end (this module's
/// [`CREATED_AT`], or the webhooks'); `None` when they may be anywhere, or there is no such row.
pub(super) fn earliest_attempt(
    client: &mut impl GenericClient,
    created_at: &str,
    id: Uuid,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    Ok(client
        .query_typed_opt(created_at, &[(&id, Type::UUID)])?
        .and_then(|row| attempts_since(row.get(0), row.get(1))))
}

/// How far past the legacy partition's end a row may still be the original's: the end is the
/// day after the newest attempt migration 10 found (at most the day after it ran), while the
/// original stamped deliveries and webhooks with its API host's clock, which may run ahead.
const LEGACY_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The earliest creation time the attempts of a row created at `created_at` can have; `None`
/// when they may be anywhere. `legacy_end` is the end of the partition that migration 10 made
/// of the table it converted (`delivery_attempts_legacy`, from MINVALUE; NULL when there is
/// none). A row created before it (give or take [`LEGACY_SKEW`]) may be the original's, which
/// stamped a delivery with its API host's clock and an attempt with its worker host's: such an
/// attempt can read as made hours before its delivery or webhook, beyond [`CLOCK_SLACK`]. A
/// row stamped before 1970 (not one postmand made) gets no bound either, which also keeps the
/// bound inside PostgreSQL's range of times.
fn attempts_since(
    created_at: chrono::DateTime<chrono::Utc>,
    legacy_end: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let since = created_at - CLOCK_SLACK;
    match legacy_end {
        Some(end) if since < end + LEGACY_SKEW => None,
        _ if since.timestamp() < 0 => None,
        _ => Some(since),
    }
}

/// One page of deliveries, newest first, after `after` when given.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
    after: Option<&TimeMark>,
) -> Result<Listed<Delivery>, Error> {
    let status = filter.status.map(DeliveryStatus::as_str);
    let (after_time, after_id) = TimeMark::params(after);
    page_of(
        client,
        list_statement(page.offset),
        &[
            (&filter.webhook_id, Type::UUID),
            (&status, Type::VARCHAR),
            (&filter.event_id, Type::UUID),
        ],
        &filter.created,
        &page,
        &[(&after_time, Type::TIMESTAMPTZ), (&after_id, Type::UUID)],
        from_row,
    )
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

/// Sends up to `$4` failed deliveries of webhook `$1` created in [`$2`, `$3`) (`$3` NULL: no
/// end) and after (`$5`, `$6`) (the last row of the previous batch; NULL for the first) round
/// again, oldest first, as [`RETRY`] does: pending, due now, a fresh budget. Each batch starts
/// where the last one stopped, on the partial index of failed rows (migration 9). Rows locked by
/// someone else are skipped. A pending delivery is never touched, so recovering twice changes
/// nothing the second time. Returns the moved rows' (created_at, id).
pub const RECOVER: &str = "UPDATE deliveries SET status = 'pending', delivery_attempts = 0, \
    scheduled_at = now(), updated_at = now() \
    WHERE id IN ( \
        SELECT id FROM deliveries \
        WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 \
          AND ($3::timestamptz IS NULL OR created_at < $3) \
          AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid)) \
        ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
    AND status = 'failed' \
    RETURNING created_at, id";

/// Where a recovery stopped: the last (created_at, id) it moved.
pub type RecoverMark = (chrono::DateTime<chrono::Utc>, Uuid);

/// One recovery batch (see [`RECOVER`]) after `after`; returns how many deliveries went back to
/// pending and the mark to start the next batch from (`None` when none moved).
pub fn recover_batch(
    client: &mut impl GenericClient,
    webhook_id: Uuid,
    (since, until): (
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
    after: Option<RecoverMark>,
    batch: i64,
) -> Result<(u64, Option<RecoverMark>), Error> {
    let (after_time, after_id) = (after.map(|a| a.0), after.map(|a| a.1));
    let rows = client.query_typed(
        RECOVER,
        &[
            (&webhook_id, Type::UUID),
            (&since, Type::TIMESTAMPTZ),
            (&until, Type::TIMESTAMPTZ),
            (&batch, Type::INT8),
            (&after_time, Type::TIMESTAMPTZ),
            (&after_id, Type::UUID),
        ],
    )?;
    let last = rows
        .iter()
        .map(|row| {
            (
                row.get::<_, chrono::DateTime<chrono::Utc>>(0),
                row.get::<_, Uuid>(1),
            )
        })
        .max();
    Ok((rows.len() as u64, last))
}

/// Deletes up to `$2` finished deliveries last changed more than `$1` days ago; returns their
/// ids and the span of their lives (earliest creation, latest change), which bounds the times
/// of their attempts. Rows locked by someone else (a retry request) are skipped, so retention
/// never waits on the API and the API never waits long on retention.
pub const DELETE_FINISHED: &str = "WITH gone AS ( \
        DELETE FROM deliveries WHERE id IN ( \
            SELECT id FROM deliveries \
            WHERE status IN ('succeeded', 'failed') \
              AND updated_at < now() - $1::integer * interval '1 day' \
            ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
        RETURNING id, created_at, updated_at) \
    SELECT coalesce(array_agg(id), '{}'), min(least(created_at, updated_at)), \
        max(greatest(created_at, updated_at)) FROM gone";

/// Deletes the attempts of the deliveries `$1`, all made between `$2` and `$3`. A finished
/// delivery's attempts all lie between its creation and its last change; the bounds keep the
/// statement to the partitions of that span, which retention has mostly dropped already.
const DELETE_ATTEMPTS_OF_MANY: &str = "DELETE FROM delivery_attempts \
    WHERE delivery_id = ANY($1) AND created_at >= $2 AND created_at <= $3";

/// One retention batch, in one transaction: finished deliveries and their attempts; returns
/// how many deliveries it deleted.
pub fn delete_finished_before(
    client: &mut impl GenericClient,
    days: i32,
    batch: i64,
) -> Result<u64, Error> {
    let mut tx = client.transaction()?;
    let row = tx.query_typed_one(
        DELETE_FINISHED,
        &[(&days, Type::INT4), (&batch, Type::INT8)],
    )?;
    let ids: Vec<Uuid> = row.get(0);
    let span: (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = (row.get(1), row.get(2));
    if let (Some(from), Some(to)) = span {
        tx.execute_typed(
            DELETE_ATTEMPTS_OF_MANY,
            &[
                (&ids, Type::UUID_ARRAY),
                (&(from - CLOCK_SLACK), Type::TIMESTAMPTZ),
                (&(to + CLOCK_SLACK), Type::TIMESTAMPTZ),
            ],
        )?;
    }
    tx.commit()?;
    Ok(ids.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_since_bounds_only_rows_made_after_the_legacy_partition() {
        let day = chrono::TimeDelta::days(1);
        let end = chrono::DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        assert_eq!(
            attempts_since(end - day, Some(end)),
            None,
            "maybe the original's"
        );
        assert_eq!(
            attempts_since(end, Some(end)),
            None,
            "within the slack of it"
        );
        assert_eq!(
            attempts_since(end + day, Some(end)),
            None,
            "within a day of it: maybe the original's, by an API clock ahead"
        );
        assert_eq!(
            attempts_since(end + day * 2, Some(end)),
            Some(end + day * 2 - CLOCK_SLACK)
        );
        assert_eq!(attempts_since(end, None), Some(end - CLOCK_SLACK));
        let before_1970 = chrono::DateTime::from_timestamp(-1, 0).unwrap();
        assert_eq!(attempts_since(before_1970, None), None);
    }
}
