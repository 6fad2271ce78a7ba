//! The schedulers' state changes, many in one commit (group commit), and the statuses that arrived before a
//! wamid was known.

use super::OutboundOp;
use crate::store::{PgStore, Store, StoreError, now_millis, postgres, sqlite};

impl Store {
    /// Applies scheduler state changes in one transaction. Answers, op by op, whether it changed its
    /// message: `MarkSending` does not when the message is no longer queued (cancelled or expired meanwhile),
    /// and the send must then not go ahead.
    pub async fn apply_outbound_ops(&self, ops: &[OutboundOp]) -> Result<Vec<bool>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Sqlite(s) => {
                let ops = ops.to_vec();
                let changed = s.writer_thread().run(move |conn| sqlite_ops(conn, &ops)).await?;
                // Written by the intake's connection: durable, with durability FULL, once the WAL is flushed
                // (a message marked `sending` must stay so, or a restart would send it twice).
                self.sync_commits().await?;
                Ok(changed)
            }
            Self::Postgres(s) => pg_ops(s, ops).await,
        }
    }
}

/// The SQL of one op for one backend: `(sql, wamid to apply statuses for)`. Placeholders: 1 = now, 2 = id,
/// 3.. = the op's values.
macro_rules! op_sql {
    ($p:literal) => {
        [
            // MarkSending
            concat!(
                "UPDATE outbound_messages SET state = 'sending', sending_since = ",
                $p,
                "1, updated_at = ",
                $p,
                "1, attempts = attempts + 1 WHERE id = ",
                $p,
                "2 AND state = 'queued'"
            ),
            // Sent / Reconciled: the wamid, then statuses that came first move it on.
            concat!(
                "UPDATE outbound_messages SET wamid = ",
                $p,
                "3, state = CASE WHEN state IN ('queued', 'sending') \
                THEN 'sent' ELSE state END, updated_at = ",
                $p,
                "1, reconciled = ",
                $p,
                "4 WHERE id = ",
                $p,
                "2"
            ),
            // Requeue
            concat!(
                "UPDATE outbound_messages SET state = 'queued', not_before = ",
                $p,
                "3, last_error = coalesce(",
                $p,
                "4, last_error), sending_since = NULL, retries = retries + CASE WHEN ",
                $p,
                "5 THEN 1 ELSE 0 END, updated_at = ",
                $p,
                "1 WHERE id = ",
                $p,
                "2 AND state IN ('queued', 'sending')"
            ),
            // Fail
            concat!(
                "UPDATE outbound_messages SET state = 'failed', last_error = ",
                $p,
                "3, updated_at = ",
                $p,
                "1 WHERE id = ",
                $p,
                "2 AND state IN ('queued', 'sending')"
            ),
            // Expire
            concat!(
                "UPDATE outbound_messages SET state = 'expired', updated_at = ",
                $p,
                "1 WHERE id = ",
                $p,
                "2 AND state = 'queued'"
            ),
            // Resend
            concat!(
                "UPDATE outbound_messages SET state = 'queued', held_by = NULL, not_before = NULL, \
                possibly_duplicated = TRUE, sending_since = NULL, updated_at = ",
                $p,
                "1 WHERE id = ",
                $p,
                "2 AND state = 'sending'"
            ),
            // Unmark
            concat!(
                "UPDATE outbound_messages SET state = 'queued', sending_since = NULL, \
                attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ",
                $p,
                "1 WHERE id = ",
                $p,
                "2 AND state = 'sending'"
            ),
            // Reached (2 = the WABA, 3 = the user): a user reached again after 24 hours counts from now.
            concat!(
                "INSERT INTO waba_reached (waba_id, recipient, reached_at) VALUES (",
                $p,
                "2, ",
                $p,
                "3, ",
                $p,
                "1) ON CONFLICT (waba_id, recipient) DO UPDATE SET reached_at = excluded.reached_at \
                WHERE waba_reached.reached_at < excluded.reached_at - 86400000"
            ),
        ]
    };
}

const SQLITE_OPS: [&str; 8] = op_sql!("?");
const PG_OPS: [&str; 8] = op_sql!("$");

/// On the SQLite writer thread (`store/sqlite_intake.rs`): one transaction, cached statements.
fn sqlite_ops(conn: &mut rusqlite::Connection, ops: &[OutboundOp]) -> Result<Vec<bool>, StoreError> {
    use rusqlite::params;
    let now = now_millis();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut wamids = Vec::new();
    let mut changed = Vec::with_capacity(ops.len());
    for op in ops {
        let rows = match op {
            OutboundOp::MarkSending { id } => tx.prepare_cached(SQLITE_OPS[0])?.execute(params![now, id])?,
            OutboundOp::Sent { id, wamid } | OutboundOp::Reconciled { id, wamid } => {
                wamids.push(wamid.as_str());
                let reconciled = matches!(op, OutboundOp::Reconciled { .. });
                tx.prepare_cached(SQLITE_OPS[1])?.execute(params![now, id, wamid, reconciled])?
            }
            OutboundOp::Requeue { id, not_before, error, counts } => {
                tx.prepare_cached(SQLITE_OPS[2])?.execute(params![now, id, not_before, error, counts])?
            }
            OutboundOp::Fail { id, error } => {
                tx.prepare_cached(SQLITE_OPS[3])?.execute(params![now, id, error])?
            }
            OutboundOp::Expire { id } => tx.prepare_cached(SQLITE_OPS[4])?.execute(params![now, id])?,
            OutboundOp::Resend { id } => tx.prepare_cached(SQLITE_OPS[5])?.execute(params![now, id])?,
            OutboundOp::Unmark { id } => tx.prepare_cached(SQLITE_OPS[6])?.execute(params![now, id])?,
            OutboundOp::Reached { waba, recipient } => {
                tx.prepare_cached(SQLITE_OPS[7])?.execute(params![now, waba, recipient])?
            }
        };
        changed.push(rows > 0);
    }
    if !wamids.is_empty() {
        let wamids = serde_json::to_string(&wamids).map_err(|_| StoreError::Inconsistent("wamid list"))?;
        tx.prepare_cached(sqlite::APPLY_STATUSES)?.execute(params![now, wamids])?;
    }
    tx.commit()?;
    Ok(changed)
}

/// On PostgreSQL a transaction that records wamids holds the event log's lock from its start: an intake
/// transaction storing statuses of those wamids then commits either before it (and the statuses are applied
/// here) or after it (and it finds the wamids, applying its statuses itself). Without the lock each could miss
/// the other's rows, leaving a message `sent` with its `read` stored; a second transaction applying them after
/// the commit (as before) is lost when the process dies in between, or when it fails.
async fn pg_ops(s: &PgStore, ops: &[OutboundOp]) -> Result<Vec<bool>, StoreError> {
    let now = now_millis();
    let mut tx = s.pool.begin().await?;
    if ops.iter().any(|op| matches!(op, OutboundOp::Sent { .. } | OutboundOp::Reconciled { .. })) {
        // First, before any row lock: an intake holding the lock never waits for a row this one holds.
        postgres::lock_event_log(&mut tx).await?;
    }
    let mut wamids = Vec::new();
    let mut changed = Vec::with_capacity(ops.len());
    for op in ops {
        let q = match op {
            OutboundOp::MarkSending { id } => sqlx::query(PG_OPS[0]).bind(now).bind(id),
            OutboundOp::Sent { id, wamid } | OutboundOp::Reconciled { id, wamid } => {
                wamids.push(wamid.as_str());
                let reconciled = matches!(op, OutboundOp::Reconciled { .. });
                sqlx::query(PG_OPS[1]).bind(now).bind(id).bind(wamid).bind(reconciled)
            }
            OutboundOp::Requeue { id, not_before, error, counts } => {
                sqlx::query(PG_OPS[2]).bind(now).bind(id).bind(not_before).bind(error).bind(counts)
            }
            OutboundOp::Fail { id, error } => sqlx::query(PG_OPS[3]).bind(now).bind(id).bind(error),
            OutboundOp::Expire { id } => sqlx::query(PG_OPS[4]).bind(now).bind(id),
            OutboundOp::Resend { id } => sqlx::query(PG_OPS[5]).bind(now).bind(id),
            OutboundOp::Unmark { id } => sqlx::query(PG_OPS[6]).bind(now).bind(id),
            OutboundOp::Reached { waba, recipient } => {
                sqlx::query(PG_OPS[7]).bind(now).bind(waba).bind(recipient)
            }
        };
        changed.push(q.execute(&mut *tx).await?.rows_affected() > 0);
    }
    if !wamids.is_empty() {
        postgres::apply_statuses(&mut tx, &wamids, now).await?;
    }
    tx.commit().await?;
    Ok(changed)
}
