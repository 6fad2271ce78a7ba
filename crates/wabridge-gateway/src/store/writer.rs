//! Group commit: the task that owns the intake write path.
//!
//! HTTP handlers [`submit`](IntakeSender::submit) one [`IntakeBatchItem`] each and wait. The writer takes
//! whatever is queued (up to [`IntakeConfig::max_batch`]), writes it in one transaction, commits, and only
//! then answers every waiting handler — so a webhook is acknowledged to Meta only once it is durable, and
//! many webhooks share the cost of one commit. The busier it gets, the bigger the batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{IntakeBatchItem, ItemOutcome, Store, StoreError};

/// How often a batch that lost a race (deadlock, serialization failure, busy) is tried again.
const CONFLICT_RETRIES: usize = 3;

/// Settings of the [`IntakeWriter`].
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Items waiting for the writer before [`IntakeSender::submit`] waits for room. Default: 8,192.
    pub queue_capacity: usize,
    /// Items per transaction at most. Default: 1,024.
    pub max_batch: usize,
    /// Transactions in flight at once on PostgreSQL (SQLite always has exactly one writer). Default: 2.
    pub pg_committers: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { queue_capacity: 8_192, max_batch: 1_024, pg_committers: 2 }
    }
}

/// What happened to one submitted item, once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeOutcome {
    /// What the store did with the item.
    pub item: ItemOutcome,
    /// The transaction that held it.
    pub batch: BatchStats,
    /// From submit to the answer: queueing, waiting for the batch before, and the commit.
    pub latency: Duration,
    /// True for exactly one item of each batch, so per-commit figures ([`Self::batch`]) are recorded once
    /// per commit rather than once per item.
    pub first_in_batch: bool,
}

/// Figures of one committed transaction, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Items in the transaction.
    pub items: usize,
    /// Events the transaction added to the log.
    pub events_inserted: usize,
    /// From the start of the transaction to the end of its commit.
    pub commit_latency: Duration,
}

struct Job {
    item: IntakeBatchItem,
    submitted: Instant,
    reply: oneshot::Sender<Result<IntakeOutcome, StoreError>>,
}

/// The handle handlers submit through; cheap to clone.
#[derive(Debug, Clone)]
pub struct IntakeSender {
    jobs: mpsc::Sender<Job>,
}

impl IntakeSender {
    /// Queues one webhook and waits until the transaction holding it is committed (or failed).
    ///
    /// Waits for room when the queue is full (back-pressure). Fails with [`StoreError::IntakeClosed`] when
    /// the writer has stopped, and [`StoreError::IntakeFailed`] when its batch could not be committed.
    pub async fn submit(&self, item: IntakeBatchItem) -> Result<IntakeOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { item, submitted: Instant::now(), reply };
        self.jobs.send(job).await.map_err(|_| StoreError::IntakeClosed)?;
        answer.await.map_err(|_| StoreError::IntakeClosed)?
    }

    /// Items waiting for the writer (a gauge for metrics).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

/// The task owning the intake write path; see the [module docs](self).
#[derive(Debug)]
pub struct IntakeWriter {
    store: Store,
    jobs: mpsc::Receiver<Job>,
    config: IntakeConfig,
    committed_seq: Arc<watch::Sender<i64>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("item", &self.item).finish_non_exhaustive()
    }
}

impl IntakeWriter {
    /// A writer for `store` and the sender that feeds it. Run it with [`run`](Self::run).
    pub async fn new(store: Store, config: IntakeConfig) -> Result<(Self, IntakeSender), StoreError> {
        if config.queue_capacity == 0 || config.max_batch == 0 || config.pg_committers == 0 {
            return Err(StoreError::InvalidOption(
                "intake queue_capacity, max_batch and pg_committers must be > 0",
            ));
        }
        let (committed_seq, _) = watch::channel(store.max_seq().await?);
        let (tx, jobs) = mpsc::channel(config.queue_capacity);
        let writer = Self { store, jobs, config, committed_seq: Arc::new(committed_seq) };
        Ok((writer, IntakeSender { jobs: tx }))
    }

    /// Starts a writer on the current runtime; it stops when every sender is dropped or `shutdown` fires,
    /// after committing what was queued.
    pub async fn spawn(
        store: Store,
        config: IntakeConfig,
        shutdown: CancellationToken,
    ) -> Result<(IntakeSender, watch::Receiver<i64>, JoinHandle<()>), StoreError> {
        let (writer, sender) = Self::new(store, config).await?;
        let committed = writer.committed_seq();
        Ok((sender, committed, tokio::spawn(writer.run(shutdown))))
    }

    /// The highest `seq` committed by this writer (starting at the log's end when it was created): a reader
    /// waits on it instead of polling. Other instances' commits (PostgreSQL) do not show here.
    #[must_use]
    pub fn committed_seq(&self) -> watch::Receiver<i64> {
        self.committed_seq.subscribe()
    }

    /// Writes batches until every [`IntakeSender`] is dropped or `shutdown` fires; then commits what is
    /// still queued, refuses new items, waits for the transactions in flight, and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let committers = match self.store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => self.config.pg_committers,
        };
        let slots = Arc::new(Semaphore::new(committers));
        let mut in_flight = JoinSet::new();
        // Where commits become durable only after a flush, a syncer flushes once for every group of
        // committed batches and answers them; the next batch is committed meanwhile.
        let (syncer, syncer_task) = if self.store.defers_sync() {
            let (tx, rx) = mpsc::unbounded_channel();
            (
                Some(tx),
                Some(tokio::spawn(sync_and_answer(self.store.clone(), rx, Arc::clone(&self.committed_seq)))),
            )
        } else {
            (None, None)
        };
        loop {
            // Take a commit slot before forming the batch: while the slots are busy, the queue grows, and
            // the next batch carries all of it.
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot,
                () = shutdown.cancelled() => break,
            };
            let Ok(slot) = slot else { break };
            let first = tokio::select! {
                job = self.jobs.recv() => job,
                () = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let batch = self.take_batch(first);
            let (store, committed, syncer) =
                (self.store.clone(), Arc::clone(&self.committed_seq), syncer.clone());
            in_flight.spawn(async move {
                commit(&store, batch, &committed, syncer.as_ref()).await;
                drop(slot);
            });
            reap(&mut in_flight);
        }

        // Shutting down: no new items; what is queued still gets committed.
        self.jobs.close();
        while let Some(first) = self.jobs.recv().await {
            let batch = self.take_batch(first);
            commit(&self.store, batch, &self.committed_seq, syncer.as_ref()).await;
        }
        while let Some(done) = in_flight.join_next().await {
            log_panic(done);
        }
        // Every batch is handed to the syncer; let it flush and answer the last ones.
        drop(syncer);
        if let Some(task) = syncer_task {
            log_panic(task.await);
        }
    }

    fn take_batch(&mut self, first: Job) -> Vec<Job> {
        let mut batch = Vec::with_capacity(self.jobs.len().min(self.config.max_batch) + 1);
        batch.push(first);
        while batch.len() < self.config.max_batch {
            match self.jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch
    }
}

/// Collects the commit tasks that have finished.
fn reap(in_flight: &mut JoinSet<()>) {
    while let Some(done) = in_flight.try_join_next() {
        log_panic(done);
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "intake commit task failed");
    }
}

/// Commits one batch and answers its items. A batch that loses a race is run again; one that still fails
/// is split, so an item that cannot be stored fails alone.
async fn commit(
    store: &Store,
    batch: Vec<Job>,
    committed: &watch::Sender<i64>,
    syncer: Option<&mpsc::UnboundedSender<Committed>>,
) {
    let (items, waiting): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|j| (j.item, (j.submitted, j.reply))).unzip();
    let items: Arc<[IntakeBatchItem]> = items.into();
    let mut attempt = 0;
    let result = loop {
        let started = Instant::now();
        match store.commit_intake_shared(Arc::clone(&items)).await {
            Ok(outcomes) => break Ok((outcomes, started.elapsed())),
            Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "intake batch lost a race; retrying");
            }
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok((outcomes, commit_latency)) => {
            let stats = BatchStats {
                items: items.len(),
                events_inserted: outcomes.iter().map(|o| o.events_inserted).sum(),
                commit_latency,
            };
            let last_seq = outcomes.iter().filter_map(|o| o.last_seq).max();
            let answers = waiting
                .into_iter()
                .zip(outcomes)
                .enumerate()
                .map(|(i, ((submitted, reply), item))| {
                    (
                        reply,
                        IntakeOutcome { item, batch: stats, latency: Duration::ZERO, first_in_batch: i == 0 },
                        submitted,
                    )
                })
                .collect();
            let done = Committed { answers, last_seq };
            match syncer {
                // Not durable yet: the syncer answers after the flush.
                Some(syncer) => {
                    if let Err(mpsc::error::SendError(done)) = syncer.send(done) {
                        done.answer(Err(StoreError::IntakeClosed), committed);
                    }
                }
                None => done.answer(Ok(()), committed),
            }
        }
        Err(e) if items.len() > 1 => {
            tracing::warn!(error = %e, items = items.len(), "intake batch failed; committing its items one by one");
            for (item, (submitted, reply)) in items.iter().cloned().zip(waiting) {
                Box::pin(commit(store, vec![Job { item, submitted, reply }], committed, syncer)).await;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "intake item could not be committed");
            let e = Arc::new(e);
            for (_, reply) in waiting {
                let _ = reply.send(Err(StoreError::IntakeFailed(Arc::clone(&e))));
            }
        }
    }
}

/// Where one submitter waits for its answer.
type Reply = oneshot::Sender<Result<IntakeOutcome, StoreError>>;

/// A committed batch waiting for its answers (and, where the flush is deferred, for the flush): each reply
/// with its outcome and when it was submitted.
struct Committed {
    answers: Vec<(Reply, IntakeOutcome, Instant)>,
    last_seq: Option<i64>,
}

impl Committed {
    /// Answers every item: with its outcome once durable, or with the flush's error.
    fn answer(self, durable: Result<(), StoreError>, committed: &watch::Sender<i64>) {
        match durable {
            Ok(()) => {
                if let Some(seq) = self.last_seq {
                    committed.send_if_modified(|current| {
                        let newer = seq > *current;
                        if newer {
                            *current = seq;
                        }
                        newer
                    });
                }
                for (reply, mut outcome, submitted) in self.answers {
                    outcome.latency = submitted.elapsed();
                    // A handler that gave up waiting is no longer interested; its item is stored all the same.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, items = self.answers.len(), "committed webhooks could not be flushed to disk; not acknowledged");
                let e = Arc::new(e);
                for (reply, _, _) in self.answers {
                    let _ = reply.send(Err(StoreError::IntakeFailed(Arc::clone(&e))));
                }
            }
        }
    }
}

/// Flushes once for every group of committed batches waiting, then answers them: one disk flush is shared
/// by all the commits written before it.
async fn sync_and_answer(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Committed>,
    committed: Arc<watch::Sender<i64>>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let flushed = store.sync_commits().await;
        for batch in group {
            let result = match &flushed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Flush(std::io::Error::other(e.to_string()))),
            };
            batch.answer(result, &committed);
        }
    }
}
