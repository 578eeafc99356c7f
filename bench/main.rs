//! The postmand benchmark: drives the real binary against a fast receiver on 127.0.0.1 and a
//! PostgreSQL server, and prints one table (figure, value, unit, target). Run by
//! `scripts/bench.sh`, which starts the database and builds everything in release mode.
//!
//! Figures (see issue 6): drain throughput (1 and 10 endpoints), live create-to-arrival latency
//! at a steady rate, API create throughput with keep-alive clients, the same latency beside a
//! dead endpoint's backlog, peak RSS of `postmand --role all`, the pgbench ceiling of the same
//! claim-and-record SQL, and the receiver's own rate.
//!
//! Usage: bench --admin-url URL --postmand PATH --pgbench PATH [--smoke] [--out FILE]

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Loads and durations; `--smoke` shrinks every one so the whole run takes seconds.
struct Plan {
    drain: usize,
    live_rate: u64,
    live_secs: u64,
    api_clients: usize,
    /// The crowd of keep-alive API clients (issue 10's second row).
    api_crowd: usize,
    api_secs: u64,
    dead_backlog: usize,
    pgbench_secs: u64,
    concurrency: usize,
}

const FULL: Plan = Plan {
    drain: 20_000,
    live_rate: 200,
    live_secs: 30,
    api_clients: 32,
    api_crowd: 256,
    api_secs: 15,
    dead_backlog: 2_000,
    pgbench_secs: 15,
    concurrency: 16,
};

const SMOKE: Plan = Plan {
    drain: 300,
    live_rate: 50,
    live_secs: 2,
    api_clients: 4,
    api_crowd: 8,
    api_secs: 2,
    dead_backlog: 50,
    pgbench_secs: 2,
    concurrency: 16,
};

struct Args {
    admin_url: String,
    postmand: String,
    pgbench: String,
    smoke: bool,
    out: Option<String>,
    /// Run only the figures whose names contain this (receiver, pgbench, drain, live, api,
    /// isolation), for profiling one at a time.
    only: Option<String>,
    /// Another postmand binary (e.g. main's, built in a `git worktree`) whose API figures are
    /// measured in the same run, for a before/after ratio.
    baseline: Option<String>,
    /// wrk, the load generator of the API figures; without it the driver's own ureq clients
    /// load the API (they cost more CPU than the server on 2 cores, so the rate is lower).
    wrk: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        admin_url: String::new(),
        postmand: "target/release/postmand".into(),
        pgbench: "pgbench".into(),
        smoke: false,
        out: None,
        only: None,
        baseline: None,
        wrk: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--admin-url" => args.admin_url = it.next().ok_or("--admin-url needs a value")?,
            "--postmand" => args.postmand = it.next().ok_or("--postmand needs a value")?,
            "--pgbench" => args.pgbench = it.next().ok_or("--pgbench needs a value")?,
            "--out" => args.out = Some(it.next().ok_or("--out needs a value")?),
            "--smoke" => args.smoke = true,
            "--only" => args.only = Some(it.next().ok_or("--only needs a value")?),
            "--baseline" => args.baseline = Some(it.next().ok_or("--baseline needs a value")?),
            "--wrk" => args.wrk = Some(it.next().ok_or("--wrk needs a value")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.admin_url.is_empty() {
        return Err("--admin-url is required".into());
    }
    Ok(args)
}

/// One row of the result table.
struct Row {
    figure: String,
    value: String,
    unit: &'static str,
    target: String,
    met: Option<bool>,
}

fn row(figure: &str, value: f64, unit: &'static str, target: &str, met: Option<bool>) -> Row {
    let value = if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    Row {
        figure: figure.into(),
        value,
        unit,
        target: target.into(),
        met,
    }
}

fn main() {
    if let Err(e) = run() {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("bench: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let plan = if args.smoke { SMOKE } else { FULL };
    let receiver = Receiver::start(8)?;
    let dead = DeadReceiver::start()?;
    let mut rows = Vec::new();

    let wants = |figure: &str| {
        args.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|o| figure.contains(o)))
    };

    if wants("receiver") {
        let rate = receiver_rate(&receiver, if args.smoke { 1 } else { 3 })?;
        rows.push(row(
            "Receiver alone (8 clients)",
            rate,
            "req/s",
            "well above the drain rate",
            None,
        ));
    }

    let ceiling = if wants("pgbench drain") {
        pgbench_ceilings(&args, &plan)?
    } else {
        Ceiling {
            one: f64::NAN,
            batch: default_batch()?,
            batched_deliveries: f64::NAN,
        }
    };

    let db = Database::create(&args.admin_url, "bench_drain")?;
    let mut peak_rss_kib = 0;
    {
        // 1. Drain, one endpoint then ten.
        let mut server = Postmand::start(&args.postmand, &db.url, &plan, "all")?;
        server.wait_ready()?;
        if wants("drain") {
            let one = drain(&db, &receiver, plan.drain, 1)?;
            rows.push(row(
                "Drain, 1 endpoint",
                one,
                "deliveries/s",
                ">= 3000",
                Some(one >= 3000.0),
            ));
            let share = 100.0 * one / ceiling.one;
            rows.push(row(
                "Drain as share of the pgbench ceiling",
                share,
                "%",
                ">= 60",
                Some(share >= 60.0),
            ));
            rows.push(row(
                "Drain as share of pgbench with the same batches",
                100.0 * one / ceiling.batched_deliveries,
                "%",
                "",
                None,
            ));
            let ten = drain(&db, &receiver, plan.drain, 10)?;
            rows.push(row(
                "Drain, 10 endpoints",
                ten,
                "deliveries/s",
                ">= 3000",
                Some(ten >= 3000.0),
            ));
        }

        // 2. Live latency.
        let mut live_p99 = f64::NAN;
        if wants("live isolation contention") {
            let live = live_latency(&db, &server, &receiver, &plan, None)?;
            push_latency(&mut rows, "Live latency", &live, 3.0, 10.0);
            live_p99 = live.p99;
        }

        peak_rss_kib = peak_rss_kib.max(server.peak_rss_kib());

        // 4. Isolation: live latency beside a dead endpoint's backlog.
        if wants("isolation") {
            let isolated = live_latency(
                &db,
                &server,
                &receiver,
                &plan,
                Some(Dead {
                    receiver: &dead,
                    webhooks: 1,
                    backlog: plan.dead_backlog,
                }),
            )?;
            let limit = 2.0 * live_p99.max(1.0);
            rows.push(row(
                "Isolation: live latency p50",
                isolated.p50,
                "ms",
                "",
                None,
            ));
            rows.push(row(
                "Isolation: live latency p99",
                isolated.p99,
                "ms",
                &format!("<= {limit:.1} (2x live p99)"),
                Some(isolated.p99 <= limit),
            ));
        }

        // 4b. Contention (issue 11): live latency beside 8 dead endpoints whose backlogs'
        // oldest rows are in flight, so they rank first in every claim.
        if wants("contention") {
            let contended = live_latency(
                &db,
                &server,
                &receiver,
                &plan,
                Some(Dead {
                    receiver: &dead,
                    webhooks: 8,
                    backlog: plan.dead_backlog / 8,
                }),
            )?;
            rows.push(row(
                "Contention, 8 dead endpoints: live latency p50",
                contended.p50,
                "ms",
                "",
                None,
            ));
            rows.push(row(
                "Contention, 8 dead endpoints: live latency p99",
                contended.p99,
                "ms",
                "",
                None,
            ));
            if live_p99.is_finite() {
                let ratio = contended.p99 / live_p99;
                rows.push(row(
                    "Contention p99 / live p99 (same run)",
                    ratio,
                    "x",
                    "<= 2",
                    Some(ratio <= 2.0),
                ));
            }
        }
        server.stop()?;
    }
    // 3. API throughput with keep-alive clients, each binary on a fresh server.
    let mut api_rss_kib = 0;
    if wants("api") {
        let insert_rate = pgbench_insert_rate(&args, &plan)?;
        rows.push(row(
            &format!("pgbench one-row INSERT, {} clients", plan.api_clients),
            insert_rate,
            "tx/s",
            "",
            None,
        ));
        let mut binaries = vec![("", args.postmand.as_str())];
        if let Some(baseline) = &args.baseline {
            binaries.push((" (baseline)", baseline.as_str()));
        }
        for (label, binary) in binaries {
            let db = Database::create(&args.admin_url, "bench_api")?;
            let mut server = Postmand::start(binary, &db.url, &plan, "all")?;
            server.wait_ready()?;
            for clients in [plan.api_clients, plan.api_crowd] {
                let (api, client) = match &args.wrk {
                    Some(wrk) => (
                        api_throughput_wrk(wrk, &db, &server, &plan, clients)?,
                        "wrk",
                    ),
                    None => (api_throughput(&db, &server, &plan, clients)?, "ureq"),
                };
                let name = format!("API creates, {clients} keep-alive clients ({client}){label}");
                let (rate_target, rate_met) = if clients == plan.api_clients {
                    (
                        format!(">= {insert_rate:.0} (pgbench INSERT)"),
                        Some(api.rate >= insert_rate),
                    )
                } else {
                    (String::new(), None)
                };
                let p99_limit = if clients == plan.api_clients {
                    15.0
                } else {
                    50.0
                };
                rows.push(row(&name, api.rate, "req/s", &rate_target, rate_met));
                rows.push(row(&format!("{name}: p50"), api.p50, "ms", "", None));
                rows.push(row(
                    &format!("{name}: p99"),
                    api.p99,
                    "ms",
                    &format!("<= {p99_limit}"),
                    Some(api.p99 <= p99_limit),
                ));
                rows.push(row(&format!("{name}: max"), api.max, "ms", "", None));
                rows.push(row(
                    &format!("{name}: errors"),
                    api.errors as f64,
                    "requests",
                    "0",
                    Some(api.errors == 0),
                ));
            }
            if label.is_empty() {
                api_rss_kib = server.peak_rss_kib();
            }
            server.stop()?;
        }
    }

    // 5. Memory.
    let mib = peak_rss_kib as f64 / 1024.0;
    rows.push(row(
        "Peak RSS of postmand --role all (drain, live, isolation)",
        mib,
        "MiB",
        "<= 20",
        Some(mib <= 20.0),
    ));
    if api_rss_kib > 0 {
        rows.push(row(
            "Peak RSS of postmand --role all (API figures, up to 256 connections)",
            api_rss_kib as f64 / 1024.0,
            "MiB",
            "",
            None,
        ));
    }
    // 6. The ceiling itself.
    rows.push(row(
        "pgbench claim-and-record ceiling (1 delivery per transaction)",
        ceiling.one,
        "tx/s",
        "",
        None,
    ));
    rows.push(row(
        &format!(
            "pgbench, same SQL, {} deliveries per transaction",
            ceiling.batch
        ),
        ceiling.batched_deliveries,
        "deliveries/s",
        "",
        None,
    ));

    let table = render(&rows);
    print!("{table}");
    if let Some(out) = &args.out {
        let header = format!(
            "# Benchmark\n\nMade by `scripts/bench.sh` on {} ({} cores, {} GiB memory), postmand {}.\n\n",
            now_utc(),
            thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_gib(),
            env!("CARGO_PKG_VERSION"),
        );
        std::fs::write(out, format!("{header}{table}"))?;
    }
    drop(db);
    Ok(())
}

fn render(rows: &[Row]) -> String {
    let mut out =
        String::from("| figure | value | unit | target | met |\n|---|---:|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.figure, r.value, r.unit, r.target, met
        ));
    }
    out
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn memory_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| (kib + 512 * 1024) / (1024 * 1024))
}

// ---------------------------------------------------------------------------------------------
// The database and the postmand process.

struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin_url: &str, name: &str) -> Result<Database> {
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(Database {
            admin_url: admin_url.to_string(),
            name: name.to_string(),
            url: format!("{base}/{name}"),
        })
    }

    fn client(&self) -> Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.url, postgres::NoTls)?)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Postmand {
    child: Child,
    api: SocketAddr,
}

impl Postmand {
    fn start(binary: &str, url: &str, plan: &Plan, role: &str) -> Result<Postmand> {
        let migrate = Command::new(binary)
            .arg("migrate")
            .env("POSTMAND_DATABASE_URL", url)
            .env("POSTMAND_LOG_LEVEL", "warn")
            .status()?;
        if !migrate.success() {
            return Err("postmand migrate failed".into());
        }
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["--role", role])
            .env("POSTMAND_DATABASE_URL", url)
            .env("POSTMAND_HTTP_PORT", port.to_string())
            .env("POSTMAND_HEALTH_CHECK_HTTP_PORT", free_port()?.to_string())
            .env("POSTMAND_BIND_ADDRESS", "127.0.0.1")
            // POSTMAND_BENCH_SET_X=v runs postmand with POSTMAND_X=v, to compare settings.
            .envs(std::env::vars().filter_map(|(k, v)| {
                k.strip_prefix("POSTMAND_BENCH_SET_")
                    .map(|name| (format!("POSTMAND_{name}"), v.clone()))
            }))
            .env("POSTMAND_WORKER_CONCURRENCY", plan.concurrency.to_string())
            .env(
                "POSTMAND_LOG_LEVEL",
                std::env::var("POSTMAND_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Postmand {
            child,
            api: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.api).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("postmand exited: {status}").into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err("postmand did not start listening".into())
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("postmand exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for Postmand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn insert_webhook(
    client: &mut postgres::Client,
    url: &str,
    active: bool,
    timeout_secs: i32,
) -> Result<uuid::Uuid> {
    let id = uuid::Uuid::new_v4();
    client.execute(
        "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active, \
         max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, created_at, updated_at) \
         VALUES ($1, 'bench', $2, 'application/json', '{200}', 'bench-secret', $3, 5, $4, 1, 60, now(), now())",
        &[&id, &url, &active, &timeout_secs],
    )?;
    Ok(id)
}

fn pending(client: &mut postgres::Client) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'",
            &[],
        )?
        .get(0))
}

// ---------------------------------------------------------------------------------------------
// Figure 1: drain.

/// Queues `n` deliveries across `endpoints` inactive webhooks, activates them all at once, and
/// times until none is pending.
fn drain(db: &Database, receiver: &Receiver, n: usize, endpoints: usize) -> Result<f64> {
    let mut client = db.client()?;
    let mut ids = Vec::new();
    for _ in 0..endpoints {
        ids.push(insert_webhook(&mut client, &receiver.url(), false, 5)?);
    }
    client.execute(
        "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
         SELECT gen_random_uuid(), ($1::uuid[])[1 + i % array_length($1::uuid[], 1)], '{\"event\":\"bench\",\"n\":' || i || '}', \
                now(), 0, 'pending', now(), now() \
         FROM generate_series(1, $2::integer) AS i",
        &[&ids, &(n as i32)],
    )?;
    client.batch_execute("ANALYZE deliveries")?;
    let before = receiver.count();
    let started = Instant::now();
    client.execute(
        "UPDATE webhooks SET active = true WHERE id = ANY($1)",
        &[&ids],
    )?;
    client.batch_execute("NOTIFY postmand_deliveries")?;
    let deadline = started + Duration::from_secs(300);
    // Watch the receiver (free) rather than count pending rows (a query that would compete
    // with the drain), then confirm in the database.
    while receiver.count() - before < n as u64 {
        if Instant::now() > deadline {
            return Err("drain did not finish in 300 s".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    while pending(&mut client)? > 0 {
        if Instant::now() > deadline {
            return Err("drain did not finish in 300 s".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = receiver.count() - before;
    if delivered < n as u64 {
        return Err(format!("receiver got {delivered} of {n}").into());
    }
    client.execute(
        "UPDATE webhooks SET active = false WHERE id = ANY($1)",
        &[&ids],
    )?;
    Ok(n as f64 / elapsed)
}

// ---------------------------------------------------------------------------------------------
// Figures 2 and 4: live latency.

struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn push_latency(rows: &mut Vec<Row>, name: &str, l: &Latency, p50_target: f64, p99_target: f64) {
    rows.push(row(
        &format!("{name} p50"),
        l.p50,
        "ms",
        &format!("<= {p50_target}"),
        Some(l.p50 <= p50_target),
    ));
    rows.push(row(&format!("{name} p95"), l.p95, "ms", "", None));
    rows.push(row(
        &format!("{name} p99"),
        l.p99,
        "ms",
        &format!("<= {p99_target}"),
        Some(l.p99 <= p99_target),
    ));
}

/// Creates deliveries through the API at a steady rate; latency is from the create call
/// returning to the receiver getting the request. With `dead`, first queues a backlog for a
/// webhook whose endpoint never answers.
/// Dead endpoints beside a live-latency run: `webhooks` webhooks on a receiver that never
/// answers, each with `backlog` due deliveries.
struct Dead<'a> {
    receiver: &'a DeadReceiver,
    webhooks: usize,
    backlog: usize,
}

fn live_latency(
    db: &Database,
    server: &Postmand,
    receiver: &Receiver,
    plan: &Plan,
    dead: Option<Dead<'_>>,
) -> Result<Latency> {
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, &receiver.url(), true, 5)?;
    let mut dead_webhooks = Vec::new();
    if let Some(dead) = dead {
        for _ in 0..dead.webhooks {
            let id = insert_webhook(&mut client, &dead.receiver.url(), true, 5)?;
            client.execute(
                "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
                 SELECT gen_random_uuid(), $1, '{}', now(), 0, 'pending', now(), now() FROM generate_series(1, $2::integer)",
                &[&id, &(dead.backlog as i32)],
            )?;
            dead_webhooks.push(id);
        }
        client.batch_execute("NOTIFY postmand_deliveries")?;
        // Let the dead endpoints take what they can before measuring.
        thread::sleep(Duration::from_millis(500));
    }
    let agent = agent();
    let url = format!("http://{}/v1/deliveries", server.api);
    let total = plan.live_rate * plan.live_secs;
    let interval = Duration::from_secs_f64(1.0 / plan.live_rate as f64);
    let mut created: HashMap<u64, Instant> = HashMap::new();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    for seq in 0..total {
        let due = started + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let payload = format!("{run_id}-{seq}");
        let body = format!("{{\"webhook_id\":\"{webhook}\",\"payload\":\"{payload}\"}}");
        let response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())?;
        if response.status().as_u16() != 201 {
            return Err(format!("create answered {}", response.status()).into());
        }
        created.insert(seq, Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = Vec::with_capacity(total as usize);
    loop {
        latencies.clear();
        let arrivals = receiver
            .arrivals
            .lock()
            .map_err(|_| "receiver lock poisoned")?;
        for seq in 0..total {
            if let (Some(at), Some(sent)) =
                (arrivals.get(&format!("{run_id}-{seq}")), created.get(&seq))
            {
                latencies.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
            }
        }
        drop(arrivals);
        if latencies.len() == total as usize || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if latencies.len() < total as usize {
        return Err(format!(
            "only {} of {total} live deliveries arrived",
            latencies.len()
        )
        .into());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    client.execute(
        "UPDATE webhooks SET active = false WHERE id = $1",
        &[&webhook],
    )?;
    for id in dead_webhooks {
        client.execute("UPDATE webhooks SET active = false WHERE id = $1", &[&id])?;
    }
    Ok(Latency {
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
    })
}

// ---------------------------------------------------------------------------------------------
// Figure 3: API throughput.

struct ApiFigures {
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    errors: u64,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `clients` keep-alive clients create deliveries (for an inactive webhook, so dispatchers
/// stay out of the way) as fast as they can for `api_secs`.
fn api_throughput(
    db: &Database,
    server: &Postmand,
    plan: &Plan,
    clients: usize,
) -> Result<ApiFigures> {
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", false, 5)?;
    let url = format!("http://{}/v1/deliveries", server.api);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..clients {
        let url = url.clone();
        let stop = Arc::clone(&stop);
        let errors = Arc::clone(&errors);
        let run_started = Instant::now();
        threads.push(thread::spawn(move || {
            let agent = agent();
            let body = format!("{{\"webhook_id\":\"{webhook}\",\"payload\":\"{{\\\"event\\\":\\\"api-bench\\\"}}\"}}");
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
                    .map(|mut r| {
                        let _ = r.body_mut().read_to_vec();
                        r.status().as_u16() == 201
                    })
                    .map_err(|e| e.to_string());
                match ok {
                    Ok(true) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
                    Ok(false) | Err(_) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!(
                                "bench: API create failed after {:.1} s of the run: {ok:?}",
                                run_started.elapsed().as_secs_f64()
                            );
                        }
                    }
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    thread::sleep(Duration::from_secs(plan.api_secs));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in threads {
        latencies.extend(t.join().map_err(|_| "client thread panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(ApiFigures {
        rate: latencies.len() as f64 / elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        errors: errors.load(Ordering::Relaxed),
    })
}

/// The API figures with wrk as the load: `clients` keep-alive connections on 2 threads for
/// `api_secs`, creating deliveries for an inactive webhook.
fn api_throughput_wrk(
    wrk: &str,
    db: &Database,
    server: &Postmand,
    plan: &Plan,
    clients: usize,
) -> Result<ApiFigures> {
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", false, 5)?;
    let script =
        std::env::temp_dir().join(format!("postmand-bench-wrk-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = '{{\"webhook_id\":\"{webhook}\",\"payload\":\"{{\\\\\"event\\\\\":\\\\\"api-bench\\\\\"}}\"}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let output = Command::new(wrk)
        .args(["-t", "2", "-c", &clients.to_string(), "-d"])
        .arg(format!("{}s", plan.api_secs))
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{}/v1/deliveries", server.api))
        .output()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output: {text}").into())
}

/// Rate, p50, p99, max and errors from wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<ApiFigures> {
    let millis = |value: &str| -> Option<f64> {
        let split = value.find(|c: char| c.is_ascii_alphabetic())?;
        let (number, unit) = value.split_at(split);
        let number: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            "m" => number * 60_000.0,
            _ => return None,
        })
    };
    let field = |prefix: &str, index: usize| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))?
            .split_whitespace()
            .nth(index)
    };
    let errors: u64 = text
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                rest.trim().parse::<u64>().ok()
            } else {
                line.strip_prefix("Socket errors:").map(|rest| {
                    rest.split(',')
                        .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                        .sum()
                })
            }
        })
        .sum();
    Some(ApiFigures {
        rate: field("Requests/sec:", 1)?.parse().ok()?,
        p50: millis(field("50%", 1)?)?,
        p99: millis(field("99%", 1)?)?,
        max: millis(field("Latency", 3)?)?,
        errors,
    })
}

// ---------------------------------------------------------------------------------------------
// Figure 6: the pgbench ceiling.

/// A dispatcher's transaction as pgbench can run it: the claim (`DUE_WEBHOOKS`, then
/// `CLAIM_BATCH` for `:batch` deliveries) and the record (`RECORD_ATTEMPTS`, every attempt a
/// success) in one transaction, with the dispatchers' concurrency and session settings
/// ([`pgbench_session`]). Constants stand where postmand binds values it computed.
const PGBENCH_SCRIPT: &str = r#"BEGIN;
SELECT w.id AS due_webhook FROM webhooks w CROSS JOIN LATERAL (SELECT p.scheduled_at, p.id FROM deliveries p WHERE p.webhook_id = w.id AND p.status = 'pending' AND p.scheduled_at <= coalesce(NULL::timestamptz, now()) ORDER BY p.scheduled_at, p.id LIMIT 1) head WHERE w.active AND w.id <> ALL('{}'::uuid[]) ORDER BY head.scheduled_at, head.id LIMIT 1 \aset
SELECT coalesce(array_agg(c.id), '{}') AS claimed_ids FROM (SELECT d.id, d.payload, d.delivery_attempts FROM deliveries d WHERE d.webhook_id = :due_webhook AND d.status = 'pending' AND d.scheduled_at <= coalesce(NULL::timestamptz, now()) ORDER BY d.scheduled_at, d.id LIMIT :batch FOR UPDATE OF d SKIP LOCKED) c \gset
WITH input AS (SELECT i.delivery_id, 'succeeded'::varchar AS status, NULL::bigint AS retry_in_ms, gen_random_uuid() AS attempt_id, 'POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n{"event":"bench"}'::text AS raw_request, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'::text AS raw_response, 200 AS response_status_code, 1 AS execution_duration, true AS success, ''::text AS error FROM unnest(:claimed_ids::uuid[]) AS i(delivery_id)), moved AS (UPDATE deliveries d SET delivery_attempts = d.delivery_attempts + 1, status = i.status, scheduled_at = CASE WHEN i.retry_in_ms IS NULL THEN d.scheduled_at ELSE clock_timestamp() + i.retry_in_ms * interval '1 millisecond' END, updated_at = clock_timestamp() FROM input i WHERE d.id = i.delivery_id AND d.status = 'pending' RETURNING d.id, d.webhook_id) INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, response_status_code, execution_duration, success, error, created_at) SELECT i.attempt_id, m.webhook_id, m.id, i.raw_request, i.raw_response, i.response_status_code, i.execution_duration, i.success, i.error, clock_timestamp() FROM moved m JOIN input i ON i.delivery_id = m.id RETURNING delivery_id;
COMMIT;
"#;

/// The session settings of a dispatcher's connection as pgbench options: every pooled session
/// has `jit = off` (`db`), a dispatcher's adds `store::queue::SESSION_SETTINGS`.
fn pgbench_session() -> String {
    let mut options = String::from("-c jit=off");
    for (name, value) in postmand::store::queue::SESSION_SETTINGS {
        options.push_str(&format!(" -c {name}={value}"));
    }
    options
}

/// Deliveries per transaction in postmand's default configuration (POSTMAND_WORKER_BATCH_SIZE).
fn default_batch() -> Result<u32> {
    postmand::config::SETTINGS
        .iter()
        .find(|setting| setting.name == "POSTMAND_WORKER_BATCH_SIZE")
        .and_then(|setting| setting.default.parse().ok())
        .ok_or_else(|| "no default for POSTMAND_WORKER_BATCH_SIZE".into())
}

/// What the database alone does with postmand's claim-and-record transaction: per second,
/// with one delivery per transaction (the ceiling) and with postmand's default batches.
struct Ceiling {
    one: f64,
    batch: u32,
    batched_deliveries: f64,
}

fn pgbench_ceilings(args: &Args, plan: &Plan) -> Result<Ceiling> {
    let batch = default_batch()?;
    Ok(Ceiling {
        one: pgbench_ceiling(args, plan, 1)?,
        batch,
        batched_deliveries: pgbench_ceiling(args, plan, batch)? * f64::from(batch),
    })
}

/// Transactions per second of [`PGBENCH_SCRIPT`] with `batch` deliveries each.
fn pgbench_ceiling(args: &Args, plan: &Plan, batch: u32) -> Result<f64> {
    let db = Database::create(&args.admin_url, "bench_pgbench")?;
    let migrate = Command::new(&args.postmand)
        .arg("migrate")
        .env("POSTMAND_DATABASE_URL", &db.url)
        .env("POSTMAND_LOG_LEVEL", "warn")
        .status()?;
    if !migrate.success() {
        return Err("postmand migrate failed".into());
    }
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", true, 5)?;
    // Far more rows than the run can claim, so no transaction ever finds the queue empty.
    let rows = if args.smoke { 50_000 } else { 400_000 } * if batch > 1 { 2 } else { 1 };
    client.execute(
        "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, '{\"event\":\"bench\"}', now() - interval '1 hour', 0, 'pending', now(), now() \
         FROM generate_series(1, $2::integer)",
        &[&webhook, &rows],
    )?;
    client.batch_execute("VACUUM ANALYZE deliveries")?;
    let script = std::env::temp_dir().join(format!("postmand-bench-{}.sql", std::process::id()));
    std::fs::File::create(&script)?.write_all(PGBENCH_SCRIPT.as_bytes())?;
    let output = Command::new(&args.pgbench)
        // The queue never runs dry (see `rows`), so every batch is full.
        .env("PGOPTIONS", pgbench_session())
        .args([
            "-n",
            "-M",
            "prepared",
            "-D",
            "due_webhook=00000000-0000-0000-0000-000000000000",
            "-D",
        ])
        .arg(format!("batch={batch}"))
        .args([
            "-c",
            &plan.concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &plan.pgbench_secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&db.url)
        .output()?;
    let _ = std::fs::remove_file(&script);
    pgbench_tps(&output)
}

/// Transactions per second of a one-row INSERT into `deliveries` (what a create writes), with
/// `api_clients` pgbench clients, each its own transaction: what the database does for creates
/// without group commit.
fn pgbench_insert_rate(args: &Args, plan: &Plan) -> Result<f64> {
    let db = Database::create(&args.admin_url, "bench_pgbench_insert")?;
    let migrate = Command::new(&args.postmand)
        .arg("migrate")
        .env("POSTMAND_DATABASE_URL", &db.url)
        .env("POSTMAND_LOG_LEVEL", "warn")
        .status()?;
    if !migrate.success() {
        return Err("postmand migrate failed".into());
    }
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", false, 5)?;
    let script =
        std::env::temp_dir().join(format!("postmand-bench-insert-{}.sql", std::process::id()));
    std::fs::File::create(&script)?.write_all(
        b"INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
          VALUES (gen_random_uuid(), :webhook, '{\"event\":\"api-bench\"}', now(), 0, 'pending', now(), now());\n",
    )?;
    let output = Command::new(&args.pgbench)
        .env("PGOPTIONS", "-c jit=off")
        .args(["-n", "-M", "prepared", "-D"])
        .arg(format!("webhook={webhook}"))
        .args([
            "-c",
            &plan.api_clients.to_string(),
            "-j",
            "2",
            "-T",
            &plan.pgbench_secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&db.url)
        .output()?;
    let _ = std::fs::remove_file(&script);
    pgbench_tps(&output)
}

/// The `tps = ` figure of a pgbench run.
fn pgbench_tps(output: &std::process::Output) -> Result<f64> {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench output: {text}").into())
}

// ---------------------------------------------------------------------------------------------
// Receivers.

/// A fast receiver: tiny_http with several threads, answering 200 at once and noting when each
/// payload arrived.
struct Receiver {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Receiver {
    fn start(threads: usize) -> Result<Receiver> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?);
        let addr = server.server_addr().to_ip().ok_or("receiver address")?;
        let count = Arc::new(AtomicU64::new(0));
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        for _ in 0..threads {
            let server = Arc::clone(&server);
            let count = Arc::clone(&count);
            let arrivals = Arc::clone(&arrivals);
            thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let at = Instant::now();
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    if !body.starts_with('{')
                        && let Ok(mut map) = arrivals.lock()
                    {
                        map.insert(body, at);
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = request.respond(tiny_http::Response::from_string("ok"));
                }
            });
        }
        // tiny_http 0.12 can strand a new connection when several arrive at once until another
        // connection closes (see `spawn_nudger` in src/api/mod.rs); closing one every 20 ms keeps
        // the receiver from stalling the dispatchers' connections.
        thread::spawn(move || {
            loop {
                let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(20));
                thread::sleep(Duration::from_millis(20));
            }
        });
        Ok(Receiver {
            addr,
            count,
            arrivals,
        })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The receiver's own rate with 8 keep-alive clients, to show it is not the bottleneck.
fn receiver_rate(receiver: &Receiver, secs: u64) -> Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let before = receiver.count();
    let mut threads = Vec::new();
    for _ in 0..8 {
        let url = receiver.url();
        let stop = Arc::clone(&stop);
        threads.push(thread::spawn(move || {
            let agent = agent();
            while !stop.load(Ordering::Relaxed) {
                let _ = agent
                    .post(&url)
                    .send(b"{}".as_slice())
                    .map(|mut r| r.body_mut().read_to_vec());
            }
        }));
    }
    let started = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok((receiver.count() - before) as f64 / started.elapsed().as_secs_f64())
}

/// An endpoint that accepts connections and never answers.
struct DeadReceiver {
    addr: SocketAddr,
}

impl DeadReceiver {
    fn start() -> Result<DeadReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Ok(DeadReceiver { addr })
    }

    fn url(&self) -> String {
        format!("http://{}/dead", self.addr)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_report_is_read() {
        let report = "Running 10s test @ http://127.0.0.1:18000/v1/deliveries
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.57ms  789.93us  57.67ms   95.97%
    Req/Sec    10.31k     1.46k   19.04k    76.62%
  Latency Distribution
     50%    1.47ms
     75%    1.66ms
     90%    2.00ms
     99%    3.05ms
  206249 requests in 10.10s, 117.95MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 4
Requests/sec:  20419.87
Transfer/sec:     11.68MB
";
        let figures = super::parse_wrk(report).unwrap();
        assert_eq!(figures.rate, 20419.87);
        assert_eq!((figures.p50, figures.p99, figures.max), (1.47, 3.05, 57.67));
        assert_eq!(figures.errors, 7);
    }
}
