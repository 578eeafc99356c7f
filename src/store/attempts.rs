//! Every statement that reads `delivery_attempts`. Attempts are written by the dispatcher's
//! record statement in `deliveries.rs`, together with the delivery's new state.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{CreatedRange, Error, Listed, Page, TimeMark, by_id, page_of};
use crate::model::{Attempt, Exchange};

/// One attempt by id; columns in the order [`from_row`] reads them.
const GET: &str = "SELECT id, webhook_id, delivery_id, raw_request, raw_response, \
    response_status_code, execution_duration, success, error, created_at \
    FROM delivery_attempts WHERE id = $1";

/// Newest first, ties broken by id. A NULL filter parameter means "no filter". `$10`/`$11` is
/// the keyset mark, as in `deliveries::LIST`: an index condition of every
/// `(…, created_at DESC, id DESC)` index, on each partition too when the table is partitioned by
/// `created_at`.
pub const LIST: &str = "SELECT id, webhook_id, delivery_id, raw_request, raw_response, \
    response_status_code, execution_duration, success, error, created_at \
    FROM delivery_attempts \
    WHERE ($1::uuid IS NULL OR webhook_id = $1) \
    AND ($2::uuid IS NULL OR delivery_id = $2) \
    AND ($3::boolean IS NULL OR success = $3) \
    AND ($4::timestamptz IS NULL OR created_at > $4) \
    AND ($5::timestamptz IS NULL OR created_at >= $5) \
    AND ($6::timestamptz IS NULL OR created_at < $6) \
    AND ($7::timestamptz IS NULL OR created_at <= $7) \
    AND ($10::timestamptz IS NULL OR (created_at, id) < ($10, $11::uuid)) \
    ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9";

/// Filters of the attempt list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only attempts for this webhook.
    pub webhook_id: Option<Uuid>,
    /// Only attempts of this delivery.
    pub delivery_id: Option<Uuid>,
    /// Only successful (true) or failed (false) attempts.
    pub success: Option<bool>,
    /// Creation-time bounds.
    pub created: CreatedRange,
}

fn from_row(row: &Row) -> Attempt {
    Attempt {
        id: row.get("id"),
        webhook_id: row.get("webhook_id"),
        delivery_id: row.get("delivery_id"),
        exchange: Exchange {
            raw_request: row.get("raw_request"),
            raw_response: row.get("raw_response"),
            response_status_code: row.get("response_status_code"),
            execution_duration: row.get("execution_duration"),
            success: row.get("success"),
            error: row.get("error"),
        },
        created_at: row.get("created_at"),
    }
}

/// One attempt by id.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Attempt>, Error> {
    by_id(client, GET, id, |row| Ok(from_row(row)))
}

/// One page of attempts, newest first, after `after` when given.
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
    after: Option<&TimeMark>,
) -> Result<Listed<Attempt>, Error> {
    let (after_time, after_id) = TimeMark::params(after);
    page_of(
        client,
        LIST,
        &[
            (&filter.webhook_id, Type::UUID),
            (&filter.delivery_id, Type::UUID),
            (&filter.success, Type::BOOL),
        ],
        &filter.created,
        &page,
        &[(&after_time, Type::TIMESTAMPTZ), (&after_id, Type::UUID)],
        |row| Ok(from_row(row)),
    )
}
