//! List parameters: `limit`, `offset` and the filters, parsed strictly. A malformed or
//! out-of-range value is a 400 naming the parameter; the original silently dropped every filter
//! and paging parameter instead (seed defect 8). Unknown parameters are ignored, as before.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::errors::{ApiError, FieldError};
use crate::model::DeliveryStatus;
use crate::store::{CreatedRange, Page};

/// Default page size (the original's).
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;
/// Largest offset; deeper pages should follow `next_cursor` (or narrow with `created_at`).
pub const MAX_OFFSET: i64 = 1_000_000;

/// The rule `offset` breaks when a `cursor` comes with it.
pub const OFFSET_WITH_CURSOR: &str = "must be 0 or absent with a cursor";

/// A decoded query string: the first value of each key, as the original read it.
pub struct Query {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
    /// A `cursor` was given that is no cursor of this list (400 code 18).
    bad_cursor: bool,
}

impl Query {
    /// Splits and percent-decodes `a=1&b=2` (`+` is a space).
    pub fn parse(raw: &str) -> Query {
        let mut query = Query {
            pairs: Vec::new(),
            errors: Vec::new(),
            bad_cursor: false,
        };
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match (percent_decode(key), percent_decode(value)) {
                (Some(key), Some(value)) => query.pairs.push((key, value)),
                (Some(key), None) => query
                    .errors
                    .push(FieldError::new(key, "must be valid percent-encoded UTF-8")),
                (None, _) => query.errors.push(FieldError::new(
                    "query",
                    "must be valid percent-encoded UTF-8",
                )),
            }
        }
        query
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn check<T>(
        &mut self,
        key: &str,
        message: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let value = self.first(key)?.to_string();
        let parsed = parse(&value);
        if parsed.is_none() && !self.errors.iter().any(|e| e.field == key) {
            self.errors.push(FieldError::new(key, message));
        }
        parsed
    }

    /// `limit` (1..=1000, default 50) and `offset` (0..=1000000, default 0).
    pub fn page(&mut self) -> Page {
        let limit = self.check("limit", "must be an integer from 1 to 1000", |v| {
            integer(v).filter(|n| (1..=MAX_LIMIT).contains(n))
        });
        let offset = self.check("offset", "must be an integer from 0 to 1000000", |v| {
            integer(v).filter(|n| (0..=MAX_OFFSET).contains(n))
        });
        Page {
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            offset: offset.unwrap_or(0),
        }
    }

    /// `cursor`: where a page starts, decoded by `decode` (see `api::cursor`). A cursor with a
    /// non-zero `offset` is a 400 code 4 naming `offset` (a cursor already says where to start);
    /// a cursor `decode` refuses is a 400 code 18, unless the query has other errors.
    pub fn cursor<K>(&mut self, page: &Page, decode: impl Fn(&str) -> Option<K>) -> Option<K> {
        let cursor = self.first("cursor")?;
        let mark = decode(cursor);
        self.bad_cursor = mark.is_none();
        if page.offset != 0 && !self.errors.iter().any(|e| e.field == "offset") {
            self.errors
                .push(FieldError::new("offset", OFFSET_WITH_CURSOR));
        }
        mark
    }

    /// A `true`/`false` parameter.
    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        self.check(key, "must be true or false", |v| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    /// A UUID parameter (any of the forms a path id accepts).
    pub fn uuid(&mut self, key: &str) -> Option<Uuid> {
        self.check(key, "must be a valid UUID", |v| Uuid::parse_str(v).ok())
    }

    /// An event type (see `json::is_event_type`).
    pub fn event_type(&mut self, key: &str) -> Option<String> {
        self.check(
            key,
            "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            |v| super::json::is_event_type(v).then(|| v.to_string()),
        )
    }

    /// `status`: one of the three delivery states.
    pub fn status(&mut self) -> Option<DeliveryStatus> {
        self.check("status", "must be one of pending, succeeded, failed", |v| {
            v.parse().ok()
        })
    }

    /// `created_at.gt|gte|lt|lte`, each an RFC 3339 date-time.
    pub fn created(&mut self) -> CreatedRange {
        let mut time = |key: &str| {
            self.check(key, "must be an RFC 3339 date-time", |v| {
                // An unescaped `+` of a UTC offset arrives as a space; take it back.
                DateTime::parse_from_rfc3339(&v.replace(' ', "+"))
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
        };
        CreatedRange {
            gt: time("created_at.gt"),
            gte: time("created_at.gte"),
            lt: time("created_at.lt"),
            lte: time("created_at.lte"),
        }
    }

    /// Every problem found by the calls so far, as one 400: the malformed or out-of-range
    /// parameters (code 4), else a malformed cursor (code 18).
    pub fn finish(self) -> Result<(), ApiError> {
        if !self.errors.is_empty() {
            Err(ApiError::Validation(self.errors))
        } else if self.bad_cursor {
            Err(ApiError::InvalidCursor)
        } else {
            Ok(())
        }
    }
}

/// Plain decimal digits, optionally signed with `-`; no `+`, spaces or exponents.
fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A query string's key or value: `%XX` escapes, and `+` for a space. `None` when an escape is
/// broken or the result is not UTF-8. The dashboard decodes its forms with it too.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    decode(text, true)
}

/// A path segment: `%XX` escapes only (`+` is itself in a path). `None` when an escape is
/// broken or the result is not UTF-8.
pub fn percent_decode_path(text: &str) -> Option<String> {
    decode(text, false)
}

fn decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                // from_str_radix alone takes a sign: "%+f" would decode as 0x0f.
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent() {
        let mut q = Query::parse("");
        assert_eq!(
            q.page(),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert!(q.finish().is_ok());
    }

    #[test]
    fn bad_values_name_each_parameter() {
        let mut q = Query::parse("limit=0&offset=-1&active=yes&created_at.gt=yesterday");
        q.page();
        q.boolean("active");
        q.created();
        assert_eq!(
            q.finish().unwrap_err().details(),
            "active: must be true or false; created_at.gt: must be an RFC 3339 date-time; \
             limit: must be an integer from 1 to 1000; offset: must be an integer from 0 to 1000000."
        );
    }

    #[test]
    fn first_value_wins_and_plus_offsets_survive() {
        let mut q = Query::parse("limit=5&limit=7&created_at.gte=2021-03-08T20:50:08+03:00");
        assert_eq!(q.page().limit, 5);
        assert!(q.created().gte.is_some());
        assert!(q.finish().is_ok());
    }

    #[test]
    fn cursor_with_offset_names_offset_and_bad_cursor_is_code_18() {
        let decode = |v: &str| (v == "good").then_some(7);
        let mut q = Query::parse("cursor=good&offset=0");
        let page = q.page();
        assert_eq!(q.cursor(&page, decode), Some(7));
        assert!(q.finish().is_ok());

        let mut q = Query::parse("cursor=good&offset=3");
        let page = q.page();
        q.cursor(&page, decode);
        assert_eq!(
            q.finish().unwrap_err().details(),
            "offset: must be 0 or absent with a cursor."
        );

        let mut q = Query::parse("cursor=bad");
        let page = q.page();
        assert_eq!(q.cursor(&page, decode), None);
        assert_eq!(q.finish().unwrap_err(), ApiError::InvalidCursor);

        let mut q = Query::parse("cursor=&limit=0");
        let page = q.page();
        q.cursor(&page, decode);
        assert_eq!(q.finish().unwrap_err().code(), 4, "other errors first");

        let mut q = Query::parse("offset=9");
        let page = q.page();
        assert_eq!(q.cursor(&page, decode), None);
        assert!(q.finish().is_ok(), "no cursor, no rule");
    }

    #[test]
    fn integers_are_plain_digits() {
        assert_eq!(integer("05"), Some(5));
        for bad in ["+5", "1e2", " 5", "", "-", "5.0"] {
            assert_eq!(integer(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%+f"), None, "a sign is not a hex digit");
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode_path("a+b%2Bc").as_deref(), Some("a+b+c"));
        assert_eq!(percent_decode_path("%7Bx%7d").as_deref(), Some("{x}"));
        assert_eq!(percent_decode_path("%zz"), None);
    }
}
