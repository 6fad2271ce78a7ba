//! The SQLite backend: one file in WAL mode, one writer connection, a pool of read-only connections.
//!
//! Every write goes through the single writer connection (a pool of one), so writes never wait on SQLite's
//! busy handler and the event log's order is the commit order: the [`IntakeWriter`](super::IntakeWriter) is
//! the only writer on the hot path; prune and the outbound helpers queue on the same connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous as Sync,
};
use sqlx::{QueryBuilder, Sqlite};

use super::sqlite_intake::{self, AUTOCHECKPOINT_PAGES, WriterThread};
use super::{
    EventFilter, IntakeBatchItem, ItemOutcome, NewOutboundMessage, OutboundMessage, PRUNE_CHUNK, PruneCounts,
    RawWebhook, StoreError, StoredEvent, from_millis, migrations, now_millis, prune_chunk, rows,
    state_of_status, state_rank, status_rank,
};

/// How SQLite syncs to disk at commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is on disk before it is acknowledged: survives power loss. The default.
    #[default]
    Full,
    /// Commits survive a crash of the process but the last ones may be lost on power loss (WAL mode).
    Normal,
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability at commit. Default: [`SqliteSynchronous::Full`].
    pub synchronous: SqliteSynchronous,
    /// How long a statement waits for a lock held by another process before failing. Default: 5 s.
    pub busy_timeout: Duration,
    /// Read-only connections for readers (event log, lookups). Default: 4.
    pub read_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: SqliteSynchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
        }
    }
}

/// The SQLite backend of [`Store`](super::Store).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) readers: SqlitePool,
    synchronous: SqliteSynchronous,
    /// With [`SqliteSynchronous::Full`]: the WAL file, synced before commits are acknowledged.
    wal: Option<Arc<WalSync>>,
    /// The connection that writes intake batches and the schedulers' state changes, on a thread of its own.
    writer_thread: Arc<WriterThread>,
    /// How the migrations connect.
    migrate_with: Arc<SqliteConnectOptions>,
}

/// Group fsync of the write-ahead log.
///
/// `synchronous=FULL` makes every commit wait for its own fsync, so one writer can commit at most one batch
/// per disk flush. Instead, with durability FULL the connection commits with `synchronous=NORMAL` (WAL frames
/// are written, not flushed) and the intake writer calls [`WalSync::sync`] before acknowledging: one fsync of
/// the WAL file makes every commit written before it durable, while the next batch is already being
/// committed. Nothing is acknowledged before it is on disk — the guarantee of FULL — and the disk flush is
/// shared by all the batches it covers, as PostgreSQL's group commit does. SQLite itself still syncs the WAL
/// before each checkpoint copies it into the database file (which NORMAL does too), so checkpoints never
/// overtake the flush.
#[derive(Debug)]
pub struct WalSync {
    path: PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
    /// Set by the first failed flush, for good. After a failed `fsync` the kernel may mark the pages it could
    /// not write as clean, so a later flush can succeed without writing them: a redelivery of a webhook whose
    /// commit was never made durable would then be answered 200 as a duplicate. So, as PostgreSQL does, no
    /// commit is acknowledged after a failed flush until the gateway restarts (and SQLite recovers from the
    /// WAL as it is on disk).
    failed: std::sync::atomic::AtomicBool,
    /// The highest event seq of an intake transaction about to commit: noted before the commit makes its
    /// events visible, so that a reader who saw them knows they may not be on disk yet.
    committing: AtomicI64,
    /// The highest event seq of an intake transaction whose commit returned (its WAL frames written): what
    /// a flush that starts now makes durable.
    written: AtomicI64,
    /// The highest event seq known to be on disk: readers of the event log stop there while later ones are
    /// not, so that no subscriber sees (and resumes after) an event a power cut could still take back.
    durable: AtomicI64,
}

impl WalSync {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: std::sync::Mutex::new(None),
            failed: std::sync::atomic::AtomicBool::new(false),
            committing: AtomicI64::new(0),
            written: AtomicI64::new(0),
            durable: AtomicI64::new(0),
        }
    }

    /// Notes that a transaction about to commit holds events up to `seq`.
    pub(super) fn note_committing(&self, seq: i64) {
        self.committing.fetch_max(seq, Ordering::AcqRel);
    }

    /// Notes that the commit of a transaction with events up to `seq` has returned.
    pub(super) fn note_written(&self, seq: i64) {
        self.note_committing(seq);
        self.written.fetch_max(seq, Ordering::AcqRel);
    }

    /// While this store has events committed but not yet flushed: the seq up to which they are on disk.
    ///
    /// Readers call it after their query: an event the query saw was noted before its commit, so if it is
    /// not on disk yet, this answers a seq below it. Events of other stores on the same file (a second
    /// process, say) are not known here; they are held back only while this store has unflushed ones.
    pub(super) fn unflushed_after(&self) -> Option<i64> {
        let durable = self.durable.load(Ordering::Acquire);
        (self.committing.load(Ordering::Acquire) > durable).then_some(durable)
    }

    /// Whether a flush has failed: no commit is acknowledged any more until the gateway restarts.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Makes the next flush fail as a disk error would (for tests of what follows).
    #[cfg(test)]
    pub(crate) fn fail_next_flush(&self) {
        let _ = self.flush_with(|_| Err(std::io::Error::other("a disk error, for a test")));
    }

    /// Flushes the WAL file to disk. The file exists once the first transaction has been written.
    ///
    /// # Errors
    /// The flush's error; and, once a flush has failed, an error for every flush after it.
    pub fn sync(&self) -> std::io::Result<()> {
        self.flush_with(std::fs::File::sync_data)
    }

    fn flush_with(&self, flush: impl FnOnce(&std::fs::File) -> std::io::Result<()>) -> std::io::Result<()> {
        // Every commit noted as returned before the flush starts had written its frames before it. (Not
        // those only about to commit: their frames may come after the flush.)
        let target = self.written.load(Ordering::Acquire);
        if self.failed.load(Ordering::Acquire) {
            return Err(std::io::Error::other(
                "an earlier flush of the SQLite WAL failed: nothing more is acknowledged until the gateway restarts",
            ));
        }
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            *file = Some(std::fs::OpenOptions::new().read(true).open(&self.path)?);
        }
        let Some(f) = file.as_ref() else { return Ok(()) };
        flush(f).inspect_err(|_| self.failed.store(true, Ordering::Release))?;
        self.durable.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

impl SqliteStore {
    pub(super) async fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
        }
        if options.read_connections == 0 {
            return Err(StoreError::InvalidOption("read_connections must be at least 1"));
        }
        let connect = |source| StoreError::Connect { backend: "sqlite", source };
        let base =
            SqliteConnectOptions::new().filename(path).busy_timeout(options.busy_timeout).foreign_keys(true);
        // For intake, FULL is provided by a group fsync of the WAL before acknowledgement (see [`WalSync`]);
        // the other writes (the outbound queue, callbacks, users, settings) commit with SQLite's own FULL, one
        // fsync per transaction, on the writer pool.
        let synchronous = match options.synchronous {
            SqliteSynchronous::Full => Sync::Full,
            SqliteSynchronous::Normal => Sync::Normal,
        };
        let wal = match options.synchronous {
            SqliteSynchronous::Full => Some(Arc::new(WalSync::new(sqlite_intake::wal_path(path)))),
            SqliteSynchronous::Normal => None,
        };
        // The writer opens first: it creates the file and switches it to WAL, which readers then share.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    // A larger page cache; temporary data in memory; checkpoints as the intake connection's.
                    .pragma("cache_size", "-65536")
                    .pragma("temp_store", "MEMORY")
                    .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES.to_string()),
            )
            .await
            .map_err(connect)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections)
            .connect_with(base.clone().read_only(true))
            .await
            .map_err(connect)?;
        let writer_thread = Arc::new(WriterThread::open(path)?);
        if let Some(wal) = &wal {
            // What is in the database at start counts as on disk once flushed (a crash of the last process
            // left it in the OS's cache, perhaps unflushed).
            let seq = writer_thread.max_seq().await?;
            wal.note_written(seq);
            let flushed = match wal.sync() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    wal.durable.fetch_max(seq, Ordering::AcqRel);
                    Ok(())
                }
                other => other,
            };
            flushed.map_err(StoreError::Flush)?;
        }
        let migrate_with = Arc::new(base.clone().foreign_keys(false));
        Ok(Self { writer, readers, synchronous: options.synchronous, wal, writer_thread, migrate_with })
    }

    /// Applies the migrations on a connection of their own with foreign keys off, as SQLite's procedure for
    /// rebuilding a table requires (`PRAGMA foreign_keys` cannot change inside a migration's transaction).
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        // A pool of one rather than a bare connection: `Migrator::run(&mut conn)` makes callers' futures
        // lose `Send` (a higher-ranked lifetime in sqlx's `Acquire`).
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::clone(&self.migrate_with))
            .await
            .map_err(|source| StoreError::Connect { backend: "sqlite", source })?;
        let done = migrations::migrator(migrations::SQLITE).await?.run(&pool).await;
        pool.close().await;
        done.map_err(StoreError::Migrate)
    }

    /// The writer thread's connection (intake batches, the schedulers' state changes).
    pub(super) fn writer_thread(&self) -> &WriterThread {
        &self.writer_thread
    }

    /// The WAL flush that makes commits durable, when durability is FULL.
    pub(crate) fn wal_sync(&self) -> Option<Arc<WalSync>> {
        self.wal.clone()
    }

    pub(super) fn durability(&self) -> &'static str {
        match self.synchronous {
            SqliteSynchronous::Full => {
                "sqlite wal synchronous=FULL (group fsync of the WAL before acknowledgement)"
            }
            SqliteSynchronous::Normal => "sqlite wal synchronous=NORMAL",
        }
    }

    pub(super) async fn close(&self) {
        let writer_thread = Arc::clone(&self.writer_thread);
        let stopped = tokio::task::spawn_blocking(move || writer_thread.close()).await;
        if stopped.is_err() {
            tracing::error!("stopping the SQLite store threads failed");
        }
        self.readers.close().await;
        self.writer.close().await;
    }

    /// Commits an intake batch on the writer thread (see [`sqlite_intake`](super::sqlite_intake)).
    pub(super) async fn commit_intake(
        &self,
        items: Arc<[IntakeBatchItem]>,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        self.writer_thread.commit(items, self.wal.clone()).await
    }

    pub(super) async fn events_after(
        &self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(rows::EVENT_COLUMNS).push(" FROM events WHERE seq > ").push_bind(after_seq);
        if let Some(phone_number_id) = &filter.phone_number_id {
            qb.push(" AND phone_number_id = ").push_bind(phone_number_id.as_str());
        }
        if let Some(contact) = &filter.contact {
            qb.push(" AND contact = ").push_bind(contact.as_str());
        }
        if !filter.kinds.is_empty() {
            qb.push(" AND kind IN (");
            let mut list = qb.separated(", ");
            for kind in &filter.kinds {
                list.push_bind(kind.as_str());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let found = qb.build().fetch_all(&self.readers).await?;
        let mut events: Vec<StoredEvent> = found.iter().map(rows::stored_event).collect::<Result<_, _>>()?;
        if let Some(durable) = self.wal.as_ref().and_then(|wal| wal.unflushed_after()) {
            events.retain(|e| e.seq <= durable);
        }
        Ok(events)
    }

    pub(super) async fn max_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM events").fetch_one(&self.readers).await?;
        let seq = seq.unwrap_or(0);
        Ok(self.wal.as_ref().and_then(|wal| wal.unflushed_after()).map_or(seq, |durable| seq.min(durable)))
    }

    pub(super) async fn contact_last_inbound(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT last_inbound_at FROM contacts WHERE phone_number_id = ?1 AND wa_id = ?2",
        )
        .bind(phone_number_id)
        .bind(wa_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(at.map(from_millis))
    }

    pub(super) async fn rejected_webhooks(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RawWebhook>, StoreError> {
        let sql = format!(
            "SELECT {} FROM raw_webhooks WHERE status = 'rejected' AND id > ?1 ORDER BY id LIMIT ?2",
            rows::RAW_COLUMNS
        );
        let found = sqlx::query(&sql).bind(after_id).bind(i64::from(limit)).fetch_all(&self.readers).await?;
        Ok(found.iter().map(rows::raw_webhook).collect::<Result<_, _>>()?)
    }

    pub(super) async fn mark_reprocessed(&self, raw_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE raw_webhooks SET status = 'accepted', processed_at = ?1 \
             WHERE id = ?2 AND status = 'rejected'",
        )
        .bind(now_millis())
        .bind(raw_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn prune(
        &self,
        cutoff: i64,
        keep_after_seq: Option<i64>,
    ) -> Result<PruneCounts, StoreError> {
        let keep_after_seq = keep_after_seq.unwrap_or(i64::MAX);
        let mut counts = PruneCounts::default();
        // Each chunk is read on a reader (no write lock held, and no read snapshot longer than one chunk's
        // statement, which would keep a checkpoint from restarting the WAL) and deleted in its own short
        // write, so intake commits interleave with a long prune. Events a delivery refers to are read once
        // per pass: the walk moves past them.
        let mut after = Some(0);
        while let Some(cursor) = after {
            let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
                "SELECT seq, created_at, EXISTS (SELECT 1 FROM callback_deliveries AS d WHERE d.seq = events.seq) \
                 FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
            )
            .bind(cursor)
            .bind(keep_after_seq)
            .bind(PRUNE_CHUNK)
            .fetch_all(&self.readers)
            .await?;
            let chunk = prune_chunk(&rows, cutoff);
            if let Some((first, last)) = chunk.delete {
                // Noted before the delete: a reader must never see the gap before the mark that tells of it.
                super::settings::raise_sqlite(&self.writer, super::PRUNED_THROUGH, last).await?;
                // Checked again: a delivery may have been queued for one of them since the read.
                let done = sqlx::query(
                    "DELETE FROM events WHERE seq >= ?1 AND seq <= ?2 AND created_at < ?3 \
                     AND NOT EXISTS (SELECT 1 FROM callback_deliveries AS d WHERE d.seq = events.seq)",
                )
                .bind(first)
                .bind(last)
                .bind(cutoff)
                .execute(&self.writer)
                .await?;
                counts.events += done.rows_affected();
            }
            after = chunk.next_after;
        }
        // Raw bodies the same way, by id and `received_at`. The walk reads only the id and the time (stored
        // before the body); whether a body is rejected, or still referred to by an event, is left to the
        // delete, which reads the few rows it keeps again at each pass.
        let mut after = Some(0);
        while let Some(cursor) = after {
            let rows: Vec<(i64, i64)> =
                sqlx::query_as("SELECT id, received_at FROM raw_webhooks WHERE id > ?1 ORDER BY id LIMIT ?2")
                    .bind(cursor)
                    .bind(PRUNE_CHUNK)
                    .fetch_all(&self.readers)
                    .await?;
            let rows: Vec<(i64, i64, bool)> = rows.into_iter().map(|(id, at)| (id, at, false)).collect();
            let chunk = prune_chunk(&rows, cutoff);
            if let Some((first, last)) = chunk.delete {
                // Checked at delete time: a redelivered body may just have linked new events to its row.
                let done = sqlx::query(
                    "DELETE FROM raw_webhooks WHERE id >= ?1 AND id <= ?2 AND received_at < ?3 \
                     AND status <> 'rejected' \
                     AND NOT EXISTS (SELECT 1 FROM events WHERE events.raw_id = raw_webhooks.id)",
                )
                .bind(first)
                .bind(last)
                .bind(cutoff)
                .execute(&self.writer)
                .await?;
                counts.raw_webhooks += done.rows_affected();
            }
            after = chunk.next_after;
        }
        Ok(counts)
    }

    pub(super) async fn prune_rejected(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM raw_webhooks WHERE id IN (SELECT r.id FROM raw_webhooks AS r \
                 WHERE r.status = 'rejected' AND r.received_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM events WHERE events.raw_id = r.id) ORDER BY r.id LIMIT ?2)",
            )
            .bind(cutoff)
            .bind(PRUNE_CHUNK)
            .execute(&self.writer)
            .await?
            .rows_affected();
            deleted += done;
            if done < u64::try_from(PRUNE_CHUNK).unwrap_or(0) {
                return Ok(deleted);
            }
        }
    }

    pub(super) async fn insert_outbound(&self, message: &NewOutboundMessage) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO outbound_messages \
             (id, phone_number_id, recipient, wamid, state, body, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?6)",
        )
        .bind(&message.id)
        .bind(&message.phone_number_id)
        .bind(&message.recipient)
        .bind(&message.wamid)
        .bind(&message.body)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn outbound_message(&self, id: &str) -> Result<Option<OutboundMessage>, StoreError> {
        let sql = format!("SELECT {} FROM outbound_messages WHERE id = ?1", rows::OUTBOUND_COLUMNS);
        let found = sqlx::query(&sql).bind(id).fetch_optional(&self.readers).await?;
        Ok(found.as_ref().map(rows::outbound_message).transpose()?)
    }

    pub(super) async fn record_outbound_wamid(&self, id: &str, wamid: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("UPDATE outbound_messages SET wamid = ?1, updated_at = ?2 WHERE id = ?3")
            .bind(wamid)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        apply_statuses(&mut tx, &[wamid], now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Moves the outbound messages whose wamids are in the JSON array `?2` to the highest-ranked status of their
/// timeline, if that ranks above their state (`?1` = now). Derived from the whole timeline, so order and
/// duplicates do not matter. A timeline row is found through its status event's dedupe key (migration 0006),
/// in the range [`status_dedupe_range`](wabridge_types::webhook::status_dedupe_range) gives (written out in
/// SQL here), and the row's wamid is compared too, for wamids that contain a `:`.
pub(super) const APPLY_STATUSES: &str = concat!(
    "UPDATE outbound_messages SET state = best.state, updated_at = ?1, ",
    "last_error = CASE WHEN best.state = 'failed' THEN best.errors ELSE outbound_messages.last_error END ",
    "FROM (SELECT wamid, state, errors, rank FROM (",
    "SELECT m.wamid, ",
    state_of_status!("m.status"),
    " AS state, m.errors, ",
    status_rank!("m.status"),
    " AS rank, row_number() OVER (PARTITION BY m.wamid ORDER BY ",
    status_rank!("m.status"),
    " DESC, m.id) AS rn FROM json_each(?2) AS w ",
    "JOIN events AS e ON e.dedupe_key > 'status:' || w.value || ':' AND e.dedupe_key < 'status:' || w.value || ';' ",
    "JOIN message_statuses AS m ON m.id = e.seq AND m.wamid = w.value",
    ") WHERE rn = 1) AS best ",
    "WHERE outbound_messages.wamid = best.wamid AND best.rank > ",
    state_rank!("outbound_messages.state"),
);

/// [`APPLY_STATUSES`] for these wamids.
pub(super) async fn apply_statuses(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    wamids: &[&str],
    now: i64,
) -> Result<(), StoreError> {
    let wamids = serde_json::to_string(wamids).map_err(|_| StoreError::Inconsistent("wamid list"))?;
    sqlx::query(APPLY_STATUSES).bind(now).bind(wamids).execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SqliteOptions, SqliteStore, SqliteSynchronous, WalSync};

    /// With durability FULL, writes other than webhooks (the outbound queue, callbacks, users) commit with
    /// SQLite's own FULL on the writer pool: flushed before they are answered. NORMAL stays NORMAL.
    #[tokio::test]
    async fn the_writer_pool_flushes_each_commit_when_durability_is_full() {
        let dir = std::env::temp_dir().join(format!("wabridge-sync-mode-{}", std::process::id()));
        for (mode, expected) in [(SqliteSynchronous::Full, 2), (SqliteSynchronous::Normal, 1)] {
            let path = dir.join(format!("{expected}.db"));
            let options = SqliteOptions { synchronous: mode, ..SqliteOptions::default() };
            let store = SqliteStore::open(&path, options).await.unwrap();
            let found: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.writer).await.unwrap();
            assert_eq!(found, expected, "{mode:?}");
            store.close().await;
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_flush_fails_every_later_one() {
        let dir = std::env::temp_dir().join(format!("wabridge-walsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db-wal");
        std::fs::write(&path, b"frames").unwrap();
        let wal = WalSync::new(path);
        assert!(wal.sync().is_ok());
        let failed = wal.flush_with(|_| Err(std::io::Error::other("EIO")));
        assert_eq!(failed.unwrap_err().to_string(), "EIO");
        // The file itself would flush fine now; the earlier failure still stands.
        let later = wal.sync().unwrap_err();
        assert!(later.to_string().contains("earlier flush"), "{later}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
