//! The three entities as plain data: what a row holds, with no I/O and no wire format.
//!
//! The API's JSON shapes live in `api::json`; the SQL that reads and writes these rows lives in
//! `store`. Both convert to and from the types here, so a field is named once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Longest `delivery_attempt_timeout` a webhook may have, in seconds: at most five minutes per
/// attempt, as a dispatcher and its transaction are held that long.
pub const MAX_ATTEMPT_TIMEOUT_SECS: i64 = 300;

/// Where a delivery is in its life. The `deliveries_status_check` constraint enforces the same set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt at `scheduled_at`. Set by create or retry; left only by a
    /// dispatcher's commit; a crash mid-attempt leaves it pending with its attempt count unchanged.
    Pending,
    /// An attempt got a status code in `valid_status_codes`. Set by a dispatcher's commit; left
    /// only by the retry endpoint.
    Succeeded,
    /// The attempts reached `max_delivery_attempts` without success. Set by a dispatcher's
    /// commit; left only by the retry endpoint.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order metrics list them.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    /// The name stored in the `status` column and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `pending`, `succeeded`, `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown delivery status {:?}", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<DeliveryStatus, UnknownStatus> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The settings a client gives for a webhook, on create and on (full-replacement) update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// A label, 3-255 bytes. Not unique.
    pub name: String,
    /// Where deliveries are POSTed: http or https with a host.
    pub url: String,
    /// Sent verbatim as the request's `Content-Type`.
    pub content_type: String,
    /// Response status codes that count as delivered.
    pub valid_status_codes: Vec<i32>,
    /// HMAC key of the signature headers; empty means unsigned.
    pub secret_token: String,
    /// Inactive webhooks keep their deliveries pending until reactivated.
    pub active: bool,
    /// Attempts after which a delivery is failed.
    pub max_delivery_attempts: i32,
    /// Seconds one attempt may take, connect to last body byte.
    pub delivery_attempt_timeout: i32,
    /// Seconds before the first retry; doubles per failure.
    pub retry_min_backoff: i32,
    /// Seconds the retry delay never exceeds.
    pub retry_max_backoff: i32,
    /// Event types it receives from `POST /v1/events`; empty means every type.
    pub event_types: Vec<String>,
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Primary key.
    pub id: Uuid,
    /// What the client configured.
    pub settings: WebhookSettings,
    /// When it was created (database clock).
    pub created_at: DateTime<Utc>,
    /// When it was last replaced (database clock).
    pub updated_at: DateTime<Utc>,
    /// Why and when postmand deactivated it (410 Gone, or only failures for too long); `None`
    /// unless postmand did. A replace with `active: true` clears it.
    pub disabled: Option<Disabled>,
    /// Until when the secret replaced by the last rotation still signs; `None` when none does.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Why and when postmand deactivated a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// e.g. "endpoint answered 410 Gone".
    pub reason: String,
    /// When (database clock).
    pub at: DateTime<Utc>,
}

/// A stored delivery: one payload for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Primary key.
    pub id: Uuid,
    /// The webhook it goes to.
    pub webhook_id: Uuid,
    /// The exact body to POST.
    pub payload: String,
    /// When it is next due (database clock).
    pub scheduled_at: DateTime<Utc>,
    /// Attempts made so far.
    pub delivery_attempts: i32,
    /// See [`DeliveryStatus`].
    pub status: DeliveryStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The event it was made for; `None` for a delivery created directly.
    pub event_id: Option<Uuid>,
}

/// A stored event: one `POST /v1/events`, fanned out to the webhooks subscribed to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Primary key.
    pub id: Uuid,
    /// What happened, e.g. `invoice.paid`; webhooks subscribe by it.
    pub event_type: String,
    /// The exact body each delivery POSTs.
    pub payload: String,
    /// How many deliveries it made when created.
    pub deliveries: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A stored delivery attempt: one HTTP exchange, or one failure to have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Primary key.
    pub id: Uuid,
    /// The webhook of the delivery.
    pub webhook_id: Uuid,
    /// The delivery tried.
    pub delivery_id: Uuid,
    /// What went over the wire and how it was judged.
    pub exchange: Exchange,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// One HTTP exchange of an attempt, as stored: what a dispatcher records and the API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request as sent: request line, headers, blank line, body (sanitised, capped).
    pub raw_request: String,
    /// The response as received, same shape; empty when there was no response.
    pub raw_response: String,
    /// The response's status code; 0 when there was no response.
    pub response_status_code: i32,
    /// Milliseconds from sending to the response headers.
    pub execution_duration: i32,
    /// Whether the status code was one of the webhook's valid ones.
    pub success: bool,
    /// Transport failure text (`Post "<url>": <cause>`), empty when a response arrived.
    pub error: String,
}

/// The HMAC key of a Standard Webhooks secret (`whsec_` + base64): `None` for a secret without
/// the prefix (its bytes are the key), `Some(Err)` when the part after the prefix is not base64.
pub fn whsec_key(secret: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    use base64::Engine;
    secret
        .strip_prefix("whsec_")
        .map(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
        }
        assert_eq!(
            "done".parse::<DeliveryStatus>(),
            Err(UnknownStatus("done".into()))
        );
    }
}
