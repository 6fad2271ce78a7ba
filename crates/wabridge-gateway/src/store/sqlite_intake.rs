//! The SQLite intake path: one writer connection on a thread of its own.
//!
//! Profiling the intake under load showed where an async driver loses time on this path: every statement of a
//! batch was a round trip between the driver's worker thread and a Tokio task (polled behind the busy HTTP
//! handlers), and the multi-row statements were prepared anew for every batch. Here the whole batch runs in
//! one call on a dedicated thread with a synchronous connection (`rusqlite`, the same SQLite library sqlx
//! links): cached statements, one row at a time, `BEGIN IMMEDIATE`, and one message back to the writer task
//! when the commit is done.
//!
//! The rest of the store keeps its sqlx writer connection. SQLite serialises write transactions across
//! connections (the WAL write lock), so the event log's order is still the commit order. Every transaction of
//! the sqlx writer either opens with `BEGIN IMMEDIATE` or starts with a write, so none has to upgrade a read
//! snapshot (which SQLite refuses without waiting); this connection waits for the lock with short sleeps (see
//! [`busy`]). Under a saturating webhook load the sqlx writer's other writes wait their turn between batches.
//!
//! Checkpoints stay SQLite's automatic ones, every [`AUTOCHECKPOINT_PAGES`] pages, run by whichever writer
//! commits past the mark. A checkpointer thread of its own was tried and measured worse: while writers keep
//! appending, its passive checkpoints never let the WAL start over, so the WAL grows (new pages to allocate
//! and journal on every flush) until a blocking truncation stalls intake for 100+ ms; a checkpoint right
//! after a commit on the writer's own thread completes, and the WAL is then reused from its start.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;
use wabridge_types::webhook::status_dedupe_key;

use super::sqlite::WalSync;
use super::{
    IntakeBatchItem, ItemOutcome, StoreError, now_millis, state_of_status, state_rank, status_rank, to_millis,
};

/// WAL pages after which a committing writer checkpoints (about 8 MiB with 4 KiB pages).
pub(super) const AUTOCHECKPOINT_PAGES: i64 = 2_000;

/// Page cache of the writer connection, in KiB when negative (SQLite's convention): 8 MiB, which holds the
/// pages intake touches again and again (the ends of the tables, the upper levels of the indexes); the rest is
/// read back from the OS page cache. A larger cache costs the writer at every commit: SQLite then drops the
/// cached pages past the end of the database by walking the cache's whole hash table, which took about 8 % of
/// the writer's time with 64 MiB and does not show with 8 MiB (`perf`, `wabridge-bench ingest`).
const CACHE_SIZE_KIB: i64 = -8_192;

/// Work for the writer thread: it runs with the connection and answers through its own channel.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer connection's thread; see the [module docs](self). Besides intake batches it runs the outbound
/// schedulers' batches of state changes (`store/outbound/ops.rs`), the other write path that runs thousands of
/// times a second. It stops when its channel closes; [`close`](Self::close) closes it and joins the thread.
pub(super) struct WriterThread {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WriterThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread").finish_non_exhaustive()
    }
}

impl WriterThread {
    /// Opens the connection (the schema must exist before the first commit) and starts its thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_writer(path)?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("wabridge-sqlite-writer".to_owned())
            .spawn(move || {
                while let Ok(job) = receiver.recv() {
                    // A job that panics (a bug) fails alone: its caller sees its answer dropped, the unwinding
                    // rolled its transaction back, and the connection serves the next job. Without this, every
                    // later webhook would be refused until a restart.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!(
                            "a job on the SQLite writer thread panicked; its transaction was rolled back"
                        );
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Self { jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) })
    }

    /// Runs `f` with the connection on the writer thread and returns what it returns.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        // A caller that stopped waiting no longer needs the answer; what `f` committed stands.
        let job: Job = Box::new(move |conn| drop(reply.send(f(conn))));
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).clone();
        jobs.ok_or(StoreError::IntakeClosed)?.send(job).map_err(|_| StoreError::IntakeClosed)?;
        answer.await.map_err(|_| StoreError::IntakeClosed)?
    }

    /// Commits `items` in one transaction on the writer thread.
    pub(super) async fn commit(
        &self,
        items: Arc<[IntakeBatchItem]>,
        wal: Option<Arc<WalSync>>,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        self.run(move |conn| commit(conn, &items, wal.as_deref())).await
    }

    /// The highest event seq in the database (0 when there is none, or no event table yet).
    pub(super) async fn max_seq(&self) -> Result<i64, StoreError> {
        self.run(|conn| {
            let seq: Option<i64> = conn
                .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
                .optional()
                .unwrap_or(None);
            Ok(seq.unwrap_or(0))
        })
        .await
    }

    /// Stops the thread after the job in progress (blocking: call from a blocking context).
    pub(super) fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(PoisonError::into_inner).take());
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if thread.is_some_and(|t| t.join().is_err()) {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A read-write connection with the store's settings: WAL (set by the first opener), `synchronous=NORMAL`
/// (durability FULL comes from the group flush, see [`WalSync`](super::sqlite::WalSync)), temporary data in
/// memory.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(busy))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", CACHE_SIZE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Waiting for the write lock held by another connection: short sleeps first (a batch holds the lock for a few
/// milliseconds), then 1 ms steps, giving up after about ten seconds.
fn busy(attempt: i32) -> bool {
    let pause = if attempt < 50 { Duration::from_micros(200) } else { Duration::from_millis(1) };
    std::thread::sleep(pause);
    attempt < 10_000
}

const INSERT_RAW: &str = "INSERT INTO raw_webhooks \
     (received_at, body, body_sha256, signature_ok, status, reject_reason, processed_at, dedupe_by_body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (body_sha256) WHERE dedupe_by_body = 1 DO NOTHING";

const RAW_BY_HASH: &str = "SELECT id FROM raw_webhooks WHERE body_sha256 = ?1 AND dedupe_by_body = 1";

const INSERT_EVENT: &str = "INSERT INTO events \
     (dedupe_key, kind, field, waba_id, phone_number_id, contact, payload, raw_id, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (dedupe_key) DO NOTHING";

/// The raw row that first brought an event, if it holds the same body and is not the row just inserted (a
/// body that repeats an event of its own is not a redelivery).
const SAME_BODY: &str = "SELECT r.id FROM events e JOIN raw_webhooks r ON r.id = e.raw_id \
     WHERE e.dedupe_key = ?1 AND r.body_sha256 = ?2 AND r.id <> ?3";

const RELINK_EVENTS: &str = "UPDATE events SET raw_id = ?1 WHERE raw_id = ?2";

const DELETE_RAW: &str = "DELETE FROM raw_webhooks WHERE id = ?1";

/// A body kept whose events all came with other bodies (Meta re-batched them): found by its hash from now on.
/// No other row has its hash marked, or [`RAW_BY_HASH`] would have found it before it was stored.
const DEDUPE_BY_BODY: &str = "UPDATE raw_webhooks SET dedupe_by_body = 1 WHERE id = ?1";

/// A timeline row, keyed by the seq of its status event (migration 0006): written only with a new event.
const INSERT_STATUS: &str = "INSERT INTO message_statuses \
     (id, wamid, status, status_timestamp, errors, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Moves one outbound message forward by one status: only to a higher rank, so order and duplicates do not
/// matter (the same rule as the timeline-derived update in `sqlite.rs`, applied status by status).
const ADVANCE_STATE: &str = concat!(
    "UPDATE outbound_messages SET state = ",
    state_of_status!("?2"),
    ", updated_at = ?3, last_error = CASE WHEN ?2 = 'failed' THEN ?4 ELSE last_error END ",
    "WHERE wamid = ?1 AND ",
    status_rank!("?2"),
    " > ",
    state_rank!("state"),
);

const TOUCH_CONTACT: &str = "INSERT INTO contacts (phone_number_id, wa_id, last_inbound_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET \
     last_inbound_at = max(contacts.last_inbound_at, excluded.last_inbound_at), updated_at = excluded.updated_at";

/// Writes a batch in one transaction, item by item in arrival order: an event (or body) counts as new for
/// the first item that carried it and as a duplicate for the others, in this batch or across batches.
///
/// With durability FULL (`wal`), the highest seq of the batch is noted before the commit makes it visible, so
/// that readers of the event log stop short of it until the WAL has been flushed, and again once the commit
/// returned, so that the next flush counts it as on disk.
fn commit(
    conn: &mut Connection,
    items: &[IntakeBatchItem],
    wal: Option<&WalSync>,
) -> Result<Vec<ItemOutcome>, StoreError> {
    let now = now_millis();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(items.len());
    {
        let mut insert_raw = tx.prepare_cached(INSERT_RAW)?;
        let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
        let mut insert_status = tx.prepare_cached(INSERT_STATUS)?;
        let mut advance = tx.prepare_cached(ADVANCE_STATE)?;
        let mut touch = tx.prepare_cached(TOUCH_CONTACT)?;
        for item in items {
            let raw = &item.raw;
            let hash = raw.body_sha256().as_slice();
            // A body stored before without events (rejected, say) is the row its events now link to.
            let mut known_body: Option<i64> =
                tx.prepare_cached(RAW_BY_HASH)?.query_row([hash], |row| row.get(0)).optional()?;
            let by_body = item.events.is_empty();
            let new_raw = if known_body.is_some() {
                None
            } else {
                let inserted = insert_raw.execute(params![
                    to_millis(raw.received_at()),
                    raw.body(),
                    hash,
                    raw.signature_ok(),
                    raw.status(),
                    raw.reject_reason(),
                    raw.reject_reason().is_none().then_some(now),
                    by_body,
                ])?;
                if inserted == 0 {
                    return Err(StoreError::Inconsistent("raw body conflicts but was not found"));
                }
                Some(tx.last_insert_rowid())
            };
            let mut outcome = ItemOutcome {
                raw_id: known_body.or(new_raw).ok_or(StoreError::Inconsistent("no raw row"))?,
                raw_duplicate: known_body.is_some(),
                events_inserted: 0,
                events_duplicate: 0,
                last_seq: None,
            };
            let mut known = Vec::new();
            // The seq of each event inserted now, by dedupe key: a status's timeline row goes with its event.
            let mut inserted: Vec<(&str, i64)> = Vec::new();
            for e in &item.events {
                let added = insert_event.execute(params![
                    e.dedupe_key,
                    e.kind,
                    e.field,
                    e.waba_id,
                    e.phone_number_id,
                    e.contact,
                    e.payload,
                    outcome.raw_id,
                    now,
                ])?;
                if added == 1 {
                    outcome.events_inserted += 1;
                    outcome.last_seq = Some(tx.last_insert_rowid());
                    inserted.push((e.dedupe_key.as_str(), tx.last_insert_rowid()));
                } else {
                    outcome.events_duplicate += 1;
                    known.push(e.dedupe_key.as_str());
                }
            }
            if let Some(new_raw) = new_raw.filter(|_| !known.is_empty()) {
                // Events were known: if one of them came with this very body, this is a redelivery. It keeps
                // no second row; events it brings anew (a newer version may find more) link to the original.
                // Each known event is looked at, as its first body may be another one (a body with e1 and e2
                // redelivered after e1 came alone). A different body with known events only (Meta re-batched
                // them) is kept: it was received.
                let mut same_body = tx.prepare_cached(SAME_BODY)?;
                for key in known {
                    known_body =
                        same_body.query_row(params![key, hash, new_raw], |row| row.get(0)).optional()?;
                    if known_body.is_some() {
                        break;
                    }
                }
                if let Some(original) = known_body {
                    if outcome.events_inserted > 0 {
                        tx.prepare_cached(RELINK_EVENTS)?.execute([original, new_raw])?;
                    }
                    tx.prepare_cached(DELETE_RAW)?.execute([new_raw])?;
                    outcome.raw_id = original;
                    outcome.raw_duplicate = true;
                } else if outcome.events_inserted == 0 {
                    // Every event came with other bodies: no event links to this row, so nothing would find
                    // it again. Deduplicated by its hash from now on, a redelivery of this body is found above.
                    tx.prepare_cached(DEDUPE_BY_BODY)?.execute([new_raw])?;
                }
            }
            for s in &item.statuses {
                // Each new event carries one timeline row: a status repeated in the same body finds it taken.
                let key = status_dedupe_key(&s.wamid, &s.status);
                let Some(at) = inserted.iter().position(|(k, _)| *k == key) else { continue };
                let (_, seq) = inserted.swap_remove(at);
                insert_status.execute(params![seq, s.wamid, s.status, s.timestamp, s.errors, now])?;
                advance.execute(params![s.wamid, s.status, now, s.errors])?;
            }
            for t in &item.inbound {
                touch.execute(params![t.phone_number_id, t.wa_id, to_millis(t.at), now])?;
            }
            outcomes.push(outcome);
        }
    }
    let last_seq = outcomes.iter().filter_map(|o| o.last_seq).max();
    if let (Some(wal), Some(seq)) = (wal, last_seq) {
        wal.note_committing(seq);
    }
    tx.commit()?;
    if let (Some(wal), Some(seq)) = (wal, last_seq) {
        wal.note_written(seq);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::{StoreError, WriterThread};

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let dir = std::env::temp_dir().join(format!("wabridge-writer-panic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        rusqlite::Connection::open(&path).unwrap().pragma_update(None, "journal_mode", "WAL").unwrap();
        let writer = WriterThread::open(&path).unwrap();
        writer.run(|conn| Ok(conn.execute_batch("CREATE TABLE t (n INTEGER)")?)).await.unwrap();
        let failed = writer
            .run(|conn| -> Result<(), StoreError> {
                let tx = conn.transaction()?;
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("a bug in a job");
            })
            .await;
        assert!(matches!(failed, Err(StoreError::IntakeClosed)), "{failed:?}");
        // The thread goes on, and the panicked job's insert was rolled back.
        let count: i64 =
            writer.run(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)).await.unwrap();
        assert_eq!(count, 0);
        writer.close();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
