//! The `cursor` of the lists (issue 17): an opaque string naming the last row of a page, so the
//! next page starts strictly after it whatever was inserted or deleted in between, and reads
//! from there through an index instead of skipping `offset` rows.
//!
//! On the wire it is unpadded base64url of: a version byte ([`VERSION`]), the list's [`Kind`]
//! byte (so a webhooks cursor given to `/v1/deliveries` is refused, not misread), the row's id
//! (16 bytes), then the rest of its key: `created_at` as big-endian i64 microseconds since the
//! Unix epoch (deliveries, attempts, events), or the name's UTF-8 bytes (webhooks). Anything else
//! decodes to `None`, which the API answers with 400 code 18. Clients must treat the string as
//! opaque: the version byte lets the layout change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{Listed, NameMark, TimeMark};

/// The layout described above.
const VERSION: u8 = 1;

/// PostgreSQL's earliest `timestamptz` (4714-11-24 BC), in microseconds since the Unix epoch
/// (its `MIN_TIMESTAMP` is counted from 2000-01-01, 946,684,800 s later). An earlier time could
/// come from no row, and PostgreSQL would refuse it as a parameter (a 500, not a 400).
const MIN_MICROS: i64 = -211_813_488_000_000_000 + 946_684_800_000_000;

/// Which list a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /v1/webhooks`, by (name, id).
    Webhooks = 1,
    /// `GET /v1/deliveries`, by (created_at, id) newest first.
    Deliveries = 2,
    /// `GET /v1/delivery-attempts`, by (created_at, id) newest first.
    Attempts = 3,
    /// `GET /v1/events`, by (created_at, id) newest first.
    Events = 4,
}

/// The cursor of a newest-first list whose page ended at `mark`.
pub fn encode_time(kind: Kind, mark: &TimeMark) -> String {
    let mut bytes = header(kind, mark.id);
    bytes.extend_from_slice(&mark.created_at.timestamp_micros().to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The mark in a cursor of a newest-first list of `kind`; `None` when it is not one.
pub fn decode_time(kind: Kind, cursor: &str) -> Option<TimeMark> {
    let (id, rest) = split(kind, cursor)?;
    let micros = i64::from_be_bytes(rest.try_into().ok()?);
    if micros < MIN_MICROS {
        return None;
    }
    Some(TimeMark {
        created_at: DateTime::from_timestamp_micros(micros)?,
        id,
    })
}

/// The `next_cursor` of a page of a newest-first list: the cursor of its last row when more
/// rows follow, else `None`. `key` gives a row's (created_at, id).
pub fn next_time_cursor<T>(
    kind: Kind,
    listed: &Listed<T>,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Option<String> {
    let last = listed.rows.last().filter(|_| listed.more)?;
    let (created_at, id) = key(last);
    Some(encode_time(kind, &TimeMark { created_at, id }))
}

/// The cursor of the webhook list whose page ended at `mark`.
pub fn encode_name(mark: &NameMark) -> String {
    let mut bytes = header(Kind::Webhooks, mark.id);
    bytes.extend_from_slice(mark.name.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The mark in a cursor of the webhook list; `None` when it is not one. A name PostgreSQL
/// cannot hold (not UTF-8, or with a NUL) is no row's.
pub fn decode_name(cursor: &str) -> Option<NameMark> {
    let (id, rest) = split(Kind::Webhooks, cursor)?;
    let name = String::from_utf8(rest.to_vec()).ok()?;
    if name.contains('\0') {
        return None;
    }
    Some(NameMark { name, id })
}

fn header(kind: Kind, id: Uuid) -> Vec<u8> {
    let mut bytes = vec![VERSION, kind as u8];
    bytes.extend_from_slice(id.as_bytes());
    bytes
}

/// The id and the rest of the key of a cursor of `kind`.
fn split(kind: Kind, cursor: &str) -> Option<(Uuid, Vec<u8>)> {
    // The engine refuses padding and non-zero trailing bits, so each cursor has one spelling.
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    if bytes.len() < 18 || bytes[0] != VERSION || bytes[1] != kind as u8 {
        return None;
    }
    let id = Uuid::from_slice(&bytes[2..18]).ok()?;
    Some((id, bytes[18..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> TimeMark {
        TimeMark {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::parse_str("0190f3a0-1234-7abc-8def-0123456789ab").unwrap(),
        }
    }

    #[test]
    fn time_cursors_round_trip_for_their_own_list_only() {
        let cursor = encode_time(Kind::Deliveries, &mark());
        assert_eq!(cursor.len(), 35, "{cursor}");
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_time(Kind::Deliveries, &cursor), Some(mark()));
        assert_eq!(decode_time(Kind::Attempts, &cursor), None);
        assert_eq!(decode_time(Kind::Events, &cursor), None);
        assert_eq!(decode_name(&cursor), None);
    }

    #[test]
    fn the_earliest_time_is_postgresqls() {
        let earliest = DateTime::from_timestamp_micros(MIN_MICROS).unwrap();
        assert_eq!(earliest.to_rfc3339(), "-4713-11-24T00:00:00+00:00");
    }

    #[test]
    fn name_cursors_round_trip() {
        let mark = NameMark {
            name: "Ünïcode hook ✓".to_string(),
            id: mark().id,
        };
        let cursor = encode_name(&mark);
        assert_eq!(decode_name(&cursor), Some(mark));
        assert_eq!(decode_time(Kind::Webhooks, &cursor), None);
        assert_eq!(decode_time(Kind::Deliveries, &cursor), None);
    }

    #[test]
    fn malformed_cursors_decode_to_none() {
        let good = encode_time(Kind::Events, &mark());
        let mut bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
        let reencode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        let too_early = {
            let mut b = bytes.clone();
            b[18..].copy_from_slice(&(MIN_MICROS - 1).to_be_bytes());
            b
        };
        let too_late = {
            let mut b = bytes.clone();
            b[18..].copy_from_slice(&i64::MAX.to_be_bytes());
            b
        };
        let padded = format!("{}=", &good);
        for bad in [
            String::new(),
            "!!!!".to_string(),
            padded,
            format!("{good}A"),
            good[..34].to_string(),
            reencode(&wrong_version),
            reencode(&bytes[..25]),
            reencode(&too_early),
            reencode(&too_late),
            good.replace('-', "+").replace('_', "/") + "+",
        ] {
            assert_eq!(decode_time(Kind::Events, &bad), None, "{bad}");
        }
        // The last character carries two unused bits, zero in the one spelling that decodes.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = alphabet.find(good.chars().last().unwrap()).unwrap();
        assert_eq!(last & 3, 0);
        let other = format!("{}{}", &good[..34], &alphabet[last + 1..last + 2]);
        assert_eq!(decode_time(Kind::Events, &other), None, "{other}");
        bytes.truncate(18);
        bytes.extend_from_slice(&[0xff, 0xfe, 0]);
        assert_eq!(
            decode_name(&reencode(&{
                let mut b = bytes.clone();
                b[1] = Kind::Webhooks as u8;
                b
            })),
            None,
            "not UTF-8"
        );
        let mut with_nul = bytes;
        with_nul.truncate(18);
        with_nul[1] = Kind::Webhooks as u8;
        with_nul.extend_from_slice(b"a\0b");
        assert_eq!(decode_name(&reencode(&with_nul)), None, "NUL");
    }
}
