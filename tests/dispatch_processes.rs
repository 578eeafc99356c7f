//! The real binary as worker processes (`postmand --role worker`) against one test database:
//! four processes draining one queue, SIGKILL and SIGTERM in the middle of an attempt, and the
//! dispatcher's database connection dropped while its request is in flight.
//!
//! Rows are arranged in SQL; the receiver holds requests to stop a worker at an exact moment.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::common::process::Postmand;
use crate::common::receiver::{Answer, Receiver};
use crate::common::{TestDb, fixtures, wait_until};

/// Starts `postmand --role worker` on `db` with `concurrency` dispatchers, polling every 50 ms,
/// both servers on free loopback ports.
fn start_worker(db: &TestDb, concurrency: usize) -> Postmand {
    let concurrency = concurrency.to_string();
    Postmand::start(
        &db.url,
        "worker",
        &[
            ("POSTMAND_HTTP_PORT", "0"),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
            ("POSTMAND_WORKER_CONCURRENCY", &concurrency),
            ("POSTMAND_POLLING_INTERVAL", "50"),
        ],
    )
}

/// An active webhook posting to `url`: valid codes [200], 5 attempts, 10-60 s backoff, 5 s
/// timeout.
fn insert_webhook(c: &mut postgres::Client, url: &str) -> Uuid {
    fixtures::insert_webhook(c, url, 5, (10, 60))
}

/// `n` pending deliveries of `webhook`, all due, due one second apart; returns their ids in the
/// order they are due.
fn insert_deliveries(c: &mut postgres::Client, webhook: Uuid, n: i32) -> Vec<Uuid> {
    c.execute(
        "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
             status, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, '{\"n\": ' || i || '}', \
             now() - interval '1 hour' + i * interval '1 second', 0, 'pending', now(), now() \
         FROM generate_series(1, $2) i",
        &[&webhook, &n],
    )
    .expect("insert deliveries");
    c.query(
        "SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY scheduled_at, id",
        &[&webhook],
    )
    .expect("list deliveries")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// A delivery as the database has it: status, attempts, scheduled_at and updated_at (as text),
/// and how many attempt rows it has.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeliveryState {
    status: String,
    delivery_attempts: i32,
    scheduled_at: String,
    updated_at: String,
    attempt_rows: i64,
}

fn delivery_state(c: &mut postgres::Client, id: Uuid) -> DeliveryState {
    let row = c
        .query_one(
            "SELECT status, delivery_attempts, scheduled_at::text, updated_at::text, \
                 (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) \
             FROM deliveries d WHERE id = $1",
            &[&id],
        )
        .expect("read delivery");
    DeliveryState {
        status: row.get(0),
        delivery_attempts: row.get(1),
        scheduled_at: row.get(2),
        updated_at: row.get(3),
        attempt_rows: row.get(4),
    }
}

/// Status, attempts and attempt rows: the part of [`DeliveryState`] tests usually pin.
fn outcome(c: &mut postgres::Client, id: Uuid) -> (String, i32, i64) {
    let state = delivery_state(c, id);
    (state.status, state.delivery_attempts, state.attempt_rows)
}

fn wait_succeeded(c: &mut postgres::Client, id: Uuid) {
    wait_until("the delivery to succeed", || {
        let state = delivery_state(c, id);
        if state.status == "succeeded" {
            Ok(())
        } else {
            Err(state)
        }
    });
}

/// An attempt row in brief: status code, success, error.
type AttemptBrief = (i32, bool, String);

/// The `webhook-id` header of every request the receiver saw, in arrival order.
fn arrived_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("<none>").to_string())
        .collect()
}

/// A receiver holding its first request until `release` is dropped, answering 200 otherwise.
fn holding_receiver() -> (Receiver, crossbeam_channel::Sender<()>) {
    let (release, hold) = crossbeam_channel::unbounded::<()>();
    let receiver = Receiver::start(move |n, _| Answer {
        hold: (n == 0).then(|| hold.clone()),
        ..Answer::status(200)
    });
    (receiver, release)
}

#[test]
fn four_worker_processes_share_one_queue_without_overlap() {
    let db = TestDb::new("four_workers_share_queue");
    let receiver = Receiver::start(|_, _| Answer {
        delay: Duration::from_millis(3),
        ..Answer::status(200)
    });
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    // Issue 17: N workers on one database is the documented way to scale out. All idle before
    // the queue fills, so each gets a share of it; all start at once, so their partition
    // upkeep runs at the same moment too.
    let mut workers = [
        start_worker(&db, 2),
        start_worker(&db, 2),
        start_worker(&db, 2),
        start_worker(&db, 2),
    ];
    for worker in &mut workers {
        worker.wait_for_log("worker-started");
    }
    let ids = insert_deliveries(&mut c, webhook, 300);
    c.batch_execute("NOTIFY postmand_deliveries").unwrap();
    wait_until("300 deliveries to succeed", || {
        let row = c
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM deliveries",
                &[],
            )
            .unwrap();
        let (succeeded, all): (i64, i64) = (row.get(0), row.get(1));
        if succeeded == 300 {
            Ok(())
        } else {
            Err((succeeded, all))
        }
    });
    // Stop them gracefully, so any request still in flight has arrived before we count.
    for worker in &workers {
        worker.sigterm();
    }
    let logs: Vec<String> = workers
        .iter_mut()
        .map(|worker| {
            let (status, log) = worker.wait_exit();
            assert_eq!(status.code(), Some(0), "{log}");
            log
        })
        .collect();

    // Each id arrived exactly once: none was lost, and none was sent twice, so in particular
    // never by both processes at the same time.
    let mut arrivals: HashMap<String, usize> = HashMap::new();
    for id in arrived_ids(&receiver) {
        *arrivals.entry(id).or_default() += 1;
    }
    // For an id that did not arrive once: how many times it did, and its attempt rows
    // (status code, success, error), which tell a double claim from a retried attempt.
    let mut not_once: Vec<(Uuid, usize, Vec<AttemptBrief>)> = Vec::new();
    for id in &ids {
        let n = arrivals.remove(&id.to_string()).unwrap_or(0);
        if n != 1 {
            let attempts = c
                .query(
                    "SELECT response_status_code, success, error FROM delivery_attempts \
                     WHERE delivery_id = $1 ORDER BY created_at",
                    &[id],
                )
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect();
            not_once.push((*id, n, attempts));
        }
    }
    assert_eq!(not_once, Vec::new(), "ids that did not arrive exactly once");
    assert_eq!(arrivals, HashMap::new(), "arrivals of unknown ids");

    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT delivery_id), count(*) FILTER (WHERE success) \
             FROM delivery_attempts",
            &[],
        )
        .unwrap();
    let attempts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(attempts, (300, 300, 300));
    let sent = c
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'succeeded' AND delivery_attempts = 1",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(sent, 300);

    // Every process did part of the work, and together all of it; their upkeep never clashed.
    for log in &logs {
        assert!(!log.contains("retention-error"), "{log}");
    }
    let per_process: Vec<usize> = logs
        .iter()
        .map(|log| log.matches("worker-delivery-attempt-created").count())
        .collect();
    assert!(per_process.iter().all(|&n| n > 0), "{per_process:?}");
    assert_eq!(per_process.iter().sum::<usize>(), 300, "{per_process:?}");
}

#[test]
fn worker_killed_mid_attempt_loses_nothing() {
    let db = TestDb::new("worker_killed_mid_attempt");
    let (receiver, release) = holding_receiver();
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    let id = insert_deliveries(&mut c, webhook, 1)[0];
    let before = delivery_state(&mut c, id);

    let mut first = start_worker(&db, 1);
    let arrival = receiver.next_arrival();
    assert_eq!(arrival.header("webhook-id"), Some(id.to_string().as_str()));
    first.kill();

    // The claim's transaction died with the process: nothing of the attempt is visible.
    assert_eq!(delivery_state(&mut c, id), before);
    assert_eq!(
        (before.status.as_str(), before.delivery_attempts),
        ("pending", 0)
    );
    assert_eq!(before.attempt_rows, 0);

    drop(release);
    let _second = start_worker(&db, 1);
    wait_succeeded(&mut c, id);
    assert_eq!(outcome(&mut c, id), ("succeeded".to_string(), 1, 1));
    // At-least-once: the killed worker's request reached the receiver but was never recorded,
    // so the second worker sends the delivery again. This duplicate is expected.
    assert_eq!(arrived_ids(&receiver), [id.to_string(), id.to_string()]);
}

#[test]
fn worker_killed_mid_batch_loses_nothing() {
    let db = TestDb::new("worker_killed_mid_batch");
    // The first two requests are answered; the third is held, so the worker dies with two
    // deliveries sent but not committed.
    let (release, hold) = crossbeam_channel::unbounded::<()>();
    let receiver = Receiver::start(move |n, _| Answer {
        hold: (n == 2).then(|| hold.clone()),
        ..Answer::status(200)
    });
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    let ids = insert_deliveries(&mut c, webhook, 3);
    let before: Vec<DeliveryState> = ids.iter().map(|id| delivery_state(&mut c, *id)).collect();

    let mut first = start_worker(&db, 1);
    for _ in 0..3 {
        receiver.next_arrival();
    }
    first.kill();

    // The batch was one transaction: it died whole, answered requests included.
    let after: Vec<DeliveryState> = ids.iter().map(|id| delivery_state(&mut c, *id)).collect();
    assert_eq!(after, before);
    assert!(
        after
            .iter()
            .all(|s| s.status == "pending" && s.attempt_rows == 0)
    );

    drop(release);
    let _second = start_worker(&db, 1);
    for id in &ids {
        wait_succeeded(&mut c, *id);
        assert_eq!(outcome(&mut c, *id), ("succeeded".to_string(), 1, 1));
    }
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(arrived_ids(&receiver), [ids.clone(), ids].concat());
}

#[test]
fn a_failed_attempt_ends_its_batch_and_is_committed_first() {
    let db = TestDb::new("failed_attempt_ends_batch");
    // The first request is refused with a 500; the second is held while the test looks.
    let (release, hold) = crossbeam_channel::unbounded::<()>();
    let receiver = Receiver::start(move |n, _| match n {
        0 => Answer::status(500),
        1 => Answer {
            hold: Some(hold.clone()),
            ..Answer::status(200)
        },
        _ => Answer::status(200),
    });
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    let ids = insert_deliveries(&mut c, webhook, 3);

    let _worker = start_worker(&db, 1);
    receiver.next_arrival();
    let second = receiver.next_arrival();
    assert_eq!(
        second.header("webhook-id"),
        Some(ids[1].to_string().as_str())
    );
    // The second request is out: the failed first attempt was already committed (it ended the
    // batch it was in), with its retry 10 s away.
    let failed = delivery_state(&mut c, ids[0]);
    assert_eq!(
        (
            failed.status.as_str(),
            failed.delivery_attempts,
            failed.attempt_rows
        ),
        ("pending", 1, 1)
    );
    let retry_in: f64 = c
        .query_one(
            "SELECT extract(epoch FROM scheduled_at - now())::float8 FROM deliveries WHERE id = $1",
            &[&ids[0]],
        )
        .unwrap()
        .get(0);
    assert!(retry_in > 5.0, "retry in {retry_in} s");

    drop(release);
    for id in &ids[1..] {
        wait_succeeded(&mut c, *id);
        assert_eq!(outcome(&mut c, *id), ("succeeded".to_string(), 1, 1));
    }
    assert_eq!(outcome(&mut c, ids[0]), ("pending".to_string(), 1, 1));
}

#[test]
fn sigterm_lets_the_in_flight_attempt_commit_and_claims_nothing_new() {
    let db = TestDb::new("sigterm_in_flight_commits");
    let (receiver, release) = holding_receiver();
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    let ids = insert_deliveries(&mut c, webhook, 2);
    let (first, second) = (ids[0], ids[1]);
    let second_before = delivery_state(&mut c, second);

    let mut worker = start_worker(&db, 1);
    let arrival = receiver.next_arrival();
    assert_eq!(
        arrival.header("webhook-id"),
        Some(first.to_string().as_str())
    );
    worker.sigterm();
    // Release only once the process has taken the signal, or the dispatcher could commit and
    // claim the second delivery before the stop request exists.
    worker.wait_for_log("shutting down");
    drop(release);
    let (status, log) = worker.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");

    assert_eq!(outcome(&mut c, first), ("succeeded".to_string(), 1, 1));
    assert_eq!(delivery_state(&mut c, second), second_before);
    assert_eq!(outcome(&mut c, second), ("pending".to_string(), 0, 0));
    assert_eq!(arrived_ids(&receiver), [first.to_string()]);
}

#[test]
fn dropped_database_connection_mid_attempt_is_retried() {
    let db = TestDb::new("dropped_connection_mid_attempt");
    let (receiver, release) = holding_receiver();
    let mut c = db.client();
    let webhook = insert_webhook(&mut c, &receiver.url("/hook"));
    let id = insert_deliveries(&mut c, webhook, 1)[0];

    let mut worker = start_worker(&db, 1);
    let arrival = receiver.next_arrival();
    assert_eq!(arrival.header("webhook-id"), Some(id.to_string().as_str()));
    // The dispatcher's pooled connection sits idle in its claim transaction while the request
    // is held; the listener's connection has another application_name.
    let pid: i32 = wait_until("the dispatcher's backend to be terminated", || {
        let rows = c
            .query(
                "WITH target AS MATERIALIZED ( \
                     SELECT pid FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = 'postmand' \
                       AND state = 'idle in transaction') \
                 SELECT pid FROM target WHERE pg_terminate_backend(pid)",
                &[],
            )
            .unwrap();
        match rows.as_slice() {
            [row] => Ok(row.get(0)),
            _ => Err(rows.len()),
        }
    });
    wait_until("the terminated backend to be gone", || {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if n == 0 { Ok(()) } else { Err(n) }
    });
    drop(release);

    // Recording the first attempt fails on the dead connection and rolls back; the dispatcher
    // takes a new connection, claims the delivery again and re-sends it (at-least-once).
    wait_succeeded(&mut c, id);
    assert_eq!(outcome(&mut c, id), ("succeeded".to_string(), 1, 1));
    let arrivals = arrived_ids(&receiver);
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    assert!(
        arrivals.iter().all(|a| *a == id.to_string()),
        "{arrivals:?}"
    );
    worker.wait_for_log("worker-dispatch-error");
    assert!(worker.running(), "the worker exited:\n{}", worker.log());
}
