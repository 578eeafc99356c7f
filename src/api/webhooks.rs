//! Handlers of `/v1/webhooks`: decode, call the store, shape the reply.

use uuid::Uuid;

use super::errors::ApiError;
use super::json::{self, WebhookJson, WebhookList};
use super::query::Query;
use super::{Context, Reply};
use crate::store::webhooks::{self, Filter};

/// `GET /v1/webhooks`: by name, filtered by `active` and `created_at.*`.
pub fn list(ctx: &Context, query: &str) -> Result<Reply, ApiError> {
    let mut query = Query::parse(query);
    let page = query.page();
    let filter = Filter {
        active: query.boolean("active"),
        created: query.created(),
    };
    query.finish()?;
    let rows = webhooks::list(&mut *ctx.client()?, &filter, page)?;
    Reply::json(
        200,
        &WebhookList {
            webhooks: rows.iter().map(WebhookJson::from).collect(),
            limit: page.limit,
            offset: page.offset,
        },
    )
}

/// `POST /v1/webhooks`: 201 with the stored webhook.
pub fn create(ctx: &Context, body: &[u8]) -> Result<Reply, ApiError> {
    let settings = json::webhook_settings(body)?;
    let webhook = webhooks::insert(&mut *ctx.client()?, settings)?;
    log::info!("webhook-created webhook_id={}", webhook.id);
    Reply::json(201, &WebhookJson::from(&webhook))
}

/// `GET /v1/webhooks/{id}`.
pub fn get(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    let webhook = webhooks::get(&mut *ctx.client()?, id)?.ok_or(ApiError::WebhookNotFound)?;
    Reply::json(200, &WebhookJson::from(&webhook))
}

/// `PUT /v1/webhooks/{id}`: full replacement; 404 when there is nothing to replace.
pub fn update(ctx: &Context, id: Uuid, body: &[u8]) -> Result<Reply, ApiError> {
    let settings = json::webhook_settings(body)?;
    let webhook =
        webhooks::update(&mut *ctx.client()?, id, settings)?.ok_or(ApiError::WebhookNotFound)?;
    if webhook.settings.active {
        // A reactivated webhook's backlog is due now.
        ctx.notifier.poke();
    }
    log::info!("webhook-updated webhook_id={id}");
    Reply::json(200, &WebhookJson::from(&webhook))
}

/// `DELETE /v1/webhooks/{id}`: 204, or 404 when it did not exist.
pub fn delete(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    if !webhooks::delete(&mut *ctx.client()?, id)? {
        return Err(ApiError::WebhookNotFound);
    }
    log::info!("webhook-deleted webhook_id={id}");
    Ok(Reply::no_content())
}
