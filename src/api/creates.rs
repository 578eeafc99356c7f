//! Group commit for `POST /v1/deliveries` and `POST /v1/events`: concurrent creates are written
//! together.
//!
//! A handler hands its new delivery or event to [`Creates::create`] and waits. The writer thread takes
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
//! - Direct creates and events have a queue and a writer each (see [`WRITERS`]), so an event of
//!   wide fan-out never holds up direct creates. A supervisor restarts a writer that panics: the
//!   panic is logged at ERROR, the creates of the batch in hand answer 503, and everything still
//!   queued is written by the new writer. While a writer is missing, the `create-writer` part is
//!   missing from `/healthz`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use uuid::Uuid;

use super::errors::ApiError;
use super::idempotency::Key;
use crate::db::{self, Pool, PooledClient};
use crate::liveness::Part;
use crate::model::{Delivery, Event};
use crate::store::idempotency::{self, NewKey, Stored};
use crate::store::{self, deliveries, events};

/// Writers, each with its own connection: one for direct creates, one for events. One writer for
/// both serialised every create on a single backend, which cost events of wide fan-out (100
/// rows each): 351 events/s at fan-out 100, against 539/s before events were batched. Two
/// writers sharing one queue gave those 775/s, but direct creates lost a fifth (10,680 against
/// 12,814/s at 32 clients), because each commit carried half the batch. A queue per kind keeps
/// every direct create's batch whole and gives events a backend of their own.
pub const WRITERS: usize = 2;

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

/// What one create makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum New {
    /// A delivery of `payload` to webhook `webhook_id`.
    Delivery {
        /// The webhook (its existence is checked by the insert).
        webhook_id: Uuid,
        /// The bytes to POST.
        payload: String,
    },
    /// An event, with a delivery for each subscribed webhook.
    Event {
        /// Its type.
        event_type: String,
        /// The bytes each delivery POSTs.
        payload: String,
    },
}

impl New {
    fn payload(&self) -> &str {
        match self {
            New::Delivery { payload, .. } | New::Event { payload, .. } => payload,
        }
    }

    /// `webhook_id=…` or `event_type=…`, for log lines.
    fn describe(&self) -> String {
        match self {
            New::Delivery { webhook_id, .. } => format!("webhook_id={webhook_id}"),
            New::Event { event_type, .. } => format!("event_type={event_type}"),
        }
    }
}

/// One handler's create, and where its answer goes.
struct Job {
    new: New,
    /// Its `Idempotency-Key`: the answer is stored in the create's transaction.
    key: Option<Key>,
    reply: Reply,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// It queued this delivery.
    Created(Delivery),
    /// It stored this event and queued its deliveries.
    Event(Event),
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
    /// The direct creates' queue.
    deliveries: Sender<Message>,
    /// The events' queue.
    events: Sender<Message>,
}

impl Creates {
    /// Starts the writers' supervisor, which starts a writer per queue on `pool` and replaces
    /// one that panics. `part` is whole while both run. They stop once every [`Creates`] is
    /// dropped and the queues are empty. Idempotency keys are stored for `idempotency_hours`.
    pub fn start(
        pool: Pool,
        part: Arc<Part>,
        idempotency_hours: i32,
    ) -> std::io::Result<(Creates, thread::JoinHandle<()>)> {
        let (deliveries, deliveries_queue) = crossbeam_channel::unbounded();
        let (events, events_queue) = crossbeam_channel::unbounded();
        let supervisor = thread::Builder::new()
            .name("api-writer-supervisor".into())
            .spawn(move || {
                thread::scope(|scope| {
                    for queue in [&deliveries_queue, &events_queue] {
                        let (pool, part) = (&pool, &part);
                        scope.spawn(move || supervise(pool, queue, part, idempotency_hours));
                    }
                });
            })?;
        Ok((Creates { deliveries, events }, supervisor))
    }

    /// Queues a delivery or an event and returns it once committed; 400 when a delivery's
    /// webhook does not exist, 503 when the database is unavailable, the webhook is locked by a
    /// delete in progress, or no answer came within [`ANSWER_DEADLINE`]. With a `key`, the
    /// answer is stored in the same transaction, or, when another process stored one for the
    /// key first, that one is returned.
    pub fn create(&self, new: New, key: Option<Key>) -> Result<Written, ApiError> {
        let slot = Arc::new(AnswerSlot {
            answer: Mutex::new(Answer::Waiting),
            given: Condvar::new(),
        });
        let what = new.describe();
        let queue = match new {
            New::Delivery { .. } => &self.deliveries,
            New::Event { .. } => &self.events,
        };
        let job = Job {
            new,
            key,
            reply: Reply(Arc::clone(&slot)),
        };
        if queue.send(Message::Create(job)).is_err() {
            log::error!("create-error {what} error=\"the writer is gone\"");
            return Err(ApiError::Unavailable);
        }
        match slot.wait(Instant::now() + ANSWER_DEADLINE) {
            Some(Answer::Given(answer)) => answer,
            None | Some(Answer::Waiting) => {
                log::warn!(
                    "create-timeout {what} waited_ms={} error=\"the writer did not answer in time\"",
                    ANSWER_DEADLINE.as_millis()
                );
                Err(ApiError::Unavailable)
            }
            Some(Answer::Dropped) => {
                log::warn!(
                    "create-error {what} error=\"the writer stopped with this create in hand\""
                );
                Err(ApiError::Unavailable)
            }
        }
    }

    /// Test hook: makes the direct creates' writer panic when it takes this message (creates
    /// queued behind it are written by its replacement).
    #[doc(hidden)]
    pub fn panic_writer(&self) {
        let _ = self.deliveries.send(Message::Panic);
    }
}

/// What a create request got: what it made, or the stored answer to an earlier request with
/// its `Idempotency-Key`.
pub enum Created {
    /// A queued delivery.
    Delivery(Delivery),
    /// A stored event, its deliveries queued.
    Event(Event),
    /// The first answer to this key, to give again.
    Replayed(super::Reply),
}

/// One create request, with its optional `Idempotency-Key` (see `idempotency`): a key already
/// in flight in this process is 409, a stored answer is replayed without touching the writer,
/// anything else goes to the writer, which stores the key's answer with the create.
pub(super) fn create_once(
    ctx: &super::Context,
    new: New,
    key: Option<Key>,
) -> Result<Created, ApiError> {
    let _in_flight = match &key {
        Some(key) => {
            let guard = ctx.in_flight.enter(key)?;
            let stored = idempotency::lookup(
                &mut *ctx.client()?,
                key.scope.as_str(),
                &key.key,
                ctx.idempotency_hours,
            )?;
            if let Some(stored) = stored {
                return key.replay(stored).map(Created::Replayed);
            }
            Some(guard)
        }
        None => None,
    };
    match (ctx.creates.create(new, key.clone())?, &key) {
        (Written::Created(delivery), _) => Ok(Created::Delivery(delivery)),
        (Written::Event(event), _) => Ok(Created::Event(event)),
        (Written::Replay(stored), Some(key)) => key.replay(stored).map(Created::Replayed),
        // The writer replays only for a key.
        (Written::Replay(_), None) => Err(ApiError::Internal),
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
                    "create-writer-panicked: its batch answered 503; a new writer takes over its queue"
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
    let mut bytes = first.new.payload().len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        let Ok(message) = queue.try_recv() else {
            break;
        };
        let job = match message {
            Message::Create(job) => job,
            Message::Panic => panic!("test hook: the create writer panics"),
        };
        if bytes + job.new.payload().len() > MAX_BATCH_BYTES {
            return (batch, Some(job));
        }
        bytes += job.new.payload().len();
        batch.push(job);
    }
    (batch, None)
}

/// A create as the writer inserts it.
struct NewCreate {
    new: New,
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
    let (creates, replies): (Vec<NewCreate>, Vec<Reply>) = batch
        .into_iter()
        .map(|job| {
            let create = NewCreate {
                new: job.new,
                key: job.key,
            };
            (create, job.reply)
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
        Some(session) => insert(&mut session.client, &creates, idempotency_hours),
        None => vec![Err(ApiError::Unavailable); creates.len()],
    };
    if session.as_ref().is_some_and(|s| s.client.is_closed()) {
        // The next batch takes a fresh connection.
        *session = None;
    }
    for (answer, reply) in answers.into_iter().zip(replies) {
        reply.send(answer);
    }
}

/// One answer per create, in order.
fn insert(
    client: &mut PooledClient,
    creates: &[NewCreate],
    idempotency_hours: i32,
) -> Vec<Result<Written, ApiError>> {
    match insert_batch(client, creates, idempotency_hours) {
        Ok(answers) => answers,
        // A webhook was deleted while the statement ran, or is being deleted (its row is
        // locked): one at a time, so only the creates that named it fail.
        Err(e) if (e.is_foreign_key_violation() || e.is_lock_timeout()) && creates.len() > 1 => {
            insert_one_by_one(client, creates, idempotency_hours)
        }
        Err(e) if e.is_foreign_key_violation() => vec![Err(webhook_missing())],
        Err(e) if e.is_lock_timeout() => {
            if let Some(create) = creates.first() {
                log::warn!(
                    "create-locked {} error=\"the webhook is being deleted\"",
                    create.new.describe()
                );
            }
            vec![Err(ApiError::Unavailable)]
        }
        Err(e) => vec![Err(ApiError::from(e)); creates.len()],
    }
}

/// The batch's deliveries in one statement and its events in another; in one transaction when
/// the batch holds both, or idempotency keys (see [`insert_keyed`]). A batch of one kind
/// without keys is one statement and one commit.
fn insert_batch(
    client: &mut PooledClient,
    creates: &[NewCreate],
    idempotency_hours: i32,
) -> Result<Vec<Result<Written, ApiError>>, store::Error> {
    let kinds = creates
        .iter()
        .map(|create| matches!(create.new, New::Event { .. }))
        .collect::<std::collections::BTreeSet<bool>>();
    if kinds.len() == 1 && creates.iter().all(|create| create.key.is_none()) {
        return insert_rows(&mut **client, creates);
    }
    let mut tx = client.transaction()?;
    let mut answers = insert_rows(&mut tx, creates)?;
    let lost = store_keys(&mut tx, creates, &mut answers, idempotency_hours)?;
    // Read before the commit, so that once it succeeds nothing can fail any more: an error
    // here still rolls everything back, and every answer of the batch stays true.
    for (index, key) in lost {
        answers[index] =
            match idempotency::lookup(&mut tx, key.scope.as_str(), &key.key, idempotency_hours)? {
                Some(stored) => Ok(Written::Replay(stored)),
                // Its first request failed, or the key expired and went since: rare enough to
                // ask the client to try again.
                None => Err(ApiError::IdempotencyKeyInFlight),
            };
    }
    tx.commit()?;
    Ok(answers)
}

/// Inserts the deliveries and the events of `creates` (one statement for each kind present);
/// one answer per create, in order.
fn insert_rows(
    client: &mut impl postgres::GenericClient,
    creates: &[NewCreate],
) -> Result<Vec<Result<Written, ApiError>>, store::Error> {
    let mut answers: Vec<Option<Result<Written, ApiError>>> = vec![None; creates.len()];
    let (mut delivery_at, mut delivery_rows) = (Vec::new(), Vec::new());
    let (mut event_at, mut event_rows) = (Vec::new(), Vec::new());
    for (index, create) in creates.iter().enumerate() {
        match &create.new {
            New::Delivery {
                webhook_id,
                payload,
            } => {
                delivery_at.push(index);
                delivery_rows.push((*webhook_id, payload.clone()));
            }
            New::Event {
                event_type,
                payload,
            } => {
                event_at.push(index);
                event_rows.push((event_type.as_str(), payload.as_str()));
            }
        }
    }
    if !delivery_rows.is_empty() {
        let created = deliveries::insert_many(client, &delivery_rows)?;
        for (index, delivery) in delivery_at.into_iter().zip(created) {
            answers[index] = Some(delivery.map(Written::Created).ok_or_else(webhook_missing));
        }
    }
    if !event_rows.is_empty() {
        let created = events::insert_many(client, &event_rows)?;
        for (index, event) in event_at.into_iter().zip(created) {
            answers[index] = Some(Ok(Written::Event(event)));
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Err(ApiError::Internal)))
        .collect())
}

/// Longest a key's insert waits for another transaction inserting the same key (another
/// process answering the same request) to end. The writer's session waits 200 ms at most for
/// locks (`deliveries::prepare_writer_session`), which would turn that short wait into a 503.
const KEY_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// Stores the answers of the keyed creates that went in. A create whose key another request
/// stored first (another process, racing), or which repeats a key earlier in this batch (a
/// retry queued behind a first try whose handler gave up waiting), is undone here, before the
/// commit; those are returned, to be answered with the stored answer.
fn store_keys<'a>(
    tx: &mut postgres::Transaction<'_>,
    creates: &'a [NewCreate],
    answers: &mut [Result<Written, ApiError>],
    idempotency_hours: i32,
) -> Result<Vec<(usize, &'a Key)>, store::Error> {
    let mut keyed: Vec<(usize, &Key, Stored)> = Vec::new();
    let mut repeated: Vec<(usize, &Key)> = Vec::new();
    for (index, (create, answer)) in creates.iter().zip(answers.iter_mut()).enumerate() {
        let Some(key) = &create.key else { continue };
        if creates[..index].iter().any(|earlier| {
            earlier
                .key
                .as_ref()
                .is_some_and(|k| k.scope == key.scope && k.key == key.key)
        }) {
            repeated.push((index, key));
            continue;
        }
        let reply = match &*answer {
            Ok(Written::Created(delivery)) => super::deliveries::created_reply(delivery),
            Ok(Written::Event(event)) => super::events::created_reply(event),
            _ => continue,
        };
        match reply {
            Ok(reply) => keyed.push((index, key, key.stored(&reply))),
            Err(e) => *answer = Err(e),
        }
    }
    // One order for every writer, so two that hold keys in common wait, never deadlock.
    keyed.sort_by(|a, b| (a.1.scope.as_str(), &a.1.key).cmp(&(b.1.scope.as_str(), &b.1.key)));
    tx.batch_execute(KEY_LOCK_TIMEOUT)?;
    let new_keys: Vec<NewKey<'_>> = keyed
        .iter()
        .map(|(_, key, stored)| NewKey {
            scope: key.scope.as_str(),
            key: &key.key,
            stored,
        })
        .collect();
    let stored = idempotency::insert_many(tx, &new_keys, idempotency_hours)?;
    let losers = keyed
        .iter()
        .zip(stored)
        .filter(|(_, stored)| !stored)
        .map(|((index, key, _), _)| (*index, *key));
    let mut lost = Vec::new();
    for (index, key) in losers.chain(repeated) {
        match &answers[index] {
            Ok(Written::Created(delivery)) => {
                deliveries::delete(tx, delivery.id)?;
            }
            Ok(Written::Event(event)) => {
                events::delete_with_deliveries(tx, event.id)?;
            }
            _ => {}
        }
        lost.push((index, key));
    }
    Ok(lost)
}

/// Each create on its own. A webhook found locked is not tried again in this batch: its other
/// creates answer 503 at once, so a batch full of them costs one lock wait, not one each.
fn insert_one_by_one(
    client: &mut PooledClient,
    creates: &[NewCreate],
    idempotency_hours: i32,
) -> Vec<Result<Written, ApiError>> {
    let mut locked: Vec<Uuid> = Vec::new();
    creates
        .chunks(1)
        .map(|one| {
            let webhook_id = match &one[0].new {
                New::Delivery { webhook_id, .. } => Some(*webhook_id),
                New::Event { .. } => None,
            };
            if webhook_id.is_some_and(|id| locked.contains(&id)) {
                return Err(ApiError::Unavailable);
            }
            let answer = insert(client, one, idempotency_hours)
                .pop()
                .unwrap_or(Err(ApiError::Internal));
            if let (Err(ApiError::Unavailable), Some(id)) = (&answer, webhook_id) {
                locked.push(id);
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
            new: New::Delivery {
                webhook_id: Uuid::nil(),
                payload: "x".repeat(payload_bytes),
            },
            key: None,
            reply: Reply(Arc::new(AnswerSlot {
                answer: Mutex::new(Answer::Waiting),
                given: Condvar::new(),
            })),
        }
    }

    fn sizes(batch: &[Job]) -> Vec<usize> {
        batch.iter().map(|job| job.new.payload().len()).collect()
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
