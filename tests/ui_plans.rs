//! Issue 18: every statement behind a dashboard page reads deliveries and attempts through an
//! index, on the database `plans` seeds (30,000 deliveries and attempts, analysed): the
//! aggregates of `store::dashboard`, and the API's lists with the filters the pages use. A
//! page must cost the same with 2M deliveries as with 2,000 (scripts/bench-ui.sh measures).

use postgres::types::ToSql;
use postmand::store::{attempts, dashboard, deliveries, queue};
use uuid::Uuid;

use crate::plans::{WEBHOOK, assert_no_table_scan, explain, seeded, table_indexes_in};

#[test]
fn issue_18_no_dashboard_statement_scans_deliveries_or_attempts() {
    let (_db, mut client) = seeded();
    client
        .batch_execute(
            "INSERT INTO webhook_failures (webhook_id, failing_since, failures) \
             SELECT id, now() - interval '1 hour', 12 FROM webhooks LIMIT 3; ANALYZE webhook_failures",
        )
        .expect("failing webhooks");
    let webhook: Uuid = WEBHOOK.parse().unwrap();
    let delivery: Uuid = client
        .query_one(
            "SELECT id FROM deliveries WHERE webhook_id = $1 LIMIT 1",
            &[&webhook],
        )
        .unwrap()
        .get(0);
    let webhooks: Vec<Uuid> = client
        .query("SELECT id FROM webhooks ORDER BY name, id LIMIT 50", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let none_uuid: Option<Uuid> = None;
    let none_text: Option<&str> = None;
    let none_bool: Option<bool> = None;
    let none_time: Option<chrono::DateTime<chrono::Utc>> = None;
    let day_ago = Some(chrono::Utc::now() - chrono::Duration::days(1));
    let (limit, offset, sample, newest, shown) = (50_i64, 0_i64, 10_i64, 5_000_i64, 50_i64);
    // A month of days, as after a month with retention off: the aggregates must plan only the
    // partitions of their own window.
    client
        .batch_execute(
            "SELECT postmand_create_attempt_partitions(now() - interval '30 days', now())",
        )
        .expect("a month of partitions");
    let clock = dashboard::clock(&mut client, "24 hours").expect("clock");
    let hour_ago = dashboard::clock(&mut client, "1 hour").expect("clock");

    let mut plans: Vec<(String, String)> = vec![
        (
            "overview: failing".into(),
            explain(&mut client, dashboard::FAILING, &[&shown]),
        ),
        (
            "overview: statuses".into(),
            explain(&mut client, dashboard::RECENT_STATUSES, &[&newest]),
        ),
        (
            "overview: attempts per minute".into(),
            explain(
                &mut client,
                dashboard::ATTEMPTS_PER_MINUTE,
                &[&clock.0, &hour_ago.1],
            ),
        ),
        (
            "overview: queue".into(),
            explain(&mut client, queue::QUEUE_STATS, &[]),
        ),
        (
            "webhooks: success by hour".into(),
            explain(
                &mut client,
                dashboard::HOURLY_SUCCESS,
                &[&webhooks, &sample, &clock.0, &clock.1],
            ),
        ),
    ];
    // The webhook page: its deliveries with each status filter, and a time window.
    for (status, after) in [
        (none_text, none_time),
        (Some("failed"), none_time),
        (Some("succeeded"), none_time),
        (Some("pending"), none_time),
        (none_text, day_ago),
    ] {
        let params: [&(dyn ToSql + Sync); 11] = [
            &Some(webhook),
            &status,
            &none_uuid,
            &none_time,
            &after,
            &none_time,
            &none_time,
            &limit,
            &offset,
            &none_time,
            &none_uuid,
        ];
        let plan = explain(&mut client, deliveries::list_statement(offset), &params);
        plans.push((
            format!("webhook page: status {status:?}, from {after:?}"),
            plan,
        ));
    }
    // The delivery page: its attempts, all or failed only.
    for success in [none_bool, Some(false)] {
        let params: [&(dyn ToSql + Sync); 11] = [
            &none_uuid,
            &Some(delivery),
            &success,
            &none_time,
            &none_time,
            &none_time,
            &none_time,
            &limit,
            &offset,
            &none_time,
            &none_uuid,
        ];
        let plan = explain(&mut client, attempts::LIST, &params);
        plans.push((format!("delivery page: success {success:?}"), plan));
    }

    for (what, plan) in &plans {
        assert_no_table_scan(&mut client, what, plan);
    }
    let plan_of = |what: &str| {
        &plans
            .iter()
            .find(|(name, _)| name.starts_with(what))
            .expect("a plan")
            .1
    };
    // Attempts per minute are counted from a range of each index: the last hour, never the
    // table. Whether PostgreSQL reads that range index-only or through a bitmap depends on the
    // visibility map, which VACUUM cannot set while other sessions hold older snapshots (the
    // suite's other tests, in parallel): the full run saw a bitmap scan of the same range.
    let per_minute = plan_of("overview: attempts per minute");
    assert_eq!(
        table_indexes_in(&mut client, per_minute),
        [
            "delivery_attempts_created_at_id_idx",
            "delivery_attempts_failed_created_at_id_idx"
        ]
        .map(String::from)
        .into(),
        "{per_minute}"
    );
    assert_eq!(
        per_minute.matches("Index Cond: (created_at > '").count(),
        2,
        "{per_minute}"
    );
    // Of the month's partitions, only those from the window's day on (today's, and the week
    // ahead the worker keeps) are planned: twice for the minutes, once for the hours.
    let ahead = postmand::store::partitions::DAYS_AHEAD as usize;
    let days = |plan: &str| {
        plan.lines()
            .filter_map(|line| line.split_once(" on delivery_attempts_p"))
            .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
            .collect::<std::collections::BTreeSet<String>>()
    };
    assert!(
        (1..=ahead + 2).contains(&days(per_minute).len()),
        "{:?}\n{per_minute}",
        days(per_minute)
    );
    // A webhook's deliveries, newest first, and its failed ones, each from their index.
    assert!(
        plan_of("webhook page: status None, from None")
            .contains("deliveries_webhook_created_at_id_idx")
    );
    assert!(
        plan_of("webhook page: status Some(\"failed\")")
            .contains("deliveries_failed_webhook_created_at_id_idx")
    );
    let by_hour = plan_of("webhooks: success by hour");
    assert!(
        table_indexes_in(&mut client, by_hour)
            .contains("delivery_attempts_webhook_created_at_id_idx"),
        "{by_hour}"
    );
    assert!(
        (1..=ahead + 2).contains(&days(by_hour).len()),
        "{:?}\n{by_hour}",
        days(by_hour)
    );
}
