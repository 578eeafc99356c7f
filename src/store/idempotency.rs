//! Every statement that touches `idempotency_keys`: the first answer to each `Idempotency-Key`,
//! stored in the create's own transaction, looked up by repeats, and deleted once expired.

use postgres::GenericClient;
use postgres::types::Type;

use super::Error;

/// The stored answer to a key, while it is within the window (`$3` hours).
const LOOKUP: &str = "SELECT request_hash, response_status, response_body FROM idempotency_keys \
    WHERE scope = $1 AND key = $2 AND created_at > now() - $3::integer * interval '1 hour'";

/// Stores the answers of several creates from parallel arrays. A key already stored and still
/// within the window (`$6` hours) is left as it is and not returned: the create that came with
/// it lost a race to another request with the same key (its caller undoes that create). An
/// expired one is replaced. A concurrent transaction inserting the same key is waited for.
const INSERT_MANY: &str = "INSERT INTO idempotency_keys AS k \
        (scope, key, request_hash, response_status, response_body, created_at) \
    SELECT i.scope, i.key, i.request_hash, i.response_status, i.response_body, now() \
    FROM unnest($1::varchar[], $2::varchar[], $3::bytea[], $4::integer[], $5::text[]) \
        AS i(scope, key, request_hash, response_status, response_body) \
    ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, \
        response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body, \
        created_at = EXCLUDED.created_at \
    WHERE k.created_at <= now() - $6::integer * interval '1 hour' \
    RETURNING scope, key";

/// Deletes up to `$2` keys older than the window (`$1` hours), oldest first.
const DELETE_EXPIRED: &str = "DELETE FROM idempotency_keys WHERE (scope, key) IN ( \
    SELECT scope, key FROM idempotency_keys \
    WHERE created_at <= now() - $1::integer * interval '1 hour' \
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The first answer given to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// SHA-256 of the request it answered (see `api::idempotency`).
    pub request_hash: Vec<u8>,
    /// Its HTTP status.
    pub status: u16,
    /// Its body, byte for byte.
    pub body: String,
}

/// One create's key and answer, for [`insert_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey<'a> {
    /// The endpoint the key belongs to (`deliveries` or `events`).
    pub scope: &'a str,
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
    /// What it answered.
    pub stored: &'a Stored,
}

/// The live answer to `key` in `scope`, if any.
pub fn lookup(
    client: &mut impl GenericClient,
    scope: &str,
    key: &str,
    window_hours: i32,
) -> Result<Option<Stored>, Error> {
    let row = client.query_typed_opt(
        LOOKUP,
        &[
            (&scope, Type::VARCHAR),
            (&key, Type::VARCHAR),
            (&window_hours, Type::INT4),
        ],
    )?;
    Ok(row.map(|row| Stored {
        request_hash: row.get("request_hash"),
        status: u16::try_from(row.get::<_, i32>("response_status")).unwrap_or(500),
        body: row.get("response_body"),
    }))
}

/// Stores `keys`; returns, for each, whether it was stored (false: a live answer to the same
/// key was there first). Run it in the transaction of the creates it answers.
pub fn insert_many(
    client: &mut impl GenericClient,
    keys: &[NewKey<'_>],
    window_hours: i32,
) -> Result<Vec<bool>, Error> {
    let scopes: Vec<&str> = keys.iter().map(|k| k.scope).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
    let hashes: Vec<&[u8]> = keys
        .iter()
        .map(|k| k.stored.request_hash.as_slice())
        .collect();
    let statuses: Vec<i32> = keys.iter().map(|k| i32::from(k.stored.status)).collect();
    let bodies: Vec<&str> = keys.iter().map(|k| k.stored.body.as_str()).collect();
    let rows = client.query_typed(
        INSERT_MANY,
        &[
            (&scopes, Type::VARCHAR_ARRAY),
            (&names, Type::VARCHAR_ARRAY),
            (&hashes, Type::BYTEA_ARRAY),
            (&statuses, Type::INT4_ARRAY),
            (&bodies, Type::TEXT_ARRAY),
            (&window_hours, Type::INT4),
        ],
    )?;
    let stored: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.get("scope"), row.get("key")))
        .collect();
    // Keys are unique within a call (the API admits one request per key at a time).
    Ok(keys
        .iter()
        .map(|k| {
            stored
                .iter()
                .any(|(scope, key)| scope == k.scope && key == k.key)
        })
        .collect())
}

/// One expiry batch; returns how many keys it deleted.
pub fn delete_expired(
    client: &mut impl GenericClient,
    window_hours: i32,
    batch: i64,
) -> Result<u64, Error> {
    Ok(client.execute(DELETE_EXPIRED, &[&window_hours, &batch])?)
}
