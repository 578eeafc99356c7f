//! Issue 14: every index of the two hot tables earns its write cost. The plans of every
//! statement that reads deliveries or attempts (the lists with each filter, the claim, the
//! retention batch, the queue gauges) are collected on a seeded, analysed database; each index
//! must appear in one of them, or serve a foreign key's cascade, and no plan may scan a whole
//! table.

use std::collections::BTreeSet;

use postgres::types::ToSql;
use postmand::store::{attempts, deliveries, queue};

use crate::common::TestDb;

pub const WEBHOOK: &str = "00000000-0000-4000-8000-000000000001";

/// 30,000 deliveries (90% succeeded, 5% failed, 5% pending) and an attempt each (95% good)
/// across 30 webhooks, analysed.
pub fn seeded() -> (TestDb, postgres::Client) {
    let db = TestDb::new("plans");
    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO webhooks SELECT ('00000000-0000-4000-8000-0000000000' || lpad(to_hex(w), 2, '0'))::uuid, \
                 'plan', 'http://127.0.0.1:9/', 'text/plain', '{200}', '', true, 5, 1, 1, 1, now(), now() \
             FROM generate_series(1, 30) AS w;
             INSERT INTO deliveries SELECT gen_random_uuid(), \
                 ('00000000-0000-4000-8000-0000000000' || lpad(to_hex(1 + i % 30), 2, '0'))::uuid, 'x', \
                 now() - i * interval '1 second', 1, \
                 CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 20 = 1 THEN 'pending' ELSE 'succeeded' END, \
                 now() - i * interval '1 second', now() - i * interval '1 second' \
             FROM generate_series(1, 30000) AS i;
             INSERT INTO delivery_attempts SELECT gen_random_uuid(), d.webhook_id, d.id, 'req', 'resp', \
                 200, 1, d.status <> 'failed', '', d.created_at FROM deliveries d;",
        )
        .expect("seed");
    client.batch_execute("VACUUM ANALYZE").expect("analyse");
    (db, client)
}

/// The plan of `sql` with `params`, as text.
pub fn explain(client: &mut postgres::Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> String {
    client
        .query(&format!("EXPLAIN {sql}"), params)
        .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Index names a plan reads.
pub fn indexes_in(plan: &str) -> BTreeSet<String> {
    plan.lines()
        .filter_map(|line| {
            let after = line
                .split_once(" using ")
                .or_else(|| line.split_once("Bitmap Index Scan on "))?
                .1;
            after.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

/// Fails when `plan` reads the whole of deliveries, events or delivery_attempts, or of one of
/// the latter's non-empty partitions. (An empty partition of a day ahead, which the worker
/// creates a week early, is read whole: it has no page to read.)
pub fn assert_no_table_scan(client: &mut postgres::Client, what: &str, plan: &str) {
    for line in plan.lines() {
        let Some((_, after)) = line.split_once("Seq Scan on ") else {
            continue;
        };
        let table = after.split_whitespace().next().unwrap_or_default();
        let pages: i32 = client
            .query_one(
                "SELECT relpages FROM pg_class WHERE oid = to_regclass($1)",
                &[&table],
            )
            .unwrap_or_else(|e| panic!("pages of {table}: {e}"))
            .get(0);
        let hot = ["deliveries", "events", "delivery_attempts"]
            .iter()
            .any(|t| table == *t || table.starts_with("delivery_attempts_"));
        assert!(
            !hot || pages == 0,
            "{what} reads all of {table} ({pages} pages):\n{plan}"
        );
    }
}

/// Index names a plan reads, each index of a partition of `delivery_attempts` named by the
/// table's own index it belongs to (issue 17).
pub fn table_indexes_in(client: &mut postgres::Client, plan: &str) -> BTreeSet<String> {
    let parent_of: std::collections::HashMap<String, String> = client
        .query(
            "SELECT c.relname::text, p.relname::text FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relkind = 'I'",
            &[],
        )
        .expect("partition indexes")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    indexes_in(plan)
        .into_iter()
        .map(|name| parent_of.get(&name).cloned().unwrap_or(name))
        .collect()
}

#[test]
fn issue_14_every_index_of_the_hot_tables_is_read_by_a_plan_or_a_cascade() {
    let (_db, mut client) = seeded();
    let webhook: uuid::Uuid = WEBHOOK.parse().unwrap();
    let delivery: uuid::Uuid = client
        .query_one(
            "SELECT id FROM deliveries WHERE webhook_id = $1 LIMIT 1",
            &[&webhook],
        )
        .unwrap()
        .get(0);
    let none_uuid: Option<uuid::Uuid> = None;
    let none_text: Option<&str> = None;
    let none_bool: Option<bool> = None;
    let none_time: Option<chrono::DateTime<chrono::Utc>> = None;
    let since = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    let (limit, offset) = (50_i64, 0_i64);
    let mut plans = Vec::new();

    let event = Some(uuid::Uuid::now_v7());
    // GET /v1/deliveries with each filter.
    for (webhook_id, status, event_id, after) in [
        (none_uuid, none_text, none_uuid, none_time),
        (Some(webhook), none_text, none_uuid, none_time),
        (none_uuid, Some("failed"), none_uuid, none_time),
        (none_uuid, Some("pending"), none_uuid, none_time),
        (Some(webhook), Some("failed"), none_uuid, none_time),
        (none_uuid, none_text, none_uuid, since),
        (none_uuid, none_text, event, none_time),
    ] {
        plans.push(explain(
            &mut client,
            deliveries::list_statement(offset),
            &[
                &webhook_id,
                &status,
                &event_id,
                &after,
                &none_time,
                &none_time,
                &none_time,
                &limit,
                &offset,
                &none_time,
                &none_uuid,
            ],
        ));
    }
    // GET /v1/delivery-attempts with each filter.
    for (webhook_id, delivery_id, success) in [
        (none_uuid, none_uuid, none_bool),
        (Some(webhook), none_uuid, none_bool),
        (none_uuid, Some(delivery), none_bool),
        (none_uuid, none_uuid, Some(false)),
        (Some(webhook), none_uuid, Some(false)),
    ] {
        plans.push(explain(
            &mut client,
            attempts::LIST,
            &[
                &webhook_id,
                &delivery_id,
                &success,
                &none_time,
                &none_time,
                &none_time,
                &none_time,
                &limit,
                &offset,
                &none_time,
                &none_uuid,
            ],
        ));
    }
    // POST /v1/webhooks/{id}/recover, first batch and a later one.
    let mark = Some(chrono::Utc::now() - chrono::Duration::hours(2));
    for (after_time, after_id) in [(none_time, none_uuid), (mark, Some(delivery))] {
        plans.push(explain(
            &mut client,
            deliveries::RECOVER,
            &[
                &webhook,
                &since,
                &none_time,
                &1000_i64,
                &after_time,
                &after_id,
            ],
        ));
    }
    plans.push(explain(
        &mut client,
        deliveries::DELETE_FINISHED,
        &[&30_i32, &500_i64],
    ));
    plans.push(explain(&mut client, queue::QUEUE_STATS, &[]));
    plans.push(queue::explain_claim(&mut client, 8).expect("the claim's plan"));

    for plan in &plans {
        assert_no_table_scan(&mut client, "a plan", plan);
    }
    let used: BTreeSet<String> = plans
        .iter()
        .flat_map(|plan| table_indexes_in(&mut client, plan))
        .collect();
    // Deleting a delivery cascades through this; no list needs it to be fast. (Deleting a
    // webhook cascades through deliveries_webhook_created_at_id_idx, which lists read too.)
    let cascades = ["delivery_attempts_delivery_id_idx"];
    let indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes \
             WHERE tablename IN ('deliveries', 'delivery_attempts') AND indexname NOT LIKE '%_pkey'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let unused: Vec<&String> = indexes
        .iter()
        .filter(|name| !used.contains(*name) && !cascades.contains(&name.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "indexes no plan reads, paid for by every write: {unused:?}\nused: {used:?}\n\n{}",
        plans.join("\n\n")
    );
}
