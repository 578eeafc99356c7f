//! Every statement that touches `events`: the fan-out create, read, list, and retention.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Listed, Page, TimeMark, by_id, page_of};
use crate::model::{DeliveryStatus, Event};

/// New events, each with one pending delivery for every active webhook subscribed to its type
/// (an empty `event_types` subscribes to every type), in one statement from parallel arrays:
/// one round trip and, outside a transaction, one commit for the whole batch however many
/// webhooks each reaches.
///
/// The webhooks are locked `FOR KEY SHARE` (what the deliveries' foreign key takes anyway)
/// `SKIP LOCKED`: a webhook whose delete is in progress is passed over rather than waited for,
/// so a long cascading delete stalls no event. Delivery ids are UUIDv7, made here as the
/// direct creates make them in Rust (time-ordered, for the primary key's sake): the random
/// bytes of a v4 with the millisecond clock over the first 48 bits and the version set to 7.
/// The operational webhook (`$4`) receives postmand's own notices only, whatever its
/// `event_types` say.
pub const INSERT_MANY: &str = "WITH input AS ( \
        SELECT * FROM unnest($1::uuid[], $2::varchar[], $3::text[]) \
            AS i(id, event_type, payload)), \
    targets AS MATERIALIZED ( \
        SELECT i.id AS event_id, w.id AS webhook_id \
        FROM input i JOIN webhooks w ON w.active AND w.id <> $4::uuid \
            AND (cardinality(w.event_types) = 0 OR i.event_type = ANY (w.event_types)) \
        FOR KEY SHARE OF w SKIP LOCKED), \
    counts AS ( \
        SELECT event_id, count(*) AS n FROM targets GROUP BY event_id), \
    event AS ( \
        INSERT INTO events (id, event_type, payload, deliveries, created_at) \
        SELECT i.id, i.event_type, i.payload, coalesce(c.n, 0), now() \
        FROM input i LEFT JOIN counts c ON c.event_id = i.id \
        RETURNING id, event_type, payload, deliveries, created_at), \
    made AS ( \
        INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
            status, created_at, updated_at, event_id) \
        SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) \
                placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
                    FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid, \
            t.webhook_id, i.payload, now(), 0, 'pending', now(), now(), t.event_id \
        FROM targets t JOIN input i ON i.id = t.event_id \
        RETURNING id) \
    SELECT id, event_type, payload, deliveries, created_at FROM event";

/// One event by id; columns in the order [`from_row`] reads them.
const GET: &str =
    "SELECT id, event_type, payload, deliveries, created_at FROM events WHERE id = $1";

/// The deliveries an event made, in the order of their ids.
const DELIVERIES: &str = "SELECT id, webhook_id, status FROM deliveries \
    WHERE event_id = $1 ORDER BY created_at DESC, id DESC";

/// Newest first, ties broken by id so paging never skips or repeats a row. A NULL filter
/// parameter means "no filter". `$8`/`$9` is the keyset mark, as in `deliveries::LIST`.
pub const LIST: &str = "SELECT id, event_type, payload, deliveries, created_at FROM events \
    WHERE ($1::varchar IS NULL OR event_type = $1) \
    AND ($2::timestamptz IS NULL OR created_at > $2) \
    AND ($3::timestamptz IS NULL OR created_at >= $3) \
    AND ($4::timestamptz IS NULL OR created_at < $4) \
    AND ($5::timestamptz IS NULL OR created_at <= $5) \
    AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::uuid)) \
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

/// Stores events and queues their deliveries (see [`INSERT_MANY`]), in the order given. Outside
/// a transaction this is one commit.
pub fn insert_many(
    client: &mut impl GenericClient,
    new: &[(&str, &str)],
) -> Result<Vec<Event>, Error> {
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let types: Vec<&str> = new.iter().map(|(event_type, _)| *event_type).collect();
    let payloads: Vec<&str> = new.iter().map(|(_, payload)| *payload).collect();
    let rows = client.query_typed(
        INSERT_MANY,
        &[
            (&ids, Type::UUID_ARRAY),
            (&types, Type::VARCHAR_ARRAY),
            (&payloads, Type::TEXT_ARRAY),
            (&super::webhooks::OPERATIONAL_WEBHOOK_ID, Type::UUID),
        ],
    )?;
    let mut events: Vec<Event> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    // RETURNING does not promise the input's order.
    events.sort_by_key(|event| ids.iter().position(|id| *id == event.id));
    Ok(events)
}

/// Deletes an event and the deliveries it made (their foreign key would only unlink them):
/// how a create that lost an idempotency race is undone inside its transaction.
pub fn delete_with_deliveries(client: &mut impl GenericClient, id: Uuid) -> Result<(), Error> {
    client.execute_typed(
        "DELETE FROM deliveries WHERE event_id = $1",
        &[(&id, Type::UUID)],
    )?;
    client.execute_typed("DELETE FROM events WHERE id = $1", &[(&id, Type::UUID)])?;
    Ok(())
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

/// One page of events, newest first, after `after` when given.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
    after: Option<&TimeMark>,
) -> Result<Listed<Event>, Error> {
    let (after_time, after_id) = TimeMark::params(after);
    page_of(
        client,
        LIST,
        &[(&filter.event_type, Type::VARCHAR)],
        &filter.created,
        &page,
        &[(&after_time, Type::TIMESTAMPTZ), (&after_id, Type::UUID)],
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
