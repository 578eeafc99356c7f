//! Every statement that touches `deliveries`.

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
    let row = client.query_one(INSERT, &[&id, &webhook_id, &payload])?;
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
    Ok(client.execute(DELETE, &[&id])? == 1)
}

/// One page of deliveries, newest first.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
) -> Result<Vec<Delivery>, Error> {
    let c = &filter.created;
    let status = filter.status.map(DeliveryStatus::as_str);
    let rows = client.query(
        LIST,
        &[
            &filter.webhook_id,
            &status,
            &c.gt,
            &c.gte,
            &c.lt,
            &c.lte,
            &page.limit,
            &page.offset,
        ],
    )?;
    rows.iter().map(from_row).collect()
}

/// Puts a succeeded or failed delivery back in the queue.
pub fn retry(client: &mut impl GenericClient, id: Uuid) -> Result<RetryOutcome, Error> {
    if let Some(row) = client.query_opt(RETRY, &[&id])? {
        return Ok(RetryOutcome::Requeued(from_row(&row)?));
    }
    Ok(match get(client, id)? {
        Some(_) => RetryOutcome::StillPending,
        None => RetryOutcome::NotFound,
    })
}
