//! Issue 14: what one message costs. One client creates a delivery and waits for it to arrive,
//! again and again, so nothing is batched: create→arrival latency, PostgreSQL's CPU (the
//! postmaster and all its children, from /proc), WAL bytes, and pg_stat_statements' calls, rows,
//! time and WAL per statement, all per delivered message. Then several clients doing the same on
//! a fresh database and on a warm one, to show whether plans made before the tables had
//! statistics slow the fresh run.

use super::*;

/// One statement's share of a message.
pub(crate) struct Statement {
    pub(crate) query: String,
    pub(crate) calls: f64,
    pub(crate) rows: f64,
    pub(crate) time_us: f64,
    pub(crate) wal_bytes: f64,
}

/// The figures of [`one_client`].
pub(crate) struct Cost {
    pub(crate) latency: Latency,
    pub(crate) cpu_ms: f64,
    pub(crate) wal_bytes: f64,
    /// Empty when pg_stat_statements is not loaded (a server not started by bench.sh).
    pub(crate) statements: Vec<Statement>,
    /// WAL per message by relation and record kind, from pg_walinspect; empty without it.
    pub(crate) wal: Vec<WalShare>,
}

/// One relation's and record kind's share of a message's WAL.
pub(crate) struct WalShare {
    pub(crate) relation: String,
    pub(crate) kind: String,
    pub(crate) records: f64,
    pub(crate) bytes: f64,
}

/// The WAL between two positions by the relation of each record's first block (the heap or
/// index it changes) and its kind, from pg_walinspect (PostgreSQL 15's contrib).
const WAL_BY_RELATION: &str = "SELECT coalesce(c.relname, CASE WHEN r.rel IS NULL \
        THEN '(none)' ELSE '(other database or dropped)' END), \
        r.resource_manager || '/' || r.record_type, count(*)::float8, \
        sum(r.record_length)::float8 \
    FROM (SELECT resource_manager, record_type, record_length, \
            substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)') AS rel \
          FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)) r \
    LEFT JOIN pg_class c ON c.relfilenode::text = r.rel \
    GROUP BY 1, 2 ORDER BY 4 DESC";

/// Creates one delivery for `webhook` and waits for it at the receiver: milliseconds from the
/// request's start to the arrival.
pub(crate) fn create_and_wait(
    agent: &ureq::Agent,
    url: &str,
    webhook: uuid::Uuid,
    receiver: &Receiver,
    payload: &str,
) -> Result<f64> {
    let body = format!("{{\"webhook_id\":\"{webhook}\",\"payload\":\"{payload}\"}}");
    let sent = Instant::now();
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())?;
    let _ = response.body_mut().read_to_vec();
    if response.status().as_u16() != 201 {
        return Err(format!("create answered {}", response.status()).into());
    }
    let arrived = receiver.wait_for(payload, Duration::from_secs(30))?;
    Ok(arrived.saturating_duration_since(sent).as_secs_f64() * 1000.0)
}

/// `/proc/<pid>/stat`: the parent and the CPU ticks of the process and its reaped children.
pub(crate) fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some((ppid, ticks))
}

/// CPU milliseconds PostgreSQL has used so far: the postmaster and every child of it (backends,
/// autovacuum, WAL writer, checkpointer), including children that have exited. Linux counts in
/// USER_HZ ticks of 10 ms.
pub(crate) fn pg_cpu_ms(client: &mut postgres::Client) -> Result<f64> {
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let (postmaster, _) = proc_stat(backend as u32).ok_or("PostgreSQL is not on this machine")?;
    let (_, mut ticks) = proc_stat(postmaster).ok_or("cannot read the postmaster's /proc")?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        if let Some((ppid, child_ticks)) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
            .and_then(proc_stat)
            && ppid == postmaster
        {
            ticks += child_ticks;
        }
    }
    Ok(ticks as f64 * 10.0)
}

fn wal_lsn(client: &mut postgres::Client) -> Result<String> {
    Ok(client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])?
        .get(0))
}

/// Flushes the WAL written so far: pg_walinspect reads nothing past the flushed end ("cannot
/// accept future start/end LSN"), and with `synchronous_commit = off` (scripts/test.sh's
/// server, where the smoke run goes) the last commits are flushed by the WAL writer only later.
/// A WAL switch flushes everything before it. (A synchronous commit would not do: a transaction
/// that writes no WAL of its own commits without a flush.)
fn flush_wal(client: &mut postgres::Client) -> Result<()> {
    client.batch_execute("SELECT pg_switch_wal()")?;
    Ok(())
}

/// One client, one message in flight: `plan.cost_messages` create→arrival round trips on a
/// fresh database, after a warm-up.
pub(crate) fn one_client(
    args: &Args,
    binary: &str,
    plan: &Plan,
    receiver: &Receiver,
    name: &str,
) -> Result<Cost> {
    let db = Database::create(&args.admin_url, name)?;
    let mut server = Postmand::start(binary, &db.url, plan, "all")?;
    server.wait_ready()?;
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, &receiver.url(), true, 5)?;
    // The extension installs anywhere contrib is, but only counts when preloaded.
    let statements = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .and_then(|()| client.batch_execute("SELECT pg_stat_statements_reset()"))
        .is_ok();
    let agent = agent();
    let url = format!("http://{}/v1/deliveries", server.api);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..plan.cost_warmup {
        create_and_wait(&agent, &url, webhook, receiver, &format!("{run}-w{i}"))?;
    }
    // The same starting point for every binary: no dirty page left to flush, so the first
    // change to each page writes a full-page image in both runs alike.
    client.batch_execute("CHECKPOINT")?;
    if statements {
        client.batch_execute("SELECT pg_stat_statements_reset()")?;
    }
    let wal_before = wal_lsn(&mut client)?;
    let cpu_before = pg_cpu_ms(&mut client)?;
    let mut latencies = Vec::with_capacity(plan.cost_messages);
    for i in 0..plan.cost_messages {
        latencies.push(create_and_wait(
            &agent,
            &url,
            webhook,
            receiver,
            &format!("{run}-{i}"),
        )?);
    }
    let cpu_ms = pg_cpu_ms(&mut client)? - cpu_before;
    let wal_after = wal_lsn(&mut client)?;
    let wal_bytes: f64 = client
        .query_one(
            "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::float8",
            &[&wal_after, &wal_before],
        )?
        .get(0);
    let n = plan.cost_messages as f64;
    let wal = if client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .is_ok()
    {
        flush_wal(&mut client)?;
        client
            .query(WAL_BY_RELATION, &[&wal_before, &wal_after])?
            .iter()
            .map(|r| WalShare {
                relation: r.get(0),
                kind: r.get(1),
                records: r.get::<_, f64>(2) / n,
                bytes: r.get::<_, f64>(3) / n,
            })
            .filter(|w| w.bytes >= 1.0)
            .collect()
    } else {
        Vec::new()
    };
    let statements = if statements {
        client
            .query(
                "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls::float8, rows::float8, \
                        (total_exec_time + total_plan_time)::float8, wal_bytes::float8 \
                 FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND query !~ 'pg_stat_statements|pg_current_wal|pg_backend_pid|pg_wal_lsn_diff' \
                 ORDER BY total_exec_time DESC",
                &[],
            )?
            .iter()
            .map(|r| Statement {
                query: r.get(0),
                calls: r.get::<_, f64>(1) / n,
                rows: r.get::<_, f64>(2) / n,
                time_us: r.get::<_, f64>(3) * 1000.0 / n,
                wal_bytes: r.get::<_, f64>(4) / n,
            })
            .filter(|s| s.calls >= 0.01)
            .collect()
    } else {
        Vec::new()
    };
    server.stop()?;
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(Cost {
        latency: Latency {
            p50: percentile(&latencies, 0.50),
            p95: percentile(&latencies, 0.95),
            p99: percentile(&latencies, 0.99),
        },
        cpu_ms: cpu_ms / n,
        wal_bytes: wal_bytes / n,
        statements,
        wal,
    })
}

/// `clients` clients, each creating a delivery and waiting for it, `plan.clients_messages`
/// times: messages per second, accepted and delivered.
fn clients_rate(
    server: &Postmand,
    webhook: uuid::Uuid,
    receiver: &Receiver,
    clients: usize,
    messages: usize,
) -> Result<f64> {
    let url = format!("http://{}/v1/deliveries", server.api);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (url, run) = (&url, &run);
                scope.spawn(move || -> std::result::Result<(), String> {
                    let agent = agent();
                    for i in 0..messages {
                        create_and_wait(&agent, url, webhook, receiver, &format!("{run}-{c}-{i}"))
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "client thread panicked")??;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok((clients * messages) as f64 / started.elapsed().as_secs_f64())
}

/// The clients' rate on a fresh database (the server's connections plan their statements
/// before any table has statistics), then on the same database analysed, with a new server
/// (new connections, new plans): (fresh, warm).
pub(crate) fn fresh_and_warm(
    args: &Args,
    binary: &str,
    plan: &Plan,
    receiver: &Receiver,
    clients: usize,
) -> Result<(f64, f64)> {
    let db = Database::create(&args.admin_url, "bench_fresh")?;
    let mut server = Postmand::start(binary, &db.url, plan, "all")?;
    server.wait_ready()?;
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, &receiver.url(), true, 5)?;
    let fresh = clients_rate(&server, webhook, receiver, clients, plan.clients_messages)?;
    server.stop()?;
    client.batch_execute("VACUUM ANALYZE")?;
    let mut server = Postmand::start(binary, &db.url, plan, "all")?;
    server.wait_ready()?;
    let warm = clients_rate(&server, webhook, receiver, clients, plan.clients_messages)?;
    server.stop()?;
    Ok((fresh, warm))
}

/// The round with the median PostgreSQL CPU per message, whose statements it reports, with the
/// median of each of the other figures across rounds.
pub(crate) fn median(mut rounds: Vec<Cost>) -> Cost {
    let middle = |values: Vec<f64>| {
        let mut values = values;
        values.sort_by(|a, b| a.total_cmp(b));
        percentile(&values, 0.5)
    };
    let p50 = middle(rounds.iter().map(|c| c.latency.p50).collect());
    let p95 = middle(rounds.iter().map(|c| c.latency.p95).collect());
    let p99 = middle(rounds.iter().map(|c| c.latency.p99).collect());
    let wal_bytes = middle(rounds.iter().map(|c| c.wal_bytes).collect());
    rounds.sort_by(|a, b| a.cpu_ms.total_cmp(&b.cpu_ms));
    let mut cost = rounds.swap_remove(rounds.len() / 2);
    cost.latency = Latency { p50, p95, p99 };
    cost.wal_bytes = wal_bytes;
    cost
}

/// The WAL breakdown as a Markdown table.
pub(crate) fn render_wal(title: &str, cost: &Cost) -> String {
    let mut out = format!(
        "\n### {title}\n\nPer delivered message, 1 client: {:.0} bytes in all (pg_walinspect; \
         records are counted by the first block they change).\n\n\
         | relation | record | records | bytes |\n|---|---|---:|---:|\n",
        cost.wal_bytes
    );
    if cost.wal.is_empty() {
        out.push_str("| (pg_walinspect is not available on this server) | | | |\n");
    }
    for w in &cost.wal {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} |\n",
            w.relation, w.kind, w.records, w.bytes
        ));
    }
    out
}

/// The statement breakdown as a Markdown table.
pub(crate) fn render_statements(title: &str, cost: &Cost) -> String {
    let mut out = format!(
        "\n### {title}\n\nPer delivered message, 1 client: PostgreSQL CPU {:.2} ms, WAL {:.0} bytes.\n\n\
         | statement | calls | rows | time (µs) | WAL (bytes) |\n|---|---:|---:|---:|---:|\n",
        cost.cpu_ms, cost.wal_bytes
    );
    if cost.statements.is_empty() {
        out.push_str("| (pg_stat_statements is not preloaded on this server) | | | | |\n");
    }
    for s in &cost.statements {
        let mut query: String = s.query.chars().take(110).collect();
        if query.len() < s.query.len() {
            query.push('…');
        }
        out.push_str(&format!(
            "| `{}` | {:.2} | {:.2} | {:.1} | {:.0} |\n",
            query.replace('|', "\\|").replace('`', "'"),
            s.calls,
            s.rows,
            s.time_us,
            s.wal_bytes
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_this_process() {
        let (ppid, ticks) = proc_stat(std::process::id()).expect("own /proc stat");
        assert!(ppid > 0);
        assert!(ticks < u64::MAX);
    }

    fn cost(cpu_ms: f64, wal_bytes: f64, p50: f64) -> Cost {
        Cost {
            latency: Latency {
                p50,
                p95: p50,
                p99: p50,
            },
            cpu_ms,
            wal_bytes,
            statements: Vec::new(),
            wal: Vec::new(),
        }
    }

    #[test]
    fn median_takes_the_middle_of_each_figure() {
        let m = median(vec![
            cost(3.0, 10.0, 1.0),
            cost(1.0, 30.0, 3.0),
            cost(2.0, 20.0, 2.0),
        ]);
        assert_eq!((m.cpu_ms, m.wal_bytes, m.latency.p50), (2.0, 20.0, 2.0));
    }
}
