//! The PostgreSQL backend: a pool shared by every gateway instance using the same database.
//!
//! Batches are written with one statement per table, whole columns bound as arrays (`UNNEST`), so the SQL
//! text is fixed and prepared once per connection.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection as _, Postgres, QueryBuilder, Row};

use super::types::IntakePlan;
use super::{
    EventFilter, IntakeBatchItem, ItemOutcome, NewOutboundMessage, OutboundMessage, PRUNE_CHUNK, PruneCounts,
    RawWebhook, StoreError, StoredEvent, from_millis, migrations, now_millis, prune_chunk, rows,
    state_of_status, state_rank, status_rank, to_millis,
};

/// How long one intake call (one batch) may take before its connection is closed. A batch normally commits in
/// milliseconds; the deadline only bounds a call that will never complete.
const INTAKE_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// First key of the event log's advisory lock ("WABR"); the second is a hash of the schema, so event logs in
/// different schemas of one database do not serialize each other.
pub(super) const EVENT_LOG_LOCK_CLASS: i32 = 0x5741_4252;

/// Idle time after which a pooled connection is pinged before use.
const PING_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// PostgreSQL's `synchronous_commit` for the gateway's sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SynchronousCommit {
    /// A commit returns once its WAL is flushed to disk (and to synchronous standbys). The default.
    #[default]
    On,
    /// Flushed locally; synchronous standbys, if any, are not waited for.
    Local,
    /// Synchronous standbys have written (not flushed) the WAL.
    RemoteWrite,
    /// Synchronous standbys have applied the WAL.
    RemoteApply,
    /// A commit returns before its WAL is flushed: a crash of the server may lose the last commits.
    Off,
}

impl SynchronousCommit {
    /// The setting's value in PostgreSQL.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Local => "local",
            Self::RemoteWrite => "remote_write",
            Self::RemoteApply => "remote_apply",
            Self::Off => "off",
        }
    }
}

/// Settings of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool. Default: 10.
    pub max_connections: u32,
    /// How long to wait for a free connection. Default: 10 s.
    pub acquire_timeout: Duration,
    /// Durability at commit. Default: [`SynchronousCommit::On`].
    pub synchronous_commit: SynchronousCommit,
    /// The schema holding the gateway's tables (`search_path`); `None` keeps the server's default. Letters,
    /// digits and `_` only. Tests give each test a schema of its own.
    pub search_path: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            synchronous_commit: SynchronousCommit::On,
            search_path: None,
        }
    }
}

/// The PostgreSQL backend of [`Store`](super::Store).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    synchronous_commit: SynchronousCommit,
    /// Changes of the API settings of this instance, one at a time (see `settings.rs`).
    pub(super) settings_changes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl PgStore {
    pub(super) async fn connect(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let connect = |source| StoreError::Connect { backend: "postgres", source };
        let mut session = vec![("synchronous_commit", options.synchronous_commit.as_str())];
        if let Some(schema) = &options.search_path {
            let plain = !schema.is_empty()
                && schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !schema.as_bytes()[0].is_ascii_digit();
            if !plain {
                return Err(StoreError::InvalidOption("search_path: letters, digits and _ only"));
            }
            session.push(("search_path", schema.as_str()));
        }
        let connect_options =
            PgConnectOptions::from_str(url).map_err(connect)?.application_name("wabridge").options(session);
        // sqlx pings every idle connection before handing it out by default: a round trip before every
        // query, the intake's included. Only a connection that sat idle long enough to have been dropped
        // (by a proxy, a firewall, a restarted server) is checked; a connection that breaks in between
        // fails its query, which the caller sees as an error (the intake answers 500, so Meta retries).
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(connect)?;
        Ok(Self {
            pool,
            synchronous_commit: options.synchronous_commit,
            settings_changes: Default::default(),
        })
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        migrations::migrator(migrations::POSTGRES).await?.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    pub(super) fn durability(&self) -> &'static str {
        match self.synchronous_commit {
            SynchronousCommit::On => "postgres synchronous_commit=on",
            SynchronousCommit::Local => "postgres synchronous_commit=local",
            SynchronousCommit::RemoteWrite => "postgres synchronous_commit=remote_write",
            SynchronousCommit::RemoteApply => "postgres synchronous_commit=remote_apply",
            SynchronousCommit::Off => "postgres synchronous_commit=off",
        }
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Commits a batch in one round trip: the whole transaction is one call of `wabridge_intake` (migration
    /// 0005 explains the order of its steps and the event-log lock it takes; 0006 holds the current version,
    /// which deduplicates bodies with events by their events, as the SQLite store does).
    pub(super) async fn commit_intake(
        &self,
        items: &[IntakeBatchItem],
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        let plan = IntakePlan::new(items);
        let now = now_millis();
        // Each event names its body by position (1-based) in the bodies passed.
        let position: HashMap<&[u8], i32> =
            plan.raws.iter().zip(1..).map(|(r, i)| (r.body_sha256().as_slice(), i)).collect();
        let event_raws = plan
            .events
            .iter()
            .map(|&(item, _)| position.get(items[item].raw.body_sha256().as_slice()).copied())
            .collect::<Option<Vec<i32>>>()
            .ok_or(StoreError::Inconsistent("an event's body is not in the batch"))?;
        // Raw bodies sorted by hash and contacts sorted: concurrent batches lock rows in one order.
        let query = sqlx::query(
            "SELECT out_kind, out_hash, out_key, out_id FROM wabridge_intake(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26)",
        )
        .bind(EVENT_LOG_LOCK_CLASS)
        .bind(now)
        .bind(plan.raws.iter().map(|r| to_millis(r.received_at())).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.body()).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.body_sha256().as_slice()).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.signature_ok()).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.status()).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.reject_reason()).collect::<Vec<_>>())
        .bind(plan.raws.iter().map(|r| r.reject_reason().is_none().then_some(now)).collect::<Vec<_>>())
        .bind(&plan.raws_by_body)
        .bind(plan.contacts.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(plan.contacts.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(plan.contacts.iter().map(|c| c.2).collect::<Vec<_>>())
        .bind(plan.statuses.iter().map(|s| s.wamid.as_str()).collect::<Vec<_>>())
        .bind(plan.statuses.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(plan.statuses.iter().map(|s| s.timestamp).collect::<Vec<_>>())
        .bind(plan.statuses.iter().map(|s| s.errors.as_deref()).collect::<Vec<_>>())
        .bind(&plan.wamids)
        .bind(plan.events.iter().map(|(_, e)| e.dedupe_key.as_str()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.kind.as_str()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.field.as_str()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.waba_id.as_str()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.phone_number_id.as_deref()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.contact.as_deref()).collect::<Vec<_>>())
        .bind(plan.events.iter().map(|(_, e)| e.payload.as_str()).collect::<Vec<_>>())
        .bind(&event_raws);
        // The call on a connection of its own, with a deadline: an intake call that stalls (seen in tests as
        // a large call stopping halfway through being sent, never resumed) would otherwise hold its commit
        // slot, and every webhook of its batch, forever. On the deadline the connection is taken out of the
        // pool and closed: the server sees it end and rolls back whatever it had not committed, and the batch
        // is answered 500 (Meta delivers it again; deduplication makes that safe whatever the server did).
        let mut conn = self.pool.acquire().await?;
        let rows = match tokio::time::timeout(INTAKE_CALL_TIMEOUT, query.fetch_all(&mut *conn)).await {
            Ok(rows) => rows?,
            Err(_) => {
                tracing::error!(
                    timeout = ?INTAKE_CALL_TIMEOUT,
                    "an intake call to PostgreSQL did not complete; closing its connection"
                );
                drop(conn.detach());
                // A call blocked inside the server (waiting for a synchronous replica, say) does not notice its
                // client gone, and would keep its session and the event log's lock: cancel such calls.
                self.cancel_stalled_intake_calls().await;
                return Err(StoreError::TimedOut(INTAKE_CALL_TIMEOUT));
            }
        };
        drop(conn);
        let mut raw_ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(plan.raws.len());
        let mut inserted_raws = HashSet::new();
        let mut inserted_events = HashMap::new();
        for row in rows {
            let kind: i16 = row.try_get(0)?;
            match kind {
                // A body stored by this call (1) or before (2), and its row.
                1 | 2 => {
                    let hash: Vec<u8> = row.try_get(1)?;
                    if kind == 1 {
                        inserted_raws.insert(hash.clone());
                    }
                    raw_ids.insert(hash, row.try_get(3)?);
                }
                3 => {
                    inserted_events.insert(row.try_get::<String, _>(2)?, row.try_get::<i64, _>(3)?);
                }
                _ => return Err(StoreError::Inconsistent("unknown row from wabridge_intake")),
            }
        }
        let outcomes = IntakePlan::outcomes(items, &inserted_raws, &raw_ids, &inserted_events)?;
        self.dedupe_rebatched_by_body(items, &outcomes).await;
        Ok(outcomes)
    }

    /// Marks the bodies stored by this batch whose events all came with other bodies (Meta re-batched them)
    /// to be deduplicated by their hash: no event links to such a row, so without the mark a redelivery of
    /// the same body would be stored again. Rare, so it is a statement of its own after the intake call rather
    /// than a step of every call, and best effort: a body left unmarked (a failure here, or another instance
    /// marking the same body first, which the partial unique index refuses) is only kept once more if Meta
    /// delivers it again.
    async fn dedupe_rebatched_by_body(&self, items: &[IntakeBatchItem], outcomes: &[ItemOutcome]) {
        let ids: Vec<i64> = items
            .iter()
            .zip(outcomes)
            .filter(|(item, o)| !item.events.is_empty() && !o.raw_duplicate && o.events_inserted == 0)
            .map(|(_, o)| o.raw_id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let marked = sqlx::query(
            "UPDATE raw_webhooks AS r SET dedupe_by_body = true WHERE r.id = ANY($1) AND NOT r.dedupe_by_body \
             AND NOT EXISTS (SELECT 1 FROM raw_webhooks AS o WHERE o.body_sha256 = r.body_sha256 AND o.dedupe_by_body)",
        )
        .bind(&ids)
        .execute(&self.pool)
        .await;
        if let Err(e) = marked {
            tracing::debug!(error = %e, bodies = ids.len(), "re-batched webhook bodies left to be deduplicated by their events");
        }
    }

    /// Cancels this database's intake calls that have run longer than [`INTAKE_CALL_TIMEOUT`] (every caller
    /// has given them up by then). Best effort: a failure is logged.
    async fn cancel_stalled_intake_calls(&self) {
        let cancelled = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM (SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' \
             AND query LIKE 'SELECT out_kind, out_hash, out_key, out_id FROM wabridge_intake(%' \
             AND query_start < now() - make_interval(secs => $1)) AS c",
        )
        .bind(INTAKE_CALL_TIMEOUT.as_secs_f64())
        .fetch_one(&self.pool)
        .await;
        match cancelled {
            Ok(n) => tracing::warn!(cancelled = n, "stalled intake calls cancelled on the server"),
            Err(e) => tracing::warn!(error = %e, "could not cancel stalled intake calls on the server"),
        }
    }

    pub(super) async fn events_after(
        &self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(rows::EVENT_COLUMNS).push(" FROM events WHERE seq > ").push_bind(after_seq);
        if let Some(phone_number_id) = &filter.phone_number_id {
            qb.push(" AND phone_number_id = ").push_bind(phone_number_id.as_str());
        }
        if let Some(contact) = &filter.contact {
            qb.push(" AND contact = ").push_bind(contact.as_str());
        }
        if !filter.kinds.is_empty() {
            qb.push(" AND kind = ANY(").push_bind(filter.kinds.as_slice()).push(")");
        }
        qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let found = qb.build().fetch_all(&self.pool).await?;
        Ok(found.iter().map(rows::stored_event).collect::<Result<_, _>>()?)
    }

    pub(super) async fn max_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM events").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    pub(super) async fn contact_last_inbound(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT last_inbound_at FROM contacts WHERE phone_number_id = $1 AND wa_id = $2",
        )
        .bind(phone_number_id)
        .bind(wa_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(at.map(from_millis))
    }

    pub(super) async fn rejected_webhooks(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<RawWebhook>, StoreError> {
        let sql = format!(
            "SELECT {} FROM raw_webhooks WHERE status = 'rejected' AND id > $1 ORDER BY id LIMIT $2",
            rows::RAW_COLUMNS
        );
        let found = sqlx::query(&sql).bind(after_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        Ok(found.iter().map(rows::raw_webhook).collect::<Result<_, _>>()?)
    }

    pub(super) async fn mark_reprocessed(&self, raw_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE raw_webhooks SET status = 'accepted', processed_at = $1 \
             WHERE id = $2 AND status = 'rejected'",
        )
        .bind(now_millis())
        .bind(raw_id)
        .execute(&self.pool)
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
        // A few statements per chunk (each its own transaction), every one reading at most a chunk, so no long
        // statement holds back vacuum. The walk moves past what each chunk looked at, so events kept by a
        // delivery are read once per pass.
        let mut after = Some(0_i64);
        while let Some(cursor) = after {
            let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
                "SELECT seq, created_at, EXISTS (SELECT 1 FROM callback_deliveries AS d WHERE d.seq = events.seq) \
                 FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            )
            .bind(cursor)
            .bind(keep_after_seq)
            .bind(PRUNE_CHUNK)
            .fetch_all(&self.pool)
            .await?;
            let chunk = prune_chunk(&rows, cutoff);
            if let Some((first, last)) = chunk.delete {
                // The chunk's last candidate, noted before the delete: a reader must never see the gap before
                // the mark that tells of it.
                super::settings::raise_pg(&self.pool, super::PRUNED_THROUGH, last).await?;
                // The timeline rows of status events go with them (migration 0006).
                let deleted: i64 = sqlx::query_scalar(
                    "WITH gone AS (DELETE FROM events WHERE seq >= $1 AND seq <= $2 AND created_at < $3 \
                     AND NOT EXISTS (SELECT 1 FROM callback_deliveries AS d WHERE d.seq = events.seq) RETURNING seq), \
                     timeline AS (DELETE FROM message_statuses WHERE id IN (SELECT seq FROM gone)) \
                     SELECT count(*) FROM gone",
                )
                .bind(first)
                .bind(last)
                .bind(cutoff)
                .fetch_one(&self.pool)
                .await?;
                counts.events += u64::try_from(deleted).unwrap_or(0);
            }
            after = chunk.next_after;
        }
        // Raw bodies the same way, by id and `received_at`; rejected bodies and bodies an event refers to are
        // left out when the chunk's rows are locked.
        let mut after = Some(0_i64);
        while let Some(cursor) = after {
            let rows: Vec<(i64, i64)> =
                sqlx::query_as("SELECT id, received_at FROM raw_webhooks WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(cursor)
                    .bind(PRUNE_CHUNK)
                    .fetch_all(&self.pool)
                    .await?;
            let rows: Vec<(i64, i64, bool)> = rows.into_iter().map(|(id, at)| (id, at, false)).collect();
            let chunk = prune_chunk(&rows, cutoff);
            if let Some((first, last)) = chunk.delete {
                // Bodies no event refers to, locked first: an intake linking an event to one of them holds it
                // FOR KEY SHARE until it commits (migration 0006), so the check that follows, a statement of
                // its own with a snapshot taken after the locks, sees that event; an intake that comes later
                // finds the row gone and retries its batch.
                let mut tx = self.pool.begin().await?;
                let unreferenced: Vec<i64> = sqlx::query_scalar(
                    "SELECT r.id FROM raw_webhooks AS r WHERE r.id >= $1 AND r.id <= $2 AND r.received_at < $3 \
                     AND r.status <> 'rejected' AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.raw_id = r.id) \
                     ORDER BY r.id FOR UPDATE OF r",
                )
                .bind(first)
                .bind(last)
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                if !unreferenced.is_empty() {
                    let done = sqlx::query(
                        "DELETE FROM raw_webhooks AS r WHERE r.id = ANY($1) \
                         AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.raw_id = r.id)",
                    )
                    .bind(&unreferenced)
                    .execute(&mut *tx)
                    .await?;
                    counts.raw_webhooks += done.rows_affected();
                }
                tx.commit().await?;
            }
            after = chunk.next_after;
        }
        Ok(counts)
    }

    pub(super) async fn prune_rejected(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            // Locked before the check, as in `prune`: an intake linking events to one of them (the same body,
            // now readable) holds it FOR KEY SHARE until it commits.
            let mut tx = self.pool.begin().await?;
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT r.id FROM raw_webhooks AS r WHERE r.status = 'rejected' AND r.received_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.raw_id = r.id) \
                 ORDER BY r.id LIMIT $2 FOR UPDATE OF r",
            )
            .bind(cutoff)
            .bind(PRUNE_CHUNK)
            .fetch_all(&mut *tx)
            .await?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            let done = sqlx::query(
                "DELETE FROM raw_webhooks AS r WHERE r.id = ANY($1) \
                 AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.raw_id = r.id)",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            deleted += done.rows_affected();
            if ids.len() < usize::try_from(PRUNE_CHUNK).unwrap_or(0) {
                return Ok(deleted);
            }
        }
    }

    pub(super) async fn insert_outbound(&self, message: &NewOutboundMessage) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO outbound_messages \
             (id, phone_number_id, recipient, wamid, state, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6)",
        )
        .bind(&message.id)
        .bind(&message.phone_number_id)
        .bind(&message.recipient)
        .bind(&message.wamid)
        .bind(&message.body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn outbound_message(&self, id: &str) -> Result<Option<OutboundMessage>, StoreError> {
        let sql = format!("SELECT {} FROM outbound_messages WHERE id = $1", rows::OUTBOUND_COLUMNS);
        let found = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(found.as_ref().map(rows::outbound_message).transpose()?)
    }

    pub(super) async fn record_outbound_wamid(&self, id: &str, wamid: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        // As the schedulers' ops do (`store/outbound/ops.rs`): no intake of this wamid's statuses in between.
        lock_event_log(&mut tx).await?;
        let done = sqlx::query("UPDATE outbound_messages SET wamid = $1, updated_at = $2 WHERE id = $3")
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

/// Takes the event log's lock until the transaction ends. A transaction recording wamids takes it before
/// anything else, so that statuses stored by a concurrent intake (which writes them, and moves the messages
/// with known wamids, under this lock) are either visible to its [`apply_statuses`] or find its wamids.
pub(super) async fn lock_event_log(tx: &mut sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(EVENT_LOG_LOCK_CLASS)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves the outbound messages with these wamids to the highest-ranked status of their timeline, if that
/// ranks above their state. Derived from the whole timeline, so order and duplicates do not matter; a
/// concurrent transaction that moved the row further first makes the rank test fail on re-check. A timeline
/// row is found through its status event's dedupe key (migration 0006), in the range
/// [`status_dedupe_range`](wabridge_types::webhook::status_dedupe_range) gives (written out in SQL here; the
/// keys compare byte by byte), and the row's wamid is compared too, for wamids that contain a `:`.
pub(super) async fn apply_statuses(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    wamids: &[&str],
    now: i64,
) -> Result<(), StoreError> {
    const SQL: &str = concat!(
        "UPDATE outbound_messages AS o SET state = best.state, updated_at = $1, ",
        "last_error = CASE WHEN best.state = 'failed' THEN best.errors ELSE o.last_error END ",
        "FROM (SELECT DISTINCT ON (m.wamid) m.wamid, ",
        state_of_status!("m.status"),
        " AS state, m.errors, ",
        status_rank!("m.status"),
        " AS rank FROM UNNEST($2::TEXT[]) AS w(wamid) ",
        "JOIN events AS e ON e.dedupe_key > 'status:' || w.wamid || ':' AND e.dedupe_key < 'status:' || w.wamid || ';' ",
        "JOIN message_statuses AS m ON m.id = e.seq AND m.wamid = w.wamid ",
        "ORDER BY m.wamid, ",
        status_rank!("m.status"),
        " DESC, m.id) AS best ",
        "WHERE o.wamid = best.wamid AND best.rank > ",
        state_rank!("o.state"),
    );
    sqlx::query(SQL).bind(now).bind(wamids).execute(&mut **tx).await?;
    Ok(())
}

fn checked_schema(schema: &str) -> Result<&str, StoreError> {
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::InvalidOption("schema: letters, digits and _ only"));
    }
    Ok(schema)
}

/// Creates a PostgreSQL schema (for benchmarks and tests that want a database of their own).
pub async fn create_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    let schema = checked_schema(schema)?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|source| StoreError::Connect { backend: "postgres", source })?;
    let result = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&pool).await;
    pool.close().await;
    result.map(|_| ()).map_err(StoreError::Database)
}

/// Drops a PostgreSQL schema and everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    let schema = checked_schema(schema)?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|source| StoreError::Connect { backend: "postgres", source })?;
    let result = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await;
    pool.close().await;
    result.map(|_| ()).map_err(StoreError::Database)
}
