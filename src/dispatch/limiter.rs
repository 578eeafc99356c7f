//! Isolation between webhooks inside one worker process: how many dispatchers one webhook may
//! hold at once, so slow or dead endpoints cannot take every dispatcher.
//!
//! Three rules, all in this process:
//! - **Slow start.** A webhook this process has not seen lately may hold one dispatcher. Each
//!   successful batch doubles what it may hold, up to `max_in_flight` (default three quarters
//!   of the dispatchers); a failed attempt drops it back to one. A dead endpoint that no one has
//!   tried yet therefore takes one dispatcher for one timeout, not the cap's worth: oldest-first
//!   claiming ranks a dead endpoint's backlog ahead of fresh work, and without slow start eight
//!   such endpoints took all sixteen dispatchers, one after another, for a whole timeout each.
//! - **Failing webhooks share half.** Webhooks whose last attempt failed hold at most half of
//!   the dispatchers between them, so the other half always serves webhooks that work.
//! - **Probes.** After `DEGRADE_AFTER` failed attempts in a row a webhook sends one delivery
//!   per claim (a probe) instead of a batch, until an attempt succeeds.
//!
//! A webhook left idle for [`FORGET_AFTER`] is forgotten (it starts slow again), so the table
//! stays as small as the set of webhooks in use.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Consecutive failed attempts after which a webhook sends probes of one delivery.
pub const DEGRADE_AFTER: u32 = 3;

/// How long a webhook with nothing in flight is remembered.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    in_flight: usize,
    /// Dispatchers it may hold now (slow start).
    allowed: usize,
    consecutive_failures: u32,
    /// When `in_flight` last fell to zero.
    idle_since: Instant,
    /// A dispatcher found it at its cap while a slot was held: the holder claims again when it
    /// lets go, instead of leaving the deferred work to the poll timer.
    wanted: bool,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            in_flight: 0,
            allowed: 1,
            consecutive_failures: 0,
            idle_since: Instant::now(),
            wanted: false,
        }
    }

    fn failing(&self) -> bool {
        self.consecutive_failures > 0
    }
}

/// What a slot of [`Limiter::try_acquire`] may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A webhook in good standing: a whole batch.
    Full,
    /// A webhook held to one probe after failing: one delivery.
    Probe,
}

/// Per-webhook in-flight counts of this process.
#[derive(Debug)]
pub struct Limiter {
    max_in_flight: usize,
    max_failing: usize,
    entries: Mutex<HashMap<Uuid, Entry>>,
}

impl Limiter {
    /// A limiter allowing a webhook up to `max_in_flight` (at least 1) of `dispatchers`.
    pub fn new(max_in_flight: usize, dispatchers: usize) -> Limiter {
        Limiter {
            max_in_flight: max_in_flight.max(1),
            max_failing: (dispatchers / 2).max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        // The map stays consistent even if a holder panicked: each update is one assignment.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failing_in_flight(entries: &HashMap<Uuid, Entry>) -> usize {
        entries
            .values()
            .filter(|entry| entry.failing())
            .map(|entry| entry.in_flight)
            .sum()
    }

    fn admits(&self, entry: &Entry, failing_in_flight: usize) -> bool {
        entry.in_flight < entry.allowed.min(self.max_in_flight)
            && (!entry.failing() || failing_in_flight < self.max_failing)
    }

    /// Webhooks that may not take another dispatcher now: the claim skips their deliveries.
    /// Also forgets webhooks idle for [`FORGET_AFTER`].
    pub fn saturated(&self) -> Vec<Uuid> {
        self.before_claim().0
    }

    /// What a claim needs, under one lock: the webhooks it must skip ([`Limiter::saturated`]),
    /// and those sending probes of one delivery now ([`Admission::Probe`]), whose rows it locks
    /// one at a time. Also forgets webhooks idle for [`FORGET_AFTER`].
    pub fn before_claim(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        let mut entries = self.entries();
        entries.retain(|_, entry| entry.in_flight > 0 || entry.idle_since.elapsed() < FORGET_AFTER);
        let failing = Limiter::failing_in_flight(&entries);
        let (mut saturated, mut probing) = (Vec::new(), Vec::new());
        for (id, entry) in entries.iter_mut() {
            if !self.admits(entry, failing) {
                entry.wanted = true;
                saturated.push(*id);
            }
            if entry.consecutive_failures >= DEGRADE_AFTER {
                probing.push(*id);
            }
        }
        (saturated, probing)
    }

    /// Takes a slot for `webhook_id`: `None` when it may not take another dispatcher now
    /// (another dispatcher got there since [`Limiter::saturated`]), else how much the slot
    /// may send.
    pub fn try_acquire(&self, webhook_id: Uuid) -> Option<Admission> {
        let mut entries = self.entries();
        let failing = Limiter::failing_in_flight(&entries);
        let entry = entries.entry(webhook_id).or_insert_with(Entry::new);
        if !self.admits(entry, failing) {
            entry.wanted = true;
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
    /// Returns whether a dispatcher was turned away from this webhook meanwhile, so the caller
    /// should claim again rather than wait.
    pub fn release(&self, webhook_id: Uuid, succeeded: Option<bool>) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&webhook_id) else {
            return false;
        };
        {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.in_flight == 0 {
                entry.idle_since = Instant::now();
            }
            match succeeded {
                Some(true) => {
                    entry.consecutive_failures = 0;
                    entry.allowed = (entry.allowed * 2).min(self.max_in_flight);
                }
                Some(false) => {
                    entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
                    entry.allowed = 1;
                }
                None => {}
            }
        }
        std::mem::take(&mut entry.wanted)
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
    fn the_holder_learns_that_a_dispatcher_was_turned_away_once() {
        let limiter = Limiter::new(4, 16);
        let (turned_away, alone) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [turned_away, alone] {
            assert_eq!(limiter.try_acquire(id), FULL);
        }
        assert_eq!(limiter.try_acquire(turned_away), None);
        assert!(limiter.release(turned_away, Some(true)));
        assert!(!limiter.release(alone, Some(true)), "no one wanted it");
        assert_eq!(limiter.try_acquire(turned_away), FULL);
        assert!(!limiter.release(turned_away, Some(true)), "told once");
        // A claim that skips a saturated webhook may have skipped due work: its holder is told.
        assert_eq!(limiter.try_acquire(alone), FULL);
        assert_eq!(limiter.try_acquire(alone), FULL);
        assert_eq!(limiter.try_acquire(alone), None);
        assert!(limiter.saturated().contains(&alone));
        assert!(limiter.release(alone, Some(true)));
    }

    #[test]
    fn a_new_webhook_starts_with_one_and_doubles_per_success_up_to_the_cap() {
        let limiter = Limiter::new(4, 16);
        let id = Uuid::new_v4();
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.try_acquire(id), None, "slow start: one at first");
        assert_eq!(limiter.saturated(), vec![id]);
        limiter.release(id, Some(true));
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.try_acquire(id), None, "two after one success");
        limiter.release(id, Some(true));
        limiter.release(id, Some(true));
        for _ in 0..4 {
            assert_eq!(limiter.try_acquire(id), FULL);
        }
        assert_eq!(limiter.try_acquire(id), None, "never past the cap");
    }

    #[test]
    fn a_failure_drops_a_webhook_back_to_one() {
        let limiter = Limiter::new(8, 16);
        let id = Uuid::new_v4();
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire(id), FULL);
            limiter.release(id, Some(true));
        }
        assert_eq!(limiter.try_acquire(id), FULL);
        assert_eq!(limiter.try_acquire(id), FULL);
        limiter.release(id, Some(false));
        assert_eq!(limiter.try_acquire(id), None, "one in flight, one allowed");
    }

    #[test]
    fn failing_webhook_is_held_to_one_probe_until_success() {
        let limiter = Limiter::new(8, 16);
        let id = Uuid::new_v4();
        for _ in 0..DEGRADE_AFTER {
            assert!(limiter.before_claim().1.is_empty(), "not probing yet");
            assert_eq!(limiter.try_acquire(id), FULL);
            limiter.release(id, Some(false));
        }
        assert_eq!(
            limiter.before_claim(),
            (Vec::new(), vec![id]),
            "claimed one row at a time"
        );
        assert_eq!(limiter.try_acquire(id), PROBE);
        assert_eq!(limiter.try_acquire(id), None);
        assert_eq!(limiter.saturated(), vec![id]);
        limiter.release(id, None);
        assert_eq!(limiter.try_acquire(id), PROBE, "no attempt, no change");
        limiter.release(id, Some(true));
        assert!(limiter.before_claim().1.is_empty());
        assert_eq!(limiter.try_acquire(id), FULL);
    }

    #[test]
    fn failing_webhooks_share_half_of_the_dispatchers() {
        let limiter = Limiter::new(12, 4);
        let dead: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &dead {
            assert_eq!(limiter.try_acquire(*id), FULL);
            limiter.release(*id, Some(false));
        }
        assert_eq!(limiter.try_acquire(dead[0]), FULL);
        assert_eq!(limiter.try_acquire(dead[1]), FULL);
        assert_eq!(
            limiter.try_acquire(dead[2]),
            None,
            "two of four are failing already"
        );
        let healthy = Uuid::new_v4();
        assert_eq!(
            limiter.try_acquire(healthy),
            FULL,
            "a webhook that works still gets one"
        );
        limiter.release(dead[0], Some(false));
        assert_eq!(limiter.try_acquire(dead[2]), FULL);
    }

    #[test]
    fn idle_webhooks_are_forgotten() {
        let limiter = Limiter::new(1, 4);
        let id = Uuid::new_v4();
        assert_eq!(limiter.try_acquire(id), FULL);
        limiter.release(id, Some(true));
        assert_eq!(limiter.in_flight(), 0);
        limiter
            .entries()
            .get_mut(&id)
            .expect("remembered while recent")
            .idle_since = Instant::now()
            .checked_sub(FORGET_AFTER)
            .expect("the machine has been up a minute");
        assert!(limiter.saturated().is_empty());
        assert_eq!(limiter.entries().len(), 0);
    }
}
