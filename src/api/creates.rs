//! Group commit for `POST /v1/deliveries`: concurrent creates are written together.
//!
//! A handler hands its new delivery to [`Creates::create`] and waits. A writer thread takes
//! every create queued at that moment (up to [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]), inserts them with one statement
//! and one commit, and answers each handler. Only then does a handler answer 201, so a 201
//! still means "committed". Under load a commit (and its WAL flush), a round trip and a
//! parse serve many creates instead of one; a lone create waits for nobody, because a writer
//! is idle and takes it at once.

use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use uuid::Uuid;

use super::errors::ApiError;
use crate::db::{self, Pool, PooledClient};
use crate::liveness::Part;
use crate::model::Delivery;
use crate::store::deliveries;

/// Creates written by one statement at most.
pub const MAX_BATCH: usize = 64;

/// Payload bytes one statement carries at most (a batch always takes at least one create).
/// PostgreSQL refuses a parameter over 1 GB, and the payloads travel as one array: without
/// this cap, concurrent large bodies (`POSTMAND_MAX_BODY_BYTES` allows 64 MiB) would fail every
/// create of their batch.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// One handler's create, and where its answer goes.
struct Job {
    webhook_id: Uuid,
    payload: String,
    reply: Sender<Result<Delivery, ApiError>>,
}

/// The handlers' side: queues a create and waits for its commit.
pub struct Creates {
    jobs: Sender<Job>,
}

impl Creates {
    /// Starts `writers` writer threads on `pool`. They stop once every [`Creates`] is dropped
    /// and the queue is empty.
    pub fn start(
        pool: Pool,
        writers: usize,
        part: &Arc<Part>,
    ) -> std::io::Result<(Creates, Vec<thread::JoinHandle<()>>)> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let mut threads = Vec::with_capacity(writers);
        for index in 0..writers.max(1) {
            let pool = pool.clone();
            let queue = queue.clone();
            let running = part.running();
            threads.push(
                thread::Builder::new()
                    .name(format!("api-writer-{index}"))
                    .spawn(move || {
                        let _running = running;
                        write_until_closed(&pool, &queue)
                    })?,
            );
        }
        Ok((Creates { jobs }, threads))
    }

    /// Queues a delivery and returns it once committed; 400 when its webhook does not exist,
    /// 503 when the database is unavailable.
    pub fn create(&self, webhook_id: Uuid, payload: String) -> Result<Delivery, ApiError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let job = Job {
            webhook_id,
            payload,
            reply,
        };
        if self.jobs.send(job).is_err() {
            log::error!("delivery-create-error error=\"the writer threads are gone\"");
            return Err(ApiError::Internal);
        }
        answer.recv().unwrap_or_else(|_| {
            log::error!("delivery-create-error error=\"a writer dropped the create\"");
            Err(ApiError::Internal)
        })
    }
}

fn write_until_closed(pool: &Pool, queue: &Receiver<Job>) {
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let (batch, left_over) = take_batch(first, queue);
        next = left_over;
        write(pool, batch);
    }
}

/// `first` and what is queued behind it, within [`MAX_BATCH`] and [`MAX_BATCH_BYTES`]; the
/// create that would cross the byte cap is handed back to start the next batch.
fn take_batch(first: Job, queue: &Receiver<Job>) -> (Vec<Job>, Option<Job>) {
    let mut bytes = first.payload.len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        let Ok(job) = queue.try_recv() else {
            break;
        };
        if bytes + job.payload.len() > MAX_BATCH_BYTES {
            return (batch, Some(job));
        }
        bytes += job.payload.len();
        batch.push(job);
    }
    (batch, None)
}

/// Inserts a batch and answers every job in it.
fn write(pool: &Pool, batch: Vec<Job>) {
    let (new, replies): (Vec<(Uuid, String)>, Vec<Sender<_>>) = batch
        .into_iter()
        .map(|job| ((job.webhook_id, job.payload), job.reply))
        .unzip();
    let answers = match db::checkout(pool) {
        Ok(mut client) => insert(&mut client, &new),
        Err(e) => vec![Err(ApiError::from(e)); new.len()],
    };
    for (answer, reply) in answers.into_iter().zip(replies) {
        let _ = reply.send(answer);
    }
}

/// One answer per new delivery, in order.
fn insert(client: &mut PooledClient, new: &[(Uuid, String)]) -> Vec<Result<Delivery, ApiError>> {
    match deliveries::insert_many(&mut **client, new) {
        Ok(results) => results
            .into_iter()
            .map(|result| result.ok_or_else(webhook_missing))
            .collect(),
        // A webhook was deleted while the statement ran: one at a time, so only the creates
        // that named it fail.
        Err(e) if e.is_foreign_key_violation() && new.len() > 1 => {
            new.chunks(1).flat_map(|one| insert(client, one)).collect()
        }
        Err(e) if e.is_foreign_key_violation() => vec![Err(webhook_missing())],
        Err(e) => vec![Err(ApiError::from(e)); new.len()],
    }
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
            reply: crossbeam_channel::bounded(1).0,
        }
    }

    fn sizes(batch: &[Job]) -> Vec<usize> {
        batch.iter().map(|job| job.payload.len()).collect()
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_the_count() {
        let (jobs, queue) = crossbeam_channel::unbounded();
        for _ in 0..MAX_BATCH + 5 {
            jobs.send(job(1)).unwrap();
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
            jobs.send(job(size)).unwrap();
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
