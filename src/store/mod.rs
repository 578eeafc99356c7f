//! Every SQL statement of the service, one file per table, each statement a named constant with
//! one function that runs it. Callers pass a client or a transaction; this module never opens one.
//!
//! Statements take the clock from the database (`now()`), never from the caller, so every API
//! process and worker schedules against one clock.

/// The conditions the time-ordered lists of deliveries and attempts share after their own
/// filters (`$1`-`$3`): the creation-time range (`$4`-`$7`: `created_at.gt`, `gte`, `lt`, `lte`)
/// and the keyset mark (`$10`/`$11`: rows strictly after that one, NULL on a first page), in
/// the order [`list_params`] binds them. The row comparison is an index condition of every
/// `(…, created_at DESC, id DESC)` index, on each partition too, so a page after a cursor starts
/// where the last one stopped instead of reading past it (tests/list_plans.rs checks the plans).
macro_rules! created_range_and_mark {
    () => {
        "AND ($4::timestamptz IS NULL OR created_at > $4) \
        AND ($5::timestamptz IS NULL OR created_at >= $5) \
        AND ($6::timestamptz IS NULL OR created_at < $6) \
        AND ($7::timestamptz IS NULL OR created_at <= $7) \
        AND ($10::timestamptz IS NULL OR (created_at, id) < ($10, $11::uuid))"
    };
}

pub mod attempts;
pub mod dashboard;
pub mod deliveries;
pub mod events;
pub mod idempotency;
pub mod partitions;
pub mod queue;
pub mod webhooks;

use std::fmt;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};

/// A failed statement.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The database rejected the statement or the connection failed while running it.
    Db(postgres::Error),
    /// A `status` column held a name no code writes (only possible without migration 2's CHECK).
    UnknownStatus(crate::model::UnknownStatus),
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        Error::Db(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(e) => f.write_str(&crate::db::describe(e)),
            Error::UnknownStatus(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Whether the database is unreachable, shutting down, out of connections or too slow: a
    /// condition of the server, not of the request, so the API answers 503 and a dispatcher backs
    /// off and tries again.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Db(e) => {
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    // No server answer at all: an I/O error or a dropped connection.
                    None => e.as_db_error().is_none(),
                    Some(code) => {
                        code.code().starts_with("08")
                            || *code == SqlState::ADMIN_SHUTDOWN
                            || *code == SqlState::CRASH_SHUTDOWN
                            || *code == SqlState::CANNOT_CONNECT_NOW
                            || *code == SqlState::TOO_MANY_CONNECTIONS
                            || *code == SqlState::QUERY_CANCELED
                            || *code == SqlState::T_R_SERIALIZATION_FAILURE
                            || *code == SqlState::T_R_DEADLOCK_DETECTED
                    }
                }
            }
            Error::UnknownStatus(_) => false,
        }
    }

    /// Whether a foreign key was violated (a delivery for a webhook that does not exist).
    pub fn is_foreign_key_violation(&self) -> bool {
        match self {
            Error::Db(e) => e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION),
            Error::UnknownStatus(_) => false,
        }
    }

    /// Whether a lock was not granted within the session's `lock_timeout`.
    pub fn is_lock_timeout(&self) -> bool {
        match self {
            Error::Db(e) => e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE),
            Error::UnknownStatus(_) => false,
        }
    }

    /// Whether a unique constraint was violated.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Db(e) => e.code() == Some(&SqlState::UNIQUE_VIOLATION),
            Error::UnknownStatus(_) => false,
        }
    }
}

/// Which slice of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many rows (1..=1000, checked by the API).
    pub limit: i64,
    /// Skip this many rows first.
    pub offset: i64,
}

/// The `created_at.gt|gte|lt|lte` filters shared by every list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedRange {
    /// `created_at > gt`.
    pub gt: Option<DateTime<Utc>>,
    /// `created_at >= gte`.
    pub gte: Option<DateTime<Utc>>,
    /// `created_at < lt`.
    pub lt: Option<DateTime<Utc>>,
    /// `created_at <= lte`.
    pub lte: Option<DateTime<Utc>>,
}

/// A typed statement parameter.
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// The row of a `... WHERE id = $1` statement, if there is one.
fn by_id<T>(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    id: uuid::Uuid,
    from_row: impl Fn(&postgres::Row) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    client
        .query_typed_opt(sql, &[(&id, Type::UUID)])?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Where a page of a list newest first (deliveries, attempts, events) starts: strictly after
/// this row, in `(created_at DESC, id DESC)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeMark {
    /// The row's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The row's `id`, the tie-breaker.
    pub id: uuid::Uuid,
}

/// Where a page of the webhook list starts: strictly after this row, in `(name, id)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMark {
    /// The webhook's `name`.
    pub name: String,
    /// The webhook's `id`, the tie-breaker.
    pub id: uuid::Uuid,
}

impl TimeMark {
    /// The two parameters of a list statement's keyset predicate, NULL without a mark.
    fn params(after: Option<&TimeMark>) -> (Option<DateTime<Utc>>, Option<uuid::Uuid>) {
        (after.map(|m| m.created_at), after.map(|m| m.id))
    }
}

/// One page of a list, and whether more rows follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// At most [`Page::limit`] rows, in the list's order.
    pub rows: Vec<T>,
    /// Whether at least one more row follows the last of `rows` (with the same filters).
    pub more: bool,
}

/// One page of a list statement: its own `filters`, then the creation-time range, the page and
/// the keyset mark `after` (see [`list_params`]). One row more than the page is read, to know
/// whether another page follows.
fn page_of<T>(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    filters: &[Param<'_>],
    created: &CreatedRange,
    page: &Page,
    after: &[Param<'_>],
    from_row: impl Fn(&postgres::Row) -> Result<T, Error>,
) -> Result<Listed<T>, Error> {
    let fetch = page.limit.saturating_add(1);
    let mut rows = client
        .query_typed(
            sql,
            &list_params(filters, created, &fetch, &page.offset, after),
        )?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<T>, Error>>()?;
    let keep = usize::try_from(page.limit).unwrap_or(0);
    let more = rows.len() > keep;
    rows.truncate(keep);
    Ok(Listed { rows, more })
}

/// The parameters of a list statement: its own `filters` first, then the creation-time range,
/// the row limit and offset, then the keyset mark `after` (each of its parameters NULL for the
/// first page), in the order every `LIST` statement numbers them.
fn list_params<'a>(
    filters: &[Param<'a>],
    created: &'a CreatedRange,
    limit: &'a i64,
    offset: &'a i64,
    after: &[Param<'a>],
) -> Vec<Param<'a>> {
    let mut params = filters.to_vec();
    params.extend([
        (&created.gt as &(dyn ToSql + Sync), Type::TIMESTAMPTZ),
        (&created.gte, Type::TIMESTAMPTZ),
        (&created.lt, Type::TIMESTAMPTZ),
        (&created.lte, Type::TIMESTAMPTZ),
        (limit, Type::INT8),
        (offset, Type::INT8),
    ]);
    params.extend_from_slice(after);
    params
}
