//! The daily partitions of `delivery_attempts` (migration 10): created ahead of time by the
//! worker, dropped whole by retention. The SQL functions these call live in the migration, so a
//! script that loads history can call them too.

use postgres::GenericClient;

use super::Error;

/// How many days ahead of today the worker keeps partitions ready. A dispatcher never creates
/// one: with none for its row, an attempt's record fails and the delivery stays pending (it is
/// sent again later), so a week of margin means a week of failed upkeep before that can happen.
pub const DAYS_AHEAD: i32 = 7;

/// How long upkeep waits for the lock that creating or dropping a partition takes on the whole
/// table. Waiting longer would queue every attempt's record behind it; it tries again at the
/// next sweep instead.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";

/// Taken by the upkeep of one worker at a time; the others skip their turn rather than race to
/// create the same table. The key is the migration lock's ("postmand" in ASCII) plus one.
const UPKEEP_LOCK: &str = "SELECT pg_try_advisory_xact_lock(8101821198551314021)";

/// Creates the partitions of yesterday to [`DAYS_AHEAD`] days ahead that do not exist yet.
const CREATE_AHEAD: &str = "SELECT postmand_create_attempt_partitions(\
    now() - interval '1 day', now() + $1::integer * interval '1 day')";

/// Drops the partitions whose every row is older than `$1` days; returns their names and
/// approximate row counts.
const DROP_OLDER: &str = "SELECT name, approximate_rows \
    FROM postmand_drop_attempt_partitions(now() - $1::integer * interval '1 day')";

/// A dropped partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its table name.
    pub name: String,
    /// Its rows as of the last vacuum or analyse.
    pub approximate_rows: i64,
}

/// Creates the missing partitions from yesterday to `days_ahead` days ahead; returns how many
/// it created (none while another worker's upkeep runs).
pub fn create_ahead(client: &mut impl GenericClient, days_ahead: i32) -> Result<i32, Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(LOCK_TIMEOUT)?;
    if !tx.query_one(UPKEEP_LOCK, &[])?.get::<_, bool>(0) {
        return Ok(0);
    }
    let created: i32 = tx.query_one(CREATE_AHEAD, &[&days_ahead])?.get(0);
    tx.commit()?;
    Ok(created)
}

/// Drops every partition older than `days` days (none while another worker's upkeep runs).
pub fn drop_older_than(client: &mut impl GenericClient, days: i32) -> Result<Vec<Dropped>, Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(LOCK_TIMEOUT)?;
    if !tx.query_one(UPKEEP_LOCK, &[])?.get::<_, bool>(0) {
        return Ok(Vec::new());
    }
    let dropped = tx
        .query(DROP_OLDER, &[&days])?
        .iter()
        .map(|row| Dropped {
            name: row.get(0),
            approximate_rows: row.get(1),
        })
        .collect();
    tx.commit()?;
    Ok(dropped)
}
