//! Issue 17: `delivery_attempts` partitioned by day. Migration 10 converts a populated table in
//! place (from our schema and from the original's) without losing a row; the worker keeps
//! partitions a week ahead; retention drops whole days; a lookup by id reads one day's
//! partitions.

use postmand::cli::Role;
use postmand::db::migrate::{self, MIGRATIONS};
use postmand::store::attempts;
use uuid::Uuid;

use crate::common::{TestApp, TestDb, wait_until};

/// Every attempt's row as text, in id order: what "nothing lost" compares.
const ALL_ATTEMPTS: &str = "SELECT count(*), md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), '')) \
     FROM delivery_attempts a";

/// The partitions and their bounds.
const PARTITIONS: &str = "SELECT name, lower_bound, upper_bound FROM postmand_attempt_partitions() \
    ORDER BY lower_bound NULLS FIRST";

type Partition = (
    String,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

fn partitions(client: &mut postgres::Client) -> Vec<Partition> {
    client
        .query(PARTITIONS, &[])
        .expect("partitions")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Inserts an attempt stamped `days_ahead` days from now and checks that it went to a daily
/// partition, not the legacy one.
fn assert_lands_in_a_day(client: &mut postgres::Client, days_ahead: i32) {
    let landed: String = client
        .query_one(
            "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
                 response_status_code, execution_duration, success, error, created_at) \
             SELECT gen_random_uuid(), webhook_id, id, '', '', 200, 1, true, '', \
                 now() + $1::integer * interval '1 day' \
             FROM deliveries LIMIT 1 RETURNING tableoid::regclass::text",
            &[&days_ahead],
        )
        .expect("insert an attempt")
        .get(0);
    assert!(landed.starts_with("delivery_attempts_p"), "{landed}");
}

/// How many attempts delivery `id` has, on any day.
fn attempts_of(client: &mut postgres::Client, id: Uuid) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1",
            &[&id],
        )
        .expect("count attempts")
        .get(0)
}

/// Locks the partition of the day `days_ago` days back in a transaction of another connection
/// (returned: dropping it releases the lock), and gives `client` a 1 s `lock_timeout`, so that a
/// read of `client` that plans that day fails instead of waiting.
fn lock_the_day(db: &TestDb, client: &mut postgres::Client, days_ago: i32) -> postgres::Client {
    let day: String = client
        .query_one(
            "SELECT name FROM postmand_attempt_partitions() \
             WHERE lower_bound <= now() - $1::integer * interval '1 day' \
             AND upper_bound > now() - $1::integer * interval '1 day'",
            &[&days_ago],
        )
        .expect("the day's partition")
        .get(0);
    let mut locker = db.client();
    locker
        .batch_execute(&format!("BEGIN; LOCK TABLE {day} IN ACCESS EXCLUSIVE MODE"))
        .expect("lock the day");
    client
        .batch_execute("SET lock_timeout = '1s'")
        .expect("set lock_timeout");
    locker
}

fn fingerprint(client: &mut postgres::Client) -> (i64, String) {
    let row = client.query_one(ALL_ATTEMPTS, &[]).expect("fingerprint");
    (row.get(0), row.get(1))
}

/// A database at schema `version`, holding 3 webhooks, 600 finished deliveries created over the
/// last 20 days and two attempts each (one failed), written the way that version's code did.
fn populated_at(test: &str, version: i64) -> TestDb {
    let db = TestDb::empty(test);
    let mut client = db.client();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= version) {
        client
            .batch_execute(migration.sql)
            .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES ({version}, false);
             INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active,
                 max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff,
                 created_at, updated_at)
             SELECT ('00000000-0000-4000-8000-00000000000' || w)::uuid, 'w' || w, 'http://127.0.0.1:9/',
                 'text/plain', '{{200}}', '', true, 5, 1, 1, 1, now(), now()
             FROM generate_series(1, 3) AS w;
             INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status,
                 created_at, updated_at)
             SELECT gen_random_uuid(), ('00000000-0000-4000-8000-00000000000' || (1 + i % 3))::uuid,
                 'payload ' || i, now(), 2, CASE WHEN i % 5 = 0 THEN 'failed' ELSE 'succeeded' END,
                 now() - i * interval '48 minutes', now() - i * interval '48 minutes'
             FROM generate_series(1, 600) AS i;
             INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response,
                 response_status_code, execution_duration, success, error, created_at)
             SELECT gen_random_uuid(), d.webhook_id, d.id, 'request ' || d.payload, 'response', 500 - n * 300,
                 n, n = 1 AND d.status = 'succeeded', CASE WHEN n = 0 THEN 'boom' ELSE '' END,
                 d.created_at + n * interval '1 second'
             FROM deliveries d CROSS JOIN generate_series(0, 1) AS n;"
        ))
        .expect("populate");
    db
}

#[test]
fn migration_partitions_a_populated_table_without_losing_a_row() {
    // Version 1 is a database the original migrated; version 9 is ours before issue 17.
    for version in [1, 9] {
        let db = populated_at(&format!("partition_from_v{version}"), version);
        let mut client = db.client();
        let before = fingerprint(&mut client);
        assert_eq!(before.0, 1200);
        let newest: chrono::DateTime<chrono::Utc> = client
            .query_one("SELECT max(created_at) FROM delivery_attempts", &[])
            .unwrap()
            .get(0);

        let report = migrate::run(&mut client).expect("migrate");
        assert_eq!(
            (report.from, report.to),
            (version, migrate::latest_version())
        );
        assert_eq!(fingerprint(&mut client), before, "from version {version}");
        let kind: i8 = client
            .query_one(
                "SELECT relkind::\"char\" FROM pg_class WHERE oid = 'delivery_attempts'::regclass",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(kind as u8, b'p', "partitioned");

        // The old table is the first partition, up to the UTC day after its newest row; daily
        // partitions follow, a week ahead.
        let parts = partitions(&mut client);
        let (legacy, legacy_from, legacy_to) = &parts[0];
        assert_eq!(legacy, "delivery_attempts_legacy");
        assert_eq!(*legacy_from, None);
        let day_after_newest = newest.date_naive().succ_opt().unwrap().and_hms_opt(0, 0, 0);
        assert_eq!(legacy_to.map(|t| t.naive_utc()), day_after_newest);
        let week_ahead = chrono::Utc::now() + chrono::TimeDelta::days(7);
        assert!(
            parts
                .iter()
                .any(|(name, from, to)| name.starts_with("delivery_attempts_p")
                    && from.is_some_and(|f| f <= week_ahead)
                    && to.is_some_and(|t| t > week_ahead)),
            "{parts:?}"
        );

        // Running it again changes nothing; new rows land in daily partitions.
        assert_eq!(
            migrate::run(&mut client).unwrap().from,
            migrate::latest_version()
        );
        assert_lands_in_a_day(&mut client, 2);

        // The old rows read back through the API by id and by list.
        let old: Uuid = client
            .query_one(
                "SELECT id FROM delivery_attempts ORDER BY created_at LIMIT 1",
                &[],
            )
            .unwrap()
            .get(0);
        let app = TestApp::start_with(db.share(), &db.config(), Role::Api);
        assert_eq!(app.get(&format!("/v1/delivery-attempts/{old}")).status, 200);
        let listed = app.get("/v1/delivery-attempts?limit=1000").json();
        assert_eq!(listed["delivery_attempts"].as_array().unwrap().len(), 1000);
    }
}

#[test]
fn worker_keeps_partitions_a_week_ahead() {
    let db = TestDb::new("partitions_ahead");
    let mut client = db.client();
    for (name, from, _) in partitions(&mut client) {
        if from.is_some_and(|f| f > chrono::Utc::now()) {
            client.batch_execute(&format!("DROP TABLE {name}")).unwrap();
        }
    }
    let week_ahead = chrono::Utc::now() + chrono::TimeDelta::days(7);
    let _worker = TestApp::start_with(db.share(), &db.config(), Role::Worker);
    wait_until("the worker to create the partition a week ahead", || {
        let parts = partitions(&mut client);
        if parts.iter().any(|(_, from, to)| {
            from.is_some_and(|f| f <= week_ahead) && to.is_some_and(|t| t > week_ahead)
        }) {
            Ok(())
        } else {
            Err(parts)
        }
    });
}

#[test]
fn retention_drops_whole_days_and_keeps_the_rest() {
    let db = TestDb::new("partitions_retention");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '12 days', now());
             INSERT INTO webhooks VALUES ('{webhook}', 'Ret', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now(), now());"
        ))
        .unwrap();
    // (status, hours since created and last changed, hours since its attempt), 100 of each.
    let rows = [
        ("succeeded", 240, 240), // old: deleted, its attempt's day dropped
        ("pending", 240, 240),   // never deleted, though its old attempt's day goes
        ("succeeded", 48, 48),   // kept
        // Changed just over 7 days ago: deleted by row, with its attempt, whose day may be
        // kept (the partition of 7 days and an hour ago ends after the cutoff unless it is
        // past midnight UTC).
        ("failed", 169, 169),
    ];
    for (status, hours, attempt_hours) in rows {
        client
            .execute(
                "WITH d AS (INSERT INTO deliveries \
                     SELECT gen_random_uuid(), $1, 'x', now(), 1, $2, \
                         now() - $3::integer * interval '1 hour' - interval '1 minute', \
                         now() - $3::integer * interval '1 hour' \
                     FROM generate_series(1, 100) RETURNING id) \
                 INSERT INTO delivery_attempts SELECT gen_random_uuid(), $1, d.id, '', '', 200, 1, true, '', \
                     now() - $4::integer * interval '1 hour' - interval '1 second' FROM d",
                &[&webhook, &status, &hours, &attempt_hours],
            )
            .unwrap();
    }
    client.batch_execute("ANALYZE delivery_attempts").unwrap();
    let config = db.config_with(&[("POSTMAND_RETENTION_DAYS", "7")]);
    let _worker = TestApp::start_with(db.share(), &config, Role::Worker);
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(7);
    wait_until("retention to drop the old days", || {
        let old: Vec<Partition> = partitions(&mut client)
            .into_iter()
            .filter(|(_, _, to)| to.is_none_or(|t| t <= cutoff))
            .collect();
        if old.is_empty() { Ok(()) } else { Err(old) }
    });
    wait_until("retention to delete the old finished deliveries", || {
        let n: i64 = client
            .query_one("SELECT count(*) FROM deliveries", &[])
            .unwrap()
            .get(0);
        if n == 200 { Ok(()) } else { Err(n) }
    });
    let remaining: Vec<(String, i64, i64)> = client
        .query(
            "SELECT d.status, count(DISTINCT d.id), count(a.id) FROM deliveries d \
             LEFT JOIN delivery_attempts a ON a.delivery_id = d.id GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        remaining,
        [
            ("pending".to_string(), 100, 0),
            ("succeeded".to_string(), 100, 100)
        ]
    );
    let attempts: i64 = client
        .query_one("SELECT count(*) FROM delivery_attempts", &[])
        .unwrap()
        .get(0);
    assert_eq!(attempts, 100, "only the kept deliveries' attempts remain");
}

#[test]
fn lookup_by_id_reads_the_partitions_of_its_time_and_finds_any_id() {
    let db = TestDb::new("partitions_lookup");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    let delivery = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '90 days', now());
             INSERT INTO webhooks VALUES ('{webhook}', 'L', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now(), now());
             INSERT INTO deliveries VALUES ('{delivery}', '{webhook}', 'x', now(), 1, 'succeeded', now(), now());"
        ))
        .unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM postmand_attempt_partitions()", &[])
        .unwrap()
        .get(0);
    assert!(count >= 90, "{count} partitions");

    let insert = |client: &mut postgres::Client, id: Uuid, days_ago: i32| {
        client
            .execute(
                "INSERT INTO delivery_attempts VALUES ($1, $2, $3, '', '', 200, 1, true, '', \
                     now() - $4::integer * interval '1 day')",
                &[&id, &webhook, &delivery, &days_ago],
            )
            .unwrap();
    };
    let v7_at = |days_ago: i64| {
        let at = chrono::Utc::now() - chrono::TimeDelta::days(days_ago);
        Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.timestamp() as u64,
            at.timestamp_subsec_nanos(),
        ))
    };
    // A dispatcher's id, an id of the original (v4), and a v7 id five days off its row's time.
    let (timely, original, skewed) = (v7_at(45), Uuid::new_v4(), v7_at(50));
    insert(&mut client, timely, 45);
    insert(&mut client, original, 60);
    insert(&mut client, skewed, 55);
    for id in [timely, original, skewed] {
        let found = attempts::get(&mut client, id).unwrap().map(|a| a.id);
        assert_eq!(found, Some(id));
    }
    assert_eq!(attempts::get(&mut client, v7_at(3)).unwrap(), None);

    // The first step of a lookup reads at most the three days around its id's time.
    let (from, to) = attempts::id_window(timely).expect("a v7 id has a window");
    let plan: String = client
        .query(
            &format!("EXPLAIN {}", attempts::GET_WITHIN),
            &[&timely, &from, &to],
        )
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    let scanned = plan.matches("on delivery_attempts_p").count();
    assert!((1..=3).contains(&scanned), "{plan}");
}

#[test]
fn deleting_a_delivery_or_a_webhook_deletes_its_attempts_from_every_day() {
    let db = TestDb::new("partitions_deletes");
    let mut client = db.client();
    let (webhook, other_webhook) = (Uuid::new_v4(), Uuid::new_v4());
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '5 days', now());
             INSERT INTO webhooks SELECT id, 'D', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now() - interval '5 days', now()
             FROM unnest(ARRAY['{webhook}', '{other_webhook}']::uuid[]) AS id;"
        ))
        .unwrap();
    // Three deliveries made 4 days ago, each with an attempt on each of the 4 days since.
    let mut deliveries = Vec::new();
    for owner in [webhook, webhook, other_webhook] {
        let id = Uuid::new_v4();
        client
            .execute(
                "INSERT INTO deliveries VALUES ($1, $2, 'x', now(), 4, 'failed', \
                     now() - interval '4 days', now()); \
                 ",
                &[&id, &owner],
            )
            .unwrap();
        client
            .execute(
                "INSERT INTO delivery_attempts SELECT gen_random_uuid(), $2, $1, '', '', 500, 1, false, '', \
                     now() - n * interval '1 day' + interval '1 minute' FROM generate_series(1, 4) AS n",
                &[&id, &owner],
            )
            .unwrap();
        deliveries.push(id);
    }
    let days: i64 = client
        .query_one(
            "SELECT count(DISTINCT tableoid) FROM delivery_attempts WHERE delivery_id = $1",
            &[&deliveries[0]],
        )
        .unwrap()
        .get(0);
    assert!(days >= 4, "attempts spread over {days} partitions");

    let app = TestApp::start_with(db.share(), &db.config(), Role::Api);
    assert_eq!(
        app.delete(&format!("/v1/deliveries/{}", deliveries[0]))
            .status,
        204
    );
    assert_eq!(attempts_of(&mut client, deliveries[0]), 0);
    assert_eq!(attempts_of(&mut client, deliveries[1]), 4);

    assert_eq!(app.delete(&format!("/v1/webhooks/{webhook}")).status, 204);
    assert_eq!(attempts_of(&mut client, deliveries[1]), 0);
    assert_eq!(
        attempts_of(&mut client, deliveries[2]),
        4,
        "another webhook's stay"
    );
}

#[test]
fn retention_drops_old_days_when_another_schema_has_a_table_of_the_same_name() {
    // Two postmand schemas in one database (one per environment, chosen by search_path) name
    // their daily partitions alike. The drop function matched partitions to pg_class by name
    // alone, so it read each of them twice, and its second DROP of the same name failed the
    // whole drop, at every sweep: old days were never dropped.
    let db = TestDb::new("partitions_other_schema");
    let mut client = db.client();
    client
        .batch_execute(
            "SELECT postmand_create_attempt_partitions(now() - interval '12 days', now());
             CREATE SCHEMA other;
             CREATE TABLE other.delivery_attempts_stub (x integer);",
        )
        .unwrap();
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(7);
    let old: Vec<String> = partitions(&mut client)
        .into_iter()
        .filter(|(_, _, to)| to.is_some_and(|t| t <= cutoff))
        .map(|(name, _, _)| name)
        .collect();
    assert!(old.len() >= 4, "{old:?}");
    for name in &old {
        client
            .batch_execute(&format!("CREATE TABLE other.{name} (x integer)"))
            .unwrap();
    }

    let mut dropped: Vec<String> = postmand::store::partitions::drop_older_than(&mut client, 7)
        .expect("drop")
        .into_iter()
        .map(|d| d.name)
        .collect();
    dropped.sort();
    assert_eq!(dropped, old);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'other'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        left as usize,
        old.len() + 1,
        "the other schema's tables stay"
    );
}

#[test]
fn deleting_an_original_delivery_or_webhook_deletes_attempts_stamped_before_it() {
    // The original stamped a delivery with its API host's clock and an attempt with its worker
    // host's, so an attempt migrated from it may read as made before its delivery (and its
    // webhook). The deletes bounded attempts to CLOCK_SLACK before the creation, and left such
    // attempts behind for good (readable by id and in lists) when retention is off.
    let db = populated_at("partitions_skewed_original", 1);
    let mut client = db.client();
    let (webhook, delivery, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    client
        .batch_execute(&format!(
            "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active,
                 max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff,
                 created_at, updated_at)
             VALUES ('{webhook}', 'skewed', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '', true,
                 5, 1, 1, 1, now() - interval '3 days', now() - interval '3 days');
             INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status,
                 created_at, updated_at)
             SELECT id, '{webhook}', 'x', now(), 1, 'failed', now() - interval '3 days',
                 now() - interval '3 days'
             FROM unnest(ARRAY['{delivery}', '{other}']::uuid[]) AS id;
             -- The worker's clock ran 2 hours behind the API's.
             INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response,
                 response_status_code, execution_duration, success, error, created_at)
             SELECT gen_random_uuid(), '{webhook}', id, '', '', 500, 1, false, '',
                 now() - interval '3 days' - interval '2 hours'
             FROM unnest(ARRAY['{delivery}', '{other}']::uuid[]) AS id;"
        ))
        .expect("skewed rows");
    migrate::run(&mut client).expect("migrate");
    assert_eq!(attempts_of(&mut client, delivery), 1);

    let app = TestApp::start_with(db.share(), &db.config(), Role::Api);
    assert_eq!(
        app.delete(&format!("/v1/deliveries/{delivery}")).status,
        204
    );
    assert_eq!(attempts_of(&mut client, delivery), 0, "delivery delete");
    assert_eq!(app.delete(&format!("/v1/webhooks/{webhook}")).status, 204);
    assert_eq!(attempts_of(&mut client, other), 0, "webhook delete");
}

#[test]
fn migration_puts_attempts_stamped_in_the_future_in_their_own_days() {
    // One attempt stamped years ahead (a worker host whose clock was wrong) made the legacy
    // partition reach its day: no daily partition could be created before then, every new
    // attempt went to the legacy table, and retention never dropped a day of it.
    let db = populated_at("partition_future_row", 9);
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
                 response_status_code, execution_duration, success, error, created_at) \
             SELECT gen_random_uuid(), webhook_id, id, '', '', 200, 1, true, '', \
                 now() + interval '400 days' FROM deliveries LIMIT 3",
        )
        .unwrap();
    let before = fingerprint(&mut client);
    migrate::run(&mut client).expect("migrate");
    assert_eq!(fingerprint(&mut client), before);

    let parts = partitions(&mut client);
    let legacy_to = parts[0].2.expect("the legacy partition ends");
    assert!(
        legacy_to <= chrono::Utc::now() + chrono::TimeDelta::days(2),
        "{parts:?}"
    );
    let homes: Vec<String> = client
        .query(
            "SELECT DISTINCT tableoid::regclass::text FROM delivery_attempts \
             WHERE created_at > now() + interval '399 days'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(homes.len(), 1, "{homes:?}");
    assert!(homes[0].starts_with("delivery_attempts_p"), "{homes:?}");
    assert_lands_in_a_day(&mut client, 3);
}

#[test]
fn partitions_ahead_counts_only_up_to_the_first_missing_day() {
    // The metric read the end of the last partition: a partition made far ahead (a history
    // load, or attempts stamped in the future) hid a missing day before it, and the alert on
    // it stayed quiet until attempts failed.
    let db = TestDb::new("partitions_ahead_gap");
    let mut client = db.client();
    let day = |client: &mut postgres::Client, days: i32| -> String {
        client
            .query_one(
                "SELECT 'delivery_attempts_p' || to_char(now() AT TIME ZONE 'UTC' \
                     + $1::integer * interval '1 day', 'YYYYMMDD')",
                &[&days],
            )
            .unwrap()
            .get(0)
    };
    let third = day(&mut client, 3);
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() + interval '400 days', \
                 now() + interval '400 days');
             DROP TABLE {third};"
        ))
        .unwrap();
    let ahead = postmand::store::queue::queue_stats(&mut client)
        .unwrap()
        .partitions_ahead_secs;
    assert!(
        (2.0 * 86_400.0..=3.0 * 86_400.0).contains(&ahead),
        "{ahead}"
    );

    let today = day(&mut client, 0);
    client
        .batch_execute(&format!("DROP TABLE {today}"))
        .unwrap();
    let ahead = postmand::store::queue::queue_stats(&mut client)
        .unwrap()
        .partitions_ahead_secs;
    assert_eq!(ahead, 0.0, "no partition for now");
}

#[test]
fn a_worker_makes_todays_partition_before_its_first_claim() {
    // Review of issue 17: on a database restored from an old backup no partition covers today;
    // a dispatcher that claimed before the upkeep thread ran would send deliveries whose record
    // then failed, and send them again. The worker makes the partitions before it starts its
    // dispatchers, so this needs no wait.
    let db = TestDb::new("partitions_at_start");
    let mut client = db.client();
    for (name, _, to) in partitions(&mut client) {
        if to.is_some_and(|t| t > chrono::Utc::now() - chrono::TimeDelta::days(1)) {
            client.batch_execute(&format!("DROP TABLE {name}")).unwrap();
        }
    }
    let covers_now = |client: &mut postgres::Client| -> bool {
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM postmand_attempt_partitions() \
                 WHERE (lower_bound IS NULL OR lower_bound <= now()) AND upper_bound > now())",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert!(!covers_now(&mut client));
    let _worker = TestApp::start_with(db.share(), &db.config(), Role::Worker);
    assert!(covers_now(&mut client), "{:?}", partitions(&mut client));
}

#[test]
fn migration_keeps_the_old_tables_grants() {
    // Review of issue 17: a role that could read the attempts (a reporting tool) could not read
    // the partitioned table that replaced them.
    let db = populated_at("partition_grants", 9);
    let mut client = db.client();
    let role = format!(
        "reporter_{}",
        db.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let role = &role[..role.len().min(60)];
    client
        .batch_execute(&format!(
            "CREATE ROLE {role}; GRANT SELECT, INSERT ON delivery_attempts TO {role};"
        ))
        .unwrap();
    migrate::run(&mut client).expect("migrate");
    let privileges: Vec<bool> = ["SELECT", "INSERT", "UPDATE"]
        .iter()
        .map(|privilege| {
            client
                .query_one(
                    "SELECT has_table_privilege($1, 'delivery_attempts', $2)",
                    &[&role, privilege],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    let read: Result<i64, postgres::Error> = client
        .batch_execute(&format!("SET ROLE {role}"))
        .and_then(|()| client.query_one("SELECT count(*) FROM delivery_attempts", &[]))
        .map(|row| row.get(0));
    client
        .batch_execute(&format!(
            "RESET ROLE; DROP OWNED BY {role}; DROP ROLE {role}"
        ))
        .unwrap();
    assert_eq!(privileges, [true, true, false]);
    assert_eq!(read.expect("the role reads every partition"), 1200);
}

#[test]
fn attempt_pages_read_the_last_day_alone_when_it_fills_them() {
    let db = TestDb::new("partitions_first_window");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    let delivery = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '30 days', now());
             INSERT INTO webhooks VALUES ('{webhook}', 'W', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now(), now());
             INSERT INTO deliveries VALUES ('{delivery}', '{webhook}', 'x', now(), 1, 'failed', now(), now());
             INSERT INTO delivery_attempts
             SELECT gen_random_uuid(), '{webhook}', '{delivery}', '', '', 500, 1, success, '', now() - age
             FROM (VALUES (true, interval '1 hour'), (true, interval '2 hours'), (true, interval '3 hours'),
                          (true, interval '-2 hours'), (false, interval '2 days'), (true, interval '2 days'),
                          (false, interval '10 days'), (false, interval '10 days'), (true, interval '10 days'))
                 AS t(success, age);"
        ))
        .unwrap();

    // Every filter, with and without an upper time bound, every page size: the pages, walked
    // by cursor, are the whole list in order.
    let a_day_ago = chrono::Utc::now() - chrono::TimeDelta::days(1);
    for (success, lt) in [None, Some(true), Some(false)]
        .into_iter()
        .flat_map(|success| [(success, None), (success, Some(a_day_ago))])
    {
        let expected: Vec<Uuid> = client
            .query(
                "SELECT id FROM delivery_attempts WHERE ($1::boolean IS NULL OR success = $1) \
                 AND ($2::timestamptz IS NULL OR created_at < $2) \
                 ORDER BY created_at DESC, id DESC",
                &[&success, &lt],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let filter = attempts::Filter {
            success,
            created: postmand::store::CreatedRange {
                lt,
                ..Default::default()
            },
            ..Default::default()
        };
        for limit in [1, 2, 3, 4, 50] {
            let (mut seen, mut after) = (Vec::new(), None);
            loop {
                let page = postmand::store::Page { limit, offset: 0 };
                let listed = attempts::list(&mut client, &filter, page, after.as_ref()).unwrap();
                seen.extend(listed.rows.iter().map(|a| a.id));
                match listed.rows.last() {
                    Some(last) if listed.more => {
                        after = Some(postmand::store::TimeMark {
                            created_at: last.created_at,
                            id: last.id,
                        })
                    }
                    _ => break,
                }
            }
            assert_eq!(
                seen, expected,
                "success={success:?} lt={lt:?} limit={limit}"
            );
        }
    }

    // With the partition of ten days ago locked, a first page the last day fills is answered
    // (its read never plans that partition); one it cannot fill reads every day and waits.
    let locker = lock_the_day(&db, &mut client, 10);
    let first = postmand::store::Page {
        limit: 3,
        offset: 0,
    };
    let recent = attempts::list(&mut client, &attempts::Filter::default(), first, None).unwrap();
    assert_eq!((recent.rows.len(), recent.more), (3, true));
    let failed = attempts::Filter {
        success: Some(false),
        ..Default::default()
    };
    let waited = attempts::list(&mut client, &failed, first, None).map(|l| l.rows.len());
    assert!(
        waited.as_ref().is_err_and(|e| e.is_lock_timeout()),
        "{waited:?}"
    );
    drop(locker);
}

#[test]
fn a_deliverys_attempts_are_read_from_its_creation_on() {
    let db = TestDb::new("partitions_delivery_attempts");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '30 days', now());
             INSERT INTO webhooks VALUES ('{webhook}', 'W', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now(), now());
             INSERT INTO deliveries VALUES
                 ('{old}', '{webhook}', 'x', now(), 3, 'failed', now() - interval '10 days', now()),
                 ('{new}', '{webhook}', 'x', now(), 1, 'succeeded', now(), now());
             INSERT INTO delivery_attempts
             SELECT gen_random_uuid(), '{webhook}', delivery, '', '', 500, 1, false, '', now() - age
             FROM (VALUES ('{old}'::uuid, interval '10 days' - interval '1 minute'),
                          ('{old}', interval '2 days'), ('{old}', interval '1 hour'),
                          ('{new}', interval '1 minute')) AS t(delivery, age);"
        ))
        .unwrap();
    let expected: Vec<Uuid> = client
        .query(
            "SELECT id FROM delivery_attempts WHERE delivery_id = $1 \
             ORDER BY created_at DESC, id DESC",
            &[&old],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(expected.len(), 3);

    // A partition from before the delivery, locked: its attempts are read without it, while a
    // list the last day cannot fill, of every delivery, reads every day and waits for it.
    let locker = lock_the_day(&db, &mut client, 20);
    let page = postmand::store::Page {
        limit: 50,
        offset: 0,
    };
    let of_old = attempts::Filter {
        delivery_id: Some(old),
        ..Default::default()
    };
    let listed = attempts::list(&mut client, &of_old, page, None).unwrap();
    let ids: Vec<Uuid> = listed.rows.iter().map(|a| a.id).collect();
    assert_eq!((ids, listed.more), (expected, false));
    let every = attempts::list(&mut client, &attempts::Filter::default(), page, None);
    assert!(
        every.as_ref().is_err_and(|e| e.is_lock_timeout()),
        "{:?}",
        every.map(|l| l.rows.len())
    );
    // Deleting a delivery reads the bound of the legacy partition alone, and deletes attempts
    // from the delivery's creation on: neither waits for the locked day.
    assert_eq!(
        postmand::store::deliveries::delete(&mut client, new).map_err(|e| e.to_string()),
        Ok(true)
    );
    drop(locker);
    assert_eq!(attempts_of(&mut client, new), 0);
}

#[test]
fn the_legacy_partitions_end_reads_back_under_any_datestyle_and_time_zone() {
    // Read in the session's own DateStyle and TimeZone, the bound came back as SST, which
    // PostgreSQL cannot read (22007: every delete of a delivery failed), or as IST or CST,
    // which it reads as another zone's (review of 2026-12-01).
    let db = populated_at("partitions_legacy_datestyle", 1);
    let mut client = db.client();
    migrate::run(&mut client).expect("migrate");
    let expected: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one(
            "SELECT max(upper_bound) FROM postmand_attempt_partitions() WHERE lower_bound IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(expected.is_some(), "a legacy partition");
    let delivery: Uuid = client
        .query_one("SELECT id FROM deliveries ORDER BY created_at LIMIT 1", &[])
        .unwrap()
        .get(0);
    for (style, zone) in [
        ("Postgres", "Pacific/Pago_Pago"),
        ("Postgres", "Asia/Kolkata"),
        ("SQL", "Asia/Shanghai"),
        ("German", "Europe/Lisbon"),
    ] {
        client
            .batch_execute(&format!(
                "SET DateStyle = '{style}'; SET TimeZone = '{zone}'"
            ))
            .unwrap();
        let end: Option<chrono::DateTime<chrono::Utc>> = client
            .query_one("SELECT postmand_attempt_legacy_end()", &[])
            .unwrap()
            .get(0);
        assert_eq!(end, expected, "{style} {zone}");
        let of_delivery = attempts::Filter {
            delivery_id: Some(delivery),
            ..Default::default()
        };
        let page = postmand::store::Page {
            limit: 50,
            offset: 0,
        };
        let listed = attempts::list(&mut client, &of_delivery, page, None).map(|l| l.rows.len());
        assert_eq!(listed.map_err(|e| e.to_string()), Ok(2), "{style} {zone}");
    }
    let deleted = postmand::store::deliveries::delete(&mut client, delivery);
    assert_eq!(deleted.map_err(|e| e.to_string()), Ok(true));
    assert_eq!(attempts_of(&mut client, delivery), 0);
}

#[test]
fn an_attempt_page_after_the_earliest_cursor_time_is_answered() {
    // A cursor may carry any time from PostgreSQL's earliest (api/cursor.rs); the first
    // window's start, a day before it, is out of PostgreSQL's range (review of 2026-12-01).
    let db = TestDb::new("partitions_earliest_cursor");
    let mut client = db.client();
    let earliest = chrono::NaiveDate::from_ymd_opt(-4713, 11, 24)
        .and_then(|day| day.and_hms_opt(12, 0, 0))
        .expect("a date")
        .and_utc();
    let mark = postmand::store::TimeMark {
        created_at: earliest,
        id: Uuid::nil(),
    };
    let page = postmand::store::Page {
        limit: 10,
        offset: 0,
    };
    let listed = attempts::list(&mut client, &Default::default(), page, Some(&mark))
        .map(|l| (l.rows.len(), l.more));
    assert_eq!(listed.map_err(|e| e.to_string()), Ok((0, false)));
}

#[test]
fn a_webhooks_attempts_are_read_from_its_creation_on() {
    let db = TestDb::new("partitions_webhook_attempts");
    let mut client = db.client();
    let (webhook, delivery) = (Uuid::new_v4(), Uuid::new_v4());
    client
        .batch_execute(&format!(
            "SELECT postmand_create_attempt_partitions(now() - interval '30 days', now());
             INSERT INTO webhooks VALUES ('{webhook}', 'W', 'http://127.0.0.1:9/', 'text/plain', '{{200}}', '',
                 false, 1, 1, 1, 1, now() - interval '5 days', now());
             INSERT INTO deliveries VALUES
                 ('{delivery}', '{webhook}', 'x', now(), 3, 'failed', now() - interval '5 days', now());
             INSERT INTO delivery_attempts
             SELECT gen_random_uuid(), '{webhook}', '{delivery}', '', '', 500, 1, false, '', now() - age
             FROM (VALUES (interval '4 days'), (interval '2 days'), (interval '1 hour')) AS t(age);"
        ))
        .unwrap();
    let locker = lock_the_day(&db, &mut client, 20);
    // The last day holds one of the three: the page is read again, from the webhook's
    // creation on, never reaching the locked day.
    let failed_of_webhook = attempts::Filter {
        webhook_id: Some(webhook),
        success: Some(false),
        ..Default::default()
    };
    let page = postmand::store::Page {
        limit: 50,
        offset: 0,
    };
    let listed = attempts::list(&mut client, &failed_of_webhook, page, None)
        .map(|l| (l.rows.len(), l.more))
        .map_err(|e| e.to_string());
    assert_eq!(listed, Ok((3, false)));
    drop(locker);
}
