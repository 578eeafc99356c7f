//! Faults of the database itself: a restart while the API is under load, a database that refuses
//! connections, and a worker that outlives a restart.
//!
//! Restarts run on a private PostgreSQL cluster of the test's own (`common::cluster::Cluster`,
//! started with `scripts/lib/pg.sh`), so the server the other tests share is never disturbed. The service is
//! the real binary ([`Postmand`]), except for the refusal test, which only needs the API and runs
//! it in-process on the shared server as a login role of its own.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use postgres::error::SqlState;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::cluster::Cluster;
use crate::common::fixtures::{self, merge, webhook_body};
use crate::common::process::{Postmand, free_port};
use crate::common::receiver::{Answer, Receiver};
use crate::common::{TestApp, TestDb, admin_url, http, wait_until};

/// The longest an API or health request may take while the database is away. A request waits at
/// most 3 s for a connection and a health ping 2 s; anything near this bound is a hang.
const REQUEST_BOUND: Duration = Duration::from_secs(10);

/// The pause between two requests of the load client, so a few seconds of load stay a few
/// hundred deliveries.
const LOAD_PACE: Duration = Duration::from_millis(2);

/// The error object of every request the database cannot serve.
fn unavailable() -> Value {
    json!({"code": 11, "message": "service unavailable", "details": "the database is unavailable; try again"})
}

/// An answer as a client saw it: status (0 when none came) and body (or the transport error),
/// and how long it took.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    took: Duration,
}

impl Reply {
    /// The body as JSON, or the body as a JSON string when it is not JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }
}

/// One request with `Connection: close`, that never waits longer than [`REQUEST_BOUND`] and
/// never panics: a transport failure is a reply with status 0, for the caller to judge.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Reply {
    let started = Instant::now();
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, REQUEST_BOUND)?;
        stream.set_read_timeout(Some(REQUEST_BOUND))?;
        stream.set_write_timeout(Some(REQUEST_BOUND))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        stream.write_all(request.as_bytes())?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received)?;
        Ok(received)
    };
    let result = exchange();
    let took = started.elapsed();
    let received = match result {
        Ok(received) => received,
        Err(e) => {
            return Reply {
                status: 0,
                body: format!("transport error: {e}"),
                took,
            };
        }
    };
    let text = String::from_utf8_lossy(&received).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Reply {
            status: 0,
            body: format!("incomplete response: {text:?}"),
            took,
        };
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        body: body.to_string(),
        took,
    }
}

/// One request of the load client.
#[derive(Debug, Clone)]
struct Exchange {
    /// The delivery's payload, `{"n":<sequence number>}`.
    payload: String,
    started: Instant,
    reply: Reply,
}

impl Exchange {
    /// When the answer was complete.
    fn ended(&self) -> Instant {
        self.started + self.reply.took
    }
}

/// A thread POSTing deliveries one after another until stopped, recording every answer.
struct Load {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(api: SocketAddr, webhook_id: &str) -> Load {
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let record = Arc::clone(&exchanges);
        let webhook_id = webhook_id.to_string();
        let thread = thread::spawn(move || {
            for n in 0u64.. {
                let payload = format!(r#"{{"n":{n}}}"#);
                let body = json!({"webhook_id": webhook_id, "payload": payload}).to_string();
                let started = Instant::now();
                let reply = call(api, "POST", "/v1/deliveries", Some(&body));
                record.lock().unwrap().push(Exchange {
                    payload,
                    started,
                    reply,
                });
                match stopped.recv_timeout(LOAD_PACE) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
        Load {
            exchanges,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every exchange so far.
    fn snapshot(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Stops the client after its current request and returns every exchange.
    fn finish(mut self) -> Vec<Exchange> {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the load client panicked");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `n` due deliveries of `webhook` with payloads `{"phase":"<phase>","n":<i>}`, then a NOTIFY
/// as the API sends one; returns their ids.
fn queue(c: &mut postgres::Client, webhook: Uuid, phase: &str, n: i32) -> Vec<Uuid> {
    let ids = c
        .query(
            "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, \
                 status, created_at, updated_at) \
             SELECT gen_random_uuid(), $1, '{\"phase\":\"' || $2 || '\",\"n\":' || i || '}', \
                 now(), 0, 'pending', now(), now() \
             FROM generate_series(1, $3) i \
             RETURNING id",
            &[&webhook, &phase, &n],
        )
        .expect("insert deliveries")
        .iter()
        .map(|row| row.get(0))
        .collect();
    c.batch_execute("NOTIFY postmand_deliveries")
        .expect("notify");
    ids
}

/// Waits until every delivery of `ids` has succeeded; the last value seen on timeout is the
/// count of each status.
fn wait_all_succeeded(c: &mut postgres::Client, what: &str, ids: &[Uuid]) {
    let ids = ids.to_vec();
    wait_until(what, || {
        let statuses: HashMap<String, i64> = c
            .query(
                "SELECT status, count(*) FROM deliveries WHERE id = ANY($1) GROUP BY status",
                &[&ids],
            )
            .expect("count statuses")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        if statuses.get("succeeded").copied() == Some(ids.len() as i64) {
            Ok(())
        } else {
            Err(statuses)
        }
    });
}

/// `since` to `at`, or zero when `at` came first.
fn after(since: Instant, at: Instant) -> Duration {
    at.saturating_duration_since(since)
}

#[test]
fn database_restart_under_load_loses_nothing() {
    let cluster = Cluster::start("restart_under_load");
    let url = cluster.migrated_database();
    let receiver = Receiver::status(200);
    let (api_port, health_port) = (free_port(), free_port());
    let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
    let health: SocketAddr = ([127, 0, 0, 1], health_port).into();
    let mut service = Postmand::start(
        &url,
        "all",
        &[
            ("POSTMAND_HTTP_PORT", &api_port.to_string()),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", &health_port.to_string()),
            ("POSTMAND_POLLING_INTERVAL", "200"),
            ("POSTMAND_WORKER_CONCURRENCY", "4"),
        ],
    );
    service.wait_listening(api);
    let created = http::post_json(
        api,
        "/v1/webhooks",
        &merge(
            webhook_body(),
            json!({
                "url": receiver.url("/hook"),
                "valid_status_codes": [200],
                "max_delivery_attempts": 50,
                "delivery_attempt_timeout": 2,
                "retry_min_backoff": 1,
                "retry_max_backoff": 2
            }),
        ),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let webhook_id = created.json()["id"]
        .as_str()
        .expect("webhook id")
        .to_string();

    let load = Load::start(api, &webhook_id);
    wait_until("100 deliveries accepted before the restart", || {
        let accepted = load
            .snapshot()
            .iter()
            .filter(|e| e.reply.status == 201)
            .count();
        if accepted >= 100 {
            Ok(())
        } else {
            Err(accepted)
        }
    });

    cluster.down();
    let down = Instant::now();

    // While the database is down: the health check fails at once, and every request answers
    // 503 with the error object, promptly; the process carries on.
    let probe = call(health, "GET", "/healthz", None);
    assert_eq!(
        (probe.status, probe.body.as_str()),
        (503, r#"{"success":false}"#),
        "{probe:?}"
    );
    assert!(probe.took < REQUEST_BOUND, "{probe:?}");
    let during: Vec<Exchange> = wait_until("two answers while the database is down", || {
        let answered: Vec<Exchange> = load
            .snapshot()
            .into_iter()
            .filter(|e| e.started >= down)
            .collect();
        if answered.len() >= 2 {
            Ok(answered)
        } else {
            Err(answered)
        }
    });
    for exchange in &during {
        assert_eq!(
            (exchange.reply.status, exchange.reply.json()),
            (503, unavailable()),
            "{exchange:?}"
        );
        assert!(exchange.reply.took < REQUEST_BOUND, "{exchange:?}");
    }
    service.assert_running();

    let starting = Instant::now();
    cluster.up();
    let up = Instant::now();
    let outage = starting - down;

    let first_accepted = wait_until("the API to accept a delivery again", || {
        let exchanges = load.snapshot();
        exchanges
            .iter()
            .find(|e| e.started >= down && e.reply.status == 201)
            .map(Exchange::ended)
            .ok_or_else(|| exchanges.last().cloned())
    });
    let health_back = wait_until("the health check to pass again", || {
        let probe = call(health, "GET", "/healthz", None);
        if (probe.status, probe.body.as_str()) == (200, r#"{"success":true}"#) {
            Ok(Instant::now())
        } else {
            Err(probe)
        }
    });
    wait_until("100 deliveries accepted after the restart", || {
        let accepted = load
            .snapshot()
            .iter()
            .filter(|e| e.started >= up && e.reply.status == 201)
            .count();
        if accepted >= 100 {
            Ok(())
        } else {
            Err(accepted)
        }
    });
    let exchanges = load.finish();

    // Every answer was a 201 or the 503 error object (never a 500, never a transport error),
    // and none took long.
    let unexpected: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| {
            !(e.reply.status == 201 || (e.reply.status == 503 && e.reply.json() == unavailable()))
                || e.reply.took >= REQUEST_BOUND
        })
        .collect();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    // Requests made and answered while the server was down all got 503.
    let accepted_while_down: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.started >= down && e.ended() <= starting && e.reply.status != 503)
        .collect();
    assert!(
        accepted_while_down.is_empty(),
        "answered while the database was down: {accepted_while_down:#?}"
    );

    // Every delivery the API accepted is delivered: none was lost in the restart.
    let accepted: Vec<(Uuid, String)> = exchanges
        .iter()
        .filter(|e| e.reply.status == 201)
        .map(|e| {
            let id = e.reply.json()["id"]
                .as_str()
                .and_then(|id| Uuid::parse_str(id).ok())
                .unwrap_or_else(|| panic!("no delivery id in {e:?}"));
            (id, e.payload.clone())
        })
        .collect();
    let ids: Vec<Uuid> = accepted.iter().map(|(id, _)| *id).collect();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect to postmand");
    wait_all_succeeded(&mut c, "every accepted delivery to succeed", &ids);
    let all_delivered = Instant::now();
    let received: HashSet<String> = receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let missing: Vec<&String> = accepted
        .iter()
        .map(|(_, payload)| payload)
        .filter(|payload| !received.contains(*payload))
        .collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    // Rows beyond the accepted would be inserts whose commit went through although the client
    // got a 503 (the connection died between commit and reply): reported, not asserted, since a
    // client retrying them only causes a duplicate, which at-least-once allows.
    let rows: i64 = c
        .query_one("SELECT count(*) FROM deliveries", &[])
        .expect("count deliveries")
        .get(0);
    assert!(service.running(), "postmand exited:\n{}", service.log());

    let refused = exchanges.iter().filter(|e| e.reply.status == 503).count();
    let slowest_503 = exchanges
        .iter()
        .filter(|e| e.reply.status == 503)
        .map(|e| e.reply.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "database_restart_under_load_loses_nothing: {} requests, {} accepted, {refused} answered \
         503 (slowest {slowest_503:?}), {rows} delivery rows; database down {outage:?} (pg_ctl \
         start took {:?}); after it accepted connections: first 201 in {:?}, healthz 200 in \
         {:?}, every accepted delivery succeeded in {:?}; receiver saw {} requests",
        exchanges.len(),
        accepted.len(),
        up - starting,
        after(up, first_accepted),
        after(up, health_back),
        after(up, all_delivered),
        receiver.count(),
    );
}

/// A login role without superuser rights (PostgreSQL exempts superusers from CONNECTION
/// LIMIT), dropped on Drop. Create it before the database it is granted on, so that it is
/// dropped after it.
struct LoginRole {
    name: String,
}

impl LoginRole {
    fn create(test: &str) -> LoginRole {
        let name = format!("r_{}_{test}", std::process::id());
        admin()
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS \"{name}\"; CREATE ROLE \"{name}\" LOGIN"
            ))
            .expect("create role");
        LoginRole { name }
    }

    /// Lets the role read and write every table of `db`.
    fn grant(&self, db: &TestDb) {
        db.client()
            .batch_execute(&format!(
                "GRANT USAGE ON SCHEMA public TO \"{0}\"; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO \"{0}\"; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO \"{0}\"",
                self.name
            ))
            .expect("grant");
    }

    /// The URL of `database` on the shared server, as this role.
    fn url(&self, database: &str) -> String {
        let config: postgres::Config = admin_url().parse().expect("admin URL");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the test server is not on TCP: {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("postgres://{}@{host}:{port}/{database}", self.name)
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.name));
        }
    }
}

fn admin() -> postgres::Client {
    postgres::Client::connect(&admin_url(), postgres::NoTls).expect("connect to the test server")
}

#[test]
fn database_refusing_connections_returns_503_then_recovers() {
    let role = LoginRole::create("refusing_connections");
    let db = TestDb::new("refusing_connections");
    role.grant(&db);
    let name = db.name.clone();
    let role_url = role.url(&name);
    let config = db.config_with(&[("POSTMAND_DATABASE_URL", &role_url)]);
    let app = TestApp::start_with(db, &config, postmand::cli::Role::Api);
    let webhook = fixtures::webhook(&app, json!({}));
    let webhook_id = webhook["id"].as_str().expect("webhook id").to_string();
    assert_eq!(app.get("/v1/webhooks").status, 200);

    // Refuse new connections, then end the pool's: it must reconnect, and is refused.
    let mut admin = admin();
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" CONNECTION LIMIT 0"))
        .expect("limit connections");
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .expect("terminate backends");
    wait_until("the database's backends to be gone", || {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .expect("count backends")
            .get(0);
        if n == 0 { Ok(()) } else { Err(n) }
    });
    let refusal = postgres::Client::connect(&role_url, postgres::NoTls)
        .err()
        .expect("a connection to be refused");
    assert_eq!(
        refusal.code(),
        Some(&SqlState::TOO_MANY_CONNECTIONS),
        "{refusal}"
    );

    let delivery = json!({"webhook_id": webhook_id, "payload": "{}"}).to_string();
    let requests = [
        ("GET", "/v1/webhooks".to_string(), None),
        ("GET", format!("/v1/webhooks/{webhook_id}"), None),
        (
            "POST",
            "/v1/deliveries".to_string(),
            Some(delivery.as_str()),
        ),
    ];
    for (method, path, body) in &requests {
        let reply = call(app.api, method, path, *body);
        assert_eq!(
            (reply.status, reply.json()),
            (503, unavailable()),
            "{method} {path}: {reply:?}"
        );
        assert!(reply.took < REQUEST_BOUND, "{method} {path}: {reply:?}");
    }
    let probe = call(app.health, "GET", "/healthz", None);
    assert_eq!(
        (probe.status, probe.body.as_str()),
        (503, r#"{"success":false}"#),
        "{probe:?}"
    );
    assert!(probe.took < REQUEST_BOUND, "{probe:?}");

    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" CONNECTION LIMIT -1"))
        .expect("lift the limit");
    let lifted = Instant::now();
    wait_until("the API to answer 200 again", || {
        let reply = call(app.api, "GET", "/v1/webhooks", None);
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply)
        }
    });
    let recovered = lifted.elapsed();
    let created = call(app.api, "POST", "/v1/deliveries", Some(&delivery));
    assert_eq!(created.status, 201, "{created:?}");
    let probe = call(app.health, "GET", "/healthz", None);
    assert_eq!(
        (probe.status, probe.body.as_str()),
        (200, r#"{"success":true}"#)
    );
    eprintln!(
        "database_refusing_connections_returns_503_then_recovers: 200 again {recovered:?} after \
         the limit was lifted"
    );
}

#[test]
fn worker_survives_database_restart() {
    let cluster = Cluster::start("worker_restart");
    let url = cluster.migrated_database();
    // A little slowness keeps a backlog in flight when the database stops.
    let receiver = Receiver::start(|_, _| Answer {
        delay: Duration::from_millis(50),
        ..Answer::status(200)
    });
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect to postmand");
    // Valid code 200, 50 attempts, 1-2 s backoff, 5 s timeout.
    let webhook = fixtures::insert_webhook(&mut c, &receiver.url("/hook"), 50, (1, 2));
    // Polling once a minute: within this test, only wake-ups start work.
    let mut worker = Postmand::start(
        &url,
        "worker",
        &[
            ("POSTMAND_HTTP_PORT", "0"),
            ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
            ("POSTMAND_POLLING_INTERVAL", "60000"),
            ("POSTMAND_WORKER_CONCURRENCY", "4"),
        ],
    );
    worker.wait_for_log("worker-started");

    let before = queue(&mut c, webhook, "before", 10);
    wait_all_succeeded(&mut c, "the deliveries queued before the restart", &before);

    // Stop the database while the worker drains a backlog.
    let across = queue(&mut c, webhook, "across", 60);
    wait_until("the backlog to be in progress", || {
        let n = receiver.count();
        if n >= before.len() + 5 {
            Ok(())
        } else {
            Err(n)
        }
    });
    drop(c);
    cluster.down();
    let sent_before_stop = receiver.count() - before.len();
    // The listener lost its connection and keeps trying; the process carries on.
    worker.wait_for_log("listener-connect-error");
    worker.assert_running();
    cluster.up();
    let up = Instant::now();

    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("reconnect to postmand");
    wait_all_succeeded(&mut c, "the backlog after the restart", &across);
    let backlog_done = up.elapsed();
    let mut arrivals: HashMap<String, usize> = HashMap::new();
    for request in receiver.requests.lock().unwrap().iter() {
        let id = request.header("webhook-id").unwrap_or("<none>").to_string();
        *arrivals.entry(id).or_default() += 1;
    }
    let missing: Vec<&Uuid> = before
        .iter()
        .chain(&across)
        .filter(|id| !arrivals.contains_key(&id.to_string()))
        .collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    // At-least-once: an attempt in flight when the database stopped could not be recorded, so
    // its delivery was sent again after the restart. These duplicates are expected.
    let resent = arrivals.values().filter(|&&n| n > 1).count();

    // The LISTEN connection is back and every connected dispatcher is idle again: its last
    // statement the ROLLBACK of an empty claim, or the COMMIT of a batch that took all the due
    // work it saw (issue 14: it then waits instead of claiming again). From here only a
    // notification can start work
    // before the next poll, a minute away (or a dispatcher still in an error pause, which is
    // invisible here; the outage is too short, and the backlog drained since, for one to be).
    wait_until("the listener back and the dispatchers idle", || {
        let rows: Vec<(String, String, String)> = c
            .query(
                "SELECT application_name, coalesce(state, ''), query FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name LIKE 'postmand%' \
                 ORDER BY 1",
                &[],
            )
            .expect("list backends")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let listening = rows
            .iter()
            .any(|(app, _, query)| app == "postmand-listener" && query.starts_with("LISTEN"));
        let dispatchers: Vec<_> = rows
            .iter()
            .filter(|(app, _, _)| app == "postmand")
            .collect();
        let idle = !dispatchers.is_empty()
            && dispatchers.iter().all(|(_, state, query)| {
                state == "idle" && (query == "ROLLBACK" || query == "COMMIT")
            });
        if listening && idle { Ok(()) } else { Err(rows) }
    });
    let notified = Instant::now();
    let after_restart = queue(&mut c, webhook, "after", 5);
    wait_all_succeeded(
        &mut c,
        "the deliveries notified after the restart",
        &after_restart,
    );
    let picked_up = notified.elapsed();
    assert!(
        picked_up < Duration::from_secs(10),
        "a notified delivery took {picked_up:?} (polling is every 60 s)"
    );
    assert!(worker.running(), "the worker exited:\n{}", worker.log());
    eprintln!(
        "worker_survives_database_restart: {sent_before_stop} of {} backlog requests sent \
         before the stop, backlog done {backlog_done:?} after the restart, {resent} sent twice; \
         deliveries notified after the restart succeeded in {picked_up:?}",
        across.len()
    );
}
