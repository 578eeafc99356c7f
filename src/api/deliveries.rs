//! Handlers of `/v1/deliveries`: decode, call the store, shape the reply.

use uuid::Uuid;

use super::creates::{Created, New, create_once};
use super::cursor::{self, Kind, next_time_cursor};
use super::errors::ApiError;
use super::idempotency::{Key, Scope};
use super::json::{self, DeliveryJson, DeliveryList};
use super::query::Query;
use super::{Context, Reply};
use crate::model::Delivery;
use crate::store::deliveries::{self, Filter, RetryOutcome};

/// `GET /v1/deliveries`: newest first, filtered by `webhook_id`, `status`, `event_id` and
/// `created_at.*`, from the start, an `offset` or a `cursor`.
pub fn list(ctx: &Context, query: &str) -> Result<Reply, ApiError> {
    let mut query = Query::parse(query);
    let page = query.page();
    let after = query.cursor(&page, |c| cursor::decode_time(Kind::Deliveries, c));
    let filter = Filter {
        webhook_id: query.uuid("webhook_id"),
        status: query.status(),
        event_id: query.uuid("event_id"),
        created: query.created(),
    };
    query.finish()?;
    let listed = deliveries::list(&mut *ctx.read_client()?, &filter, page, after.as_ref())?;
    let next_cursor = next_time_cursor(Kind::Deliveries, &listed, |d| (d.created_at, d.id));
    Reply::json(
        200,
        &DeliveryList {
            deliveries: listed.rows.iter().map(DeliveryJson::from).collect(),
            limit: page.limit,
            offset: page.offset,
            next_cursor,
        },
    )
}

/// `POST /v1/deliveries`: 201 with the queued delivery; 400 naming `webhook_id` when the webhook
/// does not exist. With an `Idempotency-Key`, a repeat gets the first answer again (see
/// `idempotency`).
pub fn create(ctx: &Context, body: &[u8], key: Option<&str>) -> Result<Reply, ApiError> {
    let new = json::new_delivery(body)?;
    let key = Key::new(
        Scope::Deliveries,
        key,
        &[new.webhook_id.as_bytes(), new.payload.as_bytes()],
    )?;
    let create = New::Delivery {
        webhook_id: new.webhook_id,
        payload: new.payload,
    };
    let delivery = match create_once(ctx, create, key)? {
        Created::Delivery(delivery) => delivery,
        Created::Replayed(reply) => return Ok(reply),
        Created::Event(_) => return Err(ApiError::Internal),
    };
    ctx.notifier.poke();
    ctx.metrics.delivery_created();
    log::debug!(
        "delivery-created delivery_id={} webhook_id={}",
        delivery.id,
        delivery.webhook_id
    );
    created_reply(&delivery)
}

/// The 201 of a create: also what an idempotency key stores and replays.
pub(super) fn created_reply(delivery: &Delivery) -> Result<Reply, ApiError> {
    Reply::json(201, &DeliveryJson::from(delivery))
}

/// `GET /v1/deliveries/{id}`.
pub fn get(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    let delivery = deliveries::get(&mut *ctx.client()?, id)?.ok_or(ApiError::DeliveryNotFound)?;
    Reply::json(200, &DeliveryJson::from(&delivery))
}

/// `DELETE /v1/deliveries/{id}`: 204, or 404 when it did not exist.
pub fn delete(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    if !deliveries::delete(&mut *ctx.client()?, id)? {
        return Err(ApiError::DeliveryNotFound);
    }
    log::info!("delivery-deleted delivery_id={id}");
    Ok(Reply::no_content())
}

/// `POST /v1/deliveries/{id}/retry`: a finished delivery goes back to pending, due now, with a
/// fresh attempt budget; 409 while it is still pending.
pub fn retry(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    let delivery = requeue(ctx, id)?;
    Reply::json(200, &DeliveryJson::from(&delivery))
}

/// Sends a finished delivery round again (the API's retry and the dashboard's button): the
/// delivery, pending; 409 while it is still pending, 404 when there is none.
pub(crate) fn requeue(ctx: &Context, id: Uuid) -> Result<Delivery, ApiError> {
    match deliveries::retry(&mut *ctx.client()?, id)? {
        RetryOutcome::Requeued(delivery) => {
            ctx.notifier.poke();
            log::info!(
                "delivery-requeued delivery_id={id} webhook_id={}",
                delivery.webhook_id
            );
            Ok(delivery)
        }
        RetryOutcome::StillPending => Err(ApiError::DeliveryPending),
        RetryOutcome::NotFound => Err(ApiError::DeliveryNotFound),
    }
}
