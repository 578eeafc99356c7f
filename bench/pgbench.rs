//! The database alone: pgbench running the dispatchers' claim-and-record transaction and a
//! one-row INSERT, the ceilings the figures are compared with.

use super::*;

// ---------------------------------------------------------------------------------------------
// Figure 6: the pgbench ceiling.

/// A dispatcher's transaction as pgbench can run it: the claim (`DUE_WEBHOOKS`, then
/// `CLAIM_BATCH` for `:batch` deliveries) and the record (`RECORD_ATTEMPTS`, every attempt a
/// success) in one transaction, with the dispatchers' concurrency and session settings
/// ([`pgbench_session`]). Built from the store's own statements, so it cannot drift from what
/// the dispatchers run: their parameters are bound to pgbench variables, and constants stand
/// where postmand binds values it computed.
pub(crate) fn pgbench_script() -> String {
    use postmand::store::queue::{CLAIM_BATCH, DUE_WEBHOOKS, RECORD_ATTEMPTS};
    // One value per claimed delivery, as the dispatcher's arrays carry them.
    let each = |value: &str, sql_type: &str| {
        format!(
            "(SELECT coalesce(array_agg(({value})::{sql_type}), '{{}}') \
             FROM unnest(:claimed_ids::uuid[]))"
        )
    };
    let due = bind(DUE_WEBHOOKS, &["NULL::timestamptz", "'{}'::uuid[]", "1"]);
    let claim = bind(CLAIM_BATCH, &[":id", "NULL::timestamptz", ":batch"]);
    let record = bind(
        RECORD_ATTEMPTS,
        &[
            ":claimed_ids::uuid[]",
            &each("'succeeded'", "varchar"),
            &each("NULL::bigint", "bigint"),
            &each("gen_random_uuid()", "uuid"),
            &each(
                "'POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n{\"event\":\"bench\"}'",
                "text",
            ),
            &each("'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'", "text"),
            &each("200", "integer"),
            &each("1", "integer"),
            &each("true", "boolean"),
            &each("''", "text"),
            &each("0", "bigint"),
        ],
    );
    format!(
        "BEGIN;\n{due} \\aset\n\
         SELECT coalesce(array_agg(c.id), '{{}}') AS claimed_ids FROM ({claim}) c \\gset\n\
         {record};\nCOMMIT;\n"
    )
}

/// `sql` with `$1`, `$2`, ... replaced by `values` (highest first, so `$1` never eats `$10`).
fn bind(sql: &str, values: &[&str]) -> String {
    let mut bound = sql.to_string();
    for (index, value) in values.iter().enumerate().rev() {
        bound = bound.replace(&format!("${}", index + 1), value);
    }
    bound
}

/// The session settings of a dispatcher's connection as pgbench options: every pooled session
/// has `jit = off` (`db`), a dispatcher's adds `store::queue::SESSION_SETTINGS`.
pub(crate) fn pgbench_session() -> String {
    let mut options = String::from("-c jit=off");
    for (name, value) in postmand::store::queue::SESSION_SETTINGS {
        options.push_str(&format!(" -c {name}={value}"));
    }
    options
}

/// Deliveries per transaction in postmand's default configuration (POSTMAND_WORKER_BATCH_SIZE).
pub(crate) fn default_batch() -> Result<u32> {
    postmand::config::SETTINGS
        .iter()
        .find(|setting| setting.name == "POSTMAND_WORKER_BATCH_SIZE")
        .and_then(|setting| setting.default.parse().ok())
        .ok_or_else(|| "no default for POSTMAND_WORKER_BATCH_SIZE".into())
}

/// What the database alone does with postmand's claim-and-record transaction: per second,
/// with one delivery per transaction (the ceiling) and with postmand's default batches.
pub(crate) struct Ceiling {
    pub(crate) one: f64,
    pub(crate) batch: u32,
    pub(crate) batched_deliveries: f64,
}

pub(crate) fn pgbench_ceilings(args: &Args, plan: &Plan) -> Result<Ceiling> {
    let batch = default_batch()?;
    Ok(Ceiling {
        one: pgbench_ceiling(args, plan, 1)?,
        batch,
        batched_deliveries: pgbench_ceiling(args, plan, batch)? * f64::from(batch),
    })
}

/// Transactions per second of [`pgbench_script`] with `batch` deliveries each.
pub(crate) fn pgbench_ceiling(args: &Args, plan: &Plan, batch: u32) -> Result<f64> {
    let db = migrated_database(args, "bench_pgbench")?;
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", true, 5)?;
    // Far more rows than the run can claim, so no transaction ever finds the queue empty and
    // every batch is full.
    let rows = if args.smoke { 50_000 } else { 400_000 } * if batch > 1 { 2 } else { 1 };
    client.execute(
        "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, '{\"event\":\"bench\"}', now() - interval '1 hour', 0, 'pending', now(), now() \
         FROM generate_series(1, $2::integer)",
        &[&webhook, &rows],
    )?;
    client.batch_execute("VACUUM ANALYZE deliveries")?;
    run_pgbench(
        args,
        &db,
        &pgbench_session(),
        &[
            "id=00000000-0000-0000-0000-000000000000".to_string(),
            format!("batch={batch}"),
        ],
        plan.concurrency,
        plan.pgbench_secs,
        &pgbench_script(),
    )
}

/// Transactions per second of a one-row INSERT into `deliveries` (what a create writes), with
/// `api_clients` pgbench clients, each its own transaction: what the database does for creates
/// without group commit.
pub(crate) fn pgbench_insert_rate(args: &Args, plan: &Plan) -> Result<f64> {
    let db = migrated_database(args, "bench_pgbench_insert")?;
    let mut client = db.client()?;
    let webhook = insert_webhook(&mut client, "http://127.0.0.1:9/", false, 5)?;
    run_pgbench(
        args,
        &db,
        "-c jit=off",
        &[format!("webhook={webhook}")],
        plan.api_clients,
        plan.pgbench_secs,
        "INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at) \
         VALUES (gen_random_uuid(), :webhook, '{\"event\":\"api-bench\"}', now(), 0, 'pending', now(), now());\n",
    )
}

/// A fresh database migrated by the postmand under test.
fn migrated_database(args: &Args, name: &str) -> Result<Database> {
    let db = Database::create(&args.admin_url, name)?;
    let migrate = Command::new(&args.postmand)
        .arg("migrate")
        .env("POSTMAND_DATABASE_URL", &db.url)
        .env("POSTMAND_LOG_LEVEL", "warn")
        .status()?;
    if !migrate.success() {
        return Err("postmand migrate failed".into());
    }
    Ok(db)
}

/// Runs `script` with pgbench (prepared statements, 2 threads) and returns its rate.
fn run_pgbench(
    args: &Args,
    db: &Database,
    session_options: &str,
    defines: &[String],
    clients: usize,
    secs: u64,
    script: &str,
) -> Result<f64> {
    let path = std::env::temp_dir().join(format!(
        "postmand-bench-{}-{}.sql",
        std::process::id(),
        db.name
    ));
    std::fs::File::create(&path)?.write_all(script.as_bytes())?;
    let mut command = Command::new(&args.pgbench);
    command
        .env("PGOPTIONS", session_options)
        .args(["-n", "-M", "prepared"]);
    for define in defines {
        command.arg("-D").arg(define);
    }
    let output = command
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(&path)
        .arg(&db.url)
        .output()?;
    let _ = std::fs::remove_file(&path);
    pgbench_tps(&output)
}

/// The `tps = ` figure of a pgbench run.
pub(crate) fn pgbench_tps(output: &std::process::Output) -> Result<f64> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn bind_replaces_two_digit_parameters_before_one_digit_ones() {
        assert_eq!(
            super::bind(
                "$1, $10, $2",
                &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
            ),
            "a, j, b"
        );
    }

    #[test]
    fn the_script_carries_no_unbound_parameter() {
        let script = super::pgbench_script();
        assert!(!script.contains('$'), "{script}");
        assert!(script.contains("FOR UPDATE OF d SKIP LOCKED"));
        assert!(
            script.contains("d.status || '' = 'pending'"),
            "the production record statement"
        );
    }
}
