//! Wake-ups for idle dispatchers: a LISTEN thread on its own connection (outside the pool) turns
//! each notification into one token on the wake channel. LISTEN/NOTIFY only makes pick-up fast;
//! it is never the source of truth: dispatchers also poll, so a lost notification or a dropped
//! listener connection delays a delivery by at most one polling interval.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;
use postgres::fallible_iterator::FallibleIterator;

use crate::db;
use crate::liveness::Part;
use crate::shutdown::Shutdown;
use crate::store::queue::{self, NOTIFY_CHANNEL};

/// How often the listener looks up from waiting to check for shutdown and a dead connection.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Longest wait between reconnection tries.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Starts the listener thread. It runs until shutdown, reconnecting with exponential backoff and
/// one log line per failure. `part` is up while the LISTEN connection is. Notifications whose
/// payload is `own` come from this process's API, which woke a dispatcher directly: they are
/// skipped, or every create would wake two dispatchers and one of them would claim nothing.
pub fn spawn_listener(
    database_url: String,
    wake: Sender<()>,
    own: Option<String>,
    shutdown: Shutdown,
    part: Arc<Part>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("listener".into())
        .spawn(move || {
            listen(&database_url, &wake, own.as_deref(), &shutdown, &part);
            part.set_up(false);
        })
}

fn listen(
    database_url: &str,
    wake: &Sender<()>,
    own: Option<&str>,
    shutdown: &Shutdown,
    part: &Part,
) {
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_requested() {
        let connected = db::connect_with(database_url, &queue::listener_name(own), queue::listen);
        let mut client = match connected {
            Ok(client) => client,
            Err(e) => {
                log::warn!(
                    "listener-connect-error retry_in_ms={} error={e}",
                    delay.as_millis()
                );
                shutdown.wait_timeout(delay);
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                continue;
            }
        };
        log::debug!("listener-connected channel={NOTIFY_CHANNEL}");
        part.set_up(true);
        delay = Duration::from_millis(100);
        // Deliveries may have been queued while no one listened.
        let _ = wake.try_send(());
        while !shutdown.is_requested() {
            let next = client.notifications().timeout_iter(CHECK_EVERY).next();
            match next {
                Ok(Some(notification)) => {
                    if own != Some(notification.payload()) {
                        let _ = wake.try_send(());
                    }
                }
                Ok(None) if client.is_closed() => break,
                Ok(None) => {}
                Err(e) => {
                    log::warn!("listener-error error={}", db::describe(&e));
                    break;
                }
            }
        }
        part.set_up(false);
    }
}
