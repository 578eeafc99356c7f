//! The postmand benchmark: drives the real binary against a fast receiver on 127.0.0.1 and a
//! PostgreSQL server, and prints one table (figure, value, unit, target). Run by
//! `scripts/bench.sh`, which starts the database and builds everything in release mode.
//!
//! Figures (see issue 6): drain throughput (1 and 10 endpoints), live create-to-arrival latency
//! at a steady rate, API create throughput with keep-alive clients, the same latency beside a
//! dead endpoint's backlog, peak RSS of `postmand --role all`, the pgbench ceiling of the same
//! claim-and-record SQL, and the receiver's own rate. Issue 14 added what one message costs
//! (`cost.rs`); issue 15 events fanned out to 1, 10 and 100 webhooks (`events.rs`). Issue 17
//! added the API over a seeded history (`scale.rs`, with `history.rs`; only with `--only
//! scale`, or tiny in `--smoke`) and the drain by 1, 2 and 4 worker processes (`workers.rs`).
//!
//! Usage: bench --admin-url URL --postmand PATH --pgbench PATH [--smoke] [--out FILE]
//!        [--only FIGURES] [--baseline PATH] [--rows N]

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod cost;
mod events;
mod figures;
mod history;
mod pgbench;
mod receiver;
mod report;
mod scale;
mod server;
mod workers;

use figures::*;
use pgbench::*;
use receiver::*;
use report::*;
use server::*;

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Loads and durations; `--smoke` shrinks every one so the whole run takes seconds.
pub(crate) struct Plan {
    pub(crate) drain: usize,
    pub(crate) live_rate: u64,
    pub(crate) live_secs: u64,
    pub(crate) api_clients: usize,
    /// The crowd of keep-alive API clients (issue 10's second row).
    pub(crate) api_crowd: usize,
    pub(crate) api_secs: u64,
    pub(crate) dead_backlog: usize,
    pub(crate) pgbench_secs: u64,
    pub(crate) concurrency: usize,
    /// Issue 14: round trips of the one-client cost figure, after `cost_warmup` unmeasured ones.
    pub(crate) cost_messages: usize,
    pub(crate) cost_warmup: usize,
    /// Issue 14: rounds of the cost figures, each binary in turn; the figures are medians
    /// (single rounds swung from 0.51x to 0.64x on the same pair of binaries).
    pub(crate) cost_rounds: usize,
    /// Issue 14: clients of the fresh-versus-warm figure, and round trips per client.
    pub(crate) clients: usize,
    pub(crate) clients_messages: usize,
    /// Issue 15: counted seconds of event creates at each fan-out (`api_clients` clients).
    pub(crate) events_secs: u64,
    /// Issue 15: unmeasured seconds of event creates before them, then a wait of 11 s for the
    /// statistics to settle; 0 skips both (the pool's connections are opened in the count).
    pub(crate) events_warm_up_secs: u64,
    /// Issue 15: events of the 100-way fan-out backlog that the events drain figure drains.
    pub(crate) event_backlog: usize,
    /// Issue 17: deliveries of the scale figure's seeded history (`--rows` overrides it).
    pub(crate) scale_rows: usize,
    /// Issue 17: counted requests of each list shape of the scale figure.
    pub(crate) scale_requests: usize,
    /// Issue 17: single messages on each of the scale figure's databases (after
    /// `cost_warmup` uncounted ones each).
    pub(crate) scale_messages: usize,
}

pub(crate) const FULL: Plan = Plan {
    drain: 20_000,
    live_rate: 200,
    live_secs: 30,
    api_clients: 32,
    api_crowd: 256,
    api_secs: 15,
    dead_backlog: 2_000,
    pgbench_secs: 15,
    concurrency: 16,
    cost_messages: 2_000,
    cost_warmup: 200,
    cost_rounds: 3,
    clients: 8,
    clients_messages: 500,
    events_secs: 10,
    events_warm_up_secs: 1,
    event_backlog: 200,
    scale_rows: 2_000_000,
    scale_requests: 200,
    scale_messages: 1_000,
};

pub(crate) const SMOKE: Plan = Plan {
    drain: 300,
    live_rate: 50,
    live_secs: 2,
    api_clients: 4,
    api_crowd: 8,
    api_secs: 2,
    dead_backlog: 50,
    pgbench_secs: 2,
    concurrency: 16,
    cost_messages: 20,
    cost_warmup: 5,
    cost_rounds: 1,
    clients: 2,
    clients_messages: 5,
    events_secs: 1,
    events_warm_up_secs: 0,
    event_backlog: 3,
    scale_rows: 20_000,
    scale_requests: 20,
    scale_messages: 20,
};

pub(crate) struct Args {
    pub(crate) admin_url: String,
    pub(crate) postmand: String,
    pub(crate) pgbench: String,
    pub(crate) smoke: bool,
    pub(crate) out: Option<String>,
    /// Run only the figures whose names contain this (receiver, pgbench, drain, live, api,
    /// isolation, contention, cost, events, workers, scale), for profiling one at a time.
    /// Scale runs only when named here (or in `--smoke`).
    pub(crate) only: Option<String>,
    /// Another postmand binary (e.g. main's, built in a `git worktree`) whose API figures are
    /// measured in the same run, for a before/after ratio.
    pub(crate) baseline: Option<String>,
    /// wrk, the load generator of the API figures; without it the driver's own ureq clients
    /// load the API (they cost more CPU than the server on 2 cores, so the rate is lower).
    pub(crate) wrk: Option<String>,
    /// `--rows N`: deliveries of the scale figure's history instead of the plan's.
    pub(crate) rows: Option<usize>,
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
        rows: None,
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
            "--rows" => {
                let rows = it.next().ok_or("--rows needs a value")?;
                args.rows = Some(
                    rows.replace('_', "")
                        .parse()
                        .map_err(|_| format!("--rows: not a number: {rows}"))?,
                );
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.admin_url.is_empty() {
        return Err("--admin-url is required".into());
    }
    Ok(args)
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
    // 1b. The baseline's drain, on a fresh server, for a before/after ratio in this run.
    if let (Some(baseline), true) = (&args.baseline, wants("drain")) {
        let db = Database::create(&args.admin_url, "bench_drain_baseline")?;
        let mut server = Postmand::start(baseline, &db.url, &plan, "all")?;
        server.wait_ready()?;
        let one = drain(&db, &receiver, plan.drain, 1)?;
        rows.push(row(
            "Drain, 1 endpoint (baseline)",
            one,
            "deliveries/s",
            "",
            None,
        ));
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
                let body = delivery_body(api_webhook(&db)?);
                let load = Load {
                    url: &format!("http://{}/v1/deliveries", server.api),
                    body: &body,
                    clients,
                    secs: plan.api_secs,
                };
                let (api, client) = api_load(&args, &load)?;
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

    // 3b. Events (issue 15): creates fanned out to 1, 10 and 100 webhooks, statements and
    // commits per event, and the drain of a 100-way fan-out backlog; for the baseline too when
    // it has POST /v1/events (a build older than issue 15 fails it: its rows are left out).
    let mut breakdowns = String::new();
    if wants("events") {
        let (event_rows, breakdown) =
            events::figures(&args, &plan, &receiver, (&args.postmand, ""))?;
        rows.extend(event_rows);
        breakdowns.push_str(&breakdown);
        if let Some(baseline) = &args.baseline {
            match events::figures(&args, &plan, &receiver, (baseline, " (baseline)")) {
                Ok((event_rows, _)) => rows.extend(event_rows),
                Err(e) => eprintln!("bench: no events figures for the baseline: {e}"),
            }
        }
    }

    // 3c. Cost per message (issue 14): one client, then several on a fresh and a warm database.
    if wants("cost") {
        let mut binaries = vec![("", args.postmand.as_str())];
        if let Some(baseline) = &args.baseline {
            binaries.push((" (baseline)", baseline.as_str()));
        }
        // Rounds in turn (now, baseline, now, ...), so a slow minute of the machine hits both.
        let mut rounds: Vec<Vec<cost::Cost>> = binaries.iter().map(|_| Vec::new()).collect();
        let mut fresh_warm: Vec<Vec<(f64, f64)>> = binaries.iter().map(|_| Vec::new()).collect();
        for _ in 0..plan.cost_rounds {
            for ((_, binary), costs) in binaries.iter().zip(rounds.iter_mut()) {
                costs.push(cost::one_client(
                    &args,
                    binary,
                    &plan,
                    &receiver,
                    "bench_cost",
                )?);
            }
            for ((_, binary), runs) in binaries.iter().zip(fresh_warm.iter_mut()) {
                runs.push(cost::fresh_and_warm(
                    &args,
                    binary,
                    &plan,
                    &receiver,
                    plan.clients,
                )?);
            }
        }
        let costs: Vec<cost::Cost> = rounds.into_iter().map(cost::median).collect();
        for ((label, _), cost) in binaries.iter().zip(&costs) {
            rows.push(row(
                &format!("1 client: create→arrival p50{label}"),
                cost.latency.p50,
                "ms",
                if label.is_empty() { "<= 2" } else { "" },
                label.is_empty().then_some(cost.latency.p50 <= 2.0),
            ));
            rows.push(row(
                &format!("1 client: create→arrival p99{label}"),
                cost.latency.p99,
                "ms",
                "",
                None,
            ));
            rows.push(row(
                &format!("1 client: PostgreSQL CPU per message{label}"),
                cost.cpu_ms,
                "ms",
                if label.is_empty() { "<= 1.2" } else { "" },
                label.is_empty().then_some(cost.cpu_ms <= 1.2),
            ));
            rows.push(row(
                &format!("1 client: WAL per message{label}"),
                cost.wal_bytes,
                "bytes",
                "",
                None,
            ));
            breakdowns.push_str(&cost::render_statements(
                &format!("Statements per message{label}"),
                cost,
            ));
            breakdowns.push_str(&cost::render_wal(&format!("WAL per message{label}"), cost));
        }
        if let [now, before] = costs.as_slice() {
            let cpu = now.cpu_ms / before.cpu_ms;
            rows.push(row(
                "1 client: PostgreSQL CPU per message / baseline (same run)",
                cpu,
                "x",
                "<= 0.55",
                Some(cpu <= 0.55),
            ));
            let wal = now.wal_bytes / before.wal_bytes;
            rows.push(row(
                "1 client: WAL per message / baseline (same run)",
                wal,
                "x",
                "<= 0.7",
                Some(wal <= 0.7),
            ));
        }
        for ((label, _), runs) in binaries.iter().zip(&fresh_warm) {
            let median = |pick: &dyn Fn(&(f64, f64)) -> f64| {
                let mut values: Vec<f64> = runs.iter().map(pick).collect();
                values.sort_by(|a, b| a.total_cmp(b));
                percentile(&values, 0.5)
            };
            let (fresh, warm) = (median(&|r| r.0), median(&|r| r.1));
            let ratio = median(&|r| r.0 / r.1);
            let clients = plan.clients;
            rows.push(row(
                &format!("{clients} clients, fresh database: messages/s{label}"),
                fresh,
                "msg/s",
                "",
                None,
            ));
            rows.push(row(
                &format!("{clients} clients, warm database (analysed, new connections): messages/s{label}"),
                warm,
                "msg/s",
                "",
                None,
            ));
            rows.push(row(
                &format!("{clients} clients: fresh / warm{label}"),
                ratio,
                "x",
                if label.is_empty() { ">= 0.9" } else { "" },
                label.is_empty().then_some(ratio >= 0.9),
            ));
        }
    }

    // 3d. Several worker processes (issue 17).
    if wants("workers") {
        let (worker_rows, breakdown) = workers::figures(&args, &plan, &receiver)?;
        rows.extend(worker_rows);
        breakdowns.push_str(&breakdown);
    }

    // 3e. The API over a seeded history (issue 17): minutes at 2,000,000 rows, so only when
    // named (or tiny, in a whole smoke run).
    let named = |figure: &str| {
        args.only
            .as_deref()
            .is_some_and(|only| only.split(',').any(|o| figure.contains(o)))
    };
    if named("scale") || (args.smoke && args.only.is_none()) {
        rows.extend(scale::figures(&args, &plan, &receiver)?);
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

    let table = format!("{}{breakdowns}", render(&rows));
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
