//! Process faults under load with the real binary: workers killed again and again while a queue
//! drains, and three workers beside two API processes over one database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::common::process::{Postmand, free_port};
use crate::common::receiver::{Answer, Receiver};
use crate::common::{TestDb, fixtures, http, wait_until};

/// A postmand process with its API port (killed and reaped on drop, like every [`Postmand`]).
struct Process {
    postmand: Postmand,
    api: SocketAddr,
}

/// Deliveries a dispatcher sends per transaction in these tests (the default).
const BATCH: usize = 8;

impl Process {
    fn start(db: &TestDb, role: &str) -> Process {
        let api_port = free_port();
        let postmand = Postmand::start(
            &db.url,
            role,
            &[
                ("POSTMAND_HTTP_PORT", &api_port.to_string()),
                ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
                ("POSTMAND_WORKER_CONCURRENCY", "4"),
                ("POSTMAND_WORKER_BATCH_SIZE", &BATCH.to_string()),
                ("POSTMAND_POLLING_INTERVAL", "100"),
                ("POSTMAND_LOG_LEVEL", "warn"),
            ],
        );
        Process {
            postmand,
            api: SocketAddr::from(([127, 0, 0, 1], api_port)),
        }
    }

    fn wait_listening(&mut self) {
        self.postmand.wait_listening(self.api);
    }

    fn kill(&mut self) {
        self.postmand.kill();
    }
}

/// Counts arrivals per delivery id (the `webhook-id` header).
fn arrivals(receiver: &Receiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in receiver.requests.lock().unwrap().iter() {
        let id = request.header("webhook-id").unwrap_or("").to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn count_where(client: &mut postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// Waits until no delivery is left that has not succeeded.
fn wait_all_succeeded(client: &mut postgres::Client) {
    wait_until("every delivery to succeed", || {
        let left = count_where(
            client,
            "SELECT count(*) FROM deliveries WHERE status <> 'succeeded'",
        );
        if left == 0 { Ok(()) } else { Err(left) }
    });
}

#[test]
fn worker_killed_repeatedly_under_load_loses_nothing() {
    const DELIVERIES: i64 = 400;
    const KILLS: usize = 3;
    const CONCURRENCY: usize = 4;
    let receiver = Receiver::start(|_, _| Answer {
        delay: Duration::from_millis(5),
        ..Answer::status(200)
    });
    let db = TestDb::new("faults_kill_repeatedly");
    let mut client = db.client();
    let webhook = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO webhooks VALUES ($1, 'Kill', $2, 'application/json', '{200}', '', true, \
             50, 5, 1, 2, now(), now())",
            &[&webhook, &receiver.url("/kill")],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO deliveries SELECT gen_random_uuid(), $1, 'n' || i, now(), 0, 'pending', \
             now(), now() FROM generate_series(1, $2::integer) i",
            &[&webhook, &(DELIVERIES as i32)],
        )
        .unwrap();
    for kill in 0..KILLS {
        let before = receiver.count();
        let mut worker = Process::start(&db, "worker");
        // Kill once this worker is well into the queue, with attempts in flight.
        wait_until("the worker to make progress", || {
            let n = receiver.count() - before;
            if n >= 40 { Ok(()) } else { Err(n) }
        });
        let in_flight = receiver.in_progress.load(Ordering::SeqCst);
        worker.kill();
        eprintln!("kill {kill}: {in_flight} request(s) in flight at the receiver");
    }
    let _last = Process::start(&db, "worker");
    wait_all_succeeded(&mut client);
    let seen = arrivals(&receiver);
    let ids: Vec<String> = client
        .query("SELECT id::text FROM deliveries", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // At-least-once: only attempts sent and not yet committed at a kill can be sent twice, so
    // duplicates are at most a batch per dispatcher per kill.
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{DELIVERIES} deliveries, {KILLS} kills, {duplicates} duplicate arrival(s)");
    assert!(
        duplicates <= KILLS * CONCURRENCY * BATCH,
        "{duplicates} duplicates"
    );
    // A killed attempt leaves no row; every delivery has exactly its one successful attempt.
    let attempts = count_where(&mut client, "SELECT count(*) FROM delivery_attempts");
    assert_eq!(attempts, DELIVERIES);
    let unsuccessful = count_where(
        &mut client,
        "SELECT count(*) FROM delivery_attempts WHERE NOT success",
    );
    assert_eq!(unsuccessful, 0);
}

#[test]
fn three_workers_and_two_apis_under_load_deliver_each_once() {
    const PER_API: usize = 150;
    let receiver = Receiver::start(|_, _| Answer {
        delay: Duration::from_millis(2),
        ..Answer::status(200)
    });
    let db = TestDb::new("faults_three_workers");
    let workers: Vec<Process> = (0..3).map(|_| Process::start(&db, "worker")).collect();
    let mut apis: Vec<Process> = (0..2).map(|_| Process::start(&db, "api")).collect();
    for api in &mut apis {
        api.wait_listening();
    }
    let body = fixtures::merge(
        fixtures::webhook_body(),
        json!({"url": receiver.url("/three"), "max_delivery_attempts": 50,
               "retry_min_backoff": 1, "retry_max_backoff": 2, "delivery_attempt_timeout": 5}),
    );
    let created = http::post_json(apis[0].api, "/v1/webhooks", &body);
    assert_eq!(created.status, 201, "{}", created.text());
    let webhook_id = created.json()["id"].as_str().unwrap().to_string();
    // Two clients, one per API process, create deliveries at the same time.
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = apis
        .iter()
        .map(|api| {
            let addr = api.api;
            let webhook_id = webhook_id.clone();
            let accepted = Arc::clone(&accepted);
            thread::spawn(move || {
                for n in 0..PER_API {
                    let body = json!({"webhook_id": webhook_id, "payload": format!("{addr}-{n}")});
                    let response = http::post_json(addr, "/v1/deliveries", &body);
                    assert_eq!(response.status, 201, "{}", response.text());
                    let id = response.json()["id"].as_str().unwrap().to_string();
                    accepted.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 2 * PER_API);
    let mut client = db.client();
    wait_all_succeeded(&mut client);
    let seen = arrivals(&receiver);
    // No crash happened, so at-least-once means exactly once: each id arrived one time, which
    // also means never twice at the same time.
    let wrong: Vec<(&String, usize)> = accepted
        .iter()
        .map(|id| (id, seen.get(id).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "ids not delivered exactly once: {wrong:?}"
    );
    assert_eq!(seen.len(), accepted.len(), "arrivals of unknown ids");
    drop(workers);
}
