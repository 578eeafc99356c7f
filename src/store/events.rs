//! Every statement that touches `events`: the fan-out create, read, list, and retention.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Page, by_id, page_of};
use crate::model::{DeliveryStatus, Event};

/// A new event and one pending delivery for every active webhook subscribed to its type (an
/// empty `event_types` subscribes to every type), in one statement: one round trip and one
/// commit however many webhooks it reaches.
///
/// The webhooks are locked `FOR KEY SHARE` (what the deliveries' foreign key takes anyway)
/// `SKIP LOCKED`: a webhook whose delete is in progress is passed over rather than waited for,
/// so a long cascading delete stalls no event. Delivery ids are UUIDv7, made here as the
/// direct creates make them in Rust (time-ordered, for the primary key's sake): the random
/// bytes of a v4 with the millisecond clock over the first 48 bits and the version set to 7.
pub const INSERT: &str = "WITH targets AS MATERIALIZED ( \
        SELECT w.id FROM webhooks w \
        WHERE w.active AND (cardinality(w.event_types) = 0 OR $2::varchar = ANY (w.event_types)) \
        FOR KEY SHARE OF w SKIP LOCKED), \
    event AS ( \
        INSERT INTO events (id, event_type, payload, deliveries, created_at) \
        SELECT $1::uuid, $2::varchar, $3::text, count(*), now() FROM targets \
        RETURNING id, event_type, payload, deliveries, created_at), \
    made AS ( \
        INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
            status, created_at, updated_at, event_id) \
        SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) \
                placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
                    FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid, \
            t.id, $3::text, now(), 0, 'pending', now(), now(), $1::uuid \
        FROM targets t \
        RETURNING id) \
    SELECT id, event_type, payload, deliveries, created_at FROM event";

/// One event by id; columns in the order [`from_row`] reads them.
const GET: &str =
    "SELECT id, event_type, payload, deliveries, created_at FROM events WHERE id = $1";

/// The deliveries an event made, in the order of their ids.
const DELIVERIES: &str = "SELECT id, webhook_id, status FROM deliveries \
    WHERE event_id = $1 ORDER BY created_at DESC, id DESC";

/// Newest first, ties broken by id so paging never skips or repeats a row. A NULL filter
/// parameter means "no filter".
pub const LIST: &str = "SELECT id, event_type, payload, deliveries, created_at FROM events \
    WHERE ($1::varchar IS NULL OR event_type = $1) \
    AND ($2::timestamptz IS NULL OR created_at > $2) \
    AND ($3::timestamptz IS NULL OR created_at >= $3) \
    AND ($4::timestamptz IS NULL OR created_at < $4) \
    AND ($5::timestamptz IS NULL OR created_at <= $5) \
    ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7";

/// Deletes up to `$2` events created more than `$1` days ago that no delivery refers to any
/// more (retention took them, or there never were any).
const DELETE_UNREFERENCED: &str = "DELETE FROM events WHERE id IN ( \
    SELECT e.id FROM events e \
    WHERE e.created_at < now() - $1::integer * interval '1 day' \
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) \
    ORDER BY e.created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Filters of the event list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Creation-time bounds.
    pub created: CreatedRange,
}

/// A delivery an event made, as `GET /v1/events/{id}` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// The delivery.
    pub id: Uuid,
    /// Its webhook.
    pub webhook_id: Uuid,
    /// Where it is now.
    pub status: DeliveryStatus,
}

fn from_row(row: &Row) -> Result<Event, Error> {
    Ok(Event {
        id: row.get("id"),
        event_type: row.get("event_type"),
        payload: row.get("payload"),
        deliveries: row.get("deliveries"),
        created_at: row.get("created_at"),
    })
}

/// Stores an event and queues its deliveries (see [`INSERT`]). Outside a transaction this is
/// one commit.
///
/// `query_typed` sends the statement with its parameters in one round trip. `query_one` with
/// SQL text prepares it first in a round trip of its own, and PostgreSQL runs that Parse in a
/// transaction of its own: `scripts/bench.sh --only events` counted two commits per event.
pub fn insert(
    client: &mut impl GenericClient,
    event_type: &str,
    payload: &str,
) -> Result<Event, Error> {
    let id = Uuid::now_v7();
    let row = client.query_typed_one(
        INSERT,
        &[
            (&id, Type::UUID),
            (&event_type, Type::VARCHAR),
            (&payload, Type::TEXT),
        ],
    )?;
    from_row(&row)
}

/// One event by id.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Event>, Error> {
    by_id(client, GET, id, from_row)
}

/// The deliveries event `id` made.
pub fn deliveries(client: &mut impl GenericClient, id: Uuid) -> Result<Vec<Made>, Error> {
    client
        .query_typed(DELIVERIES, &[(&id, Type::UUID)])?
        .iter()
        .map(|row| {
            let status: String = row.get("status");
            Ok(Made {
                id: row.get("id"),
                webhook_id: row.get("webhook_id"),
                status: status.parse().map_err(Error::UnknownStatus)?,
            })
        })
        .collect()
}

/// One page of events, newest first.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
) -> Result<Vec<Event>, Error> {
    page_of(
        client,
        LIST,
        &[(&filter.event_type, Type::VARCHAR)],
        &filter.created,
        &page,
        from_row,
    )
}

/// One retention batch (see [`DELETE_UNREFERENCED`]); returns how many events it deleted.
pub fn delete_unreferenced_before(
    client: &mut impl GenericClient,
    days: i32,
    batch: i64,
) -> Result<u64, Error> {
    Ok(client.execute(DELETE_UNREFERENCED, &[&days, &batch])?)
}
