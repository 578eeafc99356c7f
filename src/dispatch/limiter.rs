//! Isolation between webhooks inside one worker process: how many deliveries of one webhook may
//! be in flight at once, so a slow or dead endpoint cannot take every dispatcher.
//!
//! A webhook may hold up to `max_in_flight` dispatchers (default: three quarters of them). After
//! `DEGRADE_AFTER` failed attempts in a row it may hold only one, a probe, until an attempt
//! succeeds again. A webhook at its cap is left out of the claim, so its backlog waits in the
//! database while other webhooks flow.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

/// Consecutive failed attempts after which a webhook is held to one delivery in flight.
pub const DEGRADE_AFTER: u32 = 3;

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    in_flight: usize,
    consecutive_failures: u32,
}

/// What a slot of [`Limiter::try_acquire`] may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A healthy webhook: a whole batch.
    Full,
    /// A webhook held to one probe after failing: one delivery.
    Probe,
}

/// Per-webhook in-flight counts of this process.
#[derive(Debug)]
pub struct Limiter {
    max_in_flight: usize,
    entries: Mutex<HashMap<Uuid, Entry>>,
}

impl Limiter {
    /// A limiter allowing `max_in_flight` (at least 1) deliveries per healthy webhook.
    pub fn new(max_in_flight: usize) -> Limiter {
        Limiter {
            max_in_flight: max_in_flight.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        // The map stays consistent even if a holder panicked: each update is one assignment.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cap(&self, entry: &Entry) -> usize {
        if entry.consecutive_failures >= DEGRADE_AFTER {
            1
        } else {
            self.max_in_flight
        }
    }

    /// Webhooks at their cap: the claim skips their deliveries.
    pub fn saturated(&self) -> Vec<Uuid> {
        self.entries()
            .iter()
            .filter(|(_, entry)| entry.in_flight >= self.cap(entry))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Takes a slot for `webhook_id`: `None` when it is at its cap (another dispatcher got
    /// there since [`Limiter::saturated`]), else how much the slot may send.
    pub fn try_acquire(&self, webhook_id: Uuid) -> Option<Admission> {
        let mut entries = self.entries();
        let entry = entries.entry(webhook_id).or_default();
        if entry.in_flight >= self.cap(entry) {
            return None;
        }
        entry.in_flight += 1;
        Some(if entry.consecutive_failures >= DEGRADE_AFTER {
            Admission::Probe
        } else {
            Admission::Full
        })
    }

    /// Gives the slot back and records how its last attempt went (`None`: no attempt was made).
    pub fn release(&self, webhook_id: Uuid, succeeded: Option<bool>) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(&webhook_id) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.consecutive_failures = match succeeded {
                Some(true) => 0,
                Some(false) => entry.consecutive_failures.saturating_add(1),
                None => entry.consecutive_failures,
            };
            if entry.in_flight == 0 && entry.consecutive_failures == 0 {
                entries.remove(&webhook_id);
            }
        }
    }

    /// Deliveries in flight now, across webhooks.
    pub fn in_flight(&self) -> usize {
        self.entries().values().map(|e| e.in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Option<Admission> = Some(Admission::Full);
    const PROBE: Option<Admission> = Some(Admission::Probe);

    #[test]
    fn cap_then_saturated() {
        let limiter = Limiter::new(2);
        let id = Uuid::new_v4();
        assert_eq!(limiter.try_acquire(id), FULL);
        assert!(limiter.saturated().is_empty());
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.saturated(), vec![id]);
        assert_eq!(limiter.try_acquire(id), None);
        limiter.release(id, Some(true));
        assert!(limiter.saturated().is_empty());
    }

    #[test]
    fn failing_webhook_is_held_to_one_probe_until_success() {
        let limiter = Limiter::new(8);
        let id = Uuid::new_v4();
        for _ in 0..DEGRADE_AFTER {
            assert_eq!(limiter.try_acquire(id), FULL);
            limiter.release(id, Some(false));
        }
        assert_eq!(limiter.try_acquire(id), PROBE);
        assert_eq!(limiter.try_acquire(id), None);
        assert_eq!(limiter.saturated(), vec![id]);
        limiter.release(id, None);
        assert_eq!(limiter.try_acquire(id), PROBE, "no attempt, no change");
        limiter.release(id, Some(true));
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.try_acquire(id), FULL);
    }

    #[test]
    fn idle_healthy_webhooks_are_forgotten() {
        let limiter = Limiter::new(1);
        let id = Uuid::new_v4();
        assert_eq!(limiter.try_acquire(id), FULL);
        limiter.release(id, Some(true));
        assert_eq!(limiter.entries().len(), 0);
        assert_eq!(limiter.in_flight(), 0);
    }
}
