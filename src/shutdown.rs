//! The process-wide stop request: a flag any thread can poll, and a channel any thread can block
//! on, both set by SIGINT/SIGTERM or by code (tests, a panicking dispatcher).
//!
//! A clone goes into every long-lived thread. The channel never carries a message: requesting
//! shutdown drops its only sender, so every `recv` or `select!` on [`Shutdown::receiver`] returns
//! at once, which is how sleeping threads wake without polling the flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// A cloneable handle on the one stop request of the process.
#[derive(Clone)]
pub struct Shutdown {
    /// Set once, never cleared.
    requested: Arc<AtomicBool>,
    /// Taken (and so dropped) by the first request; that disconnects `receiver`.
    sender: Arc<Mutex<Option<Sender<()>>>>,
    /// Disconnected once shutdown is requested.
    receiver: Receiver<()>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A stop request that nothing has made yet.
    pub fn new() -> Shutdown {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        Shutdown {
            requested: Arc::new(AtomicBool::new(false)),
            sender: Arc::new(Mutex::new(Some(sender))),
            receiver,
        }
    }

    /// Asks every thread to stop. Idempotent.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // A poisoned lock only means another thread panicked while requesting; the request
        // stands either way, so take the sender from whatever state the lock is in.
        let mut sender = match self.sender.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        sender.take();
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Blocks until a stop is requested.
    pub fn wait(&self) {
        while self.receiver.recv().is_ok() {}
    }

    /// Blocks until a stop is requested or `timeout` passes; returns whether it was requested.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let _ = self.receiver.recv_timeout(timeout);
        self.is_requested()
    }

    /// A channel that disconnects when a stop is requested, for use in `select!`.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.receiver
    }

    /// Starts the thread that turns the first SIGINT or SIGTERM into a stop request. A second
    /// signal ends the process at once with status 130, for an operator who will not wait for
    /// in-flight deliveries.
    pub fn listen_for_signals(&self) -> std::io::Result<SignalListener> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let shutdown = self.clone();
        let thread = thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if shutdown.is_requested() {
                        log::warn!("second signal {signal}: exiting without waiting");
                        std::process::exit(130);
                    }
                    log::info!("signal {signal}: shutting down");
                    shutdown.request();
                }
            })?;
        Ok(SignalListener {
            handle,
            thread: Some(thread),
        })
    }
}

/// The signal thread; dropping it stops listening and joins the thread.
pub struct SignalListener {
    handle: Handle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wakes_every_waiter() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = shutdown.clone();
                thread::spawn(move || s.wait())
            })
            .collect();
        shutdown.request();
        shutdown.request();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert!(shutdown.is_requested());
        assert!(shutdown.wait_timeout(Duration::from_secs(5)));
    }

    #[test]
    fn wait_timeout_without_request_returns_false() {
        assert!(!Shutdown::new().wait_timeout(Duration::from_millis(10)));
    }
}
