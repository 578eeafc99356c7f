//! Issue 17: the API with history (`--only scale`, `--rows N`; not in the default run, since
//! 2,000,000 rows take about a minute to seed). Seeds `bench/seed.sql` into a database of
//! its own, starts `postmand --role all` on it, and reports:
//!
//! - p50 and p99 of every list shape, one client, one request at a time, each on a new
//!   connection (see [`one_connection_each`]), and the plain list on one kept-alive
//!   connection too;
//! - the attempts shapes again after 365 days of (empty) daily partitions are added before the
//!   seeded ten, as after a year with retention off;
//! - a deep page by offset, and pages by cursor from the same depth (when the build pages by
//!   cursor: list responses carry `next_cursor` and accept `?cursor=`);
//! - single-message create→arrival beside a fresh empty database in the same run, the two
//!   servers' messages taking turns so a slow second of the machine hits both;
//! - the time to drop a day of history (`history.rs`).

use super::*;

/// The seed, with psql's `:name` variables; [`seed`] substitutes them as psql does.
const SEED: &str = include_str!("seed.sql");

/// Webhooks of the seeded database.
const WEBHOOKS: usize = 200;

/// Days the seeded deliveries spread over, up to now.
const DAYS: i32 = 10;

/// The depth of the deep-page figures (less on a database too small for it).
const DEEP_OFFSET: usize = 100_000;

/// Requests before each list's counted ones, to warm its plan and pages.
const WARM_UP: usize = 10;

/// Every row of the figure.
pub(crate) fn figures(args: &Args, plan: &Plan, receiver: &Receiver) -> Result<Vec<Row>> {
    let rows_n = args.rows.unwrap_or(plan.scale_rows);
    let mut rows = Vec::new();
    let db = Database::create(&args.admin_url, "bench_scale")?;
    migrate(&args.postmand, &db.url)?;
    let mut client = db.client()?;
    history::prepare(&mut client, DAYS)?;
    let started = Instant::now();
    seed(&mut client, rows_n)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("bench: seeded {rows_n} deliveries in {seconds:.1} s");
    rows.push(row(
        &format!(
            "Scale: seed {rows_n} deliveries, attempts and events (with VACUUM ANALYZE, CHECKPOINT)"
        ),
        seconds,
        "s",
        "",
        None,
    ));

    let mut server = Postmand::start(&args.postmand, &db.url, plan, "all")?;
    server.wait_ready()?;
    let base = format!("http://{}", server.api);
    let fresh = one_connection_each();
    let shapes = list_shapes(&mut client, rows_n)?;
    // With --baseline, the other binary's API on the same history, each shape timed right
    // after this build's, for a ratio from the same run.
    let mut baseline = match &args.baseline {
        Some(binary) => {
            let mut other = Postmand::start(binary, &db.url, plan, "api")?;
            other.wait_ready()?;
            Some(other)
        }
        None => None,
    };
    time_shapes(
        &mut rows,
        &fresh,
        &format!("Scale, {rows_n} rows"),
        &shapes,
        (&base, baseline.as_ref()),
        plan.scale_requests,
    )?;
    // The attempts lists again after a year with retention off: 365 days of partitions before
    // the seeded ones (empty: planning a statement costs each partition it may read, rows or
    // not).
    client.execute(
        "SELECT postmand_create_attempt_partitions(now() - interval '365 days', \
             now() - $1::integer * interval '1 day')",
        &[&DAYS],
    )?;
    client.batch_execute("ANALYZE delivery_attempts")?;
    let attempt_shapes: Vec<(String, String)> = shapes
        .iter()
        .filter(|(name, _)| name.contains("attempts"))
        .cloned()
        .collect();
    time_shapes(
        &mut rows,
        &fresh,
        &format!("Scale, {rows_n} rows, a year of daily partitions"),
        &attempt_shapes,
        (&base, baseline.as_ref()),
        plan.scale_requests,
    )?;
    if let Some(other) = baseline.take() {
        other.stop()?;
    }
    // The same first list on one kept-alive connection: what a client that keeps its
    // connection sees (one_connection_each says why it differs).
    if let Some((name, path)) = shapes.first() {
        let kept_alive = agent();
        let l = time_gets(&kept_alive, &format!("{base}{path}"), plan.scale_requests)?;
        let name = format!("Scale, {rows_n} rows: {name}, one kept-alive connection");
        rows.push(row(&format!("{name}: p50"), l.p50, "ms", "", None));
        rows.push(row(&format!("{name}: p99"), l.p99, "ms", "", None));
    }
    match cursor_pages(&fresh, &base, deep_offset(rows_n), plan.scale_requests)? {
        Some(l) => {
            let name = format!(
                "Scale, {rows_n} rows: deliveries by cursor from offset {}",
                deep_offset(rows_n)
            );
            rows.push(row(&format!("{name}: p50"), l.p50, "ms", "", None));
            rows.push(row(
                &format!("{name}: p99"),
                l.p99,
                "ms",
                "<= 5",
                Some(l.p99 <= 5.0),
            ));
        }
        None => println!("cursor paging: not available in this build"),
    }

    let (empty, seeded) = live_beside_empty(args, plan, receiver, &db, &server)?;
    server.stop()?;
    for (label, l) in [("empty database", &empty), ("seeded database", &seeded)] {
        let name = format!("Scale: 1 client create→arrival, {label}");
        rows.push(row(&format!("{name} p50"), l.p50, "ms", "", None));
        rows.push(row(&format!("{name} p99"), l.p99, "ms", "", None));
    }
    let ratio = seeded.p99 / empty.p99;
    rows.push(row(
        &format!("Scale: create→arrival p99, {rows_n} rows / empty (same run)"),
        ratio,
        "x",
        "<= 1.5",
        Some(ratio <= 1.5),
    ));

    let [attempts, deliveries] = history::drop_oldest_day(&mut client, DAYS)?;
    for (step, target) in [(&attempts, Some(1000.0)), (&deliveries, None)] {
        rows.push(row(
            &format!("Scale: drop a day: {} ({} rows)", step.how, step.rows),
            step.ms,
            "ms",
            if target.is_some() { "< 1000" } else { "" },
            target.map(|t| step.ms < t),
        ));
        rows.push(row(
            &format!(
                "Scale: drop a day: {}: dead rows left (n_dead_tup)",
                step.how
            ),
            step.dead_rows as f64,
            "rows",
            if target.is_some() { "0" } else { "" },
            target.map(|_| step.dead_rows == 0),
        ));
    }
    Ok(rows)
}

/// Seeds `n` deliveries and their history (`seed.sql`), then VACUUM ANALYZE and CHECKPOINT.
fn seed(client: &mut postgres::Client, n: usize) -> Result<()> {
    let mut sql = SEED.to_string();
    for (name, value) in [
        ("rows", n),
        ("webhooks", WEBHOOKS),
        ("days", DAYS as usize),
        ("pending", 0),
    ] {
        sql = sql.replace(&format!(":{name}"), &value.to_string());
    }
    client.batch_execute(&sql)?;
    client.batch_execute("VACUUM ANALYZE")?;
    // The seed's dirty pages are written now rather than by a checkpoint during the figures.
    client.batch_execute("CHECKPOINT")?;
    Ok(())
}

fn deep_offset(rows: usize) -> usize {
    DEEP_OFFSET.min(rows / 2)
}

/// The list shapes: a name and a path, filters taken from the seeded rows.
fn list_shapes(client: &mut postgres::Client, rows: usize) -> Result<Vec<(String, String)>> {
    let one = |client: &mut postgres::Client,
               sql: &str,
               params: &[&(dyn postgres::types::ToSql + Sync)]|
     -> Result<String> {
        let row = client
            .query_opt(sql, params)?
            .ok_or_else(|| format!("the seeded database has no row for: {sql}"))?;
        Ok(row.get(0))
    };
    let busy = one(
        client,
        "SELECT webhook_id::text FROM deliveries WHERE status = 'failed' \
         GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        &[],
    )?;
    let quiet = one(
        client,
        "SELECT id::text FROM webhooks w WHERE active AND NOT EXISTS \
         (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed') \
         ORDER BY id LIMIT 1",
        &[],
    )?;
    let event = one(
        client,
        "SELECT id::text FROM events ORDER BY created_at, id \
         OFFSET (SELECT count(*) / 2 FROM events) LIMIT 1",
        &[],
    )?;
    let delivery = one(
        client,
        "SELECT id::text FROM deliveries WHERE webhook_id = $1::text::uuid \
         AND status = 'failed' ORDER BY created_at DESC LIMIT 1",
        &[&busy],
    )?;
    // An hour three days back, in the busy middle of the history.
    let window = one(
        client,
        "SELECT 'created_at.gte=' || to_char(t, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             || '&created_at.lt=' || to_char(t + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM (SELECT date_trunc('hour', now() AT TIME ZONE 'UTC' - interval '3 days') AS t) s",
        &[],
    )?;
    let deep = deep_offset(rows);
    let d = "/v1/deliveries?limit=50";
    let a = "/v1/delivery-attempts?limit=50";
    Ok(vec![
        ("deliveries".into(), d.into()),
        (
            "deliveries of a webhook".into(),
            format!("{d}&webhook_id={busy}"),
        ),
        (
            "failed deliveries of a webhook".into(),
            format!("{d}&webhook_id={busy}&status=failed"),
        ),
        (
            "failed deliveries of a webhook without failures".into(),
            format!("{d}&webhook_id={quiet}&status=failed"),
        ),
        ("failed deliveries".into(), format!("{d}&status=failed")),
        (
            "deliveries of an event".into(),
            format!("{d}&event_id={event}"),
        ),
        (
            "deliveries of an hour 3 days back".into(),
            format!("{d}&{window}"),
        ),
        (
            format!("deliveries at offset {deep}"),
            format!("{d}&offset={deep}"),
        ),
        ("attempts".into(), a.into()),
        (
            "failed attempts of a webhook".into(),
            format!("{a}&webhook_id={busy}&success=false"),
        ),
        (
            "failed attempts of a webhook without failures".into(),
            format!("{a}&webhook_id={quiet}&success=false"),
        ),
        (
            "attempts of a delivery".into(),
            format!("{a}&delivery_id={delivery}"),
        ),
        ("events".into(), "/v1/events?limit=50".into()),
        ("webhooks".into(), "/v1/webhooks?limit=50".into()),
    ])
}

/// A client that opens a new connection for every request, as scripts/bench-ui.sh does. On a
/// kept-alive connection every response with a body of some size waits about 40 ms for the
/// client's delayed ACK: the server writes the head and the body apart, and its socket keeps
/// Nagle's algorithm on (no TCP_NODELAY), so the body waits for the head's ACK. That wait would
/// hide the query's own time; the kept-alive row shows it.
fn one_connection_each() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .build()
        .into()
}

/// GETs `url` `n` times, one at a time, after [`WARM_UP`] uncounted ones; every answer must
/// be a 200.
/// Times `n` GETs of each of `shapes` on this build's API (`apis.0`) and, with a baseline
/// (`apis.1`), right after on the other build's, pushing rows named `{label}: {shape}`.
fn time_shapes(
    rows: &mut Vec<Row>,
    agent: &ureq::Agent,
    label: &str,
    shapes: &[(String, String)],
    apis: (&str, Option<&Postmand>),
    n: usize,
) -> Result<()> {
    let (base, baseline) = apis;
    for (name, path) in shapes {
        let l = time_gets(agent, &format!("{base}{path}"), n)?;
        let name = format!("{label}: {name}");
        rows.push(row(&format!("{name}: p50"), l.p50, "ms", "", None));
        rows.push(row(
            &format!("{name}: p99"),
            l.p99,
            "ms",
            "<= 20",
            Some(l.p99 <= 20.0),
        ));
        if let Some(other) = baseline {
            let b = time_gets(agent, &format!("http://{}{path}", other.api), n)?;
            rows.push(row(
                &format!("{name}: p99 (baseline)"),
                b.p99,
                "ms",
                "",
                None,
            ));
            rows.push(row(
                &format!("{name}: p99, this build / baseline"),
                l.p99 / b.p99,
                "x",
                "",
                None,
            ));
        }
    }
    Ok(())
}

fn time_gets(agent: &ureq::Agent, url: &str, n: usize) -> Result<Latency> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..WARM_UP + n {
        let started = Instant::now();
        get_json(agent, url)?;
        if i >= WARM_UP {
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(latency(latencies))
}

fn get_json(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value> {
    let mut response = agent.get(url).call()?;
    let body = response.body_mut().read_to_vec()?;
    if response.status().as_u16() != 200 {
        return Err(format!(
            "GET {url} answered {}: {}",
            response.status(),
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(serde_json::from_slice(&body)?)
}

fn latency(mut latencies: Vec<f64>) -> Latency {
    latencies.sort_by(|a, b| a.total_cmp(b));
    Latency {
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
    }
}

/// Pages by cursor from `offset` deep: the cursor of the page at that offset, then `n` pages
/// each following the last one's `next_cursor` (from the first again at the end of the list).
/// `None` when the build has no cursor paging (no `next_cursor` in the page).
fn cursor_pages(
    agent: &ureq::Agent,
    base: &str,
    offset: usize,
    n: usize,
) -> Result<Option<Latency>> {
    let page = get_json(
        agent,
        &format!("{base}/v1/deliveries?limit=50&offset={offset}"),
    )?;
    let Some(first) = page.get("next_cursor") else {
        return Ok(None);
    };
    let Some(first) = first.as_str().map(str::to_string) else {
        return Err(format!("no next page at offset {offset}: next_cursor is {first}").into());
    };
    let mut cursor = first.clone();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..WARM_UP + n {
        let started = Instant::now();
        let page = get_json(
            agent,
            &format!("{base}/v1/deliveries?limit=50&cursor={}", encode(&cursor)),
        )?;
        if i >= WARM_UP {
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        cursor = match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(next) => next.to_string(),
            None => first.clone(),
        };
    }
    Ok(Some(latency(latencies)))
}

/// Percent-encodes everything but unreserved characters, for a cursor in a query string.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Single messages, one client, on a fresh empty database and on `seeded` (served by
/// `server`), taking turns: (empty, seeded).
fn live_beside_empty(
    args: &Args,
    plan: &Plan,
    receiver: &Receiver,
    seeded: &Database,
    server: &Postmand,
) -> Result<(Latency, Latency)> {
    let empty = Database::create(&args.admin_url, "bench_scale_empty")?;
    migrate(&args.postmand, &empty.url)?;
    history::prepare(&mut empty.client()?, 0)?;
    let mut empty_server = Postmand::start(&args.postmand, &empty.url, plan, "all")?;
    empty_server.wait_ready()?;
    let targets = [(&empty, &empty_server), (seeded, server)];
    let mut hooks = Vec::new();
    for (db, server) in targets {
        let webhook = insert_webhook(&mut db.client()?, &receiver.url(), true, 5)?;
        hooks.push((format!("http://{}/v1/deliveries", server.api), webhook));
    }
    let agent = agent();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut latencies = [Vec::new(), Vec::new()];
    for i in 0..plan.cost_warmup + plan.scale_messages {
        for (t, (url, webhook)) in hooks.iter().enumerate() {
            let ms =
                cost::create_and_wait(&agent, url, *webhook, receiver, &format!("{run}-{t}-{i}"))?;
            if i >= plan.cost_warmup {
                latencies[t].push(ms);
            }
        }
    }
    empty_server.stop()?;
    let [empty, seeded] = latencies;
    Ok((latency(empty), latency(seeded)))
}
