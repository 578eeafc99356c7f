//! Group commit for `POST /v1/deliveries`: concurrent creates are written together.
//!
//! A handler hands its new delivery to [`Creates::create`] and waits. A writer thread takes
//! every create queued at that moment (up to [`MAX_BATCH`]), inserts them with one statement
//! and one commit, and answers each handler. Only then does a handler answer 201, so a 201
//! still means "committed". Under load a commit (and its WAL flush), a round trip and a
//! parse serve many creates instead of one; a lone create waits for nobody, because a writer
//! is idle and takes it at once.

use std::thread;

use crossbeam_channel::{Receiver, Sender};
use uuid::Uuid;

use super::errors::ApiError;
use crate::db::{self, Pool, PooledClient};
use crate::model::Delivery;
use crate::store::deliveries;

/// Creates written by one statement at most.
pub const MAX_BATCH: usize = 64;

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
    ) -> std::io::Result<(Creates, Vec<thread::JoinHandle<()>>)> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let mut threads = Vec::with_capacity(writers);
        for index in 0..writers.max(1) {
            let pool = pool.clone();
            let queue = queue.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("api-writer-{index}"))
                    .spawn(move || write_until_closed(&pool, &queue))?,
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
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        write(pool, batch);
    }
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
