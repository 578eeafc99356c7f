//! Tells idle dispatchers that deliveries were queued, without slowing the inserts down.
//!
//! Handlers call [`Notifier::poke`] after their insert commits: a non-blocking send on a channel
//! of one slot, so any number of pokes between two notifications collapse into one. A thread of
//! its own sends `NOTIFY` on its own connection, outside every insert transaction (a NOTIFY
//! inside each insert would serialise their commits), and at most once per [`COOLDOWN`]. A poke
//! that arrives during the cooldown is kept in the slot and sent right after it, so a delivery
//! queued inside the cooldown still goes out within milliseconds.
//!
//! In `--role all` the thread also wakes this process's dispatchers directly.

use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, select};

use crate::db;
use crate::shutdown::Shutdown;
use crate::store::queue;

/// Least time between two NOTIFYs of one API process.
pub const COOLDOWN: Duration = Duration::from_millis(2);

/// The handlers' side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    slot: Sender<()>,
}

impl Notifier {
    /// Asks for a notification soon.
    pub fn poke(&self) {
        let _ = self.slot.try_send(());
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
    let thread = thread::Builder::new()
        .name("notifier".into())
        .spawn(move || run(&database_url, &pokes, local.as_ref(), &shutdown))?;
    Ok((Notifier { slot }, thread))
}

fn run(database_url: &str, pokes: &Receiver<()>, local: Option<&LocalWake>, shutdown: &Shutdown) {
    let mut client: Option<postgres::Client> = None;
    loop {
        select! {
            recv(pokes) -> poke => if poke.is_err() { return },
            recv(shutdown.receiver()) -> _ => return,
        }
        if let Some(local) = local {
            let _ = local.sender.try_send(());
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
        if let Some(c) = client.as_mut()
            && let Err(e) = queue::notify(c, local.map(|l| l.tag.as_str()))
        {
            log::warn!("notifier-error error={e}");
            client = None;
        }
        if shutdown.wait_timeout(COOLDOWN) {
            return;
        }
    }
}
