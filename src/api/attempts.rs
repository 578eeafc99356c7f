//! Handlers of `/v1/delivery-attempts`: read-only.

use uuid::Uuid;

use super::cursor::{self, Kind, next_time_cursor};
use super::errors::ApiError;
use super::json::{AttemptJson, AttemptList};
use super::query::Query;
use super::{Context, Reply};
use crate::store::attempts::{self, Filter};

/// `GET /v1/delivery-attempts`: newest first, filtered by `webhook_id`, `delivery_id`,
/// `success` and `created_at.*`, from the start, an `offset` or a `cursor`.
pub fn list(ctx: &Context, query: &str) -> Result<Reply, ApiError> {
    let mut query = Query::parse(query);
    let page = query.page();
    let after = query.cursor(&page, |c| cursor::decode_time(Kind::Attempts, c));
    let filter = Filter {
        webhook_id: query.uuid("webhook_id"),
        delivery_id: query.uuid("delivery_id"),
        success: query.boolean("success"),
        created: query.created(),
    };
    query.finish()?;
    let listed = attempts::list(&mut *ctx.read_client()?, &filter, page, after.as_ref())?;
    let next_cursor = next_time_cursor(Kind::Attempts, &listed, |a| (a.created_at, a.id));
    Reply::json(
        200,
        &AttemptList {
            delivery_attempts: listed.rows.iter().map(AttemptJson::from).collect(),
            limit: page.limit,
            offset: page.offset,
            next_cursor,
        },
    )
}

/// `GET /v1/delivery-attempts/{id}`.
pub fn get(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    let attempt = attempts::get(&mut *ctx.client()?, id)?.ok_or(ApiError::AttemptNotFound)?;
    Reply::json(200, &AttemptJson::from(&attempt))
}
