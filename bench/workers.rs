//! Issue 17: several worker processes (`--only workers`). The same backlog (`plan.drain`
//! deliveries across 10 endpoints) drained by 1, 2 and 4 `postmand --role worker` processes,
//! each with the bench's dispatchers, on a fresh database each time, and where the time went:
//! the CPU of PostgreSQL (postmaster and children), of the worker processes and of this driver
//! (whose receiver answers every delivery), and what the busy backends were doing, sampled from
//! `pg_stat_activity` every [`SAMPLE_EVERY`]. With 2 cores, more processes cannot add speed:
//! the figure shows how the cores are shared and what the database waits on instead.

use super::*;

/// Worker processes of each run.
const PROCESSES: [usize; 3] = [1, 2, 4];

/// Endpoints the backlog is spread across.
const ENDPOINTS: usize = 10;

/// How often the sampler reads `pg_stat_activity` (one short query on a connection of its own).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What each non-idle client backend of the database is doing: running, waiting on something
/// (`Lock: transactionid`, `LWLock: WALWrite`, `IO: WALSync`, ...), or idle in a transaction
/// while its dispatcher works (sends the request, reads the clock, ...).
const ACTIVITY: &str = "SELECT CASE WHEN state = 'active' \
        THEN coalesce(wait_event_type || ': ' || wait_event, 'running (CPU)') ELSE state END \
    FROM pg_stat_activity \
    WHERE datname = current_database() AND backend_type = 'client backend' \
      AND pid <> pg_backend_pid() AND state <> 'idle'";

/// One run's figures.
struct Run {
    processes: usize,
    rate: f64,
    /// Cores busy on average during the drain.
    pg_cores: f64,
    postmand_cores: f64,
    driver_cores: f64,
    /// Mean non-idle backends per sample, and the share of each activity among them.
    busy_backends: f64,
    activity: Vec<(String, f64)>,
}

/// Every row of the figure, and the activity breakdown as a Markdown table.
pub(crate) fn figures(args: &Args, plan: &Plan, receiver: &Receiver) -> Result<(Vec<Row>, String)> {
    let mut runs = Vec::new();
    for processes in PROCESSES {
        runs.push(run(args, plan, receiver, processes)?);
    }
    let mut rows = Vec::new();
    for r in &runs {
        let name = format!(
            "Workers: drain with {} process(es) × {} dispatchers, {ENDPOINTS} endpoints",
            r.processes, plan.concurrency
        );
        rows.push(row(&name, r.rate, "deliveries/s", "", None));
        rows.push(row(
            &format!("{name}: PostgreSQL CPU"),
            r.pg_cores,
            "cores",
            "",
            None,
        ));
        rows.push(row(
            &format!("{name}: postmand CPU"),
            r.postmand_cores,
            "cores",
            "",
            None,
        ));
    }
    if let (Some(one), Some(last)) = (runs.first(), runs.last()) {
        rows.push(row(
            &format!(
                "Workers: {} processes / 1 (same run; 2 cores: contention, not speed-up)",
                last.processes
            ),
            last.rate / one.rate,
            "x",
            "",
            None,
        ));
    }
    Ok((rows, render(&runs, plan)))
}

fn run(args: &Args, plan: &Plan, receiver: &Receiver, processes: usize) -> Result<Run> {
    let db = Database::create(&args.admin_url, "bench_workers")?;
    let mut workers = Vec::new();
    for _ in 0..processes {
        let mut worker = Postmand::start(&args.postmand, &db.url, plan, "worker")?;
        worker.wait_healthy()?;
        workers.push(worker);
    }
    let mut client = db.client()?;
    let backlog = Backlog::queue(&mut client, receiver, plan.drain, ENDPOINTS)?;
    let worker_ticks = |workers: &[Postmand]| -> u64 {
        workers
            .iter()
            .filter_map(|w| cost::proc_stat(w.child.id()))
            .map(|(_, ticks)| ticks)
            .sum()
    };
    let own_ticks = || cost::proc_stat(std::process::id()).map_or(0, |(_, ticks)| ticks);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let mut sampling = db.client()?;
        let stop = Arc::clone(&stop);
        thread::spawn(
            move || -> std::result::Result<(u64, HashMap<String, u64>), String> {
                let mut samples = 0;
                let mut counts = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    for r in sampling.query(ACTIVITY, &[]).map_err(|e| e.to_string())? {
                        *counts.entry(r.get::<_, String>(0)).or_insert(0) += 1;
                    }
                    samples += 1;
                    thread::sleep(SAMPLE_EVERY);
                }
                Ok((samples, counts))
            },
        )
    };
    let pg_before = cost::pg_cpu_ms(&mut client)?;
    let (workers_before, own_before) = (worker_ticks(&workers), own_ticks());
    let rate = backlog.release(&mut client, receiver)?;
    let pg_ms = cost::pg_cpu_ms(&mut client)? - pg_before;
    let (workers_after, own_after) = (worker_ticks(&workers), own_ticks());
    stop.store(true, Ordering::Relaxed);
    let (samples, counts) = sampler.join().map_err(|_| "sampler thread panicked")??;
    for worker in workers {
        worker.stop()?;
    }

    // Ticks are USER_HZ, 10 ms on Linux (as in cost.rs).
    let elapsed_ms = plan.drain as f64 / rate * 1000.0;
    let cores = |ms: f64| ms / elapsed_ms;
    let busy: u64 = counts.values().sum();
    let mut activity: Vec<(String, f64)> = counts
        .into_iter()
        .map(|(what, n)| (what, n as f64 / busy.max(1) as f64))
        .collect();
    activity.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Run {
        processes,
        rate,
        pg_cores: cores(pg_ms),
        postmand_cores: cores((workers_after - workers_before) as f64 * 10.0),
        driver_cores: cores(own_after.saturating_sub(own_before) as f64 * 10.0),
        busy_backends: busy as f64 / samples.max(1) as f64,
        activity,
    })
}

/// The runs as a Markdown table: rate, cores, and the top activities of busy backends.
fn render(runs: &[Run], plan: &Plan) -> String {
    let mut out = format!(
        "\n### Workers: where the time goes\n\n{} deliveries across {ENDPOINTS} endpoints, \
         {} dispatchers per process, on {} cores. Cores are CPU time over the drain's wall time; \
         the driver's includes the receiver answering every delivery. Busy backends are the \
         database's non-idle client connections, sampled every {} ms.\n\n\
         | processes | deliveries/s | PostgreSQL cores | postmand cores | driver cores | \
         busy backends | what busy backends were doing |\n|---:|---:|---:|---:|---:|---:|---|\n",
        plan.drain,
        plan.concurrency,
        thread::available_parallelism().map_or(0, |n| n.get()),
        SAMPLE_EVERY.as_millis()
    );
    for r in runs {
        let activity: Vec<String> = r
            .activity
            .iter()
            .take(5)
            .map(|(what, share)| format!("{what} {:.0}%", share * 100.0))
            .collect();
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} |\n",
            r.processes,
            r.rate,
            r.pg_cores,
            r.postmand_cores,
            r.driver_cores,
            r.busy_backends,
            activity.join(", ")
        ));
    }
    out
}
