//! `Idempotency-Key` on `POST /v1/deliveries` and `POST /v1/events`, after the IETF draft "The
//! Idempotency-Key HTTP Header Field".
//!
//! A key belongs to one endpoint (its scope): the same key sent to both names two requests.
//! The first request with a key stores its answer in the transaction that creates what it
//! creates; a repeat within `POSTMAND_IDEMPOTENCY_HOURS` gets that answer again, byte for byte,
//! with `Idempotent-Replayed: true`, and creates nothing. A repeat with another body is refused
//! (422, code 15), and so is one that arrives while the first is still being answered in this
//! process (409, code 16). Two processes racing with one key are settled by the database: the
//! second waits for the first's commit, then undoes its own create and replays the first's
//! answer. Only a 201 is stored: a request that failed created nothing, and may be sent again
//! with the same key.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::Reply;
use super::errors::{ApiError, FieldError};
use crate::store::idempotency::Stored;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// The response header of a replayed answer.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Longest key.
pub const MAX_KEY_BYTES: usize = 255;

/// The endpoint a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /v1/deliveries`.
    Deliveries,
    /// `POST /v1/events`.
    Events,
}

impl Scope {
    /// The name stored in `idempotency_keys.scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Deliveries => "deliveries",
            Scope::Events => "events",
        }
    }
}

/// A request's key and what identifies the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The endpoint.
    pub scope: Scope,
    /// The header's value.
    pub key: String,
    /// SHA-256 of the request's fields (see [`Key::new`]).
    pub request_hash: Vec<u8>,
}

impl Key {
    /// The key of a request to `scope` whose decoded fields are `fields`, from the header's
    /// value (`None`: no header, no key). The hash covers the fields, not the raw body, so a
    /// repeat that only spaces its JSON differently is the same request.
    pub fn new(
        scope: Scope,
        header: Option<&str>,
        fields: &[&[u8]],
    ) -> Result<Option<Key>, ApiError> {
        let Some(key) = header else {
            return Ok(None);
        };
        if !is_valid_key(key) {
            return Err(ApiError::Validation(vec![FieldError::new(
                HEADER,
                "must be 1-255 printable ASCII characters",
            )]));
        }
        let mut hash = Sha256::new();
        for field in fields {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hash.update((field.len() as u64).to_be_bytes());
            hash.update(field);
        }
        Ok(Some(Key {
            scope,
            key: key.to_string(),
            request_hash: hash.finalize().to_vec(),
        }))
    }

    /// The answer to store for a create that answered `reply`.
    pub fn stored(&self, reply: &Reply) -> Stored {
        Stored {
            request_hash: self.request_hash.clone(),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }
    }

    /// The answer to this request from `stored`, the answer to the first one with its key.
    pub fn replay(&self, stored: Stored) -> Result<Reply, ApiError> {
        if stored.request_hash != self.request_hash {
            return Err(ApiError::IdempotencyKeyReused);
        }
        Ok(Reply {
            status: stored.status,
            body: stored.body.into_bytes(),
            replayed: true,
        })
    }
}

/// 1-255 printable ASCII characters (space included; HTTP trims it at either end).
pub fn is_valid_key(key: &str) -> bool {
    (1..=MAX_KEY_BYTES).contains(&key.len()) && key.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// The keys whose first request this process is answering now.
#[derive(Debug, Default)]
pub struct InFlight {
    keys: Mutex<HashSet<(Scope, String)>>,
}

impl InFlight {
    /// Marks `key` in flight until the guard is dropped; 409 when it already is.
    pub fn enter<'a>(&'a self, key: &Key) -> Result<InFlightGuard<'a>, ApiError> {
        let entry = (key.scope, key.key.clone());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !keys.insert(entry.clone()) {
            return Err(ApiError::IdempotencyKeyInFlight);
        }
        Ok(InFlightGuard {
            in_flight: self,
            entry,
        })
    }
}

/// A key in flight; dropping it ends that.
pub struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    entry: (Scope, String),
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.in_flight
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(header: &str, fields: &[&[u8]]) -> Key {
        Key::new(Scope::Deliveries, Some(header), fields)
            .expect("valid key")
            .expect("a key")
    }

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert!(is_valid_key("a"));
        assert!(is_valid_key("order 42/retry:1"));
        assert!(is_valid_key(&"k".repeat(255)));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key(&"k".repeat(256)));
        assert!(!is_valid_key("tab\there"));
        assert!(!is_valid_key("caf\u{e9}"));
        assert!(!is_valid_key("del\u{7f}"));
    }

    #[test]
    fn an_invalid_key_is_a_400_naming_the_header() {
        let error = Key::new(Scope::Events, Some(""), &[]).unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(error.details().starts_with("Idempotency-Key: "));
        assert_eq!(Key::new(Scope::Events, None, &[]), Ok(None));
    }

    #[test]
    fn the_hash_tells_field_boundaries_apart() {
        assert_ne!(
            key("k", &[b"ab", b"c"]).request_hash,
            key("k", &[b"a", b"bc"]).request_hash
        );
        assert_eq!(
            key("k", &[b"a", b"b"]).request_hash,
            key("other", &[b"a", b"b"]).request_hash
        );
    }

    #[test]
    fn replay_gives_the_stored_answer_only_for_the_same_request() {
        let first = key("k", &[b"w", b"p"]);
        let stored = first.stored(&Reply {
            status: 201,
            body: b"{\"id\":1}".to_vec(),
            replayed: false,
        });
        let again = first.replay(stored.clone()).expect("same request");
        assert_eq!(
            (again.status, again.body.as_slice(), again.replayed),
            (201, &b"{\"id\":1}"[..], true)
        );
        let other = key("k", &[b"w", b"q"]);
        assert_eq!(
            other.replay(stored).err(),
            Some(ApiError::IdempotencyKeyReused)
        );
    }

    #[test]
    fn a_key_is_in_flight_until_its_guard_drops() {
        let in_flight = InFlight::default();
        let first = key("k", &[]);
        let guard = in_flight.enter(&first).expect("first");
        assert_eq!(
            in_flight.enter(&first).err(),
            Some(ApiError::IdempotencyKeyInFlight)
        );
        let events = Key::new(Scope::Events, Some("k"), &[]).unwrap().unwrap();
        assert!(in_flight.enter(&events).is_ok(), "another scope");
        drop(guard);
        assert!(in_flight.enter(&first).is_ok());
    }
}
