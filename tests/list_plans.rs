//! Issue 17: every list statement, with every documented filter combination, with and without a
//! cursor, and at a deep offset, on a database the size of a busy month (1M deliveries, 1M
//! attempts, 200k events, 300 webhooks, analysed). No plan may read all of deliveries,
//! delivery_attempts or events (nor any partition of them: a Seq Scan on a table whose name
//! starts with theirs fails too, so these assertions hold once delivery_attempts is partitioned
//! by created_at), and no plan may sort more than a small set: PostgreSQL sorts when an index
//! finds few rows (pending deliveries, which are the queue, through the claim's partial index;
//! one delivery's attempts; one event's deliveries; one webhook's failures in a window; the
//! webhooks table), which is cheaper than reading them in order. A cursor's row comparison
//! must be an index condition, never a filter, except in a plan that sorts such a small set.

use postgres::types::ToSql;
use postmand::store::{attempts, deliveries, events, webhooks};

use crate::common::TestDb;
use crate::plans::explain;

/// The most rows a plan may sort (its estimate): far more than the pending set of a queue that
/// keeps up, one delivery's attempts, one event's fan-out or the webhooks, far fewer than a
/// list of a table's rows.
const SMALL: u64 = 10_000;

/// 1,000,000 deliveries, newest first one a second back from now: the newest 1,000 pending,
/// every 50th failed, the rest succeeded, every 5th made by an event; an attempt for each
/// finished one (failed for the failed ones); 200,000 events of 20 types; 300 webhooks. Ids
/// grow with time, as UUIDv7 ids do. Foreign keys are not checked while seeding
/// (`session_replication_role`): the rows satisfy them by construction, and the checks would
/// double the time. The attempts of those 12 days go into a partition each (issue 17).
fn seeded() -> (TestDb, postgres::Client) {
    let db = TestDb::new("list_plans");
    let mut client = db.client();
    client
        .batch_execute(
            "SELECT postmand_create_attempt_partitions(now() - interval '12 days', now());
             SET session_replication_role = replica;
             INSERT INTO webhooks SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(w), 12, '0'))::uuid, \
                 'hook ' || lpad(w::text, 4, '0'), 'http://127.0.0.1:9/', 'text/plain', '{200}', '', \
                 w % 10 <> 0, 5, 1, 1, 1, now() - w * interval '1 minute', now() \
             FROM generate_series(1, 300) AS w;
             INSERT INTO events (id, event_type, payload, deliveries, created_at) \
             SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(1000000 - e), 12, '0'))::uuid, \
                 'type.' || (e % 20), 'x', 1, now() - e * interval '5 seconds' \
             FROM generate_series(1, 200000) AS e;
             INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
                 status, created_at, updated_at, event_id) \
             SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(2000000 - i), 12, '0'))::uuid, \
                 ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 300), 12, '0'))::uuid, 'x', \
                 now() - i * interval '1 second', 1, \
                 CASE WHEN i <= 1000 THEN 'pending' WHEN i % 50 = 0 THEN 'failed' ELSE 'succeeded' END, \
                 now() - i * interval '1 second', now() - i * interval '1 second', \
                 CASE WHEN i % 5 = 0 \
                     THEN ('00000000-0000-7000-9000-' || lpad(to_hex(1000000 - i / 5), 12, '0'))::uuid END \
             FROM generate_series(1, 1000000) AS i;
             INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, \
                 response_status_code, execution_duration, success, error, created_at) \
             SELECT ('00000000-0000-7000-a000-' || lpad(to_hex(2000000 - i), 12, '0'))::uuid, \
                 ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 300), 12, '0'))::uuid, \
                 ('00000000-0000-7000-8000-' || lpad(to_hex(2000000 - i), 12, '0'))::uuid, \
                 'req', 'resp', 200, 1, i % 50 <> 0, '', now() - i * interval '1 second' \
             FROM generate_series(1001, 1000000) AS i;
             RESET session_replication_role;",
        )
        .expect("seed a million rows");
    // A batch of several statements is one transaction, where VACUUM cannot run.
    client.batch_execute("VACUUM ANALYZE").expect("analyse");
    (db, client)
}

/// Indexes that find a small set by construction: one event's deliveries (its fan-out), one
/// delivery's attempts.
const SMALL_SETS: [&str; 2] = [
    "deliveries_event_id_created_at_id_idx",
    "delivery_attempts_delivery_id_idx",
];

/// One EXPLAIN, and what it explains.
struct Case {
    what: String,
    plan: String,
}

/// The estimated rows of every Sort (and Incremental Sort) node of `plan`.
fn sorts(plan: &str) -> Vec<u64> {
    plan.lines()
        .filter_map(|line| {
            let node = line.trim_start().trim_start_matches("->").trim_start();
            if !(node.starts_with("Sort ") || node.starts_with("Incremental Sort ")) {
                return None;
            }
            let rows = node.split("rows=").nth(1)?;
            rows.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Tables of `plan` read by a Seq Scan.
fn seq_scanned(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|line| line.split_once("Seq Scan on ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What is wrong with `case`'s plan, if anything. `empty` names tables with no page, read whole
/// at no cost: the partitions of days ahead, which the worker creates a week early.
fn check(case: &Case, empty: &[String]) -> Result<(), String> {
    let big = ["deliveries", "delivery_attempts", "events"];
    if let Some(table) = seq_scanned(&case.plan)
        .into_iter()
        .find(|t| big.iter().any(|b| t.starts_with(b)) && !empty.contains(t))
    {
        return Err(format!("reads all of {table}"));
    }
    let sorted = sorts(&case.plan);
    // Rare states are read from their partial indexes, never found by reading every row of
    // an index and throwing most away (migration 10: failed deliveries were), except among the
    // few rows a plan sorts or an index of small sets finds.
    let small_set = !sorted.is_empty() || SMALL_SETS.iter().any(|i| case.plan.contains(i));
    if !small_set
        && let Some(line) = case.plan.lines().find(|l| {
            l.contains("Filter:") && (l.contains("'failed'::text") || l.contains("NOT success"))
        })
    {
        return Err(format!("filters a rare state out of an index: {line}"));
    }
    if let Some(rows) = sorted.iter().find(|rows| **rows > SMALL) {
        return Err(format!(
            "sorts {rows} rows instead of reading them in order"
        ));
    }
    if sorted.is_empty()
        && let Some(line) = case
            .plan
            .lines()
            .find(|l| l.contains("Filter:") && l.contains("ROW("))
    {
        return Err(format!(
            "the cursor is a filter, not an index condition: {line}"
        ));
    }
    Ok(())
}

type Time = Option<chrono::DateTime<chrono::Utc>>;

/// The plan of a list ordered by (created_at, id): its own `filters`, then the parameters every
/// such list numbers alike: `created_at.gt`, `.gte`, `.lt`, `.lte` (here only the `window`'s gte
/// and lt), limit, offset, and the cursor's mark.
fn list_plan(
    client: &mut postgres::Client,
    sql: &str,
    filters: &[&(dyn ToSql + Sync)],
    (gte, lt): (Time, Time),
    (limit, offset): (i64, i64),
    (after_time, after_id): (Time, Option<uuid::Uuid>),
) -> String {
    let none_time: Time = None;
    let mut params = filters.to_vec();
    params.extend([
        &none_time as &(dyn ToSql + Sync),
        &gte,
        &lt,
        &none_time,
        &limit,
        &offset,
        &after_time,
        &after_id,
    ]);
    explain(client, sql, &params)
}

#[test]
fn issue_17_every_list_filter_and_cursor_is_read_in_order_from_an_index_at_1m_rows() {
    let (_db, mut client) = seeded();
    let now = chrono::Utc::now();
    let webhook: uuid::Uuid = "00000000-0000-4000-8000-000000000001".parse().unwrap();
    let (delivery, event): (uuid::Uuid, uuid::Uuid) = {
        let row = client
            .query_one(
                "SELECT delivery_id, (SELECT event_id FROM deliveries WHERE event_id IS NOT NULL \
                     ORDER BY created_at DESC LIMIT 1 OFFSET 5000) \
                 FROM delivery_attempts ORDER BY created_at DESC LIMIT 1 OFFSET 5000",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    // A mark a fifth of the way down each list, as a cursor carries it.
    let mark = |client: &mut postgres::Client, table: &str| -> (Time, Option<uuid::Uuid>) {
        let row = client
            .query_one(
                &format!(
                    "SELECT created_at, id FROM {table} ORDER BY created_at DESC, id DESC \
                     LIMIT 1 OFFSET (SELECT count(*) / 5 FROM {table})"
                ),
                &[],
            )
            .unwrap();
        (Some(row.get(0)), Some(row.get(1)))
    };
    let none_uuid: Option<uuid::Uuid> = None;
    let none_time: Time = None;
    let windows: [(Time, Time); 2] = [
        (None, None),
        (
            Some(now - chrono::Duration::days(5)),
            Some(now - chrono::Duration::days(1)),
        ),
    ];
    let (limit, deep) = (51_i64, 100_000_i64);
    let mut cases: Vec<Case> = Vec::new();

    // GET /v1/deliveries: every combination of the filters.
    let delivery_mark = mark(&mut client, "deliveries");
    for webhook_id in [None, Some(webhook)] {
        for status in [None, Some("pending"), Some("succeeded"), Some("failed")] {
            for event_id in [None, Some(event)] {
                for (gte, lt) in windows {
                    for (offset, (after_time, after_id)) in [
                        (0, (none_time, none_uuid)),
                        (0, delivery_mark),
                        (deep, (none_time, none_uuid)),
                    ] {
                        // Deep offsets only where that many rows match.
                        if offset > 0
                            && (webhook_id.is_some()
                                || event_id.is_some()
                                || matches!(status, Some("pending" | "failed")))
                        {
                            continue;
                        }
                        let filters: [&(dyn ToSql + Sync); 3] = [&webhook_id, &status, &event_id];
                        let plan = list_plan(
                            &mut client,
                            deliveries::list_statement(offset),
                            &filters,
                            (gte, lt),
                            (limit, offset),
                            (after_time, after_id),
                        );
                        cases.push(Case {
                            what: format!(
                                "deliveries webhook_id={webhook_id:?} status={status:?} \
                                 event_id={event_id:?} window={} cursor={} offset={offset}",
                                gte.is_some(),
                                after_id.is_some()
                            ),
                            plan,
                        });
                    }
                }
            }
        }
    }

    // GET /v1/delivery-attempts: every combination of the filters.
    let attempt_mark = mark(&mut client, "delivery_attempts");
    for webhook_id in [None, Some(webhook)] {
        for delivery_id in [None, Some(delivery)] {
            for success in [None, Some(true), Some(false)] {
                for (gte, lt) in windows {
                    for (offset, (after_time, after_id)) in [
                        (0, (none_time, none_uuid)),
                        (0, attempt_mark),
                        (deep, (none_time, none_uuid)),
                    ] {
                        if offset > 0
                            && (webhook_id.is_some()
                                || delivery_id.is_some()
                                || success == Some(false))
                        {
                            continue;
                        }
                        let filters: [&(dyn ToSql + Sync); 3] =
                            [&webhook_id, &delivery_id, &success];
                        let plan = list_plan(
                            &mut client,
                            attempts::LIST,
                            &filters,
                            (gte, lt),
                            (limit, offset),
                            (after_time, after_id),
                        );
                        cases.push(Case {
                            what: format!(
                                "attempts webhook_id={webhook_id:?} delivery_id={delivery_id:?} \
                                 success={success:?} window={} cursor={} offset={offset}",
                                gte.is_some(),
                                after_id.is_some()
                            ),
                            plan,
                        });
                    }
                }
            }
        }
    }

    // GET /v1/events.
    let event_mark = mark(&mut client, "events");
    for event_type in [None, Some("type.3")] {
        for (gte, lt) in windows {
            for (offset, (after_time, after_id)) in [
                (0, (none_time, none_uuid)),
                (0, event_mark),
                (deep, (none_time, none_uuid)),
            ] {
                if offset > 0 && event_type.is_some() {
                    continue;
                }
                let plan = list_plan(
                    &mut client,
                    events::LIST,
                    &[&event_type],
                    (gte, lt),
                    (limit, offset),
                    (after_time, after_id),
                );
                cases.push(Case {
                    what: format!(
                        "events event_type={event_type:?} window={} cursor={} offset={offset}",
                        gte.is_some(),
                        after_id.is_some()
                    ),
                    plan,
                });
            }
        }
    }

    // GET /v1/webhooks: a small table (one row per endpoint), which PostgreSQL may read whole
    // and sort when a filter keeps few rows.
    for active in [None, Some(true), Some(false)] {
        for (gte, lt) in [
            (None, None),
            (Some(now - chrono::Duration::hours(3)), Some(now)),
        ] {
            for (after_name, after_id) in [(None, None), (Some("hook 0100"), Some(webhook))] {
                let params: [&(dyn ToSql + Sync); 9] = [
                    &active,
                    &none_time,
                    &gte,
                    &lt,
                    &none_time,
                    &limit,
                    &0_i64,
                    &after_name,
                    &after_id,
                ];
                cases.push(Case {
                    what: format!(
                        "webhooks active={active:?} window={} cursor={}",
                        gte.is_some(),
                        after_id.is_some()
                    ),
                    plan: explain(&mut client, webhooks::LIST, &params),
                });
            }
        }
    }

    let empty: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname LIKE 'delivery\\_attempts\\_p%' \
             AND relkind = 'r' AND relpages = 0",
            &[],
        )
        .expect("empty partitions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check(case, &empty)
                .err()
                .map(|why| format!("{}: {why}\n{}", case.what, case.plan))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} plans:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    // The two gaps migration 10 closes are read from their indexes.
    let plan_of = |what: &str| {
        &cases
            .iter()
            .find(|c| c.what == what)
            .unwrap_or_else(|| panic!("no case {what}"))
            .plan
    };
    let failed = plan_of(
        "deliveries webhook_id=None status=Some(\"failed\") event_id=None window=false cursor=true offset=0",
    );
    assert!(
        failed.contains("deliveries_failed_created_at_id_idx"),
        "{failed}"
    );
    let failed_attempts = plan_of(
        "attempts webhook_id=Some(00000000-0000-4000-8000-000000000001) delivery_id=None success=Some(false) window=false cursor=true offset=0",
    );
    assert!(
        crate::plans::table_indexes_in(&mut client, failed_attempts)
            .contains("delivery_attempts_failed_webhook_created_at_id_idx"),
        "{failed_attempts}"
    );
}

#[test]
fn plan_parsing_finds_sorts_and_seq_scans() {
    let plan = "Limit  (cost=1.0..2.0 rows=51 width=8)\n  ->  Sort  (cost=1.0..2.0 rows=667 width=8)\n        Sort Key: created_at DESC, id DESC\n        ->  Append\n              ->  Seq Scan on delivery_attempts_p2026_01 a  (cost=0.00..1.00 rows=5 width=8)\n              ->  Incremental Sort  (cost=1.0..2.0 rows=12000 width=8)";
    assert_eq!(sorts(plan), [667, 12000]);
    assert_eq!(seq_scanned(plan), ["delivery_attempts_p2026_01"]);
    let case = Case {
        what: "x".into(),
        plan: plan.into(),
    };
    assert!(
        check(&case, &[])
            .unwrap_err()
            .contains("delivery_attempts_p2026_01")
    );
    let sorted = Case {
        what: "x".into(),
        plan: plan.replace("Seq Scan on delivery_attempts_p2026_01", "Index Scan on x"),
    };
    assert_eq!(
        check(&sorted, &[]).unwrap_err(),
        "sorts 12000 rows instead of reading them in order"
    );
    let filtered = Case {
        what: "x".into(),
        plan: "Limit\n  ->  Index Scan using i on deliveries\n        Filter: (ROW(created_at, id) < ROW(now(), NULL::uuid))".into(),
    };
    assert!(
        check(&filtered, &[])
            .unwrap_err()
            .contains("not an index condition")
    );
}
