//! The main loop of a dispatcher: [`Dispatcher::run`] loops until shutdown, and
//! [`Dispatcher::run_once`] is one batch from start to end: claim up to
//! `POSTMAND_WORKER_BATCH_SIZE` due deliveries of one webhook, send them one after another,
//! record every attempt, commit. Read this file to follow a delivery.
//!
//! Everything between the claim and the commit happens in one transaction on the dispatcher's
//! own connection. Nothing is visible before the commit: if the process dies earlier, PostgreSQL
//! rolls back, the batch's deliveries stay pending with their attempts unchanged, and the next
//! claimer sends them again (at-least-once; a crash repeats at most one batch per dispatcher).
//! No database call is made while an HTTP request is in flight. A batch stops at its first
//! failed attempt (the endpoint is in trouble: the rest stay pending, untouched, for the next
//! claim and the limiter's judgement), at shutdown (what was sent is committed), and at its
//! time budget: it starts no attempt that, at the pace of the last one, would end more than one
//! attempt timeout after the batch began. So a slow endpoint that does answer has its successes
//! committed (and visible) within about one timeout, holds its rows and transaction no longer,
//! and edits to its webhook apply to the next batch.
//!
//! The claim never idles while claimable work exists: webhooks whose due rows are all held by
//! other claimers rank first (their oldest rows are the ones in flight), so the candidates that
//! come back empty are excluded and the query is asked again, until a batch is claimed or no
//! webhook with due work is left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use uuid::Uuid;

use super::backoff;
use super::limiter::{Admission, Limiter};
use super::send::{self, AttemptResult, Outgoing, TransportError};
use crate::db::{self, Pool, PooledClient};
use crate::metrics::{AttemptOutcome, DisableCause, Metrics, Transition};
use crate::model::{DeliveryStatus, Exchange};
use crate::shutdown::Shutdown;
use crate::store::{self, queue};
use crate::url::EndpointUrl;

/// Longest pause after repeated database errors.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(10);

/// What a dispatcher shares with the others of its process.
pub struct Shared {
    /// Connections; a dispatcher goes back here only to replace a broken one.
    pub pool: Pool,
    /// The HTTP client.
    pub sender: send::Sender,
    /// Per-webhook in-flight caps.
    pub limiter: Limiter,
    /// Fallback poll period.
    pub poll: Duration,
    /// Most deliveries one turn claims, sends and commits together.
    pub batch_size: i64,
    /// Attempt counters.
    pub metrics: Arc<Metrics>,
    /// When a failing webhook is deactivated, and who is told.
    pub disable: queue::DisablePolicy,
}

/// One dispatcher thread's state.
pub struct Dispatcher {
    /// Which dispatcher, for logs.
    pub index: usize,
    /// What all dispatchers share.
    pub shared: Arc<Shared>,
    /// Its connection and the statements prepared on it; `None` after a failure until a new
    /// one is checked out.
    pub session: Option<Session>,
    /// Tokens meaning "there may be due work".
    pub wake_rx: Receiver<()>,
    /// For passing a token on after a successful claim: where there was one, there may be more.
    pub wake_tx: Sender<()>,
    /// The stop request.
    pub shutdown: Shutdown,
}

/// A dispatcher's own connection, with its session settings and prepared statements. When it
/// is dropped (after a database error, or at shutdown) the settings are undone before the
/// connection goes back to the pool, so no API request ever plans with them.
pub struct Session {
    client: PooledClient,
    prepared: queue::Prepared,
}

impl Session {
    /// Checks a connection out of `pool` and readies it for dispatching.
    pub fn open(pool: &Pool) -> Result<Session, DispatchError> {
        let mut client = db::checkout(pool).map_err(DispatchError::Checkout)?;
        let prepared = queue::Prepared::new(&mut *client)?;
        Ok(Session { client, prepared })
    }

    /// The connection, for tests that check what goes back to the pool.
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.client.is_closed() {
            return;
        }
        if let Err(e) = queue::reset_dispatcher_session(&mut *self.client) {
            log::warn!("dispatcher-session-reset-error error={e}");
        }
    }
}

/// What one turn of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// A batch was attempted and committed, and more work may be due: the claim was full, other
    /// webhooks had due work, or the batch stopped early.
    Delivered,
    /// A batch was attempted and committed, and it was all the due work the claim saw: the
    /// dispatcher waits for a wake-up (or the poll timer) instead of claiming again at once.
    /// At one message at a time, the claim that found nothing cost as much as the one that
    /// delivered (issue 14).
    DeliveredAll,
    /// Work was due but its webhooks were at their caps; it was left for later.
    Deferred,
    /// Nothing was due.
    Idle,
}

impl Dispatcher {
    /// Loops until shutdown: deliver while there is work, wait for a wake-up or the poll timer
    /// when there is none, back off (capped) after database errors.
    pub fn run(mut self) {
        let mut errors: u32 = 0;
        while !self.shutdown.is_requested() {
            match self.run_once() {
                Ok(Turn::Delivered | Turn::Deferred) => errors = 0,
                Ok(Turn::Idle | Turn::DeliveredAll) => {
                    errors = 0;
                    self.wait(self.shared.poll + jitter(self.shared.poll));
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    if e.is_unavailable() {
                        self.session = None;
                    }
                    let pause = (Duration::from_millis(100) * 2u32.saturating_pow(errors.min(8)))
                        .min(MAX_ERROR_BACKOFF);
                    log::warn!(
                        "worker-dispatch-error dispatcher={} retry_in_ms={} error={e}",
                        self.index,
                        pause.as_millis()
                    );
                    // Only shutdown cuts an error pause short: wake-ups from busy peers would
                    // make a dispatcher hammer a database that is failing.
                    self.shutdown.wait_timeout(pause);
                }
            }
        }
        log::debug!("dispatcher-stopped dispatcher={}", self.index);
    }

    /// Waits for a wake-up token, shutdown, or `timeout`.
    fn wait(&self, timeout: Duration) {
        select! {
            recv(self.wake_rx) -> _ => {}
            recv(self.shutdown.receiver()) -> _ => {}
            default(timeout) => {}
        }
    }

    /// Claims, sends, records and commits one batch.
    pub fn run_once(&mut self) -> Result<Turn, DispatchError> {
        if self.session.is_none() {
            self.session = Some(Session::open(&self.shared.pool)?);
        }
        let shared = Arc::clone(&self.shared);
        let Some(Session { client, prepared }) = self.session.as_mut() else {
            return Ok(Turn::Idle);
        };
        let mut tx = client.transaction().map_err(store::Error::from)?;
        let (mut excluded, probing) = shared.limiter.before_claim();
        let mut turn = Turn::Idle;
        let mut claim = None;
        // The usual case in one statement: the first due webhook's batch.
        let Some(next) = prepared.claim_next(&mut tx, &excluded, &probing, shared.batch_size)?
        else {
            // Nothing is due. Dropping the transaction ends it; nothing was locked.
            return Ok(turn);
        };
        excluded.push(next.webhook.id);
        if !next.batch.is_empty() {
            match shared.limiter.try_acquire(next.webhook.id) {
                Some(admission) => {
                    let size = match admission {
                        Admission::Probe => 1,
                        Admission::Full => shared.batch_size,
                    };
                    let slot = Slot {
                        limiter: &shared.limiter,
                        webhook_id: next.webhook.id,
                        succeeded: None,
                        released: false,
                    };
                    let mut batch = next.batch;
                    // Locked beyond what the slot may send (it became a probe meanwhile):
                    // they stay pending, and count as a batch cut short.
                    let cut = batch.len() as i64 > size;
                    batch.truncate(usize::try_from(size).unwrap_or(1));
                    let more = cut || next.others || batch.len() as i64 == size;
                    claim = Some((next.webhook, slot, batch, more));
                }
                None => {
                    // Another dispatcher of this process took the webhook's last slot since
                    // `before_claim()`: let its rows go and look further.
                    tx.rollback().map_err(store::Error::from)?;
                    tx = client.transaction().map_err(store::Error::from)?;
                    turn = Turn::Deferred;
                }
            }
        }
        'search: while claim.is_none() {
            let candidates =
                prepared.due_webhooks(&mut tx, &excluded, queue::WEBHOOKS_PER_CLAIM)?;
            if candidates.is_empty() {
                break;
            }
            let count = candidates.len();
            for (position, webhook) in candidates.into_iter().enumerate() {
                // Asked again, the query must not return this one: it is at its cap, all its
                // due rows are held by other claimers, or it is claimed now.
                excluded.push(webhook.id);
                let size = match shared.limiter.try_acquire(webhook.id) {
                    None => {
                        turn = Turn::Deferred;
                        continue;
                    }
                    Some(Admission::Probe) => 1,
                    Some(Admission::Full) => shared.batch_size,
                };
                let slot = Slot {
                    limiter: &shared.limiter,
                    webhook_id: webhook.id,
                    succeeded: None,
                    released: false,
                };
                let batch = prepared.claim_batch(&mut tx, webhook.id, size)?;
                if !batch.is_empty() {
                    // More is due: this webhook's claim came back full, or other webhooks
                    // followed it in the list.
                    let more = batch.len() as i64 == size || position + 1 < count;
                    claim = Some((webhook, slot, batch, more));
                    break 'search;
                }
            }
        }
        // Dropping the transaction ends it; nothing was locked.
        let Some((webhook, mut slot, batch, more)) = claim else {
            return Ok(turn);
        };
        if more {
            // Another dispatcher can take the rest while this one sends.
            let _ = self.wake_tx.try_send(());
        }

        let timeout = Duration::from_secs(
            u64::try_from(webhook.endpoint.delivery_attempt_timeout).unwrap_or(1),
        );
        let started = Instant::now();
        let mut last_took = Duration::ZERO;
        let mut records = Vec::with_capacity(batch.len());
        let mut counted = Vec::with_capacity(batch.len());
        let mut gone = false;
        for claimed in &batch {
            if !records.is_empty()
                && (self.shutdown.is_requested() || started.elapsed() + last_took > timeout)
            {
                break;
            }
            shared.metrics.dispatcher_busy(true);
            let sent = Instant::now();
            let result = shared.sender.send(&Outgoing {
                delivery_id: claimed.id,
                url: &webhook.endpoint.url,
                content_type: &webhook.endpoint.content_type,
                secret: &webhook.endpoint.secret_token,
                previous_secret: webhook.endpoint.previous_secret_token.as_deref(),
                payload: claimed.payload.as_bytes(),
                event_type: claimed.event_type.as_deref(),
                timeout,
            });
            last_took = sent.elapsed();
            shared.metrics.dispatcher_busy(false);
            let failure = result.error.as_ref().map(failure_outcome);
            if is_gone(&webhook.endpoint, &result) {
                gone = true;
            }
            let record = outcome(&webhook.endpoint, claimed, result);
            let succeeded = record.exchange.success;
            counted.push(failure.unwrap_or(if succeeded {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::Rejected
            }));
            records.push(record);
            if !succeeded {
                break;
            }
        }
        slot.succeeded = records.last().map(|record| record.exchange.success);
        let slot_succeeded = slot.succeeded == Some(true);

        let moved = prepared.record_attempts(&mut tx, &records)?;
        // A failed attempt ends a batch, so only the last can have failed.
        let deactivated = match records.last() {
            Some(last) if !last.exchange.success && moved.contains(&last.delivery_id) => {
                let failure = queue::Failure {
                    webhook_id: webhook.id,
                    failures: 1,
                    after_success: records.len() > 1,
                    first_failed_at: last.ended_at,
                    gone: gone.then(|| GONE_REASON.to_string()),
                };
                queue::webhook_failed(&mut tx, &failure, shared.disable)?
            }
            _ => None,
        };
        tx.commit().map_err(store::Error::from)?;
        if let Some(deactivated) = deactivated {
            log::warn!(
                "webhook-disabled webhook_id={} reason={:?} notice_queued={}",
                webhook.id,
                deactivated.reason,
                deactivated.notified
            );
            shared.metrics.webhook_disabled(if gone {
                DisableCause::Gone
            } else {
                DisableCause::Failing
            });
            if deactivated.notified {
                let _ = self.wake_tx.try_send(());
            }
        }
        for (record, counted) in records.iter().zip(counted) {
            if !moved.contains(&record.delivery_id) {
                log::warn!("delivery-not-pending delivery_id={}", record.delivery_id);
                continue;
            }
            report(
                &shared.metrics,
                webhook.id,
                &webhook.endpoint.url,
                record,
                counted,
            );
        }
        let wanted = slot.release();
        let stopped_early = records.len() < batch.len();
        if stopped_early && slot_succeeded {
            // Stopped by its budget: the rest is due now, and another dispatcher may take it.
            let _ = self.wake_tx.try_send(());
        }
        Ok(if more || stopped_early || wanted {
            Turn::Delivered
        } else {
            Turn::DeliveredAll
        })
    }
}

/// Why a turn failed: always the database; a failed HTTP exchange is an attempt, not an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum DispatchError {
    /// No connection could be checked out.
    Checkout(db::Error),
    /// A statement or the commit failed; the transaction rolled back.
    Store(store::Error),
}

impl DispatchError {
    /// Whether the connection should be replaced.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DispatchError::Checkout(_) => true,
            DispatchError::Store(e) => e.is_unavailable(),
        }
    }
}

impl From<store::Error> for DispatchError {
    fn from(e: store::Error) -> DispatchError {
        DispatchError::Store(e)
    }
}

impl std::fmt::Display for DispatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchError::Checkout(e) => e.fmt(f),
            DispatchError::Store(e) => e.fmt(f),
        }
    }
}

/// A held in-flight slot; released (with the last attempt's outcome, if one was made) however
/// the turn ends.
struct Slot<'a> {
    limiter: &'a Limiter,
    webhook_id: Uuid,
    succeeded: Option<bool>,
    released: bool,
}

impl Slot<'_> {
    /// Gives the slot back now; true when another dispatcher was turned away from the webhook
    /// meanwhile (see [`Limiter::release`]).
    fn release(&mut self) -> bool {
        if std::mem::replace(&mut self.released, true) {
            return false;
        }
        self.limiter.release(self.webhook_id, self.succeeded)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// How an attempt that failed on the wire is counted.
fn failure_outcome(error: &TransportError) -> AttemptOutcome {
    match error {
        TransportError::Timeout(_) => AttemptOutcome::Timeout,
        TransportError::Refused(_) => AttemptOutcome::Refused,
        TransportError::Tls(_) => AttemptOutcome::Tls,
        TransportError::Dns(_) => AttemptOutcome::Dns,
        TransportError::TooLarge(_) => AttemptOutcome::TooLarge,
        TransportError::Protocol(_) => AttemptOutcome::Protocol,
        TransportError::Body(_) => AttemptOutcome::Body,
        TransportError::Denied(_) => AttemptOutcome::Denied,
    }
}

/// Counts a committed attempt as `counted` and logs it: one line per attempt, with its ids.
fn report(
    metrics: &Metrics,
    webhook_id: Uuid,
    url: &str,
    record: &queue::AttemptRecord,
    counted: AttemptOutcome,
) {
    metrics.attempt(
        counted,
        match record.status {
            DeliveryStatus::Succeeded => Transition::Succeeded,
            DeliveryStatus::Failed => Transition::Failed,
            DeliveryStatus::Pending => Transition::Retrying,
        },
        Duration::from_millis(u64::try_from(record.exchange.execution_duration).unwrap_or(0)),
    );
    log::info!(
        "worker-delivery-attempt-created delivery_id={} webhook_id={} attempt_id={} \
         response_status_code={} execution_duration={} success={} status={}{}",
        record.delivery_id,
        webhook_id,
        record.attempt_id,
        record.exchange.response_status_code,
        record.exchange.execution_duration,
        record.exchange.success,
        record.status,
        if record.exchange.error.is_empty() {
            String::new()
        } else {
            format!(" error={:?}", loggable_error(&record.exchange.error, url))
        }
    );
}

/// An attempt's error text as a log line may show it: the endpoint reduced to
/// `scheme://host:port` (its path and query may hold secrets; the stored attempt keeps them).
fn loggable_error(error: &str, url: &str) -> String {
    let endpoint = EndpointUrl::new(url);
    error.replace(endpoint.without_userinfo().as_ref(), &endpoint.origin())
}

/// Why a webhook whose endpoint answered 410 was deactivated.
pub const GONE_REASON: &str = "endpoint answered 410 Gone";

/// Whether an exchange is the endpoint saying it is gone for good: a whole 410 response, unless
/// the webhook lists 410 among its valid status codes (then it is a success like any other).
fn is_gone(webhook: &queue::Endpoint, result: &AttemptResult) -> bool {
    result.error.is_none()
        && result.status_code == 410
        && !webhook.valid_status_codes.contains(&410)
}

/// Statuses whose `Retry-After` is honoured: "slow down" in the Standard Webhooks spec.
const SLOW_DOWN: [i32; 3] = [429, 503, 504];

/// Judges an exchange: succeeded when a response arrived whole with a valid status code;
/// otherwise failed once the attempts reach the webhook's maximum, else pending again after the
/// backoff, or after the response's `Retry-After` when it asks for longer on a 429, 503 or 504
/// (capped at `retry_max_backoff`; the attempt's error says when the cap cut it). A transport
/// error is stored as its text (`Post "<url>": ...`), none as "".
pub fn outcome(
    webhook: &queue::Endpoint,
    claimed: &queue::Claimed,
    result: AttemptResult,
) -> queue::AttemptRecord {
    let success =
        result.error.is_none() && webhook.valid_status_codes.contains(&result.status_code);
    let attempts = claimed.delivery_attempts.saturating_add(1);
    let mut note = None;
    let (status, retry_in_ms) = if success {
        (DeliveryStatus::Succeeded, None)
    } else if attempts >= webhook.max_delivery_attempts {
        (DeliveryStatus::Failed, None)
    } else {
        let backoff = backoff::delay(
            claimed.delivery_attempts,
            webhook.retry_min_backoff,
            webhook.retry_max_backoff,
        );
        let asked = result
            .retry_after
            .filter(|_| result.error.is_none() && SLOW_DOWN.contains(&result.status_code));
        let delay = match asked {
            Some(asked) => {
                let cap =
                    Duration::from_secs(u64::try_from(webhook.retry_max_backoff).unwrap_or(0));
                if asked > cap {
                    note = Some(format!(
                        "Retry-After asked for {} s; waiting the webhook's retry_max_backoff of {} s",
                        asked.as_secs(),
                        cap.as_secs()
                    ));
                }
                backoff.max(asked.min(cap))
            }
            None => backoff,
        };
        (
            DeliveryStatus::Pending,
            Some(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        )
    };
    queue::AttemptRecord {
        delivery_id: claimed.id,
        attempt_id: Uuid::now_v7(),
        status,
        retry_in_ms,
        exchange: Exchange {
            raw_request: result.raw_request,
            raw_response: result.raw_response,
            response_status_code: result.status_code,
            execution_duration: result.duration_ms,
            success,
            error: result
                .error
                .map(|error| error.to_string())
                .or(note)
                .unwrap_or_default(),
        },
        ended_at: Instant::now(),
    }
}

/// Up to a tenth of `period`, so idle dispatchers of many processes do not poll in step.
fn jitter(period: Duration) -> Duration {
    let span = (period.as_millis() / 10).max(1) as u64;
    Duration::from_millis((Uuid::new_v4().as_u128() as u64) % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(max: i32) -> queue::Endpoint {
        queue::Endpoint {
            url: String::new(),
            content_type: String::new(),
            valid_status_codes: vec![200, 201],
            secret_token: String::new(),
            previous_secret_token: None,
            max_delivery_attempts: max,
            delivery_attempt_timeout: 1,
            retry_min_backoff: 10,
            retry_max_backoff: 60,
        }
    }

    fn claimed(attempts: i32) -> queue::Claimed {
        queue::Claimed {
            event_type: None,
            id: Uuid::nil(),
            payload: String::new(),
            delivery_attempts: attempts,
        }
    }

    #[test]
    fn retry_after_lengthens_the_backoff_of_a_slow_down_up_to_the_cap() {
        let asking = |status: i32, secs: u64| AttemptResult {
            retry_after: Some(Duration::from_secs(secs)),
            ..result(status, None)
        };
        // Backoff 10 s (first failure), cap 60 s.
        let within = outcome(&webhook(5), &claimed(0), asking(429, 30));
        assert_eq!(within.retry_in_ms, Some(30_000));
        assert_eq!(within.exchange.error, "");
        let shorter = outcome(&webhook(5), &claimed(0), asking(503, 2));
        assert_eq!(
            shorter.retry_in_ms,
            Some(10_000),
            "never less than the backoff"
        );
        let beyond = outcome(&webhook(5), &claimed(0), asking(504, 7200));
        assert_eq!(beyond.retry_in_ms, Some(60_000));
        assert_eq!(
            beyond.exchange.error,
            "Retry-After asked for 7200 s; waiting the webhook's retry_max_backoff of 60 s"
        );
        let other = outcome(&webhook(5), &claimed(0), asking(500, 30));
        assert_eq!(
            other.retry_in_ms,
            Some(10_000),
            "only 429, 503 and 504 ask to slow down"
        );
        let last = outcome(&webhook(1), &claimed(0), asking(429, 30));
        assert_eq!(
            (last.status, last.retry_in_ms),
            (DeliveryStatus::Failed, None)
        );
    }

    fn result(status_code: i32, error: Option<TransportError>) -> AttemptResult {
        AttemptResult {
            retry_after: None,
            raw_request: String::new(),
            raw_response: String::new(),
            status_code,
            duration_ms: 1,
            error,
        }
    }

    fn cause(message: &str) -> send::Cause {
        send::Cause {
            url: "http://x".to_string(),
            message: message.to_string(),
        }
    }

    #[test]
    fn valid_status_succeeds() {
        let record = outcome(&webhook(5), &claimed(0), result(201, None));
        assert_eq!(
            (record.status, record.exchange.success, record.retry_in_ms),
            (DeliveryStatus::Succeeded, true, None)
        );
    }

    #[test]
    fn other_status_retries_with_backoff_then_fails() {
        let retries: Vec<Option<i64>> = (0..4)
            .map(|k| outcome(&webhook(5), &claimed(k), result(204, None)).retry_in_ms)
            .collect();
        assert_eq!(
            retries,
            [Some(10_000), Some(20_000), Some(40_000), Some(60_000)]
        );
        let last = outcome(&webhook(5), &claimed(4), result(500, None));
        assert_eq!(
            (last.status, last.retry_in_ms),
            (DeliveryStatus::Failed, None)
        );
    }

    #[test]
    fn transport_error_counts_as_a_failed_attempt() {
        let record = outcome(
            &webhook(1),
            &claimed(0),
            result(0, Some(TransportError::Refused(cause("refused")))),
        );
        assert_eq!(
            (
                record.status,
                record.exchange.success,
                record.exchange.error.as_str()
            ),
            (DeliveryStatus::Failed, false, "Post \"http://x\": refused")
        );
        assert_eq!(
            failure_outcome(&TransportError::Refused(cause("refused"))),
            AttemptOutcome::Refused
        );
    }

    #[test]
    fn broken_body_fails_a_valid_status_and_keeps_it() {
        let record = outcome(
            &webhook(5),
            &claimed(0),
            result(200, Some(TransportError::Body(cause("Peer disconnected")))),
        );
        assert_eq!(
            (
                record.status,
                record.exchange.success,
                record.exchange.response_status_code,
                record.exchange.error.as_str()
            ),
            (
                DeliveryStatus::Pending,
                false,
                200,
                "Post \"http://x\": reading the response body: Peer disconnected"
            )
        );
        assert_eq!(
            failure_outcome(&TransportError::Body(cause("x"))),
            AttemptOutcome::Body
        );
    }
}
