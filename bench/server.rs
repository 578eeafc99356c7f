//! The database of each figure and the postmand process under test.

use super::*;

// ---------------------------------------------------------------------------------------------
// The database and the postmand process.

pub(crate) struct Database {
    pub(crate) admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) fn create(admin_url: &str, name: &str) -> Result<Database> {
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

    pub(crate) fn client(&self) -> Result<postgres::Client> {
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

/// `postmand migrate` on the database of `url`.
pub(crate) fn migrate(binary: &str, url: &str) -> Result<()> {
    let status = Command::new(binary)
        .arg("migrate")
        .env("POSTMAND_DATABASE_URL", url)
        .env("POSTMAND_LOG_LEVEL", "warn")
        .status()?;
    if !status.success() {
        return Err("postmand migrate failed".into());
    }
    Ok(())
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) struct Postmand {
    pub(crate) child: Child,
    pub(crate) api: SocketAddr,
    /// `/healthz`, which answers only once the role's dispatchers hold their connections.
    pub(crate) health: SocketAddr,
}

impl Postmand {
    pub(crate) fn start(binary: &str, url: &str, plan: &Plan, role: &str) -> Result<Postmand> {
        migrate(binary, url)?;
        let port = free_port()?;
        let health = free_port()?;
        let child = Command::new(binary)
            .args(["--role", role])
            .env("POSTMAND_DATABASE_URL", url)
            .env("POSTMAND_HTTP_PORT", port.to_string())
            .env("POSTMAND_HEALTH_CHECK_HTTP_PORT", health.to_string())
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
            health: SocketAddr::from(([127, 0, 0, 1], health)),
        })
    }

    /// Waits until `/healthz` answers 200: for a role without the API, whose listening health
    /// port accepts connections (into the kernel's backlog) before its dispatchers are up.
    pub(crate) fn wait_healthy(&mut self) -> Result<()> {
        let agent = agent();
        let url = format!("http://{}/healthz", self.health);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if agent
                .get(&url)
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("postmand exited: {status}").into());
            }
            // Each 503 logs a WARN (health-check-failed): poll gently.
            thread::sleep(Duration::from_millis(100));
        }
        Err("postmand's /healthz did not answer 200".into())
    }

    pub(crate) fn wait_ready(&mut self) -> Result<()> {
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

    pub(crate) fn peak_rss_kib(&self) -> u64 {
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

    pub(crate) fn stop(mut self) -> Result<()> {
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

pub(crate) fn insert_webhook(
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

pub(crate) fn pending(client: &mut postgres::Client) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'",
            &[],
        )?
        .get(0))
}
