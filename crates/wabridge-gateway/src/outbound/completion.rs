//! Waiters on the outcome of one queued message: the Cloud-compatible routes answer with Meta's own
//! response, so they wait until the scheduler has sent (or failed) the message they queued.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// How a watched message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Meta accepted it with this wamid.
    Sent(String),
    /// It failed for good; the stored error JSON (an array of `{code,title,message,error_data}`).
    Failed(String),
    /// Its TTL passed before it could be sent.
    Expired,
}

/// The waiters, by gateway message id.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    waiters: Mutex<HashMap<String, oneshot::Sender<Completion>>>,
}

impl Completions {
    /// Registers interest in `id` (before it is queued, so no outcome can be missed).
    pub(crate) fn watch(&self, id: &str) -> oneshot::Receiver<Completion> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.to_owned(), tx);
        rx
    }

    /// Tells the waiter of `id`, if any.
    pub(crate) fn finish(&self, id: &str, outcome: Completion) {
        if let Some(tx) = self.lock().remove(id) {
            let _ = tx.send(outcome);
        }
    }

    /// Forgets the waiter of `id` (it gave up).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Completion>>> {
        self.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
