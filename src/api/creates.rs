//! Group commit for `POST /v1/deliveries`: concurrent creates are written together.
//!
//! A handler hands its new delivery to [`Creates::create`] and waits. The writer thread takes
//! every create queued at that moment (up to [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]), inserts
//! them with one statement and one commit, and answers each handler. Only then does a handler
//! answer 201, so a 201 still means "committed". Under load a commit (and its WAL flush), a
//! round trip and a parse serve many creates instead of one; a lone create waits for nobody,
//! because the writer is idle and takes it at once.
//!
//! Nothing one create does may stall the others:
//! - The writer's session has a `lock_timeout`: a create naming a webhook whose delete is in
//!   progress (the only lock a create meets) fails its statement; the batch is then written
//!   one create at a time, the others commit, and only that one answers 503 (code 11).
//! - A handler waits [`ANSWER_DEADLINE`] at most, then answers 503 (code 11) and logs why.
//! - A supervisor thread restarts the writer if it panics: the panic is logged at ERROR, the
//!   creates of the batch in hand answer 503, and everything still queued is written by the
//!   new writer. While no writer runs, the `create-writer` part is missing from `/healthz`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use uuid::Uuid;

use super::errors::ApiError;
use super::idempotency::Key;
use crate::db::{self, Pool, PooledClient};
use crate::liveness::Part;
use crate::model::Delivery;
use crate::store::idempotency::{self, NewKey, Stored};
use crate::store::{self, deliveries};

/// Creates written by one statement at most.
pub const MAX_BATCH: usize = 64;

/// Payload bytes one statement carries at most (a batch always takes at least one create).
/// PostgreSQL refuses a parameter over 1 GB, and the payloads travel as one array: without
/// this cap, concurrent large bodies (`POSTMAND_MAX_BODY_BYTES` allows 64 MiB) would fail every
/// create of their batch.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Longest a handler waits for its create to be written. Past it the answer is 503: the writer
/// is stuck (a statement waiting up to the statement timeout) or being replaced. The create may
/// still be committed afterwards; a client that retries may then queue it twice.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// Pause before a writer that panicked is replaced, or a failed spawn is tried again.
const RESTART_PAUSE: Duration = Duration::from_millis(50);

/// One handler's create, and where its answer goes.
struct Job {
    webhook_id: Uuid,
    payload: String,
    /// Its `Idempotency-Key`: the answer is stored in the create's transaction.
    key: Option<Key>,
    reply: Reply,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// It queued this delivery.
    Created(Delivery),
    /// Another request with its `Idempotency-Key` was committed first (in another process):
    /// nothing was created, and this is that request's answer.
    Replay(Stored),
}

/// The answer to one create, or why there is none.
enum Answer {
    /// Not yet answered.
    Waiting,
    /// The writer's answer.
    Given(Result<Written, ApiError>),
    /// The writer dropped the create unanswered (it panicked with it in hand).
    Dropped,
}

/// Where one create's answer is put. A mutex and a condition variable rather than a channel:
/// a channel's receive spins and yields before it parks, and with dozens of handlers waiting
/// on 2 cores that took the CPU the writer and the database needed (measured with wrk, 32
/// clients: 15,600 -> 16,900 creates/s).
struct AnswerSlot {
    answer: Mutex<Answer>,
    given: Condvar,
}

impl AnswerSlot {
    fn lock(&self) -> MutexGuard<'_, Answer> {
        // Each update is one assignment: a holder that panicked left it consistent.
        self.answer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `deadline` for the answer; `None` when none came in time.
    fn wait(&self, deadline: Instant) -> Option<Answer> {
        let mut answer = self.lock();
        loop {
            if !matches!(*answer, Answer::Waiting) {
                return Some(std::mem::replace(&mut *answer, Answer::Dropped));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            answer = self
                .given
                .wait_timeout(answer, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The writer's side of an [`AnswerSlot`]: answers once; dropped unanswered, it tells the
/// handler so at once.
struct Reply(Arc<AnswerSlot>);

impl Reply {
    fn send(self, answer: Result<Written, ApiError>) {
        *self.0.lock() = Answer::Given(answer);
        self.0.given.notify_one();
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let mut answer = self.0.lock();
        if matches!(*answer, Answer::Waiting) {
            *answer = Answer::Dropped;
            self.0.given.notify_one();
        }
    }
}

/// What the writer's queue carries.
enum Message {
    /// A create to write.
    Create(Job),
    /// Test hook: the writer panics on taking it, holding no create.
    Panic,
}

/// The handlers' side: queues a create and waits for its commit.
pub struct Creates {
    jobs: Sender<Message>,
}

impl Creates {
    /// Starts the writer's supervisor, which starts the writer on `pool` and replaces it if it
    /// panics. `part` is whole while a writer runs. They stop once every [`Creates`] is dropped
    /// and the queue is empty. Idempotency keys are stored for `idempotency_hours`.
    pub fn start(
        pool: Pool,
        part: Arc<Part>,
        idempotency_hours: i32,
    ) -> std::io::Result<(Creates, thread::JoinHandle<()>)> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let supervisor = thread::Builder::new()
            .name("api-writer-supervisor".into())
            .spawn(move || supervise(&pool, &queue, &part, idempotency_hours))?;
        Ok((Creates { jobs }, supervisor))
    }

    /// Queues a delivery and returns it once committed; 400 when its webhook does not exist,
    /// 503 when the database is unavailable, the webhook is locked by a delete in progress, or
    /// no answer came within [`ANSWER_DEADLINE`]. With a `key`, the answer is stored with the
    /// delivery, or, when another process stored one for the key first, that one is returned.
    pub fn create(
        &self,
        webhook_id: Uuid,
        payload: String,
        key: Option<Key>,
    ) -> Result<Written, ApiError> {
        let slot = Arc::new(AnswerSlot {
            answer: Mutex::new(Answer::Waiting),
            given: Condvar::new(),
        });
        let job = Job {
            webhook_id,
            payload,
            key,
            reply: Reply(Arc::clone(&slot)),
        };
        if self.jobs.send(Message::Create(job)).is_err() {
            log::error!(
                "delivery-create-error webhook_id={webhook_id} error=\"the writer is gone\""
            );
            return Err(ApiError::Unavailable);
        }
        match slot.wait(Instant::now() + ANSWER_DEADLINE) {
            Some(Answer::Given(answer)) => answer,
            None | Some(Answer::Waiting) => {
                log::warn!(
                    "delivery-create-timeout webhook_id={webhook_id} waited_ms={} \
                     error=\"the writer did not answer in time\"",
                    ANSWER_DEADLINE.as_millis()
                );
                Err(ApiError::Unavailable)
            }
            Some(Answer::Dropped) => {
                log::warn!(
                    "delivery-create-error webhook_id={webhook_id} \
                     error=\"the writer stopped with this create in hand\""
                );
                Err(ApiError::Unavailable)
            }
        }
    }

    /// Test hook: makes the writer panic when it takes this message (creates queued behind it
    /// are written by its replacement).
    #[doc(hidden)]
    pub fn panic_writer(&self) {
        let _ = self.jobs.send(Message::Panic);
    }
}

/// Runs writers one after another until the queue closes: a writer that panicked is replaced.
fn supervise(pool: &Pool, queue: &Receiver<Message>, part: &Arc<Part>, idempotency_hours: i32) {
    loop {
        let writer = {
            let pool = pool.clone();
            let queue = queue.clone();
            let running = part.running();
            thread::Builder::new()
                .name("api-writer".into())
                .spawn(move || {
                    let _running = running;
                    write_until_closed(&pool, &queue, idempotency_hours);
                })
        };
        let finished = match writer {
            Ok(writer) => writer.join(),
            Err(e) => {
                log::error!("create-writer-spawn-error error={e}: creates wait; retrying");
                thread::sleep(RESTART_PAUSE);
                continue;
            }
        };
        match finished {
            Ok(()) => return,
            Err(_) => {
                log::error!(
                    "create-writer-panicked: its batch answered 503; a new writer takes over the queue"
                );
                thread::sleep(RESTART_PAUSE);
            }
        }
    }
}

/// The writer's own connection: kept across batches, with the `lock_timeout` of
/// [`deliveries::prepare_writer_session`], undone before it goes back to the pool.
struct WriterSession {
    client: PooledClient,
}

impl WriterSession {
    fn open(pool: &Pool) -> Result<WriterSession, ApiError> {
        let mut client = db::checkout(pool)?;
        deliveries::prepare_writer_session(&mut *client)?;
        Ok(WriterSession { client })
    }
}

impl Drop for WriterSession {
    fn drop(&mut self) {
        if !self.client.is_closed()
            && let Err(e) = deliveries::reset_writer_session(&mut *self.client)
        {
            log::warn!("create-writer-session-reset-error error={e}");
        }
    }
}

fn write_until_closed(pool: &Pool, queue: &Receiver<Message>, idempotency_hours: i32) {
    let mut session = None;
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(Message::Create(job)) => job,
                Ok(Message::Panic) => panic!("test hook: the create writer panics"),
                Err(_) => return,
            },
        };
        let (batch, left_over) = take_batch(first, queue);
        next = left_over;
        write(pool, &mut session, batch, idempotency_hours);
    }
}

/// `first` and what is queued behind it, within [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]; the
/// create that would cross the byte cap is handed back to start the next batch. A test-hook
/// message ends the batch and is left for the next `recv`.
fn take_batch(first: Job, queue: &Receiver<Message>) -> (Vec<Job>, Option<Job>) {
    let mut bytes = first.payload.len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        let Ok(message) = queue.try_recv() else {
            break;
        };
        let job = match message {
            Message::Create(job) => job,
            Message::Panic => panic!("test hook: the create writer panics"),
        };
        if bytes + job.payload.len() > MAX_BATCH_BYTES {
            return (batch, Some(job));
        }
        bytes += job.payload.len();
        batch.push(job);
    }
    (batch, None)
}

/// A create as the writer inserts it.
struct NewCreate {
    webhook_id: Uuid,
    payload: String,
    key: Option<Key>,
}

/// Inserts a batch and answers every job in it. The session is opened when missing and
/// dropped after an error that may have broken it.
fn write(
    pool: &Pool,
    session: &mut Option<WriterSession>,
    batch: Vec<Job>,
    idempotency_hours: i32,
) {
    let (new, replies): (Vec<NewCreate>, Vec<Reply>) = batch
        .into_iter()
        .map(|job| {
            let new = NewCreate {
                webhook_id: job.webhook_id,
                payload: job.payload,
                key: job.key,
            };
            (new, job.reply)
        })
        .unzip();
    if session.is_none() {
        match WriterSession::open(pool) {
            Ok(opened) => *session = Some(opened),
            Err(e) => {
                for reply in replies {
                    reply.send(Err(e.clone()));
                }
                return;
            }
        }
    }
    let answers = match session.as_mut() {
        Some(session) => insert(&mut session.client, &new, idempotency_hours),
        None => vec![Err(ApiError::Unavailable); new.len()],
    };
    if session.as_ref().is_some_and(|s| s.client.is_closed()) {
        // The next batch takes a fresh connection.
        *session = None;
    }
    for (answer, reply) in answers.into_iter().zip(replies) {
        reply.send(answer);
    }
}

/// One answer per new delivery, in order.
fn insert(
    client: &mut PooledClient,
    new: &[NewCreate],
    idempotency_hours: i32,
) -> Vec<Result<Written, ApiError>> {
    match insert_batch(client, new, idempotency_hours) {
        Ok(answers) => answers,
        // A webhook was deleted while the statement ran, or is being deleted (its row is
        // locked): one at a time, so only the creates that named it fail.
        Err(e) if (e.is_foreign_key_violation() || e.is_lock_timeout()) && new.len() > 1 => {
            insert_one_by_one(client, new, idempotency_hours)
        }
        Err(e) if e.is_foreign_key_violation() => vec![Err(webhook_missing())],
        Err(e) if e.is_lock_timeout() => {
            if let Some(create) = new.first() {
                log::warn!(
                    "delivery-create-locked webhook_id={} error=\"the webhook is being deleted\"",
                    create.webhook_id
                );
            }
            vec![Err(ApiError::Unavailable)]
        }
        Err(e) => vec![Err(ApiError::from(e)); new.len()],
    }
}

/// The batch in one statement; with idempotency keys among it, in one transaction that also
/// stores their answers (see [`insert_keyed`]).
fn insert_batch(
    client: &mut PooledClient,
    new: &[NewCreate],
    idempotency_hours: i32,
) -> Result<Vec<Result<Written, ApiError>>, store::Error> {
    let rows: Vec<(Uuid, String)> = new
        .iter()
        .map(|create| (create.webhook_id, create.payload.clone()))
        .collect();
    if new.iter().all(|create| create.key.is_none()) {
        let created = deliveries::insert_many(&mut **client, &rows)?;
        return Ok(created
            .into_iter()
            .map(|delivery| delivery.map(Written::Created).ok_or_else(webhook_missing))
            .collect());
    }
    insert_keyed(client, new, &rows, idempotency_hours)
}

/// Inserts the deliveries, then their keys' answers, in one transaction. A key another request
/// stored first (another process, racing) makes its create undone before the commit; that
/// request's answer is then read back and given instead.
fn insert_keyed(
    client: &mut PooledClient,
    new: &[NewCreate],
    rows: &[(Uuid, String)],
    idempotency_hours: i32,
) -> Result<Vec<Result<Written, ApiError>>, store::Error> {
    let mut tx = client.transaction()?;
    let created = deliveries::insert_many(&mut tx, rows)?;
    let mut answers: Vec<Result<Written, ApiError>> = created
        .into_iter()
        .map(|delivery| delivery.map(Written::Created).ok_or_else(webhook_missing))
        .collect();
    // Each keyed create that went in, with the answer it gives.
    let mut keyed: Vec<(usize, &Key, Stored)> = Vec::new();
    for (index, (create, answer)) in new.iter().zip(&mut answers).enumerate() {
        if let (Some(key), Ok(Written::Created(delivery))) = (&create.key, &*answer) {
            match super::deliveries::created_reply(delivery) {
                Ok(reply) => keyed.push((index, key, key.stored(&reply))),
                Err(e) => *answer = Err(e),
            }
        }
    }
    let new_keys: Vec<NewKey<'_>> = keyed
        .iter()
        .map(|(_, key, stored)| NewKey {
            scope: key.scope.as_str(),
            key: &key.key,
            stored,
        })
        .collect();
    let stored = idempotency::insert_many(&mut tx, &new_keys, idempotency_hours)?;
    let mut lost = Vec::new();
    for ((index, key, _), stored) in keyed.iter().zip(stored) {
        if !stored && let Ok(Written::Created(delivery)) = &answers[*index] {
            deliveries::delete(&mut tx, delivery.id)?;
            lost.push((*index, *key));
        }
    }
    tx.commit()?;
    for (index, key) in lost {
        answers[index] = match idempotency::lookup(
            &mut **client,
            key.scope.as_str(),
            &key.key,
            idempotency_hours,
        )? {
            Some(stored) => Ok(Written::Replay(stored)),
            // Expired and deleted since: rare enough to ask the client to try again.
            None => Err(ApiError::IdempotencyKeyInFlight),
        };
    }
    Ok(answers)
}

/// Each create on its own. A webhook found locked is not tried again in this batch: its other
/// creates answer 503 at once, so a batch full of them costs one lock wait, not one each.
fn insert_one_by_one(
    client: &mut PooledClient,
    new: &[NewCreate],
    idempotency_hours: i32,
) -> Vec<Result<Written, ApiError>> {
    let mut locked: Vec<Uuid> = Vec::new();
    new.chunks(1)
        .map(|one| {
            let webhook_id = one[0].webhook_id;
            if locked.contains(&webhook_id) {
                return Err(ApiError::Unavailable);
            }
            let answer = insert(client, one, idempotency_hours)
                .pop()
                .unwrap_or(Err(ApiError::Internal));
            if matches!(answer, Err(ApiError::Unavailable)) {
                locked.push(webhook_id);
            }
            answer
        })
        .collect()
}

fn webhook_missing() -> ApiError {
    ApiError::invalid("webhook_id", "webhook does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(payload_bytes: usize) -> Job {
        Job {
            webhook_id: Uuid::nil(),
            payload: "x".repeat(payload_bytes),
            key: None,
            reply: Reply(Arc::new(AnswerSlot {
                answer: Mutex::new(Answer::Waiting),
                given: Condvar::new(),
            })),
        }
    }

    fn sizes(batch: &[Job]) -> Vec<usize> {
        batch.iter().map(|job| job.payload.len()).collect()
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_the_count() {
        let (jobs, queue) = crossbeam_channel::unbounded();
        for _ in 0..MAX_BATCH + 5 {
            jobs.send(Message::Create(job(1))).unwrap();
        }
        let (batch, left_over) = take_batch(job(1), &queue);
        assert_eq!(batch.len(), MAX_BATCH);
        assert!(left_over.is_none());
        assert_eq!(queue.len(), 6);
    }

    #[test]
    fn large_payloads_split_batches_and_none_is_lost() {
        let third = MAX_BATCH_BYTES / 3;
        let (jobs, queue) = crossbeam_channel::unbounded();
        for size in [third, third, third, 7] {
            jobs.send(Message::Create(job(size))).unwrap();
        }
        let (batch, left_over) = take_batch(job(10), &queue);
        assert_eq!(sizes(&batch), [10, third, third]);
        let left_over = left_over.expect("the create over the cap starts the next batch");
        let (batch, left_over) = take_batch(left_over, &queue);
        assert_eq!(sizes(&batch), [third, 7]);
        assert!(left_over.is_none());
        // A payload over the cap on its own still gets a batch of its own.
        let (batch, _) = take_batch(job(MAX_BATCH_BYTES + 1), &queue);
        assert_eq!(sizes(&batch), [MAX_BATCH_BYTES + 1]);
    }
}
