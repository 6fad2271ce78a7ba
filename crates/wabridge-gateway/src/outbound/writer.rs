//! Group commit for the outbound queue: many `POST /v1/messages` inserts share one transaction, and so do
//! the schedulers' state changes. A caller that needs durability awaits the acknowledgement of its commit.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{Enqueued, NewQueued, OutboundOp, Store};

type InsertReply = oneshot::Sender<Result<Enqueued, String>>;
type OpReply = Option<oneshot::Sender<Result<bool, String>>>;

/// Sends inserts and state changes to the writer tasks.
#[derive(Debug, Clone)]
pub struct QueueWriter {
    inserts: mpsc::Sender<(NewQueued, InsertReply)>,
    ops: mpsc::Sender<(OutboundOp, OpReply)>,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The commit failed (logged with its cause).
    #[error("the store refused the write: {0}")]
    Store(String),
    /// The writer stopped (shutdown).
    #[error("the outbound writer has stopped")]
    Stopped,
}

impl QueueWriter {
    /// Starts the insert and state-change writers on `store`. They stop when every sender is dropped, or
    /// when `stop` fires — then they refuse new writes and commit what is already queued.
    pub fn spawn(store: &Store, max_batch: usize, stop: &CancellationToken) -> (Self, Vec<JoinHandle<()>>) {
        let max_batch = max_batch.max(1);
        let (inserts, mut insert_rx) = mpsc::channel::<(NewQueued, InsertReply)>(max_batch * 4);
        let (ops, mut op_rx) = mpsc::channel::<(OutboundOp, OpReply)>(max_batch * 8);
        let insert_store = store.clone();
        let insert_stop = stop.clone();
        let insert_task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while next_batch(&mut insert_rx, &mut batch, max_batch, &insert_stop).await > 0 {
                let rows: Vec<NewQueued> = batch.iter().map(|(m, _)| m.clone()).collect();
                let results = commit_inserts(&insert_store, &rows).await;
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
        });
        let op_store = store.clone();
        let op_stop = stop.clone();
        let op_task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while next_batch(&mut op_rx, &mut batch, max_batch, &op_stop).await > 0 {
                let list: Vec<OutboundOp> = batch.iter().map(|(op, _)| op.clone()).collect();
                let results = commit_ops(&op_store, &list).await;
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
        });
        (Self { inserts, ops }, vec![insert_task, op_task])
    }

    /// Inserts a queued message; returns once its commit is done.
    pub async fn insert(&self, message: NewQueued) -> Result<Enqueued, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.inserts.send((message, tx)).await.map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?.map_err(WriteError::Store)
    }

    /// Applies a state change; returns once its commit is done, with whether it changed its message (see
    /// [`Store::apply_outbound_ops`]).
    pub async fn apply(&self, op: OutboundOp) -> Result<bool, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send((op, Some(tx))).await.map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?.map_err(WriteError::Store)
    }

    /// Queues a state change without waiting for its commit.
    pub async fn apply_later(&self, op: OutboundOp) {
        if self.ops.send((op, None)).await.is_err() {
            tracing::warn!("outbound state change dropped: the writer has stopped");
        }
    }
}

/// Receives the next batch; after `stop`, closes the channel and hands out what is still queued (0 when
/// nothing is left).
async fn next_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    stop: &CancellationToken,
) -> usize {
    tokio::select! {
        biased;
        n = rx.recv_many(batch, max) => n,
        () = stop.cancelled() => {
            rx.close();
            rx.recv_many(batch, max).await
        }
    }
}

/// Commits the inserts of `rows`, answering row by row. When the batch fails for something in the data (a
/// value the database refuses, a clashing id), each row is inserted alone, so one bad request does not fail
/// the other clients' requests that happened to share its commit. Alone, in the order they came, rows keep the
/// meaning of idempotency keys: of two rows with one key, the first inserts and the second finds it. A lost
/// race or a lost connection answers the error to the whole batch instead: it is no fault of any one row,
/// and a transaction per row would only add load to a database already in trouble.
async fn commit_inserts(store: &Store, rows: &[NewQueued]) -> Vec<Result<Enqueued, String>> {
    match store.enqueue_outbound(rows).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) if rows.len() > 1 && !e.is_retryable() => {
            tracing::warn!(error = %e, rows = rows.len(), "outbound insert batch failed; inserting one by one");
            let mut results = Vec::with_capacity(rows.len());
            for row in rows {
                results.push(match store.enqueue_outbound(std::slice::from_ref(row)).await {
                    Ok(outcomes) => {
                        outcomes.into_iter().next().ok_or_else(|| "the store answered no outcome".to_owned())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "outbound insert failed");
                        Err(e.to_string())
                    }
                });
            }
            results
        }
        Err(e) => {
            tracing::error!(error = %e, rows = rows.len(), "outbound insert commit failed");
            vec![Err(e.to_string()); rows.len()]
        }
    }
}

/// Commits `ops`, answering op by op; when the batch fails, tries each op alone so one bad row does not sink
/// the others.
async fn commit_ops(store: &Store, ops: &[OutboundOp]) -> Vec<Result<bool, String>> {
    match store.apply_outbound_ops(ops).await {
        Ok(changed) => changed.into_iter().map(Ok).collect(),
        Err(e) if ops.len() > 1 => {
            tracing::warn!(error = %e, ops = ops.len(), "outbound state batch failed; applying one by one");
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match store.apply_outbound_ops(std::slice::from_ref(op)).await {
                    Ok(changed) => Ok(changed.first().copied().unwrap_or(false)),
                    Err(e) => {
                        tracing::error!(error = %e, "outbound state change failed");
                        Err(e.to_string())
                    }
                });
            }
            results
        }
        Err(e) => {
            tracing::error!(error = %e, "outbound state change failed");
            vec![Err(e.to_string()); ops.len()]
        }
    }
}
