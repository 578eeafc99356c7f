//! Which of the threads that others depend on are running: the request threads of each
//! server, the dispatchers, the create writer, the LISTEN connection. `/healthz` answers 200
//! only when every part registered for the role is whole, so an orchestrator restarts a
//! process that lost one instead of keeping it in service with a gap.
//!
//! A part is registered with how many threads make it whole before any server answers; each
//! of those threads holds a [`Running`] guard for as long as it runs, so a thread that panics
//! or returns leaves the part short at once. A part that is up or down rather than counted
//! (a connection) is a part of one that is set with [`Part::set_up`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Every part of one process.
#[derive(Default)]
pub struct Liveness {
    parts: Mutex<Vec<Arc<Part>>>,
}

/// One part: `whole` threads (or connections) make it whole.
pub struct Part {
    name: &'static str,
    whole: usize,
    running: AtomicUsize,
}

impl Liveness {
    /// Registers a part that `whole` running threads make whole. None is running yet.
    pub fn register(&self, name: &'static str, whole: usize) -> Arc<Part> {
        let part = Arc::new(Part {
            name,
            whole,
            running: AtomicUsize::new(0),
        });
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&part));
        part
    }

    /// The names of the parts that are not whole, in registration order; empty when all are.
    pub fn missing(&self) -> Vec<&'static str> {
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|part| !part.is_whole())
            .map(|part| part.name)
            .collect()
    }

    /// Every part with whether it is whole, for the metrics.
    pub fn parts(&self) -> Vec<(&'static str, bool)> {
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|part| (part.name, part.is_whole()))
            .collect()
    }
}

impl Part {
    /// Counts the calling thread as running until the guard drops (when the thread returns or
    /// unwinds).
    pub fn running(self: &Arc<Part>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running {
            part: Arc::clone(self),
        }
    }

    /// For a part of one: whether it is up.
    pub fn set_up(&self, up: bool) {
        self.running.store(usize::from(up), Ordering::Release);
    }

    /// The part's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn is_whole(&self) -> bool {
        self.running.load(Ordering::Acquire) >= self.whole
    }
}

/// Held by a running thread of a part; see [`Part::running`].
pub struct Running {
    part: Arc<Part>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.part.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_whole_only_while_all_its_threads_run() {
        let liveness = Liveness::default();
        let api = liveness.register("api", 2);
        let listener = liveness.register("listener", 1);
        assert_eq!(liveness.missing(), ["api", "listener"]);
        let first = api.running();
        let second = api.running();
        listener.set_up(true);
        assert!(liveness.missing().is_empty());
        drop(second);
        assert_eq!(liveness.missing(), ["api"]);
        drop(first);
        listener.set_up(false);
        assert_eq!(liveness.parts(), [("api", false), ("listener", false)]);
    }

    #[test]
    fn a_thread_that_panics_leaves_its_part_short() {
        let liveness = Liveness::default();
        let writer = liveness.register("create-writer", 1);
        let part = Arc::clone(&writer);
        let outcome = std::thread::spawn(move || {
            let _running = part.running();
            panic!("test panic");
        })
        .join();
        assert!(outcome.is_err());
        assert_eq!(liveness.missing(), ["create-writer"]);
    }
}
