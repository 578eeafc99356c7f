//! Handlers of `/v1/events`: one event fans out to every active webhook subscribed to its type.

use uuid::Uuid;

use super::creates::{Created, New, create_once};
use super::cursor::{self, Kind, next_time_cursor};
use super::errors::ApiError;
use super::idempotency::{Key, Scope};
use super::json::{self, EventDetail, EventJson, EventList, MadeJson};
use super::query::Query;
use super::{Context, Reply};
use crate::model::Event;
use crate::store::events::{self, Filter};

/// `GET /v1/events`: newest first, filtered by `event_type` and `created_at.*`, from the start,
/// an `offset` or a `cursor`.
pub fn list(ctx: &Context, query: &str) -> Result<Reply, ApiError> {
    let mut query = Query::parse(query);
    let page = query.page();
    let after = query.cursor(&page, |c| cursor::decode_time(Kind::Events, c));
    let filter = Filter {
        event_type: query.event_type("event_type"),
        created: query.created(),
    };
    query.finish()?;
    let listed = events::list(&mut *ctx.read_client()?, &filter, page, after.as_ref())?;
    let next_cursor = next_time_cursor(Kind::Events, &listed, |e| (e.created_at, e.id));
    Reply::json(
        200,
        &EventList {
            events: listed.rows.iter().map(EventJson::from).collect(),
            limit: page.limit,
            offset: page.offset,
            next_cursor,
        },
    )
}

/// `POST /v1/events`: 201 with the event and how many deliveries it made (0 when no webhook
/// subscribes: the event is kept all the same). Written by the group-commit writer: one
/// statement for the event and its whole fan-out, one commit shared with the creates beside it;
/// with an `Idempotency-Key`, its answer is stored in the same transaction.
pub fn create(ctx: &Context, body: &[u8], key: Option<&str>) -> Result<Reply, ApiError> {
    let new = json::new_event(body)?;
    let key = Key::new(
        Scope::Events,
        key,
        &[new.event_type.as_bytes(), new.payload.as_bytes()],
    )?;
    let create = New::Event {
        event_type: new.event_type,
        payload: new.payload,
    };
    let event = match create_once(ctx, create, key)? {
        Created::Event(event) => event,
        Created::Replayed(reply) => return Ok(reply),
        Created::Delivery(_) => return Err(ApiError::Internal),
    };
    if event.deliveries > 0 {
        ctx.notifier.poke();
    }
    ctx.metrics
        .event_created(u64::try_from(event.deliveries).unwrap_or(0));
    log::debug!(
        "event-created event_id={} event_type={} deliveries={}",
        event.id,
        event.event_type,
        event.deliveries
    );
    created_reply(&event)
}

/// The 201 of a create: also what an idempotency key stores and replays.
pub(super) fn created_reply(event: &Event) -> Result<Reply, ApiError> {
    Reply::json(201, &EventJson::from(event))
}

/// `GET /v1/events/{id}`: the event, and the id, webhook and status of each of its deliveries.
pub fn get(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    let mut client = ctx.client()?;
    let event = events::get(&mut *client, id)?.ok_or(ApiError::EventNotFound)?;
    let made = events::deliveries(&mut *client, id)?;
    Reply::json(
        200,
        &EventDetail {
            event: EventJson::from(&event),
            delivery_statuses: made.iter().map(MadeJson::from).collect(),
        },
    )
}
