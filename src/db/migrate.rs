//! Embedded migrations from `sql/`, applied in order under an advisory lock, and recorded in the
//! original's `schema_migrations(version, dirty)` table so that a database migrated by the Go
//! postmand (version 1) is recognised and only our additions are applied to it.
//!
//! Each migration runs in one transaction together with its bookkeeping row, so it is applied
//! whole or not at all; `dirty` is only ever true when the original's golang-migrate died midway.

use postgres::Client;

use super::Error;

/// One migration: its version, its file name and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Stored in `schema_migrations.version`; version 1 is the original's initial schema.
    pub version: i64,
    /// The file in `sql/`.
    pub name: &'static str,
    /// The statements, run as one batch.
    pub sql: &'static str,
}

/// A [`Migration`] from its file in `sql/`, embedded in the binary.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../sql/", $name)),
        }
    };
}

/// Every migration, oldest first. Files are never edited once released; add a new one instead.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "001_initial_schema.sql"),
    migration!(2, "002_widen_and_index.sql"),
    migration!(3, "003_claim_index.sql"),
    migration!(4, "004_retention_index.sql"),
    migration!(5, "005_drop_status_index.sql"),
    migration!(6, "006_lean_indexes.sql"),
    migration!(7, "007_events_and_idempotency.sql"),
    migration!(8, "008_failing_endpoints.sql"),
    migration!(9, "009_webhook_delivery_order.sql"),
    migration!(10, "010_attempt_partitions.sql"),
    migration!(11, "011_list_indexes.sql"),
    migration!(12, "012_attempt_legacy_end.sql"),
];

/// Serialises concurrent `postmand migrate` runs (several containers starting at once).
const ADVISORY_LOCK_KEY: i64 = 0x706f_7374_6d61_6e64; // "postmand" in ASCII

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The version before the run (0 for an empty database).
    pub from: i64,
    /// The version after it.
    pub to: i64,
}

/// Applies every migration newer than the database's version. Running it again is a no-op.
pub fn run(client: &mut Client) -> Result<Report, Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .map_err(Error::Bookkeeping)?;
    let result = apply_pending(client);
    // Unlocking can only fail if the connection is gone, and then the lock is gone with it.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY]);
    result
}

/// The version this binary's migrations lead to.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The database's schema version; 0 when it was never migrated.
pub fn current_version(client: &mut impl postgres::GenericClient) -> Result<i64, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map_err(Error::Bookkeeping)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt(
            "SELECT version, dirty FROM schema_migrations ORDER BY version DESC LIMIT 1",
            &[],
        )
        .map_err(Error::Bookkeeping)?;
    match row {
        Some(row) if row.get::<_, bool>(1) => Err(Error::Dirty {
            version: row.get(0),
        }),
        Some(row) => Ok(row.get(0)),
        None => Ok(0),
    }
}

fn apply_pending(client: &mut Client) -> Result<Report, Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)",
        )
        .map_err(Error::Bookkeeping)?;
    let from = current_version(client)?;
    let mut to = from;
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        apply(client, migration)?;
        log::info!(
            "migration-completed version={} name={}",
            migration.version,
            migration.name
        );
        to = migration.version;
    }
    Ok(Report { from, to })
}

fn apply(client: &mut Client, migration: &Migration) -> Result<(), Error> {
    let fail = |cause| Error::Migration {
        version: migration.version,
        name: migration.name,
        cause,
    };
    let mut tx = client.transaction().map_err(fail)?;
    tx.batch_execute(migration.sql).map_err(fail)?;
    tx.execute("DELETE FROM schema_migrations", &[])
        .map_err(fail)?;
    tx.execute(
        "INSERT INTO schema_migrations (version, dirty) VALUES ($1, false)",
        &[&migration.version],
    )
    .map_err(fail)?;
    tx.commit().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_match_file_names() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:03}_", migration.version))
            );
        }
    }
}
