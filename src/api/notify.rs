//! Tells idle dispatchers that deliveries were queued, without slowing the inserts down.
//!
//! Handlers call [`Notifier::poke`] after their insert commits: a non-blocking send on a channel
//! of one slot, so any number of pokes between two notifications collapse into one. A thread of
//! its own sends `NOTIFY` on its own connection, outside every insert transaction (a NOTIFY
//! inside each insert would serialise their commits), and at most once per [`COOLDOWN`]. A poke
//! that arrives during the cooldown is kept in the slot and sent right after it, so a delivery
//! queued inside the cooldown still goes out within milliseconds.
//!
//! In `--role all` the thread also wakes this process's dispatchers directly. It sends no
//! NOTIFY while no other process listens (checked at most once per [`LISTENERS_RECHECK`]): a
//! lone `--role all` process wakes its dispatchers itself, and a NOTIFY only its own listener
//! hears would cost the database a transaction and a wake-up for nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use crate::db;
use crate::shutdown::Shutdown;
use crate::store::{self, queue};

/// Least time between two NOTIFYs of one API process.
pub const COOLDOWN: Duration = Duration::from_millis(2);

/// The handlers' side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    slot: Sender<()>,
    local: Option<Arc<DirectWake>>,
}

/// Least time between two direct wakes of local dispatchers (see [`DirectWake`]): at most a
/// thousand a second, as many as the NOTIFY round trips of the cooldown used to make.
const DIRECT_WAKE_COOLDOWN: Duration = Duration::from_millis(1);

/// Wakes a local dispatcher from the request thread itself, at most once per
/// [`DIRECT_WAKE_COOLDOWN`]: a lone create is claimed one thread hop sooner (issue 14), and a
/// flood of creates for an inactive webhook does not turn into a flood of empty claims (each
/// create waking a dispatcher halved the API's rate).
struct DirectWake {
    sender: Sender<()>,
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last direct wake.
    last: AtomicU64,
    /// A poke was turned away by the cooldown since the notifying thread last looked: the
    /// dispatcher woken before it may have claimed before that poke's delivery committed.
    missed: AtomicBool,
}

impl DirectWake {
    /// Wakes a dispatcher unless one was woken within the cooldown; a poke turned away is
    /// noted for [`DirectWake::wake_if_missed`].
    fn wake(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::SeqCst);
        let cooldown = u64::try_from(DIRECT_WAKE_COOLDOWN.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= cooldown
            && self
                .last
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let _ = self.sender.try_send(());
        } else {
            self.missed.store(true, Ordering::SeqCst);
        }
    }

    /// The notifying thread's wake: only when a poke was turned away since the last one. A
    /// poke whose own wake went out needs no second one, which would claim nothing (issue 14:
    /// at a message every few milliseconds, that empty claim came with nearly every message).
    fn wake_if_missed(&self) {
        if self.missed.swap(false, Ordering::SeqCst) {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last.store(now, Ordering::SeqCst);
            let _ = self.sender.try_send(());
        }
    }
}

impl Notifier {
    /// Wakes a local dispatcher unless one was woken within the cooldown (the notifying thread
    /// tries again after it), and asks for a NOTIFY soon.
    pub fn poke(&self) {
        if let Some(local) = &self.local {
            local.wake();
        }
        let _ = self.slot.try_send(());
    }
}

/// How long the notifier trusts its answer to "does another process listen?". A worker that
/// starts listening while the answer is "no" waits this long at most for its first NOTIFY;
/// meanwhile its poll and the claim it makes on connecting pick deliveries up.
const LISTENERS_RECHECK: Duration = Duration::from_secs(1);

/// The notifier's cached view of the other listeners ([`queue::others_listening`]).
#[derive(Default)]
struct Listeners {
    checked: Option<(Instant, bool)>,
}

impl Listeners {
    /// Whether a NOTIFY now would be heard by a listener other than this process's own.
    fn heard(&mut self, client: &mut postgres::Client, own: &str) -> Result<bool, store::Error> {
        match self.checked {
            Some((at, others)) if at.elapsed() < LISTENERS_RECHECK => Ok(others),
            _ => {
                let others = queue::others_listening(client, own)?;
                self.checked = Some((Instant::now(), others));
                Ok(others)
            }
        }
    }
}

/// This process's dispatchers, when it runs any: their wake channel, and the tag their
/// listener knows this process's notifications by (it skips them: the channel already woke one).
#[derive(Debug, Clone)]
pub struct LocalWake {
    /// The dispatchers' wake channel.
    pub sender: Sender<()>,
    /// The payload of this process's NOTIFYs (`queue::new_sender_tag`).
    pub tag: String,
}

/// Starts the notifying thread.
pub fn spawn(
    database_url: String,
    local: Option<LocalWake>,
    shutdown: Shutdown,
) -> std::io::Result<(Notifier, thread::JoinHandle<()>)> {
    let (slot, pokes) = crossbeam_channel::bounded(1);
    let notifier = Notifier {
        slot,
        local: local.as_ref().map(|local| {
            Arc::new(DirectWake {
                sender: local.sender.clone(),
                epoch: Instant::now(),
                last: AtomicU64::new(0),
                missed: AtomicBool::new(false),
            })
        }),
    };
    let direct = notifier.local.clone();
    let tag = local.map(|local| local.tag);
    let thread = thread::Builder::new()
        .name("notifier".into())
        .spawn(move || {
            run(
                &database_url,
                &pokes,
                direct.as_deref(),
                tag.as_deref(),
                &shutdown,
            )
        })?;
    Ok((notifier, thread))
}

fn run(
    database_url: &str,
    pokes: &Receiver<()>,
    local: Option<&DirectWake>,
    tag: Option<&str>,
    shutdown: &Shutdown,
) {
    let mut client: Option<postgres::Client> = None;
    let own_listener = tag
        .map(|tag| queue::listener_name(Some(tag)))
        .unwrap_or_default();
    let mut listeners = Listeners::default();
    loop {
        select! {
            recv(pokes) -> poke => if poke.is_err() { return },
            recv(shutdown.receiver()) -> _ => return,
        }
        // The poke was sent after the `missed` note, so this sees every poke turned away
        // before it: their deliveries are committed, and the dispatcher woken here claims them.
        if let Some(local) = local {
            local.wake_if_missed();
        }
        if client.is_none() {
            let connected =
                db::connect_with(database_url, "postmand-notifier", queue::prepare_notifier);
            client = match connected {
                Ok(c) => Some(c),
                Err(e) => {
                    // The dispatchers' poll picks the delivery up; nothing is lost.
                    log::warn!("notifier-connect-error error={e}");
                    None
                }
            };
        }
        if let Some(c) = client.as_mut() {
            // A check that fails notifies anyway: a NOTIFY too many costs little.
            let heard = listeners.heard(c, &own_listener);
            let sent = match heard {
                Ok(false) => Ok(()),
                _ => queue::notify(c, tag),
            };
            if let Err(e) = heard.and(sent) {
                log::warn!("notifier-error error={e}");
                client = None;
            }
        }
        if shutdown.wait_timeout(COOLDOWN) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct_wake() -> (DirectWake, Receiver<()>) {
        let (sender, receiver) = crossbeam_channel::bounded(16);
        let wake = DirectWake {
            sender,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            missed: AtomicBool::new(false),
        };
        // `last` starts at the epoch: let the first wake be past the cooldown.
        thread::sleep(DIRECT_WAKE_COOLDOWN);
        (wake, receiver)
    }

    #[test]
    fn a_poke_whose_wake_went_out_gets_no_second_wake() {
        let (wake, woken) = direct_wake();
        wake.wake();
        wake.wake_if_missed();
        assert_eq!(woken.try_iter().count(), 1);
    }

    #[test]
    fn a_poke_turned_away_by_the_cooldown_is_woken_by_the_notifying_thread_once() {
        let (wake, woken) = direct_wake();
        wake.wake();
        // As if the second came within the cooldown of the first, however slow this machine.
        wake.last.store(u64::MAX, Ordering::SeqCst);
        wake.wake();
        assert_eq!(woken.try_iter().count(), 1);
        wake.wake_if_missed();
        assert_eq!(woken.try_iter().count(), 1);
        wake.wake_if_missed();
        assert_eq!(woken.try_iter().count(), 0);
    }
}
