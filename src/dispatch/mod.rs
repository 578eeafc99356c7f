//! The worker role: `POSTMAND_WORKER_CONCURRENCY` dispatcher threads, each with its own pooled
//! connection, plus the LISTEN thread that wakes them.
//!
//! All connections are checked out before any thread starts, so a database that cannot serve
//! the whole pool fails at start-up rather than leaving a silent gap. A dispatcher that panics
//! requests shutdown through a drop guard, and [`Workers::join`] reports it, so the process exits
//! non-zero instead of running with fewer dispatchers than configured.

pub mod backoff;
pub mod dispatcher;
pub mod dump;
pub mod egress;
pub mod limiter;
pub mod retention;
pub mod send;
pub mod signature;
pub mod wakeup;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::db::{self, Pool};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store;
use dispatcher::{Dispatcher, Shared};
use limiter::Limiter;

/// Why the worker role could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A dispatcher's connection could not be checked out or readied.
    Db(db::Error),
    /// A thread could not be started.
    Spawn(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Db(e) => e.fmt(f),
            StartError::Spawn(e) => write!(f, "cannot start a dispatcher thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The running dispatchers and listener.
pub struct Workers {
    threads: Vec<thread::JoinHandle<()>>,
    listener: Option<thread::JoinHandle<()>>,
    retention: Option<thread::JoinHandle<()>>,
    panicked: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

/// Requests shutdown if its thread unwinds.
struct PanicGuard {
    shutdown: Shutdown,
    panicked: Arc<AtomicBool>,
    index: usize,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            log::error!(
                "dispatcher-panicked dispatcher={}: shutting down",
                self.index
            );
            self.panicked.store(true, Ordering::SeqCst);
            self.shutdown.request();
        }
    }
}

/// The wake channel: one token per "there may be due work", at most one per dispatcher queued.
pub fn wake_channel(config: &Config) -> (Sender<()>, Receiver<()>) {
    crossbeam_channel::bounded(config.worker_concurrency)
}

impl Workers {
    /// Checks out one connection per dispatcher, then starts the listener and the dispatchers.
    pub fn start(
        config: &Config,
        pool: Pool,
        shutdown: &Shutdown,
        (wake_tx, wake_rx): (Sender<()>, Receiver<()>),
        own_notifications: Option<String>,
        metrics: Arc<Metrics>,
        liveness: &Liveness,
    ) -> Result<Workers, StartError> {
        let unreachable = |cause: String| {
            StartError::Db(db::Error::Unreachable {
                target: config.redacted_database_url(),
                mode: db::sslmode_of(&config.database_url),
                cause,
            })
        };
        if let Some(operational) = &config.operational_webhook {
            let mut client = db::checkout(&pool).map_err(StartError::Db)?;
            store::webhooks::ensure_operational(
                &mut *client,
                &operational.url,
                &operational.secret,
            )
            .map_err(|e| unreachable(format!("cannot set up the operational webhook: {e}")))?;
        }
        // Today's attempt partition before the first claim: on a database restored from an old
        // backup, dispatchers that started first would send deliveries whose record then fails
        // for want of a partition, and send them again after the backoff. A failure here is
        // left to the retention thread's upkeep, which retries every minute.
        match db::checkout(&pool)
            .map_err(|e| e.to_string())
            .and_then(|mut client| {
                store::partitions::create_ahead(&mut *client, store::partitions::DAYS_AHEAD)
                    .map_err(|e| e.to_string())
            }) {
            Ok(created) if created > 0 => log::info!("attempt-partitions-created count={created}"),
            Ok(_) => {}
            Err(e) => log::warn!("attempt-partitions-error error={e}"),
        }
        let mut sessions = Vec::with_capacity(config.worker_concurrency);
        for _ in 0..config.worker_concurrency {
            let session = dispatcher::Session::open(&pool).map_err(|e| match e {
                dispatcher::DispatchError::Checkout(e) => StartError::Db(e),
                other => unreachable(other.to_string()),
            })?;
            sessions.push(session);
        }
        let shared = Arc::new(Shared {
            pool,
            sender: send::Sender::new(config),
            limiter: Limiter::new(config.webhook_max_in_flight(), config.worker_concurrency),
            poll: config.polling_interval,
            batch_size: config.worker_batch_size as i64,
            metrics,
            disable: store::queue::DisablePolicy {
                after_hours: config.disable_after_hours,
                operational_webhook: config
                    .operational_webhook
                    .as_ref()
                    .map(|_| store::webhooks::OPERATIONAL_WEBHOOK_ID),
            },
        });
        shared.metrics.set_dispatchers(config.worker_concurrency);
        let listener = wakeup::spawn_listener(
            config.database_url.clone(),
            wake_tx.clone(),
            own_notifications,
            shutdown.clone(),
            liveness.register("listener", 1),
        )
        .map_err(StartError::Spawn)?;
        let policy = retention::Policy {
            days: config.retention_days,
            idempotency_hours: config.idempotency_hours,
        };
        let retention = Some(
            retention::spawn(
                policy,
                shared.pool.clone(),
                Arc::clone(&shared.metrics),
                shutdown.clone(),
                liveness.register("retention", 1),
            )
            .map_err(StartError::Spawn)?,
        );
        let panicked = Arc::new(AtomicBool::new(false));
        let part = liveness.register("dispatchers", sessions.len());
        let mut threads = Vec::with_capacity(sessions.len());
        for (index, session) in sessions.into_iter().enumerate() {
            let dispatcher = Dispatcher {
                index,
                shared: Arc::clone(&shared),
                session: Some(session),
                wake_rx: wake_rx.clone(),
                wake_tx: wake_tx.clone(),
                shutdown: shutdown.clone(),
            };
            let guard = PanicGuard {
                shutdown: shutdown.clone(),
                panicked: Arc::clone(&panicked),
                index,
            };
            let running = part.running();
            let thread = thread::Builder::new()
                .name(format!("dispatcher-{index}"))
                .spawn(move || {
                    let _running = running;
                    let _guard = guard;
                    dispatcher.run();
                })
                .map_err(StartError::Spawn)?;
            threads.push(thread);
        }
        log::info!(
            "worker-started dispatchers={} polling_interval_ms={} endpoint_deny={:?}",
            config.worker_concurrency,
            config.polling_interval.as_millis(),
            config.endpoint_deny_text()
        );
        // Deliveries may already be due.
        let _ = wake_tx.try_send(());
        Ok(Workers {
            threads,
            listener: Some(listener),
            retention,
            panicked,
            shared,
        })
    }

    /// Deliveries being attempted right now.
    pub fn in_flight(&self) -> usize {
        self.shared.limiter.in_flight()
    }

    /// Waits for every dispatcher to finish its delivery and stop (call after requesting
    /// shutdown). Returns false if one of them panicked.
    pub fn join(mut self) -> bool {
        log::info!("worker-shutdown-started");
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for thread in [self.listener.take(), self.retention.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
        log::info!("worker-shutdown-completed");
        !self.panicked.load(Ordering::SeqCst)
    }
}
