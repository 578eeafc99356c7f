//! The whole error catalogue of the API: every [`ApiError`] with its HTTP status, code, message
//! and details. Handlers return an `ApiError`; only this file decides how it looks on the wire.
//!
//! Codes 1-7 and their messages are the original postmand's. Codes from 8 on are ours, for cases
//! the original answered with an empty body, a plain-text page or not at all.

use std::fmt;

/// One field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON field or query parameter, e.g. `url` or `created_at.gt`.
    pub field: String,
    /// The first rule it broke, e.g. `cannot be blank`.
    pub message: String,
}

impl FieldError {
    /// A field and the rule it broke.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// A database failure that is not the client's fault and not an outage. 500, code 1.
    Internal,
    /// A path id that is not a UUID. 404, code 2 (the original's choice of status).
    InvalidId,
    /// A body that is not JSON of the expected shape. 400, code 3.
    MalformedBody,
    /// Fields or query parameters that break a rule. 400, code 4, details list each.
    Validation(Vec<FieldError>),
    /// No webhook with that id. 404, code 5.
    WebhookNotFound,
    /// No delivery with that id. 404, code 6.
    DeliveryNotFound,
    /// No delivery attempt with that id. 404, code 7.
    AttemptNotFound,
    /// `POSTMAND_API_TOKEN` is set and the request lacks the right bearer token. 401, code 8.
    Unauthorized,
    /// The body is larger than `POSTMAND_MAX_BODY_BYTES`. 413, code 9.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A body whose Content-Type is not `application/json`. 415, code 10.
    UnsupportedMediaType,
    /// The database is unreachable or out of connections. 503, code 11.
    Unavailable,
    /// A known path with a method it does not serve. 405, code 12, with an `Allow` header.
    MethodNotAllowed {
        /// The methods the path serves, in the router's order.
        allow: Vec<&'static str>,
    },
    /// No route has this path. 404, code 13.
    RouteNotFound,
    /// The retry endpoint was called on a delivery that is still pending. 409, code 14.
    DeliveryPending,
    /// An `Idempotency-Key` already answered a different request. 422, code 15.
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being answered. 409, code 16.
    IdempotencyKeyInFlight,
    /// No event with that id. 404, code 17.
    EventNotFound,
    /// A list's `cursor` that is not a `next_cursor` of that list (not base64url, the wrong
    /// length, version or list). 400, code 18.
    InvalidCursor,
}

impl ApiError {
    /// A validation error for a single field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Internal => 500,
            ApiError::InvalidId => 404,
            ApiError::MalformedBody => 400,
            ApiError::Validation(_) => 400,
            ApiError::WebhookNotFound => 404,
            ApiError::DeliveryNotFound => 404,
            ApiError::AttemptNotFound => 404,
            ApiError::Unauthorized => 401,
            ApiError::BodyTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Unavailable => 503,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::RouteNotFound => 404,
            ApiError::DeliveryPending => 409,
            ApiError::IdempotencyKeyReused => 422,
            ApiError::IdempotencyKeyInFlight => 409,
            ApiError::EventNotFound => 404,
            ApiError::InvalidCursor => 400,
        }
    }

    /// The `code` field of the error body.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Internal => 1,
            ApiError::InvalidId => 2,
            ApiError::MalformedBody => 3,
            ApiError::Validation(_) => 4,
            ApiError::WebhookNotFound => 5,
            ApiError::DeliveryNotFound => 6,
            ApiError::AttemptNotFound => 7,
            ApiError::Unauthorized => 8,
            ApiError::BodyTooLarge { .. } => 9,
            ApiError::UnsupportedMediaType => 10,
            ApiError::Unavailable => 11,
            ApiError::MethodNotAllowed { .. } => 12,
            ApiError::RouteNotFound => 13,
            ApiError::DeliveryPending => 14,
            ApiError::IdempotencyKeyReused => 15,
            ApiError::IdempotencyKeyInFlight => 16,
            ApiError::EventNotFound => 17,
            ApiError::InvalidCursor => 18,
        }
    }

    /// The `message` field of the error body.
    pub fn message(&self) -> &'static str {
        match self {
            ApiError::Internal => "internal server error",
            ApiError::InvalidId => "invalid id",
            ApiError::MalformedBody => "malformed request body",
            ApiError::Validation(_) => "request validation failed",
            ApiError::WebhookNotFound => "webhook not found",
            ApiError::DeliveryNotFound => "delivery not found",
            ApiError::AttemptNotFound => "delivery attempt not found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::BodyTooLarge { .. } => "request body too large",
            ApiError::UnsupportedMediaType => "unsupported media type",
            ApiError::Unavailable => "service unavailable",
            ApiError::MethodNotAllowed { .. } => "method not allowed",
            ApiError::RouteNotFound => "route not found",
            ApiError::DeliveryPending => "delivery is pending",
            ApiError::IdempotencyKeyReused => "idempotency key reused",
            ApiError::IdempotencyKeyInFlight => "idempotency key in use",
            ApiError::EventNotFound => "event not found",
            ApiError::InvalidCursor => "invalid cursor",
        }
    }

    /// The `details` field of the error body; empty means the field is left out.
    pub fn details(&self) -> String {
        match self {
            ApiError::Validation(errors) => validation_details(errors),
            ApiError::Unauthorized => {
                "send the API token as Authorization: Bearer <token>".to_string()
            }
            ApiError::BodyTooLarge { limit } => format!("the limit is {limit} bytes"),
            ApiError::UnsupportedMediaType => {
                "a request body must have Content-Type: application/json".to_string()
            }
            ApiError::MethodNotAllowed { allow } => format!("allowed: {}", allow.join(", ")),
            ApiError::Unavailable => "the database is unavailable; try again".to_string(),
            ApiError::DeliveryPending => {
                "only a succeeded or failed delivery can be retried".to_string()
            }
            ApiError::IdempotencyKeyReused => {
                "this Idempotency-Key was used with a different request body".to_string()
            }
            ApiError::IdempotencyKeyInFlight => {
                "the first request with this Idempotency-Key is still in progress; retry later"
                    .to_string()
            }
            ApiError::InvalidCursor => CURSOR_DETAILS.to_string(),
            ApiError::Internal
            | ApiError::InvalidId
            | ApiError::MalformedBody
            | ApiError::WebhookNotFound
            | ApiError::DeliveryNotFound
            | ApiError::AttemptNotFound
            | ApiError::EventNotFound
            | ApiError::RouteNotFound => String::new(),
        }
    }

    /// The error body: `{"code":N,"message":"...","details":"..."}`, details only when non-empty.
    pub fn body(&self) -> String {
        let body = ErrorBody {
            code: self.code(),
            message: self.message(),
            details: self.details(),
        };
        // This unwrap is OK, because a struct of an integer and strings always serialises.
        serde_json::to_string(&body).unwrap()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let details = self.details();
        if details.is_empty() {
            write!(f, "{} (code {})", self.message(), self.code())
        } else {
            write!(f, "{} (code {}): {details}", self.message(), self.code())
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        if e.is_unavailable() {
            log::warn!("database unavailable: {e}");
            ApiError::Unavailable
        } else {
            log::error!("database error: {e}");
            ApiError::Internal
        }
    }
}

impl From<crate::db::Error> for ApiError {
    fn from(e: crate::db::Error) -> ApiError {
        log::warn!("database unavailable: {e}");
        ApiError::Unavailable
    }
}

/// The details of [`ApiError::InvalidCursor`], the same for every malformed cursor (the OpenAPI
/// check in scripts/check-fuzz.sh matches whole bodies).
pub const CURSOR_DETAILS: &str =
    "cursor: must be the next_cursor of an earlier page of the same list, unchanged.";

/// The wire shape of an error; field order is the original's.
#[derive(serde::Serialize)]
struct ErrorBody {
    code: u16,
    message: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    details: String,
}

/// `field: message; field: message.` sorted by field, as the original's validator wrote it.
fn validation_details(errors: &[FieldError]) -> String {
    let mut errors: Vec<&FieldError> = errors.iter().collect();
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    let joined: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    format!("{}.", joined.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_details_are_sorted_and_terminated() {
        let error = ApiError::Validation(vec![
            FieldError::new("url", "cannot be blank"),
            FieldError::new("name", "cannot be blank"),
        ]);
        assert_eq!(
            error.body(),
            r#"{"code":4,"message":"request validation failed","details":"name: cannot be blank; url: cannot be blank."}"#
        );
    }

    #[test]
    fn parity_codes_have_no_details() {
        assert_eq!(
            ApiError::MalformedBody.body(),
            r#"{"code":3,"message":"malformed request body"}"#
        );
        assert_eq!(
            ApiError::InvalidId.body(),
            r#"{"code":2,"message":"invalid id"}"#
        );
        assert_eq!(ApiError::InvalidId.status(), 404);
    }

    #[test]
    fn invalid_cursor_is_400_code_18() {
        assert_eq!(ApiError::InvalidCursor.status(), 400);
        assert_eq!(
            ApiError::InvalidCursor.body(),
            r#"{"code":18,"message":"invalid cursor","details":"cursor: must be the next_cursor of an earlier page of the same list, unchanged."}"#
        );
    }
}
