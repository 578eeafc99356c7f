//! Handlers of `/v1/webhooks`: decode, call the store, shape the reply.

use uuid::Uuid;

use super::cursor;
use super::errors::ApiError;
use super::json::{self, WebhookJson, WebhookList};
use super::query::Query;
use super::{Context, Reply};
use crate::model::{Webhook, WebhookSettings};
use crate::store::webhooks::{self, Filter};
use crate::store::{NameMark, deliveries};

/// `GET /v1/webhooks`: by name, filtered by `active` and `created_at.*`, from the start, an
/// `offset` or a `cursor`.
pub fn list(ctx: &Context, query: &str) -> Result<Reply, ApiError> {
    let mut query = Query::parse(query);
    let page = query.page();
    let after = query.cursor(&page, cursor::decode_name);
    let filter = Filter {
        active: query.boolean("active"),
        created: query.created(),
    };
    query.finish()?;
    let listed = webhooks::list(&mut *ctx.read_client()?, &filter, page, after.as_ref())?;
    let next_cursor = listed.rows.last().filter(|_| listed.more).map(|w| {
        cursor::encode_name(&NameMark {
            name: w.settings.name.clone(),
            id: w.id,
        })
    });
    Reply::json(
        200,
        &WebhookList {
            webhooks: listed.rows.iter().map(WebhookJson::from).collect(),
            limit: page.limit,
            offset: page.offset,
            next_cursor,
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
    let webhook = replace(ctx, id, settings)?;
    Reply::json(200, &WebhookJson::from(&webhook))
}

/// Replaces a webhook's settings (`PUT`, and the dashboard's activate and deactivate).
pub(crate) fn replace(
    ctx: &Context,
    id: Uuid,
    settings: WebhookSettings,
) -> Result<Webhook, ApiError> {
    let webhook =
        webhooks::update(&mut *ctx.client()?, id, settings)?.ok_or(ApiError::WebhookNotFound)?;
    if webhook.settings.active {
        // A reactivated webhook's backlog is due now.
        ctx.notifier.poke();
    }
    log::info!("webhook-updated webhook_id={id}");
    Ok(webhook)
}

/// `DELETE /v1/webhooks/{id}`: 204, or 404 when it did not exist.
pub fn delete(ctx: &Context, id: Uuid) -> Result<Reply, ApiError> {
    if !webhooks::delete(&mut *ctx.client()?, id)? {
        return Err(ApiError::WebhookNotFound);
    }
    log::info!("webhook-deleted webhook_id={id}");
    Ok(Reply::no_content())
}

/// `POST /v1/webhooks/{id}/rotate-secret`: the given secret, or a generated `whsec_` one,
/// becomes the webhook's; the one it replaces keeps signing beside it for `previous_valid_for`
/// seconds (default a day). 200 with the webhook, whose `previous_secret_expires_at` says
/// until when.
pub fn rotate_secret(ctx: &Context, id: Uuid, body: &[u8]) -> Result<Reply, ApiError> {
    let webhook = rotate(ctx, id, json::rotation(body)?)?;
    Reply::json(200, &WebhookJson::from(&webhook))
}

/// Rotates a webhook's secret (the API's route and the dashboard's button): the webhook
/// afterwards, whose `secret_token` is the new secret.
pub(crate) fn rotate(
    ctx: &Context,
    id: Uuid,
    rotation: json::Rotation,
) -> Result<Webhook, ApiError> {
    let secret = match rotation.secret_token {
        Some(secret) => secret,
        None => generate_secret()?,
    };
    let webhook = webhooks::rotate_secret(
        &mut *ctx.client()?,
        id,
        &secret,
        rotation.previous_valid_for,
    )?
    .ok_or(ApiError::WebhookNotFound)?;
    log::info!(
        "webhook-secret-rotated webhook_id={id} previous_valid_for={}",
        rotation.previous_valid_for
    );
    Ok(webhook)
}

/// A Standard Webhooks secret: `whsec_` and 32 bytes from the OS's CSPRNG in base64.
fn generate_secret() -> Result<String, ApiError> {
    use base64::Engine;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| {
        log::error!("secret-generation-error error={e}");
        ApiError::Internal
    })?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// Most deliveries one `recover` call sends back; a larger window is recovered by calling again
/// (the answer says `"more": true`).
pub const RECOVER_CAP: u64 = 100_000;

/// Deliveries per recovery statement, each its own short transaction.
const RECOVER_BATCH: i64 = 1_000;

/// `POST /v1/webhooks/{id}/recover`: its failed deliveries created in [`since`, `until`) go
/// back to pending with a fresh attempt budget, in batches, synchronously, at most
/// [`RECOVER_CAP`] per call. 200 `{"recovered": N, "more": bool}`. Pending ones are untouched,
/// so a second call recovers nothing new.
pub fn recover(ctx: &Context, id: Uuid, body: &[u8]) -> Result<Reply, ApiError> {
    let recovered = recover_window(ctx, id, &json::recovery(body)?)?;
    Reply::json(200, &recovered)
}

/// Recovers a window (the API's route and the dashboard's button; see [`recover`]).
pub(crate) fn recover_window(
    ctx: &Context,
    id: Uuid,
    window: &json::Recovery,
) -> Result<json::Recovered, ApiError> {
    let mut client = ctx.client()?;
    if webhooks::get(&mut *client, id)?.is_none() {
        return Err(ApiError::WebhookNotFound);
    }
    let mut recovered = 0;
    let mut after = None;
    // Until a batch moves nothing: one shortened by rows locked elsewhere is not the end.
    let more = loop {
        let batch = RECOVER_BATCH.min(i64::try_from(RECOVER_CAP - recovered).unwrap_or(0));
        let (moved, last) = deliveries::recover_batch(
            &mut *client,
            id,
            (window.since, window.until),
            after,
            batch,
        )?;
        recovered += moved;
        if moved == 0 {
            break false;
        }
        if recovered >= RECOVER_CAP {
            break true;
        }
        after = last;
    };
    if recovered > 0 {
        ctx.notifier.poke();
    }
    log::info!("webhook-recovered webhook_id={id} recovered={recovered} more={more}");
    Ok(json::Recovered { recovered, more })
}
