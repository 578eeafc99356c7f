//! Every statement that touches `webhooks`.

use chrono::{DateTime, Utc};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Listed, NameMark, Page, by_id, page_of};
use crate::model::{Disabled, Webhook, WebhookSettings};

/// One webhook by id; columns in the order [`from_row`] reads them.
const GET: &str = "SELECT id, name, url, content_type, valid_status_codes, secret_token, active, \
    max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, \
    event_types, created_at, updated_at, disabled_reason, disabled_at, \
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END \
        AS previous_secret_expires_at \
    FROM webhooks WHERE id = $1";

/// Inserts a webhook; the database stamps both timestamps.
const INSERT: &str = "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, \
    secret_token, active, max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, \
    retry_max_backoff, event_types, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), now()) \
    RETURNING created_at, updated_at";

/// Replaces every setting of a webhook; `created_at` stays. Activating it (`$7`) clears why
/// postmand disabled it, and restarts the failure clock of one that was inactive, so a webhook
/// turned back on is judged by its attempts from now on.
const UPDATE: &str = "WITH before AS ( \
        SELECT active FROM webhooks WHERE id = $1 FOR NO KEY UPDATE), \
    restarted AS ( \
        DELETE FROM webhook_failures \
        WHERE webhook_id = $1 AND $7 AND NOT (SELECT active FROM before)) \
    UPDATE webhooks SET name = $2, url = $3, content_type = $4, \
    valid_status_codes = $5, secret_token = $6, active = $7, max_delivery_attempts = $8, \
    delivery_attempt_timeout = $9, retry_min_backoff = $10, retry_max_backoff = $11, \
    event_types = $12, \
    disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END, \
    disabled_at = CASE WHEN $7 THEN NULL ELSE disabled_at END, \
    updated_at = now() WHERE id = $1 \
    RETURNING created_at, updated_at, disabled_reason, disabled_at, \
        CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END \
            AS previous_secret_expires_at";

/// Makes `$2` the secret and keeps the current one signing for `$3` seconds more (none when
/// the current one is empty: an unsigned webhook has nothing to keep).
const ROTATE_SECRET: &str = "UPDATE webhooks SET \
    previous_secret_token = CASE WHEN secret_token = '' THEN NULL ELSE secret_token END, \
    previous_secret_expires_at = CASE WHEN secret_token = '' OR $3 = 0 THEN NULL \
        ELSE now() + $3::integer * interval '1 second' END, \
    secret_token = $2, updated_at = now() \
    WHERE id = $1 \
    RETURNING id, name, url, content_type, valid_status_codes, secret_token, active, \
    max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, \
    event_types, created_at, updated_at, disabled_reason, disabled_at, \
    previous_secret_expires_at";

/// The id of the operational webhook, the row postmand keeps for its own notices
/// (`POSTMAND_OPERATIONAL_WEBHOOK_URL`). A v4 UUID, like every webhook id.
pub const OPERATIONAL_WEBHOOK_ID: Uuid = Uuid::from_u128(0x706f_7374_6d61_4e64_8000_0000_0000_0001);

/// The event type the operational webhook subscribes to, so that no client event reaches it.
pub const OPERATIONAL_EVENT_TYPE: &str = "postmand.operational";

/// Creates the operational webhook, or points it at `$2` signed with `$3` when either changed.
/// Its other settings are an ordinary webhook's, which a client may change with `PUT` (a
/// deactivated one stays deactivated).
const ENSURE_OPERATIONAL: &str = "INSERT INTO webhooks (id, name, url, content_type, \
    valid_status_codes, secret_token, active, max_delivery_attempts, delivery_attempt_timeout, \
    retry_min_backoff, retry_max_backoff, event_types, created_at, updated_at) \
    VALUES ($1, 'postmand operational notices', $2, 'application/json', '{200,201,202,204}', \
        $3, true, 20, 10, 10, 3600, ARRAY[$4::varchar], now(), now()) \
    ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, secret_token = EXCLUDED.secret_token, \
        updated_at = now() \
    WHERE webhooks.url IS DISTINCT FROM EXCLUDED.url \
       OR webhooks.secret_token IS DISTINCT FROM EXCLUDED.secret_token";

/// Deletes a webhook; its deliveries go with it (ON DELETE CASCADE), and
/// [`DELETE_ATTEMPTS_OF`] then deletes its attempts. Also returns the end of the legacy
/// partition, as `deliveries::DELETE` does (see `deliveries::attempts_since`).
const DELETE: &str =
    "DELETE FROM webhooks WHERE id = $1 RETURNING created_at, postmand_attempt_legacy_end()";

/// The creation time of webhook `$1`, and the end of the legacy partition (as [`DELETE`]).
pub(super) const CREATED_AT: &str =
    "SELECT created_at, postmand_attempt_legacy_end() FROM webhooks WHERE id = $1";

/// Deletes the attempts of webhook `$1` made since `$2` (its creation; NULL: whenever), from
/// the partitions of that span only. See `deliveries::DELETE_ATTEMPTS_OF` for why it is a
/// statement of its own.
const DELETE_ATTEMPTS_OF: &str = "DELETE FROM delivery_attempts \
    WHERE webhook_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)";

/// Webhooks by name, ties broken by id so paging never skips or repeats a row. A NULL filter
/// parameter means "no filter". `$8`/`$9` is the keyset mark: rows strictly after that one,
/// NULL on a first page; the row comparison is an index condition of `webhooks_name_id_idx`.
pub const LIST: &str = "SELECT id, name, url, content_type, valid_status_codes, secret_token, active, \
    max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, \
    event_types, created_at, updated_at, disabled_reason, disabled_at, \
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END \
        AS previous_secret_expires_at \
    FROM webhooks \
    WHERE ($1::boolean IS NULL OR active = $1) \
    AND ($2::timestamptz IS NULL OR created_at > $2) \
    AND ($3::timestamptz IS NULL OR created_at >= $3) \
    AND ($4::timestamptz IS NULL OR created_at < $4) \
    AND ($5::timestamptz IS NULL OR created_at <= $5) \
    AND ($8::varchar IS NULL OR (name, id) > ($8, $9::uuid)) \
    ORDER BY name, id LIMIT $6 OFFSET $7";

/// Filters of the webhook list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only active (true) or inactive (false) webhooks.
    pub active: Option<bool>,
    /// Creation-time bounds.
    pub created: CreatedRange,
}

fn from_row(row: &Row) -> Webhook {
    Webhook {
        id: row.get("id"),
        settings: WebhookSettings {
            name: row.get("name"),
            url: row.get("url"),
            content_type: row.get("content_type"),
            valid_status_codes: row.get("valid_status_codes"),
            secret_token: row.get("secret_token"),
            active: row.get("active"),
            max_delivery_attempts: row.get("max_delivery_attempts"),
            delivery_attempt_timeout: row.get("delivery_attempt_timeout"),
            retry_min_backoff: row.get("retry_min_backoff"),
            retry_max_backoff: row.get("retry_max_backoff"),
            event_types: row.get("event_types"),
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        disabled: disabled(row),
        previous_secret_expires_at: row.get("previous_secret_expires_at"),
    }
}

/// The `disabled_reason` and `disabled_at` columns of `row`.
fn disabled(row: &Row) -> Option<Disabled> {
    let reason: Option<String> = row.get("disabled_reason");
    let at: Option<DateTime<Utc>> = row.get("disabled_at");
    Some(Disabled {
        reason: reason?,
        at: at?,
    })
}

/// `$1` = the id, `$2..$12` = the settings, as [`INSERT`] and [`UPDATE`] number them.
fn row_params<'a>(id: &'a Uuid, s: &'a WebhookSettings) -> [&'a (dyn ToSql + Sync); 12] {
    [
        id,
        &s.name,
        &s.url,
        &s.content_type,
        &s.valid_status_codes,
        &s.secret_token,
        &s.active,
        &s.max_delivery_attempts,
        &s.delivery_attempt_timeout,
        &s.retry_min_backoff,
        &s.retry_max_backoff,
        &s.event_types,
    ]
}

/// Stores a new webhook with a fresh id.
pub fn insert(
    client: &mut impl GenericClient,
    settings: WebhookSettings,
) -> Result<Webhook, Error> {
    let id = Uuid::new_v4();
    let row = client.query_one(INSERT, &row_params(&id, &settings))?;
    Ok(Webhook {
        id,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        settings,
        disabled: None,
        previous_secret_expires_at: None,
    })
}

/// Replaces a webhook's settings. `None` when no webhook has that id.
pub fn update(
    client: &mut impl GenericClient,
    id: Uuid,
    settings: WebhookSettings,
) -> Result<Option<Webhook>, Error> {
    let row = client.query_opt(UPDATE, &row_params(&id, &settings))?;
    Ok(row.map(|row| Webhook {
        id,
        settings,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        disabled: disabled(&row),
        previous_secret_expires_at: row.get("previous_secret_expires_at"),
    }))
}

/// Rotates a webhook's secret to `secret`, the old one signing too for `previous_valid_for`
/// seconds (see [`ROTATE_SECRET`]). `None` when no webhook has that id.
pub fn rotate_secret(
    client: &mut impl GenericClient,
    id: Uuid,
    secret: &str,
    previous_valid_for: i32,
) -> Result<Option<Webhook>, Error> {
    let row = client.query_opt(ROTATE_SECRET, &[&id, &secret, &previous_valid_for])?;
    Ok(row.as_ref().map(from_row))
}

/// Makes sure the operational webhook exists and posts to `url` signed with `secret`.
pub fn ensure_operational(
    client: &mut impl GenericClient,
    url: &str,
    secret: &str,
) -> Result<(), Error> {
    client.execute(
        ENSURE_OPERATIONAL,
        &[
            &OPERATIONAL_WEBHOOK_ID,
            &url,
            &secret,
            &OPERATIONAL_EVENT_TYPE,
        ],
    )?;
    Ok(())
}

/// Deletes a webhook and everything under it, in one transaction. Returns whether it existed.
pub fn delete(client: &mut impl GenericClient, id: Uuid) -> Result<bool, Error> {
    super::deliveries::delete_with_attempts(client, (DELETE, DELETE_ATTEMPTS_OF), id)
}

/// One webhook by id.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Webhook>, Error> {
    by_id(client, GET, id, |row| Ok(from_row(row)))
}

/// One page of webhooks, ordered by name then id, after `after` when given.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
    after: Option<&NameMark>,
) -> Result<Listed<Webhook>, Error> {
    let (after_name, after_id) = (after.map(|m| m.name.as_str()), after.map(|m| m.id));
    page_of(
        client,
        LIST,
        &[(&filter.active, Type::BOOL)],
        &filter.created,
        &page,
        &[(&after_name, Type::VARCHAR), (&after_id, Type::UUID)],
        |row| Ok(from_row(row)),
    )
}
