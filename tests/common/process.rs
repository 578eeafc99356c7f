//! The real binary as a child process: `postmand --role <role>` with a clean environment, its
//! log (stderr) collected as it comes so a chatty process never blocks on a full pipe. Dropping
//! a [`Postmand`] kills (SIGKILL) and reaps it, and prints its log if the test is failing.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::wait_until;

/// A running postmand process.
pub struct Postmand {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A port of 127.0.0.1 that refuses connections while the returned guard lives: the local end
/// of a connection the guard holds open, bound but not listening, so no other test's server can
/// take it. (A port from [`free_port`] can be taken between its release and its use: a CI run
/// saw a request meant to be refused answered 404 by another test's server.)
pub fn refusing_port() -> (u16, RefusingPort) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let client = TcpStream::connect(listener.local_addr().expect("its address")).expect("connect");
    let port = client.local_addr().expect("the client's address").port();
    (
        port,
        RefusingPort {
            _listener: listener,
            _client: client,
        },
    )
}

/// Keeps [`refusing_port`]'s port refusing: dropping it frees the port.
pub struct RefusingPort {
    _listener: TcpListener,
    _client: TcpStream,
}

impl Postmand {
    /// Starts `postmand --role role` on `database_url`, bound to 127.0.0.1, logging at info;
    /// `envs` add or override variables.
    pub fn start(database_url: &str, role: &str, envs: &[(&str, &str)]) -> Postmand {
        let mut command = Command::new(env!("CARGO_BIN_EXE_postmand"));
        command
            .env_clear()
            .current_dir(std::env::temp_dir())
            .env("POSTMAND_DATABASE_URL", database_url)
            .env("POSTMAND_BIND_ADDRESS", "127.0.0.1")
            .env("POSTMAND_LOG_LEVEL", "info");
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command
            .args(["--role", role])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postmand");
        let stderr = child.stderr.take().expect("postmand stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Postmand {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Descriptors the process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// Waits until `GET /healthz` on `health` answers 200: every part of the role serves.
    pub fn wait_ready(&mut self, health: SocketAddr) {
        wait_until("postmand to be ready (/healthz 200)", || {
            self.assert_running();
            let status =
                super::http::try_request(health, "GET", "/healthz", &[], None).map(|r| r.status);
            if status.as_ref().is_ok_and(|s| *s == 200) {
                Ok(())
            } else {
                Err(status)
            }
        });
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("postmand exited ({status}):\n{}", self.log());
        }
    }

    /// Waits until the log contains `text`; panics early if the process exits first.
    pub fn wait_for_log(&mut self, text: &str) {
        wait_until(&format!("log line {text:?}"), || {
            self.assert_running();
            let log = self.log();
            if log.contains(text) { Ok(()) } else { Err(log) }
        });
    }

    /// Waits until `addr` accepts connections; panics early if the process exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr) {
        wait_until(&format!("postmand to listen on {addr}"), || {
            self.assert_running();
            TcpStream::connect(addr)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }

    /// The address logged as `<server>-listen-and-serve addr=...` (for ports given as 0).
    pub fn addr(&mut self, server: &str) -> SocketAddr {
        let marker = format!("{server}-listen-and-serve addr=");
        wait_until(&format!("postmand to log {marker}"), || {
            self.assert_running();
            let log = self.log();
            log.lines()
                .find_map(|l| l.split_once(&marker))
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
                .ok_or(log)
        })
    }

    /// Sends SIGTERM, as an orchestrator stopping the process does.
    pub fn sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// SIGKILL, then reap: nothing of the process runs afterwards.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL postmand");
        self.child.wait().expect("reap postmand");
    }

    /// Waits for the process to exit by itself; returns its status and its whole log.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let status = wait_until("postmand to exit", || match self.child.try_wait() {
            Ok(Some(status)) => Ok(status),
            other => Err(format!("{other:?}")),
        });
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }

    /// How the process ended, if it ends within `limit` (an abort takes a moment to be seen).
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }
}

impl Drop for Postmand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- log of postmand {} ---\n{}",
                self.child.id(),
                self.log()
            );
        }
    }
}
