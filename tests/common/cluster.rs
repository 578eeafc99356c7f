//! A PostgreSQL server of a test's own, for tests that must stop, restart, reconfigure or
//! replicate a server (the one the other tests share is never disturbed): initialised and run with
//! `scripts/lib/pg.sh`, as the `postgres` user when the tests run as root, on 127.0.0.1 and a free
//! port, its files in a directory under /tmp (which that user can enter). Dropping a [`Cluster`]
//! stops its server and removes the directory, also when the test panics (it then prints the end
//! of the server's log).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::process::free_port;

/// Names the private clusters of one run apart.
static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// Options every private server runs with: durability across a crash is not under test (every
/// stop is clean); speed and a small footprint are.
const OPTIONS: &str =
    "-c fsync=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=100";

/// A private PostgreSQL server.
pub struct Cluster {
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `postgres -c` options on top of [`OPTIONS`].
    options: String,
}

impl Cluster {
    /// A directory and a port for a new server, nothing in the directory and nothing started:
    /// write files into [`Cluster::dir`] first, then call [`Cluster::up`].
    pub fn prepare(test: &str) -> Cluster {
        let n = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!(
            "/tmp/postmand-pg-{}-{n}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        Cluster {
            dir,
            port: free_port(),
            options: String::new(),
        }
    }

    /// Initialises and starts a new server.
    pub fn start(test: &str) -> Cluster {
        let cluster = Cluster::prepare(test);
        cluster.up();
        cluster
    }

    /// Adds `postgres -c` options, taking effect at the next [`Cluster::up`].
    pub fn with_options(mut self, options: &str) -> Cluster {
        self.options.push(' ');
        self.options.push_str(options);
        self
    }

    /// A streaming standby of this server (`pg_basebackup -R` from it), started on a port of its
    /// own; it replays what this server writes until stopped or paused.
    pub fn standby(&self, test: &str) -> Cluster {
        let standby = Cluster::prepare(test);
        standby.pg_ok("pg_standby", &format!(r#"pg_standby "$0" {}"#, self.port));
        standby.up();
        standby
    }

    /// Its directory (the data directory is `data/` in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `script` after sourcing scripts/lib/pg.sh and finding the binaries; `$0` is the
    /// directory and `$1` the port.
    pub fn pg(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(format!(". scripts/lib/pg.sh && pg_find_bin && {script}"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PG_EXTRA_OPTS", format!("{OPTIONS}{}", self.options))
            .stdin(Stdio::null())
            .output()
            .expect("run bash")
    }

    /// [`Cluster::pg`], panicking with its output unless it succeeds.
    pub fn pg_ok(&self, what: &str, script: &str) {
        let out = self.pg(script);
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server, initialising it first if needed (`pg_ctl start -w`: it accepts
    /// connections when this returns; a standby, once it is consistent).
    pub fn up(&self) {
        self.pg_ok("pg_start", r#"pg_start "$0" "$1""#);
    }

    /// Stops the server (`pg_ctl stop -m fast -w`: every backend is terminated, and the server
    /// is gone when this returns).
    pub fn down(&self) {
        self.pg_ok("pg_stop", r#"pg_stop "$0""#);
        assert!(
            !self.dir.join("data/postmaster.pid").exists(),
            "the server of {} is still running",
            self.dir.display()
        );
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A connection to `database` on this server.
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(database), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url(database)))
    }

    /// Creates the database `postmand`, migrates it with `postmand migrate` and returns its URL.
    pub fn migrated_database(&self) -> String {
        self.client("postgres")
            .batch_execute("CREATE DATABASE postmand")
            .expect("create database postmand");
        let url = self.url("postmand");
        let out = Command::new(env!("CARGO_BIN_EXE_postmand"))
            .env_clear()
            .current_dir(std::env::temp_dir())
            .env("POSTMAND_DATABASE_URL", &url)
            .arg("migrate")
            .output()
            .expect("run postmand migrate");
        assert!(
            out.status.success(),
            "postmand migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let tail = &log[log.floor_char_boundary(log.len().saturating_sub(4000))..];
            eprintln!(
                "--- end of server.log of {} ---\n{tail}",
                self.dir.display()
            );
        }
        let _ = self.pg(r#"pg_stop "$0""#);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
