//! Helpers every integration test uses: a database per test cloned from a migrated template, the
//! API started in-process on a free port, a raw HTTP client, fixtures and `wait_until`.

pub mod cluster;
pub mod fixtures;
pub mod http;
pub mod process;
pub mod receiver;
pub mod tls_postgres;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use postmand::cli::Role;
use postmand::config::Config;
use postmand::shutdown::Shutdown;

pub use http::Response;

/// How long any wait in a test may take; `POSTMAND_TEST_TIMEOUT_SECS` raises it on slow machines.
pub fn test_timeout() -> Duration {
    let secs = std::env::var("POSTMAND_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after [`test_timeout`] with the
/// last value seen.
pub fn wait_until<T, V: std::fmt::Debug>(what: &str, mut check: impl FnMut() -> Result<T, V>) -> T {
    let deadline = Instant::now() + test_timeout();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last value: {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Asserts that the JSON object `text` has exactly `keys`, in this order.
pub fn assert_key_order(text: &str, keys: &[&str]) {
    let value: serde_json::Value = serde_json::from_str(text).expect("JSON object");
    assert_eq!(
        value.as_object().map(|o| o.len()),
        Some(keys.len()),
        "{text}"
    );
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no key {k} in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order of {text}"
    );
}

/// The `id` of every item in the list `list` of a 200 answer (`GET /v1/deliveries` has its items
/// in `deliveries`), in order.
pub fn ids_in(response: &Response, list: &str) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

/// The server every test database lives on.
pub fn admin_url() -> String {
    std::env::var("POSTMAND_TEST_DATABASE_URL").expect(
        "POSTMAND_TEST_DATABASE_URL is not set: run the tests through scripts/test.sh, \
         which starts a throwaway PostgreSQL",
    )
}

/// `url` with its database name replaced.
pub fn url_for_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &base[..host_end])
}

const TEMPLATE: &str = "postmand_tmpl";

/// Serialises CREATE DATABASE ... TEMPLATE: PostgreSQL refuses to clone a template that another
/// session is connected to, and concurrent clones count as connections.
static CLONE_LOCK: Mutex<()> = Mutex::new(());
static TEMPLATE_READY: OnceLock<()> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn admin() -> postgres::Client {
    postgres::Client::connect(&admin_url(), postgres::NoTls).expect("connect to the test server")
}

/// Drops leftovers of earlier runs, then creates and migrates the template once per run.
fn prepare_template() {
    TEMPLATE_READY.get_or_init(|| {
        let mut client = admin();
        let leftovers = client
            .query(
                "SELECT datname FROM pg_database \
                 WHERE (datname LIKE 't\\_%' AND datname NOT LIKE $2) OR datname = $1",
                &[&TEMPLATE, &format!("t\\_%\\_{}\\_%", std::process::id())],
            )
            .expect("list databases");
        for row in leftovers {
            let name: String = row.get(0);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .expect("drop leftover database");
        }
        client
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
            .expect("create template");
        let mut template =
            postgres::Client::connect(&url_for_database(&admin_url(), TEMPLATE), postgres::NoTls)
                .expect("connect to template");
        postmand::db::migrate::run(&mut template).expect("migrate template");
        template.close().expect("close template connection");
    });
}

/// A database of one test's own, dropped when the test ends.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Whether dropping this handle drops the database.
    owned: bool,
}

impl TestDb {
    /// A fresh, migrated database named after the test.
    pub fn new(test: &str) -> TestDb {
        prepare_template();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut name = format!("t_{n}_{}_{}", std::process::id(), test.to_lowercase());
        name.truncate(63);
        let _guard = CLONE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}"))
            .expect("clone template");
        let url = url_for_database(&admin_url(), &name);
        TestDb {
            name,
            url,
            owned: true,
        }
    }

    /// A second handle on the same database that does not drop it (for a second process).
    pub fn share(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }

    /// An empty database, not migrated.
    pub fn empty(test: &str) -> TestDb {
        // Leftovers of earlier runs are dropped first, or that sweep could take this one.
        prepare_template();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut name = format!("t_{n}_{}_{}", std::process::id(), test.to_lowercase());
        name.truncate(63);
        admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create database");
        let url = url_for_database(&admin_url(), &name);
        TestDb {
            name,
            url,
            owned: true,
        }
    }

    /// A direct connection for arranging and checking rows.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test database")
    }

    /// A configuration pointing at this database, both servers on free loopback ports.
    pub fn config(&self) -> Config {
        self.config_with(&[])
    }

    /// [`TestDb::config`] with some variables set to other values.
    pub fn config_with(&self, overrides: &[(&str, &str)]) -> Config {
        let url = self.url.clone();
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            if let Some((_, value)) = overrides.iter().find(|(k, _)| k == name) {
                return Some(value.clone());
            }
            match name {
                "POSTMAND_DATABASE_URL" => Some(url.clone()),
                "POSTMAND_HTTP_PORT" | "POSTMAND_HEALTH_CHECK_HTTP_PORT" => Some("0".into()),
                "POSTMAND_BIND_ADDRESS" => Some("127.0.0.1".into()),
                "POSTMAND_HTTP_THREADS" => Some("4".into()),
                "POSTMAND_DATABASE_MAX_OPEN_CONNS" => Some("4".into()),
                "POSTMAND_WORKER_CONCURRENCY" => Some("4".into()),
                _ => None,
            }
        })
        .expect("test configuration")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Ok(mut client) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The service running in this process against a test database.
pub struct TestApp {
    /// The database (dropped after the app stops).
    pub db: TestDb,
    running: Option<postmand::Running>,
    shutdown: Shutdown,
    /// The API's address.
    pub api: SocketAddr,
    /// The health server's address.
    pub health: SocketAddr,
}

impl TestApp {
    /// Starts the API role on a fresh database, and waits until `/healthz` says every part of
    /// it runs.
    pub fn start(test: &str) -> TestApp {
        let db = TestDb::new(test);
        let config = db.config();
        let app = TestApp::start_with(db, &config, Role::Api);
        app.wait_healthy();
        app
    }

    /// Starts API and dispatchers (`--role all`) on a fresh database, with config overrides,
    /// and waits until `/healthz` says every part of them runs.
    pub fn start_all(test: &str, overrides: &[(&str, &str)]) -> TestApp {
        let db = TestDb::new(test);
        let config = db.config_with(overrides);
        let app = TestApp::start_with(db, &config, Role::All);
        app.wait_healthy();
        app
    }

    /// Waits until `/healthz` answers 200. `start_with` returns once both servers listen; the
    /// parts behind them (create writers, listener, dispatchers) come up on their own threads
    /// and may still be connecting (a CI run on a loaded machine saw a first 503).
    pub fn wait_healthy(&self) {
        wait_until("/healthz 200", || {
            match http::try_request(self.health, "GET", "/healthz", &[], None).map(|r| r.status) {
                Ok(200) => Ok(()),
                other => Err(other),
            }
        });
    }

    /// Starts `role` with `config` on `db`.
    pub fn start_with(db: TestDb, config: &Config, role: Role) -> TestApp {
        let shutdown = Shutdown::new();
        let running = postmand::start(role, config, &shutdown).expect("start postmand");
        TestApp {
            api: running.api_addr().unwrap_or_else(|| running.health_addr()),
            health: running.health_addr(),
            running: Some(running),
            shutdown,
            db,
        }
    }

    /// Test hook: makes the API's create writer panic (its supervisor replaces it).
    pub fn panic_create_writer(&self) {
        self.running
            .as_ref()
            .and_then(|running| running.api())
            .expect("an API in this role")
            .panic_create_writer();
    }

    /// `GET path` on the API.
    pub fn get(&self, path: &str) -> Response {
        http::request(self.api, "GET", path, &[], None)
    }

    /// Waits until delivery `id` leaves `pending` and returns it.
    pub fn finished(&self, id: &str) -> serde_json::Value {
        wait_until(&format!("delivery {id} to finish"), || {
            let delivery = self.get(&format!("/v1/deliveries/{id}")).json();
            if delivery["status"] != "pending" {
                Ok(delivery)
            } else {
                Err(delivery)
            }
        })
    }

    /// The attempts of delivery `delivery_id`, oldest first.
    pub fn attempts(&self, delivery_id: &str) -> Vec<serde_json::Value> {
        let mut list = self
            .get(&format!("/v1/delivery-attempts?delivery_id={delivery_id}"))
            .json()["delivery_attempts"]
            .as_array()
            .expect("a list of attempts")
            .clone();
        list.reverse();
        list
    }

    /// `DELETE path` on the API.
    pub fn delete(&self, path: &str) -> Response {
        http::request(self.api, "DELETE", path, &[], None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send("POST", path, &body.to_string())
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send("PUT", path, &body.to_string())
    }

    /// Asserts that `method path`, sent without a body, is answered `status` with exactly the
    /// error object `error`.
    #[track_caller]
    pub fn assert_error(&self, method: &str, path: &str, status: u16, error: serde_json::Value) {
        let response = http::request(self.api, method, path, &[], None);
        assert_eq!(
            response.status,
            status,
            "{method} {path}: {}",
            response.text()
        );
        assert_eq!(response.json(), error, "{method} {path}");
    }

    /// `method path` with a raw body sent as `application/json`.
    pub fn send(&self, method: &str, path: &str, body: &str) -> Response {
        http::request(
            self.api,
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.request();
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}
