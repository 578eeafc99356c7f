//! Every statement that reads `delivery_attempts`. Attempts are written by the dispatcher's
//! record statement in `deliveries.rs`, together with the delivery's new state.

use postgres::types::Type;
use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::deliveries::{self, earliest_attempt};
use super::{CreatedRange, Error, Listed, Page, TimeMark, by_id, page_of, webhooks};
use crate::model::{Attempt, Exchange};

/// One attempt by id; columns in the order [`from_row`] reads them. Probes every partition.
const GET: &str = "SELECT id, webhook_id, delivery_id, raw_request, raw_response, \
    response_status_code, execution_duration, success, error, created_at \
    FROM delivery_attempts WHERE id = $1";

/// [`GET`] within a creation-time window, so only the partitions of that window are probed.
pub const GET_WITHIN: &str = "SELECT id, webhook_id, delivery_id, raw_request, raw_response, \
    response_status_code, execution_duration, success, error, created_at \
    FROM delivery_attempts WHERE id = $1 AND created_at >= $2 AND created_at < $3";

/// How far an attempt's `created_at` (the database's clock when it ended) may be from the time
/// in its UUIDv7 id (the dispatcher's clock when it began) for [`get`] to find it in one step.
const ID_TIME_SLACK: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Newest first, ties broken by id. A NULL filter parameter means "no filter"; the time range
/// and keyset mark are `created_range_and_mark!`'s (`store/mod.rs`).
pub const LIST: &str = concat!(
    "SELECT id, webhook_id, delivery_id, raw_request, raw_response, \
    response_status_code, execution_duration, success, error, created_at \
    FROM delivery_attempts \
    WHERE ($1::uuid IS NULL OR webhook_id = $1) \
    AND ($2::uuid IS NULL OR delivery_id = $2) \
    AND ($3::boolean IS NULL OR success = $3) ",
    created_range_and_mark!(),
    " ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
);

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

/// One attempt by id. The dispatcher makes attempt ids UUIDv7, whose time names the day's
/// partition, so the lookup reads the partitions of that time first, and every partition only
/// when that finds nothing: for ids the original made (v4), or a dispatcher whose clock was off
/// by more than a day.
pub fn get(client: &mut impl GenericClient, id: Uuid) -> Result<Option<Attempt>, Error> {
    if let Some(window) = id_window(id) {
        let row = client.query_typed_opt(
            GET_WITHIN,
            &[
                (&id, Type::UUID),
                (&window.0, Type::TIMESTAMPTZ),
                (&window.1, Type::TIMESTAMPTZ),
            ],
        )?;
        if let Some(row) = row {
            return Ok(Some(from_row(&row)));
        }
    }
    by_id(client, GET, id, |row| Ok(from_row(row)))
}

/// The creation-time window that [`get`] reads first for `id`; `None` unless it is a UUIDv7.
pub fn id_window(
    id: Uuid,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let time = id_time(id)?;
    Some((time - ID_TIME_SLACK, time + ID_TIME_SLACK))
}

/// The time in a UUIDv7 id; `None` for other versions.
fn id_time(id: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
    if id.get_version() != Some(uuid::Version::SortRand) {
        return None;
    }
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    chrono::DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
}

/// How far back from the newest row a page can hold (now, the cursor's time, or the filter's
/// upper bound) [`list`] reads first. Planning a statement costs each daily partition it may
/// read: 46 ms a list at 373 partitions (a year with retention off) against about 1 ms for the
/// few this window leaves.
const FIRST_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// One page of attempts, newest first, after `after` when given.
///
/// A page without an offset is read first from the last [`FIRST_WINDOW`] alone (a bound the
/// planner prunes partitions by). When that window holds more rows than the page, the page and
/// its "more" are those of the whole list, since every row outside the window is older than
/// every row in it; otherwise the page is read again without the window. The clock only
/// decides which read answers, never what the answer is. The attempts of one delivery, or one
/// webhook, are read from its creation on (less [`deliveries::CLOCK_SLACK`]).
pub fn list(
    client: &mut impl GenericClient,
    filter: &Filter,
    page: Page,
    after: Option<&TimeMark>,
) -> Result<Listed<Attempt>, Error> {
    let (after_time, after_id) = TimeMark::params(after);
    let read = |client: &mut _, created: &CreatedRange| {
        page_of(
            client,
            LIST,
            &[
                (&filter.webhook_id, Type::UUID),
                (&filter.delivery_id, Type::UUID),
                (&filter.success, Type::BOOL),
            ],
            created,
            &page,
            &[(&after_time, Type::TIMESTAMPTZ), (&after_id, Type::UUID)],
            |row| Ok(from_row(row)),
        )
    };
    if page.offset == 0 {
        // The newest a row of the page can be: now, unless the cursor or the filter's upper
        // bounds say earlier (rows stamped in the future only make the window miss).
        let top = [after_time, filter.created.lt, filter.created.lte]
            .into_iter()
            .flatten()
            .fold(chrono::Utc::now(), std::cmp::min);
        let floor = top - FIRST_WINDOW;
        // A cursor may carry any time PostgreSQL can (from 4714 BC), and a day before its
        // earliest is out of range; no attempt is older than 1970 anyway.
        if let Some(window) = from(&filter.created, floor).filter(|_| floor.timestamp() >= 0) {
            let listed = read(client, &window)?;
            if listed.more {
                return Ok(listed);
            }
        }
    }
    // Each bound holds for the rows of its own filter, so the later one holds for both.
    let mut since = None;
    if let Some(id) = filter.delivery_id {
        since = earliest_attempt(client, deliveries::CREATED_AT, id)?;
    }
    if let Some(id) = filter.webhook_id {
        since = since.max(earliest_attempt(client, webhooks::CREATED_AT, id)?);
    }
    match since.and_then(|since| from(&filter.created, since)) {
        Some(created) => read(client, &created),
        None => read(client, &filter.created),
    }
}

/// `created` with rows from `floor` on only; `None` when its own lower bounds already are
/// that narrow.
fn from(created: &CreatedRange, floor: chrono::DateTime<chrono::Utc>) -> Option<CreatedRange> {
    let below = |bound: Option<chrono::DateTime<chrono::Utc>>| bound.is_none_or(|b| b < floor);
    (below(created.gt) && below(created.gte)).then_some(CreatedRange {
        gte: Some(floor),
        ..*created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_v7_id_names_a_time() {
        let before = chrono::Utc::now() - chrono::TimeDelta::milliseconds(1);
        let time = id_time(Uuid::now_v7()).expect("a v7 id has a time");
        assert!(time >= before && time <= chrono::Utc::now(), "{time}");
        assert_eq!(id_time(Uuid::new_v4()), None);
    }
}
