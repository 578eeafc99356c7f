//! The OpenAPI 3 document of the API as built, served at `/swagger/doc.json` (by `swagger_ui`,
//! beside the Swagger UI page that reads it): every operation with each parameter, body,
//! status code and response header it can have. This file holds the paths; `schemas.rs` the
//! bodies.
//!
//! The document states the validators' rules exactly (`json.rs`, `query.rs`,
//! `idempotency.rs`, `router.rs`; the patterns are `patterns.rs`'s), so that a schema-driven
//! fuzzer finds no schema-valid request refused and no schema-invalid one accepted:
//! `scripts/check-fuzz.sh` runs schemathesis against it. The rules JSON Schema cannot state
//! (`retry_max_backoff >= retry_min_backoff`; a webhook that exists; an `Idempotency-Key` not
//! used before with another body) are in the descriptions, and that script says how it treats
//! them. A test checks that every route of `router::PATHS` is documented here, and nothing
//! else.

mod schemas;

use serde_json::{Map, Value, json};

use super::idempotency::{HEADER as IDEMPOTENCY_HEADER, MAX_KEY_BYTES, REPLAYED_HEADER};
use super::patterns;
use super::query::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::http::SECURITY_HEADERS;

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "postmand API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhook delivery on PostgreSQL. Every error is one {\"code\",\"message\",\"details\"} object with Content-Type: application/json; charset=utf-8 (README.md has the catalogue). A request head that is not HTTP (a malformed request line or header name, 400) or that stops arriving (408) is answered by the HTTP layer alone, with an empty body."
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Required on /v1 when POSTMAND_API_TOKEN is set."}},
            "headers": headers(),
            "schemas": schemas::schemas()
        }
    })
}

fn paths() -> Value {
    let webhook_id = id_param("webhook_id", "webhook");
    let delivery_id = id_param("delivery_id", "delivery");
    let attempt_id = id_param("delivery_attempt_id", "delivery attempt");
    let event_id = id_param("event_id", "event");
    let not_found = |code: u16, what: &str| {
        error(&format!(
            "The path id is not a UUID (code 2), or no {what} has it (code {code})."
        ))
    };
    json!({
        "/v1/webhooks": {
            "get": operation("listWebhooks", "List webhooks by name", "webhooks",
                list_params(vec![query("active", json!({"type": "boolean"}), "Only active (true) or inactive (false) webhooks.")]),
                json!({"200": ok("A page of webhooks.", "WebhookList"), "400": bad_query()})),
            "post": with_body(operation("createWebhook", "Create a webhook", "webhooks", json!([]),
                json!({"201": ok("The stored webhook.", "Webhook"), "400": bad_body()})), "WebhookInput")
        },
        "/v1/webhooks/{webhook_id}": {
            "parameters": [webhook_id],
            "get": operation("getWebhook", "Get a webhook", "webhooks", json!([]),
                json!({"200": ok("The webhook.", "Webhook"), "404": not_found(5, "webhook")})),
            "put": with_body(operation("updateWebhook", "Replace a webhook (omitted active means false, omitted secret_token means none)", "webhooks", json!([]),
                json!({"200": ok("The replaced webhook.", "Webhook"), "400": bad_body(), "404": not_found(5, "webhook")})), "WebhookInput"),
            "delete": operation("deleteWebhook", "Delete a webhook with its deliveries and attempts", "webhooks", json!([]),
                json!({"204": empty("Deleted."), "404": not_found(5, "webhook")}))
        },
        "/v1/webhooks/{webhook_id}/rotate-secret": {
            "parameters": [id_param("webhook_id", "webhook")],
            "post": with_optional_body(operation("rotateWebhookSecret", "Replace the signing secret; the old one keeps signing beside it for previous_valid_for seconds", "webhooks", json!([]),
                json!({"200": ok("The webhook, with previous_secret_expires_at.", "Webhook"), "400": bad_body(), "404": not_found(5, "webhook")})), "SecretRotation")
        },
        "/v1/webhooks/{webhook_id}/recover": {
            "parameters": [id_param("webhook_id", "webhook")],
            "post": with_body(operation("recoverWebhook", "Send the webhook's failed deliveries created in a window again, with a fresh attempt budget", "webhooks", json!([]),
                json!({"200": ok("How many went back to pending; more is true when the cap (100,000 per call) stopped it.", "Recovered"),
                       "400": bad_body_or("until is not later than since (code 4, details \"until: must be later than since.\")"),
                       "404": not_found(5, "webhook")})), "RecoveryWindow")
        },
        "/v1/deliveries": {
            "get": operation("listDeliveries", "List deliveries, newest first", "deliveries",
                list_params(vec![
                    query("webhook_id", uuid_schema(), "Only this webhook's deliveries (a UUID in any of the forms path ids take)."),
                    query("status", json!({"type": "string", "enum": ["pending", "succeeded", "failed"]}), "Only deliveries in this status."),
                    query("event_id", uuid_schema(), "Only deliveries made for this event (a UUID in any of the forms path ids take)."),
                ]),
                json!({"200": ok("A page of deliveries.", "DeliveryList"), "400": bad_query()})),
            "post": with_body(with_idempotency(operation("createDelivery", "Queue a payload for a webhook", "deliveries", json!([]),
                json!({"201": ok("The queued delivery.", "Delivery"),
                       "400": bad_body_or("no webhook has webhook_id (code 4, details \"webhook_id: webhook does not exist.\")")}))), "DeliveryInput")
        },
        "/v1/deliveries/{delivery_id}": {
            "parameters": [delivery_id.clone()],
            "get": operation("getDelivery", "Get a delivery", "deliveries", json!([]),
                json!({"200": ok("The delivery.", "Delivery"), "404": not_found(6, "delivery")})),
            "delete": operation("deleteDelivery", "Delete a delivery with its attempts", "deliveries", json!([]),
                json!({"204": empty("Deleted."), "404": not_found(6, "delivery")}))
        },
        "/v1/deliveries/{delivery_id}/retry": {
            "parameters": [delivery_id],
            "post": operation("retryDelivery", "Send a succeeded or failed delivery again, due now, with a fresh attempt budget", "deliveries", json!([]),
                json!({"200": ok("The delivery, pending again.", "Delivery"),
                       "404": not_found(6, "delivery"),
                       "409": error("The delivery is still pending (code 14).")}))
        },
        "/v1/delivery-attempts": {
            "get": operation("listDeliveryAttempts", "List delivery attempts, newest first", "delivery-attempts",
                list_params(vec![
                    query("webhook_id", uuid_schema(), "Only attempts for this webhook (a UUID in any of the forms path ids take)."),
                    query("delivery_id", uuid_schema(), "Only attempts of this delivery (a UUID in any of the forms path ids take)."),
                    query("success", json!({"type": "boolean"}), "Only successful (true) or failed (false) attempts."),
                ]),
                json!({"200": ok("A page of attempts.", "DeliveryAttemptList"), "400": bad_query()}))
        },
        "/v1/delivery-attempts/{delivery_attempt_id}": {
            "parameters": [attempt_id],
            "get": operation("getDeliveryAttempt", "Get a delivery attempt", "delivery-attempts", json!([]),
                json!({"200": ok("The attempt.", "DeliveryAttempt"), "404": not_found(7, "delivery attempt")}))
        },
        "/v1/events": {
            "get": operation("listEvents", "List events, newest first", "events",
                list_params(vec![
                    query("event_type", json!({"type": "string", "pattern": super::json::EVENT_TYPE_PATTERN}), "Only events of this type."),
                ]),
                json!({"200": ok("A page of events.", "EventList"), "400": bad_query()})),
            "post": with_body(with_idempotency(operation("createEvent", "Create an event: one delivery for every active webhook subscribed to its type", "events", json!([]),
                json!({"201": ok("The event, with how many deliveries it made.", "Event"), "400": bad_body()}))), "EventInput")
        },
        "/v1/events/{event_id}": {
            "parameters": [event_id],
            "get": operation("getEvent", "Get an event and where each of its deliveries is", "events", json!([]),
                json!({"200": ok("The event.", "EventDetail"), "404": not_found(17, "event")}))
        }
    })
}

/// An operation with its own `responses` and those every `/v1` operation can give.
fn operation(id: &str, summary: &str, tag: &str, parameters: Value, responses: Value) -> Value {
    let mut operation = json!({"operationId": id, "summary": summary, "tags": [tag],
        "responses": common(responses)});
    if parameters.as_array().is_some_and(|p| !p.is_empty()) {
        operation["parameters"] = parameters;
    }
    operation
}

/// The responses any `/v1` request can get besides its operation's own: the token, the body
/// gates (every route reads a body when one is sent), a bug, the database.
fn common(mut responses: Value) -> Value {
    let add = |responses: &mut Value, status: &str, response: Value| {
        if responses.get(status).is_none() {
            responses[status] = response;
        }
    };
    add(
        &mut responses,
        "400",
        error("A request body that could not be read, such as a broken chunked body (code 3)."),
    );
    let mut unauthorized =
        error("Missing or wrong bearer token (code 8), when POSTMAND_API_TOKEN is set.");
    unauthorized["headers"]["WWW-Authenticate"] =
        json!({"$ref": "#/components/headers/WWW-Authenticate"});
    add(&mut responses, "401", unauthorized);
    add(
        &mut responses,
        "413",
        error(
            "The body is larger than POSTMAND_MAX_BODY_BYTES (code 9), decided from Content-Length when one is given, before anything else.",
        ),
    );
    add(
        &mut responses,
        "415",
        error(
            "A request with a body whose Content-Type is not application/json (parameters such as charset are allowed; code 10).",
        ),
    );
    add(
        &mut responses,
        "500",
        error("A bug (code 1); please report it."),
    );
    add(
        &mut responses,
        "503",
        error("The database is unreachable or out of connections (code 11)."),
    );
    responses
}

/// A POST or PUT that takes `schema` as its JSON body.
fn with_body(mut operation: Value, schema: &str) -> Value {
    operation["requestBody"] = json!({"required": true,
        "description": "One JSON object. Unknown fields are ignored, null is the same as an absent field, a repeated key or a field of the wrong JSON type is a malformed body (400 code 3).",
        "content": {"application/json": {"schema": schema_ref(schema)}}});
    operation
}

/// A POST whose JSON body may be left out altogether (every field has a default).
fn with_optional_body(operation: Value, schema: &str) -> Value {
    let mut operation = with_body(operation, schema);
    operation["requestBody"]["required"] = json!(false);
    operation
}

/// A create that takes an `Idempotency-Key`: the header, the replay header on its 201, its
/// 409 and 422.
fn with_idempotency(mut operation: Value) -> Value {
    operation["parameters"] = json!([{"name": IDEMPOTENCY_HEADER, "in": "header", "required": false,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_BYTES, "pattern": patterns::IDEMPOTENCY_KEY},
        "description": "1-255 printable ASCII characters (HTTP drops spaces around a header's value; a byte outside ASCII is refused with 400 code 4). A repeat of the same request (the same fields, compared decoded) with the same key within POSTMAND_IDEMPOTENCY_HOURS gets the first answer again, with Idempotent-Replayed: true, and creates nothing; the key with another request is 422 (code 15). Keys are per endpoint."}]);
    let responses = &mut operation["responses"];
    responses["201"]["headers"][REPLAYED_HEADER] =
        json!({"$ref": format!("#/components/headers/{REPLAYED_HEADER}")});
    responses["409"] = error(
        "The first request with this Idempotency-Key is still being answered (code 16): retry it later.",
    );
    responses["422"] = error(
        "This Idempotency-Key was used with a different request (code 15); nothing was created.",
    );
    operation
}

fn bad_body() -> Value {
    bad_body_or("")
}

/// The 400 of an operation with a body, and `also` when it has another reason.
fn bad_body_or(also: &str) -> Value {
    let also = if also.is_empty() {
        String::new()
    } else {
        format!(", or {also}")
    };
    error(&format!(
        "The body is not a JSON object of the schema's types (code 3), it breaks a rule (code 4; details name each field, sorted: \"field: rule; field: rule.\"), or the Idempotency-Key header is not 1-255 printable ASCII characters (code 4){also}."
    ))
}

fn bad_query() -> Value {
    error(
        "A list parameter is malformed or out of range, the query string is not valid percent-encoded UTF-8, or a cursor comes with a non-zero offset (code 4; details name each parameter); or else the cursor is not a next_cursor of this list (code 18).",
    )
}

fn id_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": uuid_schema(),
           "description": format!("The {what}'s id: a UUID, hyphenated, as 32 hex digits, in braces or after urn:uuid:, any case, percent-escaped or not. Anything else is 404 code 2.")})
}

fn uuid_schema() -> Value {
    json!({"type": "string", "pattern": patterns::UUID})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema,
           "description": format!("{description} Only its first value counts.")})
}

fn list_params(filters: Vec<Value>) -> Value {
    let mut params = vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
            "Page size: decimal digits.",
        ),
        query(
            "offset",
            json!({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
            "Rows to skip: decimal digits. Must be 0 or absent with a cursor (else 400 code 4, details \"offset: must be 0 or absent with a cursor.\").",
        ),
        query(
            "cursor",
            json!({"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"}),
            "Continue after the last row of an earlier page: that page's next_cursor, unchanged (opaque; send the same filters again). Rows are read from that row on, so rows inserted or deleted meanwhile never make a page repeat or skip one. Any other string is 400 code 18 (invalid cursor).",
        ),
    ];
    params.extend(filters);
    for op in ["gt", "gte", "lt", "lte"] {
        params.push(query(
            &format!("created_at.{op}"),
            json!({"type": "string", "format": "date-time"}),
            &format!("created_at {op} this RFC 3339 time. A space stands for the + of a UTC offset (an unescaped + in a query string means a space)."),
        ));
    }
    Value::Array(params)
}

/// A response with the headers of every response and, when `schema` is given, its JSON body.
fn response(description: &str, schema: Option<&str>) -> Value {
    let headers: Map<String, Value> = SECURITY_HEADERS
        .iter()
        .map(|(name, _)| {
            (
                name.to_string(),
                json!({"$ref": format!("#/components/headers/{name}")}),
            )
        })
        .collect();
    let mut response = json!({"description": description, "headers": headers});
    if let Some(schema) = schema {
        response["content"] = json!({"application/json": {"schema": schema_ref(schema)}});
    }
    response
}

fn ok(description: &str, schema: &str) -> Value {
    response(description, Some(schema))
}

fn error(description: &str) -> Value {
    response(description, Some("Error"))
}

fn empty(description: &str) -> Value {
    response(description, None)
}

fn schema_ref(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

/// The response headers: the security headers of every response, the 401's challenge and the
/// replay mark.
fn headers() -> Value {
    let mut headers: Map<String, Value> = SECURITY_HEADERS
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                json!({"description": "On every response.", "required": true,
                       "schema": {"type": "string", "enum": [value]}}),
            )
        })
        .collect();
    headers.insert(
        "WWW-Authenticate".to_string(),
        json!({"description": "The scheme to authenticate with.", "required": true,
               "schema": {"type": "string", "enum": ["Bearer"]}}),
    );
    headers.insert(
        REPLAYED_HEADER.to_string(),
        json!({"description": "Only on the stored answer to an earlier request with the same Idempotency-Key.",
               "schema": {"type": "string", "enum": ["true"]}}),
    );
    Value::Object(headers)
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

    /// Every operation documents the statuses any request can get, each error with the Error
    /// schema and every response with the security headers.
    #[test]
    fn every_operation_has_the_common_responses_and_headers() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses = operation["responses"].as_object().unwrap();
                for status in ["400", "401", "413", "415", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"],
                            json!({"$ref": "#/components/schemas/Error"}),
                            "{method} {path} {status}"
                        );
                    }
                    for (name, _) in SECURITY_HEADERS {
                        assert!(
                            response["headers"].get(*name).is_some(),
                            "{method} {path} {status} {name}"
                        );
                    }
                }
            }
        }
    }
}
