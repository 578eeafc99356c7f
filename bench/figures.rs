//! The figures: drain, live latency (alone, beside dead endpoints), API throughput.

use super::*;

// ---------------------------------------------------------------------------------------------
// Figure 1: drain.

/// Queues `n` deliveries across `endpoints` inactive webhooks, activates them all at once, and
/// times until none is pending.
pub(crate) fn drain(db: &Database, receiver: &Receiver, n: usize, endpoints: usize) -> Result<f64> {
    let mut client = db.client()?;
    let backlog = Backlog::queue(&mut client, receiver, n, endpoints)?;
    backlog.release(&mut client, receiver)
}

/// `n` due deliveries for inactive webhooks of the receiver: queued, not yet claimable.
pub(crate) struct Backlog {
    webhooks: Vec<uuid::Uuid>,
    n: usize,
}

impl Backlog {
    pub(crate) fn queue(
        client: &mut postgres::Client,
        receiver: &Receiver,
        n: usize,
        endpoints: usize,
    ) -> Result<Backlog> {
        let mut webhooks = Vec::new();
        for _ in 0..endpoints {
            webhooks.push(insert_webhook(client, &receiver.url(), false, 5)?);
        }
        client.execute(
            "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
             SELECT gen_random_uuid(), ($1::uuid[])[1 + i % array_length($1::uuid[], 1)], '{\"event\":\"bench\",\"n\":' || i || '}', \
                    now(), 0, 'pending', now(), now() \
             FROM generate_series(1, $2::integer) AS i",
            &[&webhooks, &(n as i32)],
        )?;
        client.batch_execute("ANALYZE deliveries")?;
        Ok(Backlog { webhooks, n })
    }

    /// Activates the webhooks and waits until the backlog is delivered: deliveries per second.
    pub(crate) fn release(self, client: &mut postgres::Client, receiver: &Receiver) -> Result<f64> {
        let before = receiver.count();
        let started = Instant::now();
        client.execute(
            "UPDATE webhooks SET active = true WHERE id = ANY($1)",
            &[&self.webhooks],
        )?;
        client.batch_execute("NOTIFY postmand_deliveries")?;
        let rate = wait_drained(client, receiver, before, self.n, started)?;
        client.execute(
            "UPDATE webhooks SET active = false WHERE id = ANY($1)",
            &[&self.webhooks],
        )?;
        Ok(rate)
    }
}

/// Waits until the receiver has had `n` requests more than `before` and no delivery is
/// pending; deliveries per second since `started`.
pub(crate) fn wait_drained(
    client: &mut postgres::Client,
    receiver: &Receiver,
    before: u64,
    n: usize,
    started: Instant,
) -> Result<f64> {
    let deadline = started + Duration::from_secs(300);
    // Watch the receiver (free) rather than count pending rows (a query that would compete
    // with the drain), then confirm in the database.
    while receiver.count() - before < n as u64 {
        if Instant::now() > deadline {
            return Err("drain did not finish in 300 s".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    while pending(client)? > 0 {
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
    Ok(n as f64 / elapsed)
}

// ---------------------------------------------------------------------------------------------
// Figures 2 and 4: live latency.

pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn push_latency(
    rows: &mut Vec<Row>,
    name: &str,
    l: &Latency,
    p50_target: f64,
    p99_target: f64,
) {
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
pub(crate) struct Dead<'a> {
    pub(crate) receiver: &'a DeadReceiver,
    pub(crate) webhooks: usize,
    pub(crate) backlog: usize,
}

pub(crate) fn live_latency(
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

pub(crate) struct ApiFigures {
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) errors: u64,
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// An inactive webhook for the API figures: its deliveries stay queued, so dispatchers stay out
/// of the way.
pub(crate) fn api_webhook(db: &Database) -> Result<uuid::Uuid> {
    let mut client = db.client()?;
    insert_webhook(&mut client, "http://127.0.0.1:9/", false, 5)
}

/// The body of `POST /v1/deliveries` that the API figures send, for `webhook`.
pub(crate) fn delivery_body(webhook: uuid::Uuid) -> String {
    format!("{{\"webhook_id\":\"{webhook}\",\"payload\":\"{{\\\"event\\\":\\\"api-bench\\\"}}\"}}")
}

/// What the API figures load: `body` POSTed to `url` by `clients` keep-alive clients, as fast
/// as they can for `secs`; every answer but a 201 is an error.
pub(crate) struct Load<'a> {
    pub(crate) url: &'a str,
    pub(crate) body: &'a str,
    pub(crate) clients: usize,
    pub(crate) secs: u64,
}

/// [`Load`] with the driver's own ureq clients.
pub(crate) fn api_throughput(load: &Load<'_>) -> Result<ApiFigures> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..load.clients {
        let url = load.url.to_string();
        let body = load.body.to_string();
        let stop = Arc::clone(&stop);
        let errors = Arc::clone(&errors);
        let run_started = Instant::now();
        threads.push(thread::spawn(move || {
            let agent = agent();
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
    thread::sleep(Duration::from_secs(load.secs));
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

/// [`Load`] with wrk: the clients are keep-alive connections on 2 threads.
pub(crate) fn api_throughput_wrk(wrk: &str, load: &Load<'_>) -> Result<ApiFigures> {
    // A script of its own for each load: the mixed figure runs two at once.
    static SCRIPTS: AtomicUsize = AtomicUsize::new(0);
    let script = std::env::temp_dir().join(format!(
        "postmand-bench-wrk-{}-{}.lua",
        std::process::id(),
        SCRIPTS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = '{}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n",
            load.body.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    )?;
    let output = Command::new(wrk)
        .args(["-t", "2", "-c", &load.clients.to_string(), "-d"])
        .arg(format!("{}s", load.secs))
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(load.url)
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

/// [`Load`] with wrk when there is one, else with ureq clients; the name of the client used.
pub(crate) fn api_load(args: &Args, load: &Load<'_>) -> Result<(ApiFigures, &'static str)> {
    Ok(match &args.wrk {
        Some(wrk) => (api_throughput_wrk(wrk, load)?, "wrk"),
        None => (api_throughput(load)?, "ureq"),
    })
}

/// Rate, p50, p99, max and errors from wrk's `--latency` report.
pub(crate) fn parse_wrk(text: &str) -> Option<ApiFigures> {
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
