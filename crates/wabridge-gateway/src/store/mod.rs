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
    /// Works in small transactions so intake is never blocked for long.
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
