//! The store: every byte the gateway keeps, in SQLite (default) or PostgreSQL (several instances).
//!
//! This module is the only place with SQL. Each backend writes its own SQL (`sqlite.rs`, `postgres.rs`);
//! [`Store`] matches on the backend in each method. Webhook intake goes through the [`IntakeWriter`], which
//! groups concurrent webhooks into one transaction (group commit) and answers each only after the commit.
//!
//! Every timestamp is stored as Unix epoch milliseconds; the API speaks [`SystemTime`].

/// Runs `$body` against the backend's pools, for statements written once in PostgreSQL's `$N` form: `$w`
/// writes, `$r` reads (SQLite has separate reader connections), `$sql` adapts a `$N` statement (for SQLite
/// `$` becomes `?`, the same positional parameter `?N`), `$pg` says which backend it is. Defined before the
/// submodules, which use it.
macro_rules! on_backend {
    ($store:expr, |$w:ident, $r:ident, $sql:ident, $pg:ident| $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let ($w, $r, $pg) = (&s.writer, &s.readers, false);
                let $sql = |q: &str| q.replace('$', "?");
                let _ = $pg;
                $body
            }
            Store::Postgres(p) => {
                let ($w, $r, $pg) = (&p.pool, &p.pool, true);
                let $sql = |q: &str| q.to_owned();
                let _ = $pg;
                $body
            }
        }
    };
}

mod callbacks;
mod error;
mod media;
mod migrations;
mod outbound;
mod postgres;
mod rows;
mod settings;
mod sqlite;
mod sqlite_intake;
mod types;
mod users;
mod writer;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use callbacks::{CallbackRecord, ClaimedDelivery, DeliveryStats, NewDelivery};
pub use error::StoreError;
pub use outbound::{CancelOutcome, Enqueued, InDoubt, NewQueued, OutboundDetail, OutboundOp, QueuedMessage};
pub use postgres::{PgOptions, PgStore, SynchronousCommit, create_schema, drop_schema};
pub use settings::{SETTINGS_LOCK_CLASS, SettingsLock};
pub use sqlite::{SqliteOptions, SqliteStore, SqliteSynchronous, WalSync};
pub use types::{
    EventFilter, InboundTouch, IntakeBatchItem, ItemOutcome, NewEvent, NewOutboundMessage, NewRawWebhook,
    OutboundMessage, OutboundState, PruneCounts, RawWebhook, StatusUpdate, StoredEvent,
};
pub use users::{ApiKeyRecord, StoredCredential};
pub use writer::{BatchStats, IntakeConfig, IntakeOutcome, IntakeSender, IntakeWriter};

/// The gateway's store: one backend or the other, chosen at start.
#[derive(Debug, Clone)]
pub enum Store {
    /// One SQLite file in WAL mode, with a single writer connection and a pool of readers.
    Sqlite(SqliteStore),
    /// A PostgreSQL pool, shared by every instance pointed at the same database.
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating it and its parent directory if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(SqliteStore::open(path.as_ref(), options).await?))
    }

    /// Connects a pool to the PostgreSQL database at `url`.
    pub async fn connect_postgres(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        Ok(Self::Postgres(PgStore::connect(url, options).await?))
    }

    /// Applies the migrations this build embeds that the database has not seen yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
    }

    /// Whether commits become durable only after [`Self::sync_commits`] (SQLite with durability FULL: the
    /// WAL is flushed once for a group of commits, see [`sqlite::WalSync`]).
    #[must_use]
    pub fn defers_sync(&self) -> bool {
        match self {
            Self::Sqlite(s) => s.wal_sync().is_some(),
            Self::Postgres(_) => false,
        }
    }

    /// Whether the store can no longer make commits durable until the gateway restarts (a failed flush of
    /// SQLite's WAL: see [`WalSync`](sqlite::WalSync)).
    #[must_use]
    pub fn cannot_commit(&self) -> bool {
        match self {
            Self::Sqlite(s) => s.wal_sync().is_some_and(|w| w.has_failed()),
            Self::Postgres(_) => false,
        }
    }

    /// Makes every commit made so far durable, where the backend defers the disk flush; a no-op otherwise.
    pub async fn sync_commits(&self) -> Result<(), StoreError> {
        let Self::Sqlite(s) = self else { return Ok(()) };
        let Some(wal) = s.wal_sync() else { return Ok(()) };
        tokio::task::spawn_blocking(move || wal.sync())
            .await
            .map_err(|e| StoreError::Flush(std::io::Error::other(e)))?
            .map_err(StoreError::Flush)
    }

    /// The durability mode in words, e.g. `sqlite wal synchronous=FULL`; printed at start and by benchmarks.
    #[must_use]
    pub fn durability(&self) -> &'static str {
        match self {
            Self::Sqlite(s) => s.durability(),
            Self::Postgres(s) => s.durability(),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }

    /// Writes a whole batch of webhooks in one transaction and reports, per item, what was new.
    ///
    /// This is the [`IntakeWriter`]'s building block; the server submits through the writer, which batches
    /// concurrent requests. A body is stored once: a redelivered body adds no raw row and no event (events are
    /// deduplicated by `dedupe_key`; PostgreSQL also keys raw bodies by SHA-256, SQLite only those without
    /// events, see `store/sqlite_intake.rs`). Statuses advance outbound messages only forward; contacts keep
    /// their latest inbound time.
    pub async fn commit_intake(&self, items: &[IntakeBatchItem]) -> Result<Vec<ItemOutcome>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = match self {
            Self::Sqlite(s) => s.commit_intake(items.to_vec().into()).await?,
            Self::Postgres(s) => s.commit_intake(items).await?,
        };
        self.sync_commits().await?;
        Ok(outcomes)
    }

    /// [`commit_intake`](Self::commit_intake) for a batch the caller shares: the SQLite backend hands it to
    /// its intake thread without copying. Not yet durable on SQLite with durability FULL: the caller (the
    /// [`IntakeWriter`]) flushes once for a group of batches with [`Self::sync_commits`] before answering.
    pub async fn commit_intake_shared(
        &self,
        items: std::sync::Arc<[IntakeBatchItem]>,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Sqlite(s) => s.commit_intake(items).await,
            Self::Postgres(s) => s.commit_intake(&items).await,
        }
    }

    /// Events with `seq > after_seq` matching `filter`, in `seq` order, at most `limit`.
    pub async fn events_after(
        &self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Self::Sqlite(s) => s.events_after(after_seq, filter, limit).await,
            Self::Postgres(s) => s.events_after(after_seq, filter, limit).await,
        }
    }

    /// The highest `seq` in the log, 0 when it is empty (also once everything was pruned: new events still
    /// get higher numbers than any given before).
    pub async fn max_seq(&self) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(s) => s.max_seq().await,
            Self::Postgres(s) => s.max_seq().await,
        }
    }

    /// When `wa_id` last wrote to the business number `phone_number_id` (the 24-hour window), if ever.
    pub async fn contact_last_inbound(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        match self {
            Self::Sqlite(s) => s.contact_last_inbound(phone_number_id, wa_id).await,
            Self::Postgres(s) => s.contact_last_inbound(phone_number_id, wa_id).await,
        }
    }

    /// The oldest rejected webhooks not re-processed yet, at most `limit`.
    pub async fn rejected_webhooks(&self, limit: u32) -> Result<Vec<RawWebhook>, StoreError> {
        self.rejected_webhooks_after(0, limit).await
    }

    /// The rejected webhooks not re-processed yet whose row id is above `after_id`, oldest first, at most
    /// `limit` (pages through them while some stay rejected).
    pub async fn rejected_webhooks_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RawWebhook>, StoreError> {
        match self {
            Self::Sqlite(s) => s.rejected_webhooks(after_id, limit).await,
            Self::Postgres(s) => s.rejected_webhooks(after_id, limit).await,
        }
    }

    /// Marks a rejected webhook as re-processed (now accepted); returns whether such a row was found.
    ///
    /// Re-processing submits the body again with its events (the raw row is found by hash, the events are
    /// linked to it), then calls this.
    pub async fn mark_reprocessed(&self, raw_id: i64) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.mark_reprocessed(raw_id).await,
            Self::Postgres(s) => s.mark_reprocessed(raw_id).await,
        }
    }

    /// Deletes events created before `older_than` — except those with `seq > keep_after_seq` (not yet queued
    /// by some callback) and those a callback delivery, pending or failed, refers to — then raw bodies
    /// received before it that no remaining event refers to, except rejected bodies not re-processed yet
    /// (kept for `POST /v1/webhooks/reprocess`; see [`prune_rejected`](Self::prune_rejected)).
    ///
    /// Works in small transactions so intake is never blocked for long. `created_at` and `received_at` have
    /// no index (one would cost every webhook's intake), so each table is walked by its primary key a chunk
    /// at a time, and the walk ends at the first row not older than `older_than` ([`prune_chunk`]): a pass
    /// reads the old part of a table once, not the young part, which is most of it.
    pub async fn prune(
        &self,
        older_than: SystemTime,
        keep_after_seq: Option<i64>,
    ) -> Result<PruneCounts, StoreError> {
        let cutoff = to_millis(older_than);
        match self {
            Self::Sqlite(s) => s.prune(cutoff, keep_after_seq).await,
            Self::Postgres(s) => s.prune(cutoff, keep_after_seq).await,
        }
    }

    /// Deletes the 24-hour windows (`contacts` rows) whose last inbound message is older than `older_than`;
    /// how many. The caller keeps `older_than` at least a window back: a contact without a row is one who
    /// never wrote, and a free-form message to them is refused as it is to one whose window closed.
    ///
    /// `last_inbound_at` has no index (one would cost every inbound message an index update), so the table
    /// is walked by its primary key a chunk at a time: each statement reads at most a chunk, and a pass reads
    /// the table once. A contact who writes again while its row is being pruned keeps it: the delete checks
    /// the time again (on PostgreSQL on the row as the intake left it).
    pub async fn prune_contacts(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let cutoff = to_millis(older_than);
        let mut deleted = 0;
        // The empty key sorts before every other: `>=` it reads the table from its start, `>` a key after it.
        let (mut after, mut op) = ((String::new(), String::new()), ">=");
        loop {
            let chunk: Vec<(String, String, i64)> = on_backend!(self, |_w, r, sql, _pg| {
                sqlx::query_as(&sql(&format!(
                    "SELECT phone_number_id, wa_id, last_inbound_at FROM contacts \
                     WHERE (phone_number_id, wa_id) {op} ($1, $2) ORDER BY phone_number_id, wa_id LIMIT $3"
                )))
                .bind(&after.0)
                .bind(&after.1)
                .bind(PRUNE_CHUNK)
                .fetch_all(r)
                .await?
            });
            let old: Vec<&(String, String, i64)> = chunk.iter().filter(|c| c.2 < cutoff).collect();
            if let (Some(first), Some(last)) = (old.first(), old.last()) {
                deleted += match self {
                    Self::Sqlite(s) => sqlx::query(
                        "DELETE FROM contacts WHERE (phone_number_id, wa_id) >= (?1, ?2) \
                         AND (phone_number_id, wa_id) <= (?3, ?4) AND last_inbound_at < ?5",
                    )
                    .bind(&first.0)
                    .bind(&first.1)
                    .bind(&last.0)
                    .bind(&last.1)
                    .bind(cutoff)
                    .execute(&s.writer)
                    .await?
                    .rows_affected(),
                    // By the keys themselves: PostgreSQL misjudges how many rows a range of row values holds
                    // and would scan the whole table for it.
                    Self::Postgres(p) => sqlx::query(
                        "DELETE FROM contacts AS c USING UNNEST($1::TEXT[], $2::TEXT[]) AS k(number, wa_id) \
                         WHERE c.phone_number_id = k.number AND c.wa_id = k.wa_id AND c.last_inbound_at < $3",
                    )
                    .bind(old.iter().map(|c| c.0.as_str()).collect::<Vec<_>>())
                    .bind(old.iter().map(|c| c.1.as_str()).collect::<Vec<_>>())
                    .bind(cutoff)
                    .execute(&p.pool)
                    .await?
                    .rows_affected(),
                };
            }
            match chunk.last() {
                Some(last) if chunk.len() >= usize::try_from(PRUNE_CHUNK).unwrap_or(usize::MAX) => {
                    after = (last.0.clone(), last.1.clone());
                    op = ">";
                }
                _ => return Ok(deleted),
            }
        }
    }

    /// Deletes rejected bodies (not re-processed) received before `older_than`; how many.
    pub async fn prune_rejected(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let cutoff = to_millis(older_than);
        match self {
            Self::Sqlite(s) => s.prune_rejected(cutoff).await,
            Self::Postgres(s) => s.prune_rejected(cutoff).await,
        }
    }

    /// Inserts an outbound message (state `queued`).
    pub async fn insert_outbound(&self, message: &NewOutboundMessage) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.insert_outbound(message).await,
            Self::Postgres(s) => s.insert_outbound(message).await,
        }
    }

    /// The outbound message with the gateway id `id`.
    pub async fn outbound_message(&self, id: &str) -> Result<Option<OutboundMessage>, StoreError> {
        match self {
            Self::Sqlite(s) => s.outbound_message(id).await,
            Self::Postgres(s) => s.outbound_message(id).await,
        }
    }

    /// Records the `wamid` Meta gave to the outbound message `id`, then applies any statuses that arrived
    /// for that wamid before it was known. Returns whether the message exists.
    pub async fn record_outbound_wamid(&self, id: &str, wamid: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.record_outbound_wamid(id, wamid).await,
            Self::Postgres(s) => s.record_outbound_wamid(id, wamid).await,
        }
    }
}

/// Default for the rows a prune deletes per transaction.
const PRUNE_CHUNK: i64 = 2_000;

/// What a prune does with one chunk of a table read in primary-key order (see [`prune_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PruneChunk {
    /// The first and last key of the rows to delete (the delete checks each row again); `None`: none here.
    pub(super) delete: Option<(i64, i64)>,
    /// The key the next chunk starts after; `None` when the walk ends with this chunk.
    pub(super) next_after: Option<i64>,
}

/// Reads one chunk of a prune's walk: `rows` are `(key, stamped at, kept)` in key order, as many as
/// [`PRUNE_CHUNK`] asked for — the key, the row's time (Unix ms) and whether something else still holds it.
/// The rows to delete are those older than `cutoff` and not kept, up to the first row that is not older; the
/// walk ends there, or when the chunk comes back short (the end of the table).
///
/// Rows are appended in time order (stamped when they are stored), so the first young row is where the old
/// part of the table ends, and stopping there is what keeps a pass from reading the young part. A clock going
/// back (a step of the system clock, instances whose clocks differ, requests committed in another order than
/// they arrived) puts an old row after a young one: it is not lost, only pruned at a later pass, once the
/// young row before it is old too.
#[must_use]
pub(super) fn prune_chunk(rows: &[(i64, i64, bool)], cutoff: i64) -> PruneChunk {
    let old = rows.iter().take_while(|&&(_, at, _)| at < cutoff);
    let mut deletable = old.clone().filter(|&&(_, _, kept)| !kept).map(|&(key, _, _)| key);
    let delete = deletable.next().map(|first| (first, deletable.last().unwrap_or(first)));
    let whole = old.count() == rows.len() && rows.len() >= usize::try_from(PRUNE_CHUNK).unwrap_or(usize::MAX);
    let next_after = rows.last().map(|&(key, _, _)| key).filter(|_| whole);
    PruneChunk { delete, next_after }
}

/// The setting that holds the highest seq retention has deleted (or is deleting: it is raised before each
/// chunk's delete), so that a reader can tell it may have missed pruned events.
pub const PRUNED_THROUGH: &str = "retention.pruned_through";

/// The rank of a Meta message status, as SQL over the column `$col`: moving an outbound message to a status
/// requires a rank above its state's ([`state_rank!`]). `played` ranks with `read`; `failed` is terminal and
/// beats every other; `deleted`, `payment`, `warning` and unknown statuses rank 0 and never move anything.
macro_rules! status_rank {
    ($col:literal) => {
        concat!(
            "(CASE ",
            $col,
            " WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 3",
            " WHEN 'failed' THEN 100 ELSE 0 END)"
        )
    };
}

/// The rank of an outbound message state, as SQL over the column `$col` (see [`status_rank!`]): queued and
/// sending rank 0, the terminal states 100.
macro_rules! state_rank {
    ($col:literal) => {
        concat!(
            "(CASE ",
            $col,
            " WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3",
            " WHEN 'failed' THEN 100 WHEN 'expired' THEN 100 WHEN 'cancelled' THEN 100 ELSE 0 END)"
        )
    };
}

/// The state an outbound message takes from a status, as SQL over the column `$col` (`played` is `read`).
macro_rules! state_of_status {
    ($col:literal) => {
        concat!("(CASE ", $col, " WHEN 'played' THEN 'read' ELSE ", $col, " END)")
    };
}

pub(crate) use {state_of_status, state_rank, status_rank};

/// Unix epoch milliseconds (0 before the epoch, saturating far in the future).
#[must_use]
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The inverse of [`to_millis`].
#[must_use]
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Now, in Unix epoch milliseconds.
#[must_use]
pub(crate) fn now_millis() -> i64 {
    to_millis(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::{PRUNE_CHUNK, PruneChunk, prune_chunk};

    #[test]
    fn a_prune_chunk_ends_at_the_first_young_row() {
        let full = usize::try_from(PRUNE_CHUNK).unwrap();
        // Old rows, one kept, then a young one and an old one after it (the clock went back).
        let rows = [(1, 10, false), (2, 11, true), (3, 12, false), (4, 99, false), (5, 13, false)];
        assert_eq!(prune_chunk(&rows, 50), PruneChunk { delete: Some((1, 3)), next_after: None });
        // A whole chunk of old rows: the walk goes on after its last key.
        let old: Vec<_> = (1..=i64::try_from(full).unwrap()).map(|k| (k, k, k == 1)).collect();
        let last = old.last().unwrap().0;
        assert_eq!(
            prune_chunk(&old, i64::MAX),
            PruneChunk { delete: Some((2, last)), next_after: Some(last) }
        );
        // A short chunk is the end of the table; nothing to delete in a chunk of kept or young rows.
        assert_eq!(prune_chunk(&old[..10], 1), PruneChunk { delete: None, next_after: None });
        assert_eq!(prune_chunk(&[(7, 1, true)], 50), PruneChunk { delete: None, next_after: None });
        assert_eq!(prune_chunk(&[], 50), PruneChunk { delete: None, next_after: None });
    }
}
