//! The bodies of the OpenAPI document: the three inputs, each stating its validator's rules
//! (`json.rs`), and the outputs, which state only types and formats. An output is what is
//! stored, and a database the original Go postmand filled may hold webhooks today's rules
//! refuse (an `ftp://` URL, a status code of 0).

use serde_json::{Value, json};

use crate::api::json::{
    DEFAULT_PREVIOUS_VALID_FOR_SECS, EVENT_TYPE_PATTERN, MAX_ATTEMPT_TIMEOUT_SECS,
    MAX_CONTENT_TYPE_CHARS, MAX_DELIVERY_ATTEMPTS, MAX_EVENT_TYPE_CHARS, MAX_EVENT_TYPES,
    MAX_NAME_CHARS, MAX_PREVIOUS_VALID_FOR_SECS, MAX_RETRY_MAX_BACKOFF_SECS,
    MAX_RETRY_MIN_BACKOFF_SECS, MAX_SECRET_TOKEN_CHARS, MAX_STATUS_CODES, MAX_URL_CHARS,
    MIN_NAME_CHARS,
};
use crate::api::patterns;
use crate::api::query::{MAX_LIMIT, MAX_OFFSET};
use crate::url::EndpointUrl;

/// `components.schemas`.
pub fn schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let uuid = json!({"type": "string", "format": "uuid"});
    let status = json!({"type": "string", "enum": ["pending", "succeeded", "failed"]});
    let event_type = json!({"type": "string", "minLength": 1, "maxLength": MAX_EVENT_TYPE_CHARS,
        "pattern": EVENT_TYPE_PATTERN, "description": "1-128 characters of A-Z a-z 0-9 . _ -. On POST /v1/events, types starting with postmand. are reserved for postmand's own notices (400 code 4)."});
    let payload = |what: &str| {
        json!({"type": "string", "nullable": true, "pattern": patterns::NO_NUL,
            "description": format!("The exact body {what}; may be empty, no NUL characters. Absent or null means empty.")})
    };
    // "0 counts as blank", as in the original: `minimum` says it with the rest.
    let seconds = |max: i64, what: &str| {
        json!({"type": "integer", "minimum": 1, "maximum": max,
            "description": format!("{what} 0 is taken as absent (\"cannot be blank\").")})
    };
    let page = |items: &str, schema: &str| {
        json!({"type": "object", "required": [items, "limit", "offset", "next_cursor"], "properties": {
            items: {"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "next_cursor": {"type": "string", "nullable": true, "pattern": "^[A-Za-z0-9_-]+$",
                "description": "The cursor parameter of the next page; null when no row follows this page."}}})
    };
    json!({
        "WebhookInput": {"type": "object",
            "description": "A webhook's settings, on create and on (full-replacement) update. Lengths count characters.",
            "required": ["name", "url", "content_type", "valid_status_codes", "max_delivery_attempts", "delivery_attempt_timeout", "retry_min_backoff", "retry_max_backoff"],
            "properties": {
                "name": {"type": "string", "minLength": MIN_NAME_CHARS, "maxLength": MAX_NAME_CHARS, "pattern": patterns::NO_NUL,
                    "description": "3-255 characters, no NUL."},
                "url": {"type": "string", "minLength": 1, "maxLength": MAX_URL_CHARS, "pattern": EndpointUrl::pattern(),
                    "description": "http:// or https:// (any case), optional user info, a host of A-Z a-z 0-9 . _ - not starting with a dot or a bracketed IPv6 address, an optional port up to 65535, then any path, query and fragment; no whitespace or control characters anywhere; at most 2083 characters."},
                "content_type": {"type": "string", "minLength": 1, "maxLength": MAX_CONTENT_TYPE_CHARS, "pattern": patterns::CONTENT_TYPE,
                    "description": "The Content-Type of every request to the webhook: 1-255 printable ASCII characters or tabs."},
                "valid_status_codes": {"type": "array", "minItems": 1, "maxItems": MAX_STATUS_CODES,
                    "items": {"type": "integer", "minimum": 100, "maximum": 599},
                    "description": "The response status codes that mean success; repeats are allowed."},
                "secret_token": {"type": "string", "nullable": true, "maxLength": MAX_SECRET_TOKEN_CHARS, "pattern": patterns::SECRET_TOKEN,
                    "description": "The HMAC key of the signature headers, at most 1024 characters, no NUL; whsec_ followed by padded base64 (standard alphabet) for a Standard Webhooks key. Absent, null or empty means unsigned."},
                "active": {"type": "boolean", "nullable": true, "default": false,
                    "description": "Absent or null means false: deliveries wait."},
                "max_delivery_attempts": seconds(MAX_DELIVERY_ATTEMPTS, "Attempts before a delivery fails."),
                "delivery_attempt_timeout": seconds(MAX_ATTEMPT_TIMEOUT_SECS, "Seconds an attempt may take, connect to last byte."),
                "retry_min_backoff": seconds(MAX_RETRY_MIN_BACKOFF_SECS, "Seconds before the first retry."),
                "retry_max_backoff": seconds(MAX_RETRY_MAX_BACKOFF_SECS, "Most seconds between two attempts. It must be at least retry_min_backoff (400 code 4 otherwise), a rule between two fields that JSON Schema cannot state."),
                "event_types": {"type": "array", "nullable": true, "maxItems": MAX_EVENT_TYPES, "uniqueItems": true, "items": event_type.clone(),
                    "description": "The event types it receives from POST /v1/events; absent, null or empty means every type."}
            }},
        "Webhook": {"type": "object",
            "required": ["id", "name", "url", "content_type", "valid_status_codes", "secret_token", "active", "max_delivery_attempts", "delivery_attempt_timeout", "retry_min_backoff", "retry_max_backoff", "created_at", "updated_at", "event_types", "disabled_reason", "disabled_at", "previous_secret_expires_at"],
            "properties": {"id": uuid, "name": {"type": "string"}, "url": {"type": "string"}, "content_type": {"type": "string"},
                "valid_status_codes": {"type": "array", "items": {"type": "integer"}}, "secret_token": {"type": "string"},
                "active": {"type": "boolean"}, "max_delivery_attempts": {"type": "integer"},
                "delivery_attempt_timeout": {"type": "integer", "description": "seconds"},
                "retry_min_backoff": {"type": "integer", "description": "seconds"},
                "retry_max_backoff": {"type": "integer", "description": "seconds"},
                "created_at": time, "updated_at": time,
                "event_types": {"type": "array", "items": {"type": "string"}},
                "disabled_reason": {"type": "string", "nullable": true, "description": "Why postmand deactivated it (410 Gone, or only failures for POSTMAND_DISABLE_AFTER_HOURS); null otherwise. A PUT with active true clears it."},
                "disabled_at": {"type": "string", "format": "date-time", "nullable": true},
                "previous_secret_expires_at": {"type": "string", "format": "date-time", "nullable": true, "description": "Until when the secret replaced by the last rotation still signs; null when none does."}}},
        "SecretRotation": {"type": "object", "properties": {
            "secret_token": {"type": "string", "nullable": true, "minLength": 1, "maxLength": MAX_SECRET_TOKEN_CHARS, "pattern": patterns::SECRET_TOKEN,
                "description": "The new secret (rules as a webhook's, but not empty); absent or null means a generated whsec_ secret of 32 random bytes."},
            "previous_valid_for": {"type": "integer", "nullable": true, "minimum": 0, "maximum": MAX_PREVIOUS_VALID_FOR_SECS, "default": DEFAULT_PREVIOUS_VALID_FOR_SECS,
                "description": "Seconds the replaced secret keeps signing beside the new one; 0 for not at all."}}},
        "RecoveryWindow": {"type": "object", "required": ["since"], "properties": {
            "since": {"type": "string", "format": "date-time", "description": "Failed deliveries created at or after this RFC 3339 time ..."},
            "until": {"type": "string", "format": "date-time", "nullable": true,
                "description": "... and before this one (absent or null: now). It must be later than since (400 code 4 otherwise), a rule between two fields that JSON Schema cannot state."}}},
        "Recovered": {"type": "object", "required": ["recovered", "more"], "properties": {
            "recovered": {"type": "integer", "minimum": 0}, "more": {"type": "boolean"}}},
        "DeliveryInput": {"type": "object", "required": ["webhook_id"], "properties": {
            "webhook_id": {"type": "string", "pattern": patterns::UUID_V4,
                "description": "A version 4 UUID (in any of the forms path ids take) of an existing webhook; no webhook with it is 400 code 4, a rule JSON Schema cannot state."},
            "payload": payload("to POST")}},
        "Delivery": {"type": "object",
            "required": ["id", "webhook_id", "payload", "scheduled_at", "delivery_attempts", "status", "created_at", "updated_at", "event_id"],
            "properties": {"id": uuid, "webhook_id": uuid, "payload": {"type": "string"}, "scheduled_at": time,
                "delivery_attempts": {"type": "integer", "minimum": 0}, "status": status,
                "created_at": time, "updated_at": time,
                "event_id": {"type": "string", "format": "uuid", "nullable": true, "description": "The event it was made for; null for a delivery created directly."}}},
        "EventInput": {"type": "object", "required": ["event_type"], "properties": {
            "event_type": event_type,
            "payload": payload("each of its deliveries POSTs")}},
        "Event": {"type": "object", "required": ["id", "event_type", "payload", "deliveries", "created_at"],
            "properties": {"id": uuid, "event_type": {"type": "string"}, "payload": {"type": "string"},
                "deliveries": {"type": "integer", "minimum": 0, "description": "How many deliveries it made when created."},
                "created_at": time}},
        "EventDetail": {"allOf": [{"$ref": "#/components/schemas/Event"}, {"type": "object",
            "required": ["delivery_statuses"],
            "properties": {"delivery_statuses": {"type": "array", "items": {"type": "object",
                "required": ["id", "webhook_id", "status"],
                "properties": {"id": uuid, "webhook_id": uuid, "status": status}}}}}]},
        "EventList": page("events", "Event"),
        "DeliveryAttempt": {"type": "object",
            "required": ["id", "webhook_id", "delivery_id", "raw_request", "raw_response", "response_status_code", "execution_duration", "success", "error", "created_at"],
            "properties": {"id": uuid, "webhook_id": uuid, "delivery_id": uuid, "raw_request": {"type": "string"},
                "raw_response": {"type": "string"}, "response_status_code": {"type": "integer", "description": "0 when no response arrived"},
                "execution_duration": {"type": "integer", "description": "milliseconds"}, "success": {"type": "boolean"},
                "error": {"type": "string"}, "created_at": time}},
        "WebhookList": page("webhooks", "Webhook"),
        "DeliveryList": page("deliveries", "Delivery"),
        "DeliveryAttemptList": page("delivery_attempts", "DeliveryAttempt"),
        "Error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "integer", "description": "The error's number in the catalogue (README.md)."},
            "message": {"type": "string"},
            "details": {"type": "string", "description": "Present when there is more to say, e.g. which fields broke which rule."}}}
    })
}
