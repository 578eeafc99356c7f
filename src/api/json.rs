//! Request bodies in, response bodies out: decoding, the validation rules with their messages,
//! and the response structs whose field order is the wire order of the original.
//!
//! Decoding follows the original where it matters to clients: unknown fields are ignored, a
//! field of the wrong JSON type is a malformed body (code 3), and `null` is the same as absent.
//! Fields a client may not set (`id`, `status`, `delivery_attempts`, timestamps) are ignored.
//! A body must be one JSON object (serde would also take an array of the fields in order).
//! Lengths count characters, as JSON Schema's `minLength`/`maxLength` do, so the OpenAPI
//! document (`openapi.rs`) can state every rule here exactly; the original counted bytes.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::{ApiError, FieldError};
use crate::model::{Attempt, Delivery, Event, Webhook, WebhookSettings};
use crate::store::events::Made;
use crate::url::EndpointUrl;

/// Upper bounds of the webhook's integers. The original had none below SMALLINT and answered
/// 500 past it; these are documented in README.md and the OpenAPI document.
pub const MAX_DELIVERY_ATTEMPTS: i64 = 1000;
pub use crate::model::MAX_ATTEMPT_TIMEOUT_SECS;
/// A day.
pub const MAX_RETRY_MIN_BACKOFF_SECS: i64 = 86_400;
/// A week.
pub const MAX_RETRY_MAX_BACKOFF_SECS: i64 = 604_800;
/// More codes than the 500 valid ones would only be duplicates.
pub const MAX_STATUS_CODES: usize = 500;
/// Shortest accepted name, in characters.
pub const MIN_NAME_CHARS: usize = 3;
/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest accepted URL, in characters (the original's validator's limit).
pub const MAX_URL_CHARS: usize = 2083;
/// Longest accepted content type, in characters (all ASCII).
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
/// Longest accepted secret token, in characters.
pub const MAX_SECRET_TOKEN_CHARS: usize = 1024;
/// Longest event type, in characters (all ASCII).
pub const MAX_EVENT_TYPE_CHARS: usize = 128;
/// Most event types one webhook subscribes to.
pub const MAX_EVENT_TYPES: usize = 100;
/// Event types postmand keeps for itself (its operational notices); clients cannot post them.
pub const RESERVED_EVENT_PREFIX: &str = "postmand.";
/// An event type's characters, as a JSON Schema pattern (the OpenAPI document's).
pub const EVENT_TYPE_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";

/// The body of `POST /v1/webhooks` and `PUT /v1/webhooks/{id}`, as decoded.
#[derive(Debug, Deserialize)]
struct WebhookBody {
    name: Option<String>,
    url: Option<String>,
    content_type: Option<String>,
    valid_status_codes: Option<Vec<i64>>,
    secret_token: Option<String>,
    active: Option<bool>,
    max_delivery_attempts: Option<i64>,
    delivery_attempt_timeout: Option<i64>,
    retry_min_backoff: Option<i64>,
    retry_max_backoff: Option<i64>,
    event_types: Option<Vec<String>>,
}

/// The body of `POST /v1/deliveries`, as decoded.
#[derive(Debug, Deserialize)]
struct DeliveryBody {
    webhook_id: Option<String>,
    payload: Option<String>,
}

/// The body of `POST /v1/events`, as decoded.
#[derive(Debug, Deserialize)]
struct EventBody {
    event_type: Option<String>,
    payload: Option<String>,
}

/// A valid `POST /v1/events` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened; webhooks subscribe by it.
    pub event_type: String,
    /// The bytes each delivery POSTs.
    pub payload: String,
}

/// A valid `POST /v1/deliveries` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The webhook it is for (existence is checked by the insert).
    pub webhook_id: Uuid,
    /// The bytes to POST.
    pub payload: String,
}

/// Decodes and validates a webhook body. Omitted `active` means inactive and omitted
/// `secret_token` means unsigned, on create and on replace alike (the original's semantics).
pub fn webhook_settings(body: &[u8]) -> Result<WebhookSettings, ApiError> {
    let body: WebhookBody = decode(body)?;
    let mut errors = Vec::new();
    let name = text(&mut errors, "name", body.name, |name| {
        (!(MIN_NAME_CHARS..=MAX_NAME_CHARS).contains(&name.chars().count()))
            .then_some("the length must be between 3 and 255")
    });
    let url = text(&mut errors, "url", body.url, |url| {
        (url.chars().count() > MAX_URL_CHARS || !EndpointUrl::new(url).is_valid())
            .then_some("must be a valid URL")
    });
    let content_type = text(&mut errors, "content_type", body.content_type, |ct| {
        if ct.chars().count() > MAX_CONTENT_TYPE_CHARS {
            Some("the length must be no more than 255")
        } else if !is_header_value(ct) {
            Some("must be a valid header value")
        } else {
            None
        }
    });
    let secret_token = body.secret_token.unwrap_or_default();
    if let Some(message) = secret_error(&secret_token) {
        errors.push(FieldError::new("secret_token", message));
    }
    let valid_status_codes = status_codes(&mut errors, body.valid_status_codes);
    let max_delivery_attempts = positive(
        &mut errors,
        "max_delivery_attempts",
        body.max_delivery_attempts,
        MAX_DELIVERY_ATTEMPTS,
    );
    let delivery_attempt_timeout = positive(
        &mut errors,
        "delivery_attempt_timeout",
        body.delivery_attempt_timeout,
        MAX_ATTEMPT_TIMEOUT_SECS,
    );
    let retry_min_backoff = positive(
        &mut errors,
        "retry_min_backoff",
        body.retry_min_backoff,
        MAX_RETRY_MIN_BACKOFF_SECS,
    );
    let retry_max_backoff = positive(
        &mut errors,
        "retry_max_backoff",
        body.retry_max_backoff,
        MAX_RETRY_MAX_BACKOFF_SECS,
    );
    if retry_max_backoff < retry_min_backoff
        && !errors
            .iter()
            .any(|e| e.field.starts_with("retry_m") && e.field.ends_with("_backoff"))
    {
        errors.push(FieldError::new(
            "retry_max_backoff",
            "must be no less than retry_min_backoff",
        ));
    }
    let event_types = event_types(&mut errors, body.event_types);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(WebhookSettings {
        name,
        url,
        content_type,
        valid_status_codes,
        secret_token,
        active: body.active.unwrap_or(false),
        max_delivery_attempts,
        delivery_attempt_timeout,
        retry_min_backoff,
        retry_max_backoff,
        event_types,
    })
}

/// What is wrong with a secret token, if anything (empty is allowed: unsigned).
fn secret_error(secret: &str) -> Option<&'static str> {
    if secret.contains('\0') {
        Some("must not contain NUL characters")
    } else if secret.chars().count() > MAX_SECRET_TOKEN_CHARS {
        Some("the length must be no more than 1024")
    } else if let Some(Err(_)) = crate::model::whsec_key(secret) {
        Some("must be base64 after the whsec_ prefix")
    } else {
        None
    }
}

/// Default of `previous_valid_for`: a day, as Svix and Outpost keep an old secret.
pub const DEFAULT_PREVIOUS_VALID_FOR_SECS: i64 = 86_400;
/// Longest `previous_valid_for`: 30 days.
pub const MAX_PREVIOUS_VALID_FOR_SECS: i64 = 2_592_000;

/// The body of `POST /v1/webhooks/{id}/rotate-secret`, as decoded.
#[derive(Debug, Deserialize)]
struct RotationBody {
    secret_token: Option<String>,
    previous_valid_for: Option<i64>,
}

/// A valid rotation: the new secret (`None`: generate one) and how long the old one signs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new secret, or `None` to have one generated.
    pub secret_token: Option<String>,
    /// Seconds the replaced secret keeps signing (0: not at all).
    pub previous_valid_for: i32,
}

/// Decodes and validates a rotation body; no body at all means every default.
pub fn rotation(body: &[u8]) -> Result<Rotation, ApiError> {
    let body: RotationBody = if body.is_empty() {
        RotationBody {
            secret_token: None,
            previous_valid_for: None,
        }
    } else {
        decode(body)?
    };
    rotation_of(body.secret_token, body.previous_valid_for)
}

/// Validates a rotation's two fields (from a JSON body, or the dashboard's form).
pub fn rotation_of(
    secret_token: Option<String>,
    previous_valid_for: Option<i64>,
) -> Result<Rotation, ApiError> {
    let body = RotationBody {
        secret_token,
        previous_valid_for,
    };
    let mut errors = Vec::new();
    if let Some(secret) = &body.secret_token {
        let message = if secret.is_empty() {
            Some("cannot be blank")
        } else {
            secret_error(secret)
        };
        if let Some(message) = message {
            errors.push(FieldError::new("secret_token", message));
        }
    }
    let previous_valid_for = body
        .previous_valid_for
        .unwrap_or(DEFAULT_PREVIOUS_VALID_FOR_SECS);
    if !(0..=MAX_PREVIOUS_VALID_FOR_SECS).contains(&previous_valid_for) {
        errors.push(FieldError::new(
            "previous_valid_for",
            "must be between 0 and 2592000 seconds",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Rotation {
        secret_token: body.secret_token,
        // In 0..=2592000, so it fits an i32.
        previous_valid_for: previous_valid_for as i32,
    })
}

/// The body of `POST /v1/webhooks/{id}/recover`, as decoded.
#[derive(Debug, Deserialize)]
struct RecoveryBody {
    since: Option<String>,
    until: Option<String>,
}

/// A valid recovery window: `since` inclusive, `until` exclusive (`None`: up to now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// From this creation time on.
    pub since: DateTime<Utc>,
    /// Before this creation time.
    pub until: Option<DateTime<Utc>>,
}

/// Decodes and validates a recovery body.
pub fn recovery(body: &[u8]) -> Result<Recovery, ApiError> {
    let body: RecoveryBody = decode(body)?;
    recovery_of(body.since, body.until)
}

/// Validates a recovery window's two fields (from a JSON body, or the dashboard's form).
pub fn recovery_of(since: Option<String>, until: Option<String>) -> Result<Recovery, ApiError> {
    let body = RecoveryBody { since, until };
    let mut errors = Vec::new();
    let mut time = |field: &str, value: Option<String>| -> Option<DateTime<Utc>> {
        let parsed = DateTime::parse_from_rfc3339(value.as_deref()?)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        if parsed.is_none() {
            errors.push(FieldError::new(field, "must be an RFC 3339 date-time"));
        }
        parsed
    };
    let missing_since = body.since.is_none();
    let since = time("since", body.since);
    let until = time("until", body.until);
    if missing_since {
        errors.push(FieldError::new("since", "cannot be blank"));
    }
    if let (Some(since), Some(until)) = (since, until)
        && until <= since
    {
        errors.push(FieldError::new("until", "must be later than since"));
    }
    match since {
        Some(since) if errors.is_empty() => Ok(Recovery { since, until }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Whether `text` can be a header value: printable ASCII or tab (a content type becomes the
/// `Content-Type` of every request to the webhook).
pub fn is_header_value(text: &str) -> bool {
    text.chars().all(|c| c == '\t' || (' '..='~').contains(&c))
}

/// `text` as a version 4 UUID, in any form `Uuid::parse_str` takes; `None` for anything else.
pub fn uuid_v4(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text)
        .ok()
        .filter(|id| id.get_version_num() == 4)
}

/// Whether `text` is an event type: 1-128 of `[A-Za-z0-9._-]` ([`EVENT_TYPE_PATTERN`]).
pub fn is_event_type(text: &str) -> bool {
    // All ASCII, so bytes are characters.
    (1..=MAX_EVENT_TYPE_CHARS).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A webhook's subscriptions: absent, null or empty means every event type.
fn event_types(errors: &mut Vec<FieldError>, types: Option<Vec<String>>) -> Vec<String> {
    let types = types.unwrap_or_default();
    let message = if types.len() > MAX_EVENT_TYPES {
        "must have at most 100 event types"
    } else if !types.iter().all(|t| is_event_type(t)) {
        "each must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
    } else if types
        .iter()
        .enumerate()
        .any(|(i, t)| types[..i].contains(t))
    {
        "must not repeat an event type"
    } else {
        return types;
    };
    errors.push(FieldError::new("event_types", message));
    Vec::new()
}

/// Decodes and validates an event body.
pub fn new_event(body: &[u8]) -> Result<NewEvent, ApiError> {
    let body: EventBody = decode(body)?;
    let mut errors = Vec::new();
    let event_type = text(&mut errors, "event_type", body.event_type, |t| {
        if !is_event_type(t) {
            Some("must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        } else if t.starts_with(RESERVED_EVENT_PREFIX) {
            Some("must not start with postmand. (reserved for postmand's own notices)")
        } else {
            None
        }
    });
    let payload = body.payload.unwrap_or_default();
    if payload.contains('\0') {
        errors.push(FieldError::new(
            "payload",
            "must not contain NUL characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(NewEvent {
        event_type,
        payload,
    })
}

/// Decodes and validates a delivery body. `webhook_id` must be a UUID v4, as in the original
/// (every id postmand makes is one); an absent or unparsable one gets the same message.
pub fn new_delivery(body: &[u8]) -> Result<NewDelivery, ApiError> {
    let body: DeliveryBody = decode(body)?;
    let mut errors = Vec::new();
    let webhook_id = body.webhook_id.as_deref().and_then(uuid_v4);
    if webhook_id.is_none() {
        errors.push(FieldError::new("webhook_id", "must be a valid UUID v4"));
    }
    let payload = body.payload.unwrap_or_default();
    if payload.contains('\0') {
        // PostgreSQL text cannot hold NUL; the original answered 500 here.
        errors.push(FieldError::new(
            "payload",
            "must not contain NUL characters",
        ));
    }
    match webhook_id {
        Some(webhook_id) if errors.is_empty() => Ok(NewDelivery {
            webhook_id,
            payload,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A body that is one JSON object of `T`'s fields. serde's derived structs also take a JSON
/// array of the fields in declaration order (`["<uuid>", "payload"]` was a delivery), which no
/// client means and the OpenAPI document does not allow: a JSON text whose value is an object
/// starts with `{` after its leading whitespace.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::MalformedBody);
    }
    serde_json::from_slice(body).map_err(|_| ApiError::MalformedBody)
}

/// A required string: blank when absent or empty, then NUL, then the field's own rule.
fn text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<String>,
    rule: impl Fn(&str) -> Option<&'static str>,
) -> String {
    let value = value.unwrap_or_default();
    let message = if value.is_empty() {
        Some("cannot be blank")
    } else if value.contains('\0') {
        Some("must not contain NUL characters")
    } else {
        rule(&value)
    };
    if let Some(message) = message {
        errors.push(FieldError::new(field, message));
    }
    value
}

/// A required integer from 1 to `max`. Zero counts as absent, as in the original.
fn positive(errors: &mut Vec<FieldError>, field: &str, value: Option<i64>, max: i64) -> i32 {
    let message = match value.unwrap_or(0) {
        0 => "cannot be blank".to_string(),
        n if n < 1 => "must be no less than 1".to_string(),
        n if n > max => format!("must be no greater than {max}"),
        // In range 1..=max, and every max fits an i32.
        n => return n as i32,
    };
    errors.push(FieldError::new(field, message));
    0
}

fn status_codes(errors: &mut Vec<FieldError>, codes: Option<Vec<i64>>) -> Vec<i32> {
    let codes = codes.unwrap_or_default();
    let message = if codes.is_empty() {
        "cannot be blank"
    } else if codes.len() > MAX_STATUS_CODES {
        "must have at most 500 codes"
    } else if codes.iter().any(|c| !(100..=599).contains(c)) {
        "each must be between 100 and 599"
    } else {
        // Each is in 100..=599, so it fits an i32.
        return codes.into_iter().map(|c| c as i32).collect();
    };
    errors.push(FieldError::new("valid_status_codes", message));
    Vec::new()
}

/// RFC 3339 in UTC with the fraction's trailing zeros trimmed, as the original printed times
/// (`2021-03-08T20:41:25.433671Z`, whole seconds without a fraction).
pub fn format_time(time: &DateTime<Utc>) -> String {
    let mut text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// A webhook on the wire.
#[derive(Debug, Serialize)]
pub struct WebhookJson<'a> {
    id: Uuid,
    name: &'a str,
    url: &'a str,
    content_type: &'a str,
    valid_status_codes: &'a [i32],
    secret_token: &'a str,
    active: bool,
    max_delivery_attempts: i32,
    delivery_attempt_timeout: i32,
    retry_min_backoff: i32,
    retry_max_backoff: i32,
    created_at: String,
    updated_at: String,
    event_types: &'a [String],
    disabled_reason: Option<&'a str>,
    disabled_at: Option<String>,
    previous_secret_expires_at: Option<String>,
}

impl<'a> From<&'a Webhook> for WebhookJson<'a> {
    fn from(w: &'a Webhook) -> WebhookJson<'a> {
        let s = &w.settings;
        WebhookJson {
            id: w.id,
            name: &s.name,
            url: &s.url,
            content_type: &s.content_type,
            valid_status_codes: &s.valid_status_codes,
            secret_token: &s.secret_token,
            active: s.active,
            max_delivery_attempts: s.max_delivery_attempts,
            delivery_attempt_timeout: s.delivery_attempt_timeout,
            retry_min_backoff: s.retry_min_backoff,
            retry_max_backoff: s.retry_max_backoff,
            created_at: format_time(&w.created_at),
            updated_at: format_time(&w.updated_at),
            event_types: &s.event_types,
            disabled_reason: w.disabled.as_ref().map(|d| d.reason.as_str()),
            disabled_at: w.disabled.as_ref().map(|d| format_time(&d.at)),
            previous_secret_expires_at: w.previous_secret_expires_at.as_ref().map(format_time),
        }
    }
}

/// A delivery on the wire.
#[derive(Debug, Serialize)]
pub struct DeliveryJson<'a> {
    id: Uuid,
    webhook_id: Uuid,
    payload: &'a str,
    scheduled_at: String,
    delivery_attempts: i32,
    status: &'static str,
    created_at: String,
    updated_at: String,
    event_id: Option<Uuid>,
}

impl<'a> From<&'a Delivery> for DeliveryJson<'a> {
    fn from(d: &'a Delivery) -> DeliveryJson<'a> {
        DeliveryJson {
            id: d.id,
            webhook_id: d.webhook_id,
            payload: &d.payload,
            scheduled_at: format_time(&d.scheduled_at),
            delivery_attempts: d.delivery_attempts,
            status: d.status.as_str(),
            created_at: format_time(&d.created_at),
            updated_at: format_time(&d.updated_at),
            event_id: d.event_id,
        }
    }
}

/// An event on the wire.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    id: Uuid,
    event_type: &'a str,
    payload: &'a str,
    deliveries: i32,
    created_at: String,
}

impl<'a> From<&'a Event> for EventJson<'a> {
    fn from(e: &'a Event) -> EventJson<'a> {
        EventJson {
            id: e.id,
            event_type: &e.event_type,
            payload: &e.payload,
            deliveries: e.deliveries,
            created_at: format_time(&e.created_at),
        }
    }
}

/// A delivery an event made, in `GET /v1/events/{id}`.
#[derive(Debug, Serialize)]
pub struct MadeJson {
    id: Uuid,
    webhook_id: Uuid,
    status: &'static str,
}

impl From<&Made> for MadeJson {
    fn from(m: &Made) -> MadeJson {
        MadeJson {
            id: m.id,
            webhook_id: m.webhook_id,
            status: m.status.as_str(),
        }
    }
}

/// `GET /v1/events/{id}`: the event and where each of its deliveries is.
#[derive(Debug, Serialize)]
pub struct EventDetail<'a> {
    /// The event, flattened.
    #[serde(flatten)]
    pub event: EventJson<'a>,
    /// Its deliveries' ids, webhooks and statuses.
    pub delivery_statuses: Vec<MadeJson>,
}

/// A delivery attempt on the wire.
#[derive(Debug, Serialize)]
pub struct AttemptJson<'a> {
    id: Uuid,
    webhook_id: Uuid,
    delivery_id: Uuid,
    raw_request: &'a str,
    raw_response: &'a str,
    response_status_code: i32,
    execution_duration: i32,
    success: bool,
    error: &'a str,
    created_at: String,
}

impl<'a> From<&'a Attempt> for AttemptJson<'a> {
    fn from(a: &'a Attempt) -> AttemptJson<'a> {
        AttemptJson {
            id: a.id,
            webhook_id: a.webhook_id,
            delivery_id: a.delivery_id,
            raw_request: &a.exchange.raw_request,
            raw_response: &a.exchange.raw_response,
            response_status_code: a.exchange.response_status_code,
            execution_duration: a.exchange.execution_duration,
            success: a.exchange.success,
            error: &a.exchange.error,
            created_at: format_time(&a.created_at),
        }
    }
}

/// `{"webhooks":[...],"limit":N,"offset":N,"next_cursor":...}`.
#[derive(Debug, Serialize)]
pub struct WebhookList<'a> {
    /// The page.
    pub webhooks: Vec<WebhookJson<'a>>,
    /// The limit applied.
    pub limit: i64,
    /// The offset applied.
    pub offset: i64,
    /// The `cursor` of the next page, `None` (null) when this page is the last.
    pub next_cursor: Option<String>,
}

/// `{"deliveries":[...],"limit":N,"offset":N,"next_cursor":...}`.
#[derive(Debug, Serialize)]
pub struct DeliveryList<'a> {
    /// The page.
    pub deliveries: Vec<DeliveryJson<'a>>,
    /// The limit applied.
    pub limit: i64,
    /// The offset applied.
    pub offset: i64,
    /// The `cursor` of the next page, `None` (null) when this page is the last.
    pub next_cursor: Option<String>,
}

/// The answer of `POST /v1/webhooks/{id}/recover`.
#[derive(Debug, Serialize)]
pub struct Recovered {
    /// Failed deliveries sent back to pending.
    pub recovered: u64,
    /// The cap stopped it: call again for the rest of the window.
    pub more: bool,
}

/// `{"events":[...],"limit":N,"offset":N,"next_cursor":...}`.
#[derive(Debug, Serialize)]
pub struct EventList<'a> {
    /// The page.
    pub events: Vec<EventJson<'a>>,
    /// The limit applied.
    pub limit: i64,
    /// The offset applied.
    pub offset: i64,
    /// The `cursor` of the next page, `None` (null) when this page is the last.
    pub next_cursor: Option<String>,
}

/// `{"delivery_attempts":[...],"limit":N,"offset":N,"next_cursor":...}`.
#[derive(Debug, Serialize)]
pub struct AttemptList<'a> {
    /// The page.
    pub delivery_attempts: Vec<AttemptJson<'a>>,
    /// The limit applied.
    pub limit: i64,
    /// The offset applied.
    pub offset: i64,
    /// The `cursor` of the next page, `None` (null) when this page is the last.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(result: Result<WebhookSettings, ApiError>) -> String {
        result.unwrap_err().details()
    }

    #[test]
    fn empty_webhook_lists_the_originals_eight_blank_fields() {
        assert_eq!(
            details(webhook_settings(b"{}")),
            "content_type: cannot be blank; delivery_attempt_timeout: cannot be blank; \
             max_delivery_attempts: cannot be blank; name: cannot be blank; \
             retry_max_backoff: cannot be blank; retry_min_backoff: cannot be blank; \
             url: cannot be blank; valid_status_codes: cannot be blank."
        );
    }

    #[test]
    fn wrong_json_type_is_malformed() {
        assert_eq!(
            webhook_settings(br#"{"active":"true"}"#),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(
            webhook_settings(br#"{"max_delivery_attempts":1.5}"#),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(webhook_settings(b"{} {}"), Err(ApiError::MalformedBody));
        assert_eq!(
            new_delivery(br#"{"payload":{"a":1}}"#),
            Err(ApiError::MalformedBody)
        );
    }

    #[test]
    fn a_body_must_be_an_object_not_an_array_of_the_fields() {
        let v4 = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";
        assert_eq!(
            new_delivery(format!(r#"["{v4}", "payload"]"#).as_bytes()),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(
            new_event(br#"["invoice.paid", "{}"]"#),
            Err(ApiError::MalformedBody)
        );
        assert_eq!(
            webhook_settings(
                br#"["hook", "http://h", "a/b", [200], null, null, 1, 1, 1, 1, null]"#
            ),
            Err(ApiError::MalformedBody)
        );
        let delivery = new_delivery(format!(" \r\n\t{{\"webhook_id\": \"{v4}\"}}").as_bytes());
        assert_eq!(
            delivery.map(|d| d.webhook_id.to_string()),
            Ok(v4.to_string())
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let body = |name: &str, secret: &str| {
            serde_json::json!({"name": name, "url": "http://h", "content_type": "a/b",
                "valid_status_codes": [200], "secret_token": secret, "max_delivery_attempts": 1,
                "delivery_attempt_timeout": 1, "retry_min_backoff": 1, "retry_max_backoff": 1})
            .to_string()
        };
        // 255 characters of two bytes each, and a 1024-character secret of 3-byte characters.
        let settings =
            webhook_settings(body(&"\u{e9}".repeat(255), &"\u{20ac}".repeat(1024)).as_bytes())
                .expect("valid");
        assert_eq!(settings.name.len(), 510);
        assert_eq!(
            details(webhook_settings(body("\u{e9}\u{e9}", "").as_bytes())),
            "name: the length must be between 3 and 255."
        );
        assert_eq!(
            details(webhook_settings(body(&"\u{e9}".repeat(256), "").as_bytes())),
            "name: the length must be between 3 and 255."
        );
        assert_eq!(
            details(webhook_settings(
                body("hook", &"\u{20ac}".repeat(1025)).as_bytes()
            )),
            "secret_token: the length must be no more than 1024."
        );
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        let is_http_url = |url| EndpointUrl::new(url).is_valid();
        for good in [
            "http://localhost:9999",
            "https://httpbin.org/post",
            "HTTP://10.0.0.1/x?y=1",
            "http://user:pw@host.example:8080/p#f",
            "http://[::1]:8080/",
        ] {
            assert!(is_http_url(good), "{good}");
        }
        for bad in [
            "example.com/hook",
            "ftp://x.com",
            "ws://x.com",
            "http://",
            "http:///path",
            "http://host:port/",
            "http://host:99999/",
            "http://ho st/",
            "http://.x.com/",
            "http://bücher.example/hook",
            "localhost",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn times_trim_trailing_zeros() {
        let t = DateTime::parse_from_rfc3339("2021-03-08T20:41:25.433670Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(&t), "2021-03-08T20:41:25.43367Z");
        let whole = DateTime::parse_from_rfc3339("2021-03-08T20:41:25Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(&whole), "2021-03-08T20:41:25Z");
    }
}
