//! Issue 15: events fanned out to many webhooks. For 1, 10 and 100 subscribed webhooks, how
//! fast `POST /v1/events` creates (events/s, deliveries/s, latency) and what one event costs
//! the database: statements per event from pg_stat_statements and commits per event from
//! `pg_stat_database.xact_commit`, both of which must be one however many webhooks it reaches.
//! Then the drain of a 100-way fan-out backlog.
//!
//! Commits are every transaction the database ends with a commit (`xact_commit`), read-only
//! ones included, such as the one a Parse message opens when a client prepares a statement in
//! a round trip of its own. The creates run against `postmand --role api`, so no dispatcher
//! drains (or claims, or commits) while they are measured. With `--baseline`, the same rows for
//! that build, when it has `POST /v1/events` (a build older than issue 15 has none to measure).

use super::*;

/// The type every event of these figures has.
const EVENT_TYPE: &str = "bench.fanout";

/// Subscribed webhooks of the create figures.
const FAN_OUTS: [usize; 3] = [1, 10, 100];

/// Subscribed webhooks of the drain figure.
const DRAIN_FAN_OUT: usize = 100;

/// How long an idle backend may keep its counts before `pg_stat_database` sees them
/// (PostgreSQL 15's PGSTAT_IDLE_INTERVAL, 10 s), and a second to spare: the warm-up's commits
/// must land before the counted run's first reading, not inside it.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Marks the driver's own queries, so the statement count leaves them out.
const OWN: &str = "/* bench */";

/// The figures of one fan-out's creates.
struct Creates {
    api: ApiFigures,
    client: &'static str,
    /// Events created during the counted run.
    events: f64,
    /// Calls of the events INSERT, and of every statement of the API, during the counted run;
    /// `None` without pg_stat_statements.
    statements: Option<(f64, f64)>,
    /// Transactions committed in the database during the counted run.
    commits: f64,
    /// The statements of the counted run for the breakdown table: calls and rows per event,
    /// and mean microseconds per call.
    breakdown: Vec<(String, f64, f64, f64)>,
}

/// Every row of this module, and the statement breakdown of the widest fan-out.
pub(crate) fn figures(
    args: &Args,
    plan: &Plan,
    receiver: &Receiver,
    (binary, label): (&str, &str),
) -> Result<(Vec<Row>, String)> {
    let mut rows = Vec::new();
    let mut breakdown = String::new();
    for fan_out in FAN_OUTS {
        let c = creates(args, plan, receiver, binary, fan_out)?;
        let name = format!(
            "Events, fan-out {fan_out}, {} keep-alive clients ({}){label}",
            plan.api_clients, c.client
        );
        rows.push(row(&name, c.api.rate, "events/s", "", None));
        rows.push(row(
            &format!("{name}: deliveries"),
            c.api.rate * fan_out as f64,
            "deliveries/s",
            "",
            None,
        ));
        rows.push(row(&format!("{name}: p50"), c.api.p50, "ms", "", None));
        rows.push(row(&format!("{name}: p99"), c.api.p99, "ms", "", None));
        rows.push(row(
            &format!("{name}: errors"),
            c.api.errors as f64,
            "requests",
            "0",
            Some(c.api.errors == 0),
        ));
        let per_event = format!("Events, fan-out {fan_out}{label}");
        // Exactly one call of the INSERT per event. The API's other statements and the
        // database's other commits are its once-a-second check for listeners, autovacuum
        // and the driver's few reads: a few in a thousand events, so "met" allows 5%, which
        // still tells one per event from two, or from one per webhook.
        match c.statements {
            Some((inserts, all)) => {
                // The group-commit writer puts several events in one statement: at most one.
                rows.push(row(
                    &format!("{per_event}: events INSERT statements per event"),
                    inserts / c.events,
                    "statements",
                    "<= 1",
                    Some(inserts <= c.events),
                ));
                rows.push(row(
                    &format!("{per_event}: statements of the API per event"),
                    all / c.events,
                    "statements",
                    "<= 1 (< 1.05)",
                    Some(all / c.events < 1.05),
                ));
            }
            None => rows.push(row(
                &format!("{per_event}: statements per event"),
                f64::NAN,
                "statements",
                "1 (pg_stat_statements is not preloaded on this server)",
                None,
            )),
        }
        rows.push(row(
            &format!("{per_event}: commits per event"),
            c.commits / c.events,
            "commits",
            "<= 1 (< 1.05)",
            Some(c.commits / c.events < 1.05),
        ));
        if fan_out == DRAIN_FAN_OUT {
            breakdown = render_statements(fan_out, plan.api_clients, &c);
        }
    }

    let m = mixed(args, plan, receiver, binary)?;
    let name = format!(
        "Mixed: direct creates, {} keep-alive clients, beside events of fan-out {DRAIN_FAN_OUT} \
         from {MIXED_EVENT_CLIENTS} ({}){label}",
        plan.api_clients, m.client
    );
    rows.push(row(&name, m.creates.rate, "creates/s", "", None));
    rows.push(row(&format!("{name}: p50"), m.creates.p50, "ms", "", None));
    rows.push(row(&format!("{name}: p99"), m.creates.p99, "ms", "", None));
    rows.push(row(
        &format!("Mixed: events beside them{label}"),
        m.events.rate,
        "events/s",
        "",
        None,
    ));
    rows.push(row(
        &format!("Mixed: errors{label}"),
        (m.creates.errors + m.events.errors) as f64,
        "requests",
        "0",
        Some(m.creates.errors + m.events.errors == 0),
    ));

    let events = plan.event_backlog;
    let rate = drain_backlog(args, plan, receiver, binary, events)?;
    rows.push(row(
        &format!(
            "Drain, {events} events fanned out to {DRAIN_FAN_OUT} endpoints ({} deliveries){label}",
            events * DRAIN_FAN_OUT
        ),
        rate,
        "deliveries/s",
        "",
        None,
    ));
    Ok((rows, breakdown))
}

/// Clients posting events in the mixed figure.
const MIXED_EVENT_CLIENTS: usize = 8;

/// What the mixed figure measured: the direct creates, and the events beside them.
struct Mixed {
    creates: ApiFigures,
    events: ApiFigures,
    client: &'static str,
}

/// Direct creates (`plan.api_clients` clients) while [`MIXED_EVENT_CLIENTS`] clients post
/// events of fan-out [`DRAIN_FAN_OUT`], for `plan.events_secs`, on a fresh database and a fresh
/// `--role api` server: whether a wide fan-out holds up the direct creates.
fn mixed(args: &Args, plan: &Plan, receiver: &Receiver, binary: &str) -> Result<Mixed> {
    let db = Database::create(&args.admin_url, "bench_mixed")?;
    let mut server = Postmand::start(binary, &db.url, plan, "api")?;
    server.wait_ready()?;
    let mut client = db.client()?;
    subscribe(&mut client, &receiver.url(), DRAIN_FAN_OUT)?;
    let webhook: uuid::Uuid = client
        .query_one("SELECT id FROM webhooks ORDER BY name LIMIT 1", &[])?
        .get(0);
    let (events_url, creates_url) = (
        format!("http://{}/v1/events", server.api),
        format!("http://{}/v1/deliveries", server.api),
    );
    let (event, delivery) = (
        event_body(),
        format!("{{\"webhook_id\":\"{webhook}\",\"payload\":\"{{\\\"mixed\\\":1}}\"}}"),
    );
    let loads = |secs: u64| {
        (
            Load {
                url: &events_url,
                body: &event,
                clients: MIXED_EVENT_CLIENTS,
                secs,
            },
            Load {
                url: &creates_url,
                body: &delivery,
                clients: plan.api_clients,
                secs,
            },
        )
    };
    let (events_warm, creates_warm) = loads(plan.events_warm_up_secs);
    if events_warm.secs > 0 {
        api_load(args, &events_warm)?;
        api_load(args, &creates_warm)?;
    }
    let (events_load, creates_load) = loads(plan.events_secs);
    let (events, creates) = thread::scope(|scope| {
        let events = scope.spawn(|| api_load(args, &events_load).map_err(|e| e.to_string()));
        let creates = api_load(args, &creates_load).map_err(|e| e.to_string());
        (events.join(), creates)
    });
    let (events, _) = events.map_err(|_| "the events load panicked")??;
    let (creates, client_name) = creates?;
    server.stop()?;
    Ok(Mixed {
        creates,
        events,
        client: client_name,
    })
}

/// `n` active webhooks on `url` subscribed to [`EVENT_TYPE`], and one subscribed to another
/// type, which the events must pass over.
fn subscribe(client: &mut postgres::Client, url: &str, n: usize) -> Result<()> {
    client.execute(
        "INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active, \
         max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, \
         created_at, updated_at, event_types) \
         SELECT gen_random_uuid(), 'bench-' || i, $1, 'application/json', '{200}', 'bench-secret', \
                true, 5, 5, 1, 60, now(), now(), \
                ARRAY[CASE WHEN i <= $3 THEN $2 ELSE 'bench.other' END]::varchar[] \
         FROM generate_series(1, $3::integer + 1) AS i",
        &[&url, &EVENT_TYPE, &(n as i32)],
    )?;
    Ok(())
}

/// The body of `POST /v1/events`. The payload starts with `{`, so the receiver only counts it.
fn event_body() -> String {
    format!(
        "{{\"event_type\":\"{EVENT_TYPE}\",\"payload\":\"{{\\\"event\\\":\\\"events-bench\\\"}}\"}}"
    )
}

fn count(client: &mut postgres::Client, table: &str) -> Result<f64> {
    let n: i64 = client
        .query_one(&format!("{OWN} SELECT count(*) FROM {table}"), &[])?
        .get(0);
    Ok(n as f64)
}

fn commits(client: &mut postgres::Client) -> Result<f64> {
    Ok(client
        .query_one(
            &format!(
                "{OWN} SELECT xact_commit::float8 FROM pg_stat_database \
                 WHERE datname = current_database()"
            ),
            &[],
        )?
        .get(0))
}

/// Waits until no other client is connected to the database: a backend sends its counts to
/// `pg_stat_database` when it ends (an idle one may hold them for up to 10 s).
fn wait_alone(client: &mut postgres::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let others = format!(
        "{OWN} SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    );
    while client.query_one(&others, &[])?.get::<_, i64>(0) > 0 {
        if Instant::now() > deadline {
            return Err("postmand's connections did not close in 30 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Creates for `fan_out` subscribed webhooks on a fresh database and a fresh `--role api`
/// server: a warm-up, then `plan.events_secs` counted.
fn creates(
    args: &Args,
    plan: &Plan,
    receiver: &Receiver,
    binary: &str,
    fan_out: usize,
) -> Result<Creates> {
    let db = Database::create(&args.admin_url, "bench_events")?;
    let mut server = Postmand::start(binary, &db.url, plan, "api")?;
    server.wait_ready()?;
    let mut client = db.client()?;
    subscribe(&mut client, &receiver.url(), fan_out)?;
    let url = format!("http://{}/v1/events", server.api);
    let body = event_body();
    let mut load = Load {
        url: &url,
        body: &body,
        clients: plan.api_clients,
        secs: plan.events_warm_up_secs,
    };
    // The API opens its pool's connections on demand, each with a statement and a commit of
    // its own (the session settings): the warm-up opens them before the counted run.
    if load.secs > 0 {
        api_load(args, &load)?;
        thread::sleep(STATS_SETTLE);
    }
    // The extension installs anywhere contrib is, but only counts when preloaded.
    let statements = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .and_then(|()| client.batch_execute(&format!("{OWN} SELECT pg_stat_statements_reset()")))
        .is_ok();
    let events_before = count(&mut client, "events")?;
    let commits_before = commits(&mut client)?;
    load.secs = plan.events_secs;
    let (api, name) = api_load(args, &load)?;
    server.stop()?;
    wait_alone(&mut client)?;
    let commits = commits(&mut client)? - commits_before;
    let events = count(&mut client, "events")?;
    let deliveries = count(&mut client, "deliveries")?;
    if deliveries != events * fan_out as f64 {
        return Err(
            format!("{events} events for {fan_out} webhooks made {deliveries} deliveries").into(),
        );
    }
    let events = events - events_before;
    let breakdown: Vec<(String, f64, f64, f64)> = if statements {
        client
            .query(
                &format!(
                    "{OWN} SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls::float8, \
                            rows::float8, (mean_exec_time * 1000)::float8 \
                     FROM pg_stat_statements \
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                       AND query NOT LIKE '%{OWN}%' \
                     ORDER BY calls DESC"
                ),
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    } else {
        Vec::new()
    };
    let statements = statements.then(|| {
        let inserts = breakdown
            .iter()
            .filter(|(query, ..)| query.contains("INSERT INTO events"))
            .map(|(_, calls, ..)| calls)
            .sum();
        let all = breakdown.iter().map(|(_, calls, ..)| calls).sum();
        (inserts, all)
    });
    Ok(Creates {
        api,
        client: name,
        events,
        statements,
        commits,
        breakdown: breakdown
            .into_iter()
            .map(|(query, calls, rows, mean)| (query, calls / events, rows / events, mean))
            .collect(),
    })
}

/// Queues `events` events for [`DRAIN_FAN_OUT`] webhooks on the receiver through a `--role
/// api` server, then drains them as the drain figure does (webhooks inactive while a `--role
/// all` server starts, then activated at once): deliveries per second.
fn drain_backlog(
    args: &Args,
    plan: &Plan,
    receiver: &Receiver,
    binary: &str,
    events: usize,
) -> Result<f64> {
    let db = Database::create(&args.admin_url, "bench_events_drain")?;
    let mut client = db.client()?;
    let mut server = Postmand::start(binary, &db.url, plan, "api")?;
    server.wait_ready()?;
    subscribe(&mut client, &receiver.url(), DRAIN_FAN_OUT)?;
    let agent = agent();
    let url = format!("http://{}/v1/events", server.api);
    let body = event_body();
    for _ in 0..events {
        let mut response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())?;
        let _ = response.body_mut().read_to_vec();
        if response.status().as_u16() != 201 {
            return Err(format!("event create answered {}", response.status()).into());
        }
    }
    server.stop()?;
    let n = events * DRAIN_FAN_OUT;
    if pending(&mut client)? != n as i64 {
        return Err(format!("{events} events did not queue {n} deliveries").into());
    }
    client.batch_execute("UPDATE webhooks SET active = false; ANALYZE deliveries")?;
    let mut server = Postmand::start(binary, &db.url, plan, "all")?;
    server.wait_ready()?;
    let before = receiver.count();
    let started = Instant::now();
    client.batch_execute("UPDATE webhooks SET active = true; NOTIFY postmand_deliveries")?;
    let rate = wait_drained(&mut client, receiver, before, n, started)?;
    server.stop()?;
    Ok(rate)
}

/// The statements of the counted run of `fan_out`'s creates as a Markdown table.
fn render_statements(fan_out: usize, clients: usize, c: &Creates) -> String {
    let mut out = format!(
        "\n### Statements per event, fan-out {fan_out}\n\n\
         Per event created, {} clients, `--role api`: {:.3} commits.\n\n\
         | statement | calls | rows | mean time (µs) |\n|---|---:|---:|---:|\n",
        clients,
        c.commits / c.events
    );
    if c.statements.is_none() {
        out.push_str("| (pg_stat_statements is not preloaded on this server) | | | |\n");
    }
    for (query, calls, rows, mean) in &c.breakdown {
        let mut short: String = query.chars().take(110).collect();
        if short.len() < query.len() {
            short.push('…');
        }
        out.push_str(&format!(
            "| `{}` | {calls:.4} | {rows:.4} | {mean:.0} |\n",
            short.replace('|', "\\|").replace('`', "'")
        ));
    }
    out
}
