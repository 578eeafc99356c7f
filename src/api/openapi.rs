//! The OpenAPI 3 document of the API as built, served at `/swagger/doc.json` (by `swagger_ui`,
//! beside the Swagger UI page that reads it). A test checks that every route of
//! `router::PATHS` is documented here, and nothing else.

use serde_json::{Value, json};

use super::idempotency::{HEADER as IDEMPOTENCY_HEADER, MAX_KEY_BYTES, REPLAYED_HEADER};
use super::json::{
    DEFAULT_PREVIOUS_VALID_FOR_SECS, EVENT_TYPE_PATTERN, MAX_ATTEMPT_TIMEOUT_SECS,
    MAX_DELIVERY_ATTEMPTS, MAX_EVENT_TYPES, MAX_PREVIOUS_VALID_FOR_SECS,
    MAX_RETRY_MAX_BACKOFF_SECS, MAX_RETRY_MIN_BACKOFF_SECS,
};
use super::query::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"},
           "description": "A UUID; anything else is 404 code 2."})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn list_params(filters: Vec<Value>) -> Value {
    let mut params = vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
            "Page size.",
        ),
        query(
            "offset",
            json!({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
            "Rows to skip.",
        ),
    ];
    params.extend(filters);
    for op in ["gt", "gte", "lt", "lte"] {
        params.push(query(
            &format!("created_at.{op}"),
            json!({"type": "string", "format": "date-time"}),
            &format!("created_at {op} this RFC 3339 time."),
        ));
    }
    Value::Array(params)
}

/// The `Idempotency-Key` request header of the two creates.
fn idempotency_key() -> Value {
    json!({"name": IDEMPOTENCY_HEADER, "in": "header", "required": false,
           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_BYTES, "pattern": "^[ -~]+$"},
           "description": "1-255 printable ASCII characters. A repeat of the same request with the same key within POSTMAND_IDEMPOTENCY_HOURS gets the first answer again, with Idempotent-Replayed: true, and creates nothing. Keys are per endpoint."})
}

/// A 201 that an `Idempotency-Key` may replay.
fn created(description: &str, schema: &str) -> Value {
    let mut response = ok(description, schema);
    response["headers"] = json!({REPLAYED_HEADER: {"description": "true when this is the stored answer to an earlier request with the same Idempotency-Key.", "schema": {"type": "string", "enum": ["true"]}}});
    response
}

/// The errors of a create with an `Idempotency-Key`, besides the body's.
fn with_idempotency_errors(mut responses: Value) -> Value {
    responses["409"] = error_response(
        "The first request with this Idempotency-Key is still in progress (code 16).",
    );
    responses["422"] =
        error_response("This Idempotency-Key was used with a different request (code 15).");
    responses
}

/// Responses every `/v1` operation can give besides its own.
fn common(mut responses: Value) -> Value {
    responses["401"] =
        error_response("Missing or wrong bearer token (code 8), when POSTMAND_API_TOKEN is set.");
    responses["503"] = error_response("The database is unavailable (code 11).");
    responses
}

fn with_body_errors(mut responses: Value) -> Value {
    responses["400"] = error_response(
        "Malformed body (code 3) or validation failed (code 4, details name each field).",
    );
    responses["413"] = error_response("Body larger than POSTMAND_MAX_BODY_BYTES (code 9).");
    responses["415"] = error_response("Body without Content-Type: application/json (code 10).");
    responses
}

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    let webhook_id = id_param("webhook_id");
    let delivery_id = id_param("delivery_id");
    let attempt_id = id_param("delivery_attempt_id");
    let event_id = id_param("event_id");
    let bad_query = error_response("A list parameter is malformed or out of range (code 4).");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "postmand API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhook delivery on PostgreSQL. Errors are {\"code\",\"message\",\"details\"} objects; see README.md for the catalogue."
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}],
        "paths": {
            "/v1/webhooks": {
                "get": {"operationId": "listWebhooks", "summary": "List webhooks by name", "tags": ["webhooks"],
                    "parameters": list_params(vec![query("active", json!({"type": "boolean"}), "Only active or inactive webhooks.")]),
                    "responses": common(json!({"200": ok("A page of webhooks.", "WebhookList"), "400": bad_query}))},
                "post": {"operationId": "createWebhook", "summary": "Create a webhook", "tags": ["webhooks"],
                    "requestBody": body("WebhookInput"),
                    "responses": common(with_body_errors(json!({"201": ok("The stored webhook.", "Webhook")})))}
            },
            "/v1/webhooks/{webhook_id}": {
                "parameters": [webhook_id],
                "get": {"operationId": "getWebhook", "summary": "Get a webhook", "tags": ["webhooks"],
                    "responses": common(json!({"200": ok("The webhook.", "Webhook"), "404": error_response("Invalid id (code 2) or no such webhook (code 5).")}))},
                "put": {"operationId": "updateWebhook", "summary": "Replace a webhook (omitted active means false, omitted secret_token means none)", "tags": ["webhooks"],
                    "requestBody": body("WebhookInput"),
                    "responses": common(with_body_errors(json!({"200": ok("The replaced webhook.", "Webhook"), "404": error_response("Invalid id (code 2) or no such webhook (code 5).")})))},
                "delete": {"operationId": "deleteWebhook", "summary": "Delete a webhook with its deliveries and attempts", "tags": ["webhooks"],
                    "responses": common(json!({"204": {"description": "Deleted."}, "404": error_response("Invalid id (code 2) or no such webhook (code 5).")}))}
            },
            "/v1/webhooks/{webhook_id}/rotate-secret": {
                "parameters": [id_param("webhook_id")],
                "post": {"operationId": "rotateWebhookSecret", "summary": "Replace the signing secret; the old one keeps signing beside it for previous_valid_for seconds", "tags": ["webhooks"],
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SecretRotation"}}}},
                    "responses": common(with_body_errors(json!({"200": ok("The webhook, with previous_secret_expires_at.", "Webhook"), "404": error_response("Invalid id (code 2) or no such webhook (code 5).")})))}
            },
            "/v1/webhooks/{webhook_id}/recover": {
                "parameters": [id_param("webhook_id")],
                "post": {"operationId": "recoverWebhook", "summary": "Send the webhook's failed deliveries created in a window again, with a fresh attempt budget", "tags": ["webhooks"],
                    "requestBody": body("RecoveryWindow"),
                    "responses": common(with_body_errors(json!({"200": ok("How many went back to pending; more is true when the cap stopped it.", "Recovered"), "404": error_response("Invalid id (code 2) or no such webhook (code 5).")})))}
            },
            "/v1/deliveries": {
                "get": {"operationId": "listDeliveries", "summary": "List deliveries, newest first", "tags": ["deliveries"],
                    "parameters": list_params(vec![
                        query("webhook_id", json!({"type": "string", "format": "uuid"}), "Only this webhook's deliveries."),
                        query("status", json!({"type": "string", "enum": ["pending", "succeeded", "failed"]}), "Only deliveries in this status."),
                        query("event_id", json!({"type": "string", "format": "uuid"}), "Only deliveries made for this event."),
                    ]),
                    "responses": common(json!({"200": ok("A page of deliveries.", "DeliveryList"), "400": bad_query}))},
                "post": {"operationId": "createDelivery", "summary": "Queue a payload for a webhook", "tags": ["deliveries"],
                    "parameters": [idempotency_key()],
                    "requestBody": body("DeliveryInput"),
                    "responses": common(with_idempotency_errors(with_body_errors(json!({"201": created("The queued delivery.", "Delivery")}))))}
            },
            "/v1/deliveries/{delivery_id}": {
                "parameters": [delivery_id.clone()],
                "get": {"operationId": "getDelivery", "summary": "Get a delivery", "tags": ["deliveries"],
                    "responses": common(json!({"200": ok("The delivery.", "Delivery"), "404": error_response("Invalid id (code 2) or no such delivery (code 6).")}))},
                "delete": {"operationId": "deleteDelivery", "summary": "Delete a delivery with its attempts", "tags": ["deliveries"],
                    "responses": common(json!({"204": {"description": "Deleted."}, "404": error_response("Invalid id (code 2) or no such delivery (code 6).")}))}
            },
            "/v1/deliveries/{delivery_id}/retry": {
                "parameters": [delivery_id],
                "post": {"operationId": "retryDelivery", "summary": "Send a succeeded or failed delivery again, due now, with a fresh attempt budget", "tags": ["deliveries"],
                    "responses": common(json!({"200": ok("The delivery, pending again.", "Delivery"),
                        "404": error_response("Invalid id (code 2) or no such delivery (code 6)."),
                        "409": error_response("The delivery is still pending (code 14).")}))}
            },
            "/v1/delivery-attempts": {
                "get": {"operationId": "listDeliveryAttempts", "summary": "List delivery attempts, newest first", "tags": ["delivery-attempts"],
                    "parameters": list_params(vec![
                        query("webhook_id", json!({"type": "string", "format": "uuid"}), "Only attempts for this webhook."),
                        query("delivery_id", json!({"type": "string", "format": "uuid"}), "Only attempts of this delivery."),
                        query("success", json!({"type": "boolean"}), "Only successful or failed attempts."),
                    ]),
                    "responses": common(json!({"200": ok("A page of attempts.", "DeliveryAttemptList"), "400": bad_query}))}
            },
            "/v1/delivery-attempts/{delivery_attempt_id}": {
                "parameters": [attempt_id],
                "get": {"operationId": "getDeliveryAttempt", "summary": "Get a delivery attempt", "tags": ["delivery-attempts"],
                    "responses": common(json!({"200": ok("The attempt.", "DeliveryAttempt"), "404": error_response("Invalid id (code 2) or no such attempt (code 7).")}))}
            },
            "/v1/events": {
                "get": {"operationId": "listEvents", "summary": "List events, newest first", "tags": ["events"],
                    "parameters": list_params(vec![
                        query("event_type", json!({"type": "string", "pattern": EVENT_TYPE_PATTERN}), "Only events of this type."),
                    ]),
                    "responses": common(json!({"200": ok("A page of events.", "EventList"), "400": bad_query}))},
                "post": {"operationId": "createEvent", "summary": "Create an event: one delivery for every active webhook subscribed to its type", "tags": ["events"],
                    "parameters": [idempotency_key()],
                    "requestBody": body("EventInput"),
                    "responses": common(with_idempotency_errors(with_body_errors(json!({"201": created("The event, with how many deliveries it made.", "Event")}))))}
            },
            "/v1/events/{event_id}": {
                "parameters": [event_id],
                "get": {"operationId": "getEvent", "summary": "Get an event and where each of its deliveries is", "tags": ["events"],
                    "responses": common(json!({"200": ok("The event.", "EventDetail"), "404": error_response("Invalid id (code 2) or no such event (code 17).")}))}
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Required on /v1 when POSTMAND_API_TOKEN is set."}},
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let uuid = json!({"type": "string", "format": "uuid"});
    let event_type =
        json!({"type": "string", "pattern": EVENT_TYPE_PATTERN, "minLength": 1, "maxLength": 128});
    let event_types = json!({"type": "array", "maxItems": MAX_EVENT_TYPES, "uniqueItems": true, "items": event_type.clone(),
        "description": "Event types it receives from POST /v1/events; absent or empty means every type."});
    let page = |items: &str, schema: &str| {
        json!({"type": "object", "required": [items, "limit", "offset"], "properties": {
            items: {"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}},
            "limit": {"type": "integer"}, "offset": {"type": "integer"}}})
    };
    json!({
        "WebhookInput": {"type": "object",
            "required": ["name", "url", "content_type", "valid_status_codes", "max_delivery_attempts", "delivery_attempt_timeout", "retry_min_backoff", "retry_max_backoff"],
            "properties": {
                "name": {"type": "string", "minLength": 3, "maxLength": 255},
                "url": {"type": "string", "description": "http or https with a host", "maxLength": 2083},
                "content_type": {"type": "string", "maxLength": 255},
                "valid_status_codes": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 100, "maximum": 599}},
                "secret_token": {"type": "string", "maxLength": 1024, "description": "HMAC key of the signature headers; whsec_<base64> for Standard Webhooks keys."},
                "active": {"type": "boolean", "default": false},
                "max_delivery_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_DELIVERY_ATTEMPTS},
                "delivery_attempt_timeout": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPT_TIMEOUT_SECS, "description": "seconds"},
                "retry_min_backoff": {"type": "integer", "minimum": 1, "maximum": MAX_RETRY_MIN_BACKOFF_SECS, "description": "seconds"},
                "retry_max_backoff": {"type": "integer", "minimum": 1, "maximum": MAX_RETRY_MAX_BACKOFF_SECS, "description": "seconds, at least retry_min_backoff"},
                "event_types": event_types
            }},
        "Webhook": {"allOf": [{"$ref": "#/components/schemas/WebhookInput"}, {"type": "object",
            "required": ["id", "secret_token", "active", "created_at", "updated_at", "event_types", "disabled_reason", "disabled_at", "previous_secret_expires_at"],
            "properties": {"id": uuid, "created_at": time, "updated_at": time,
                "disabled_reason": {"type": "string", "nullable": true, "description": "Why postmand deactivated it (410 Gone, or only failures for POSTMAND_DISABLE_AFTER_HOURS); null otherwise. A PUT with active true clears it."},
                "disabled_at": {"type": "string", "format": "date-time", "nullable": true},
                "previous_secret_expires_at": {"type": "string", "format": "date-time", "nullable": true, "description": "Until when the secret replaced by the last rotation still signs; null when none does."}}}]},
        "SecretRotation": {"type": "object", "properties": {
            "secret_token": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "The new secret; absent means a generated whsec_ secret (32 random bytes)."},
            "previous_valid_for": {"type": "integer", "minimum": 0, "maximum": MAX_PREVIOUS_VALID_FOR_SECS, "default": DEFAULT_PREVIOUS_VALID_FOR_SECS, "description": "Seconds the replaced secret keeps signing."}}},
        "RecoveryWindow": {"type": "object", "required": ["since"], "properties": {
            "since": {"type": "string", "format": "date-time", "description": "Failed deliveries created at or after this time."},
            "until": {"type": "string", "format": "date-time", "description": "... and before this one (default: now); later than since."}}},
        "Recovered": {"type": "object", "required": ["recovered", "more"], "properties": {
            "recovered": {"type": "integer"}, "more": {"type": "boolean"}}},
        "DeliveryInput": {"type": "object", "required": ["webhook_id"], "properties": {
            "webhook_id": {"type": "string", "format": "uuid", "description": "UUID v4 of an existing webhook"},
            "payload": {"type": "string", "description": "The exact body to POST; no NUL characters."}}},
        "Delivery": {"type": "object",
            "required": ["id", "webhook_id", "payload", "scheduled_at", "delivery_attempts", "status", "created_at", "updated_at", "event_id"],
            "properties": {"id": uuid, "webhook_id": uuid, "payload": {"type": "string"}, "scheduled_at": time,
                "delivery_attempts": {"type": "integer"}, "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
                "created_at": time, "updated_at": time,
                "event_id": {"type": "string", "format": "uuid", "nullable": true, "description": "The event it was made for; null for a delivery created directly."}}},
        "EventInput": {"type": "object", "required": ["event_type"], "properties": {
            "event_type": event_type.clone(),
            "payload": {"type": "string", "description": "The exact body each delivery POSTs; no NUL characters."}}},
        "Event": {"type": "object", "required": ["id", "event_type", "payload", "deliveries", "created_at"],
            "properties": {"id": uuid, "event_type": event_type, "payload": {"type": "string"},
                "deliveries": {"type": "integer", "description": "How many deliveries it made when created."},
                "created_at": time}},
        "EventDetail": {"allOf": [{"$ref": "#/components/schemas/Event"}, {"type": "object",
            "required": ["delivery_statuses"],
            "properties": {"delivery_statuses": {"type": "array", "items": {"type": "object",
                "required": ["id", "webhook_id", "status"],
                "properties": {"id": uuid, "webhook_id": uuid,
                    "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]}}}}}}]},
        "EventList": page("events", "Event"),
        "DeliveryAttempt": {"type": "object",
            "required": ["id", "webhook_id", "delivery_id", "raw_request", "raw_response", "response_status_code", "execution_duration", "success", "error", "created_at"],
            "properties": {"id": uuid, "webhook_id": uuid, "delivery_id": uuid, "raw_request": {"type": "string"},
                "raw_response": {"type": "string"}, "response_status_code": {"type": "integer"},
                "execution_duration": {"type": "integer", "description": "milliseconds"}, "success": {"type": "boolean"},
                "error": {"type": "string"}, "created_at": time}},
        "WebhookList": page("webhooks", "Webhook"),
        "DeliveryList": page("deliveries", "Delivery"),
        "DeliveryAttemptList": page("delivery_attempts", "DeliveryAttempt"),
        "Error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "string"}}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::router::PATHS;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    documented.push((path.clone(), method.to_uppercase()));
                }
            }
        }
        let mut routed: Vec<(String, String)> = PATHS
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |m| (path.to_string(), m.to_string()))
            })
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
