//! The outbound queue in the store: enqueueing (with idempotency keys), claiming a number's queued messages
//! for its scheduler, the scheduler's state changes in group commits, number leases, and what reconciliation
//! and `GET /v1/messages/{id}` read.
//!
//! Queue order is SQLite's rowid (one writer: insert order is commit order) and PostgreSQL's `queue_key`.

use sqlx::Row;

use super::{PgStore, SqliteStore, Store, StoreError, now_millis, postgres, sqlite};

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewQueued {
    /// The gateway's id.
    pub id: String,
    /// The business number sending it.
    pub phone_number_id: String,
    /// The recipient's `wa_id` (digits).
    pub recipient: String,
    /// The message's type (`text`, `template`…).
    pub kind: String,
    /// The Cloud API request body as JSON text, without `biz_opaque_callback_data`.
    pub body: String,
    /// The application's own callback data.
    pub callback_data: Option<String>,
    /// Not sent before this (Unix ms); `None`: at once.
    pub not_before: Option<i64>,
    /// Not sent after this (Unix ms).
    pub expires_at: Option<i64>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request, compared when the key comes again.
    pub request_sha256: Option<String>,
}

/// What enqueueing one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new queued row.
    Inserted,
    /// The idempotency key was known: the earlier message's id and request hash.
    Existing { id: String, request_sha256: Option<String> },
}

/// A queued message as its scheduler holds it.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// The gateway's id.
    pub id: String,
    /// The recipient.
    pub recipient: String,
    /// The message type.
    pub kind: String,
    /// The request body.
    pub body: String,
    /// Not before (Unix ms).
    pub not_before: Option<i64>,
    /// Not after (Unix ms).
    pub expires_at: Option<i64>,
    /// Attempts so far.
    pub attempts: i64,
    /// Whether it is resent after an unknown outcome.
    pub possibly_duplicated: bool,
}

/// A state change made by a scheduler; many go into one commit.
#[derive(Debug, Clone)]
pub enum OutboundOp {
    /// It goes to Meta now: outcome unknown until the answer.
    MarkSending { id: String },
    /// Meta accepted it with this wamid.
    Sent { id: String, wamid: String },
    /// Back to the queue, not before `not_before` (a retry), with the error that caused it.
    Requeue { id: String, not_before: Option<i64>, error: Option<String>, possibly_duplicated: bool },
    /// Terminal failure with Meta's (or the gateway's) error as JSON text.
    Fail { id: String, error: String },
    /// Its time to live passed before it could be sent.
    Expire { id: String },
    /// A message whose outcome was unknown, matched to this wamid from its statuses.
    Reconciled { id: String, wamid: String },
}

/// A message whose send outcome is unknown (it was `sending` when its sender stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDoubt {
    /// The gateway's id.
    pub id: String,
    /// When it went to Meta (Unix ms).
    pub sending_since: i64,
}

/// Everything `GET /v1/messages/{id}` shows.
#[derive(Debug, Clone)]
pub struct OutboundDetail {
    pub id: String,
    pub phone_number_id: String,
    pub recipient: String,
    pub wamid: Option<String>,
    pub state: String,
    pub kind: String,
    pub callback_data: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub possibly_duplicated: bool,
    pub reconciled: bool,
    /// `(status, Meta's timestamp in seconds, errors JSON)` in order of arrival.
    pub statuses: Vec<(String, i64, Option<String>)>,
}

/// What `DELETE /v1/messages/{id}` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    /// Too late: its state.
    NotCancellable(String),
}

const DETAIL_COLUMNS: &str = "id, phone_number_id, recipient, wamid, state, kind, callback_data, created_at, \
     updated_at, not_before, expires_at, attempts, last_error, possibly_duplicated, reconciled";

impl Store {
    /// Inserts queued messages in one transaction (group commit); a known idempotency key inserts nothing
    /// and reports the earlier message.
    pub async fn enqueue_outbound(&self, rows: &[NewQueued]) -> Result<Vec<Enqueued>, StoreError> {
        match self {
            Self::Sqlite(s) => sqlite_enqueue(s, rows).await,
            Self::Postgres(s) => pg_enqueue(s, rows).await,
        }
    }

    /// Marks up to `limit` queued messages of `number` not held by `owner` as held by it and returns them
    /// in queue order. On PostgreSQL rows locked by another transaction are skipped (`SKIP LOCKED`).
    pub async fn claim_queued(
        &self,
        number: &str,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = match self {
            Self::Sqlite(s) => {
                let rows = sqlx::query(
                    "UPDATE outbound_messages SET held_by = ?1 WHERE rowid IN (SELECT rowid FROM outbound_messages \
                     WHERE phone_number_id = ?2 AND state = 'queued' AND (held_by IS NULL OR held_by <> ?1) \
                     ORDER BY rowid LIMIT ?3) RETURNING rowid AS k, id, recipient, kind, body, not_before, \
                     expires_at, attempts, possibly_duplicated <> 0 AS dup",
                )
                .bind(owner)
                .bind(number)
                .bind(limit)
                .fetch_all(&s.writer)
                .await?;
                rows.iter().map(queued_row).collect::<Result<Vec<_>, _>>()?
            }
            Self::Postgres(s) => {
                let rows = sqlx::query(
                    "UPDATE outbound_messages SET held_by = $1 WHERE id IN (SELECT id FROM outbound_messages \
                     WHERE phone_number_id = $2 AND state = 'queued' AND (held_by IS NULL OR held_by <> $1) \
                     ORDER BY queue_key LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING queue_key AS k, id, \
                     recipient, kind, body, not_before, expires_at, attempts, possibly_duplicated AS dup",
                )
                .bind(owner)
                .bind(number)
                .bind(limit)
                .fetch_all(&s.pool)
                .await?;
                rows.iter().map(queued_row).collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut rows = rows;
        rows.sort_by_key(|(k, _)| *k);
        Ok(rows.into_iter().map(|(_, m)| m).collect())
    }

    /// Applies scheduler state changes in one transaction.
    pub async fn apply_outbound_ops(&self, ops: &[OutboundOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        match self {
            Self::Sqlite(s) => sqlite_ops(s, ops).await,
            Self::Postgres(s) => pg_ops(s, ops).await,
        }
    }

    /// Takes or renews the lease on sending for `number` until `until` (Unix ms); false when another
    /// instance holds a lease that has not expired.
    pub async fn acquire_number_lease(
        &self,
        number: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let got: Option<String> = match self {
            Self::Sqlite(s) => {
                sqlx::query_scalar(
                    "INSERT INTO number_leases (phone_number_id, owner, lease_until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (phone_number_id) DO UPDATE SET owner = excluded.owner, lease_until = \
                     excluded.lease_until WHERE number_leases.owner = excluded.owner OR number_leases.lease_until < ?4 \
                     RETURNING owner",
                )
                .bind(number)
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_optional(&s.writer)
                .await?
            }
            Self::Postgres(s) => {
                sqlx::query_scalar(
                    "INSERT INTO number_leases (phone_number_id, owner, lease_until) VALUES ($1, $2, $3) \
                     ON CONFLICT (phone_number_id) DO UPDATE SET owner = excluded.owner, lease_until = \
                     excluded.lease_until WHERE number_leases.owner = excluded.owner OR number_leases.lease_until < $4 \
                     RETURNING owner",
                )
                .bind(number)
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_optional(&s.pool)
                .await?
            }
        };
        Ok(got.as_deref() == Some(owner))
    }

    /// Forgets every number lease (SQLite at start: one process owns the file, a lease of a killed process
    /// would only delay sending).
    pub async fn clear_number_leases(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => {
                sqlx::query("DELETE FROM number_leases").execute(&s.writer).await?.rows_affected()
            }
            Self::Postgres(s) => {
                sqlx::query("DELETE FROM number_leases").execute(&s.pool).await?.rows_affected()
            }
        };
        Ok(())
    }

    /// Messages of `number` in `sending`: their outcome is unknown unless this instance is sending them.
    pub async fn outbound_in_doubt(&self, number: &str) -> Result<Vec<InDoubt>, StoreError> {
        let rows = match self {
            Self::Sqlite(s) => sqlx::query(
                "SELECT id, coalesce(sending_since, updated_at) AS since FROM outbound_messages \
                     WHERE phone_number_id = ?1 AND state = 'sending'",
            )
            .bind(number)
            .fetch_all(&s.readers)
            .await?
            .iter()
            .map(|row| Ok(InDoubt { id: row.try_get("id")?, sending_since: row.try_get("since")? }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Self::Postgres(s) => sqlx::query(
                "SELECT id, coalesce(sending_since, updated_at) AS since FROM outbound_messages \
                     WHERE phone_number_id = $1 AND state = 'sending'",
            )
            .bind(number)
            .fetch_all(&s.pool)
            .await?
            .iter()
            .map(|row| Ok(InDoubt { id: row.try_get("id")?, sending_since: row.try_get("since")? }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?,
        };
        Ok(rows)
    }

    /// `(gateway id, wamid)` of status events received since `since` (Unix ms) whose status carries one of
    /// `ids` as `biz_opaque_callback_data`: how a send whose answer was lost is found again. A status event's
    /// payload is the webhook `value` cut down to one item, so the status is `statuses[0]`.
    pub async fn statuses_by_callback_data(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match self {
            Self::Sqlite(s) => {
                let list = serde_json::to_string(ids).map_err(|_| StoreError::Inconsistent("id list"))?;
                sqlx::query(
                    "SELECT DISTINCT json_extract(payload, '$.statuses[0].biz_opaque_callback_data') AS cb, \
                     json_extract(payload, '$.statuses[0].id') AS wamid FROM events WHERE kind = 'status' \
                     AND created_at >= ?1 AND json_extract(payload, '$.statuses[0].biz_opaque_callback_data') \
                     IN (SELECT value FROM json_each(?2))",
                )
                .bind(since)
                .bind(list)
                .fetch_all(&s.readers)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<Option<String>, _>("cb")?, row.try_get::<Option<String>, _>("wamid")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Self::Postgres(s) => {
                sqlx::query(
                    "SELECT DISTINCT payload::jsonb #>> '{statuses,0,biz_opaque_callback_data}' AS cb, \
                     payload::jsonb #>> '{statuses,0,id}' AS wamid FROM events WHERE kind = 'status' \
                     AND created_at >= $1 AND payload::jsonb #>> '{statuses,0,biz_opaque_callback_data}' = ANY($2)",
                )
                .bind(since)
                .bind(ids)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<Option<String>, _>("cb")?, row.try_get::<Option<String>, _>("wamid")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        };
        Ok(rows.into_iter().filter_map(|(cb, wamid)| Some((cb?, wamid?))).collect())
    }

    /// `(gateway id, the application's callback data)` of the outbound messages among `ids` (unknown ids are
    /// left out): what status events give back to the application.
    pub async fn outbound_callback_data(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = match self {
            Self::Sqlite(s) => {
                let list = serde_json::to_string(ids).map_err(|_| StoreError::Inconsistent("id list"))?;
                sqlx::query(
                    "SELECT id, callback_data FROM outbound_messages \
                     WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(list)
                .fetch_all(&s.readers)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("id")?, row.try_get("callback_data")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Self::Postgres(s) => {
                sqlx::query("SELECT id, callback_data FROM outbound_messages WHERE id = ANY($1)")
                    .bind(ids)
                    .fetch_all(&s.pool)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("id")?, row.try_get("callback_data")?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        };
        Ok(pairs)
    }

    /// One outbound message with its status timeline.
    pub async fn outbound_detail(&self, id: &str) -> Result<Option<OutboundDetail>, StoreError> {
        let (row, statuses) = match self {
            Self::Sqlite(s) => {
                let sql = format!("SELECT {DETAIL_COLUMNS} FROM outbound_messages WHERE id = ?1");
                let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&s.readers).await? else {
                    return Ok(None);
                };
                let wamid: Option<String> = row.try_get("wamid")?;
                let statuses = sqlx::query(
                    "SELECT status, status_timestamp, errors FROM message_statuses WHERE wamid = ?1 ORDER BY id",
                )
                .bind(wamid)
                .fetch_all(&s.readers)
                .await?;
                (
                    detail_row(
                        &row,
                        |r| r.try_get::<i64, _>("possibly_duplicated").map(|v| v != 0),
                        |r| r.try_get::<i64, _>("reconciled").map(|v| v != 0),
                    )?,
                    statuses_of(&statuses)?,
                )
            }
            Self::Postgres(s) => {
                let sql = format!("SELECT {DETAIL_COLUMNS} FROM outbound_messages WHERE id = $1");
                let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&s.pool).await? else {
                    return Ok(None);
                };
                let wamid: Option<String> = row.try_get("wamid")?;
                let statuses = sqlx::query(
                    "SELECT status, status_timestamp, errors FROM message_statuses WHERE wamid = $1 ORDER BY id",
                )
                .bind(wamid)
                .fetch_all(&s.pool)
                .await?;
                (
                    detail_row(
                        &row,
                        |r| r.try_get::<bool, _>("possibly_duplicated"),
                        |r| r.try_get("reconciled"),
                    )?,
                    statuses_of(&statuses)?,
                )
            }
        };
        Ok(Some(OutboundDetail { statuses, ..row }))
    }

    /// Cancels a message that is still queued.
    pub async fn cancel_outbound(&self, id: &str) -> Result<CancelOutcome, StoreError> {
        let now = now_millis();
        let (done, state): (u64, Option<String>) = match self {
            Self::Sqlite(s) => {
                let done = sqlx::query(
                    "UPDATE outbound_messages SET state = 'cancelled', updated_at = ?1 WHERE id = ?2 AND state = 'queued'",
                )
                .bind(now)
                .bind(id)
                .execute(&s.writer)
                .await?;
                let state = sqlx::query_scalar("SELECT state FROM outbound_messages WHERE id = ?1")
                    .bind(id)
                    .fetch_optional(&s.writer)
                    .await?;
                (done.rows_affected(), state)
            }
            Self::Postgres(s) => {
                let done = sqlx::query(
                    "UPDATE outbound_messages SET state = 'cancelled', updated_at = $1 WHERE id = $2 AND state = 'queued'",
                )
                .bind(now)
                .bind(id)
                .execute(&s.pool)
                .await?;
                let state = sqlx::query_scalar("SELECT state FROM outbound_messages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&s.pool)
                    .await?;
                (done.rows_affected(), state)
            }
        };
        Ok(match (done, state) {
            (1, _) => CancelOutcome::Cancelled,
            (_, None) => CancelOutcome::NotFound,
            (_, Some(state)) => CancelOutcome::NotCancellable(state),
        })
    }

    /// Messages not yet sent (queued or sending), per business number: the backlogs at start.
    pub async fn outbound_backlogs(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL_TAIL: &str =
            "FROM outbound_messages WHERE state IN ('queued', 'sending') GROUP BY phone_number_id";
        let sql = format!("SELECT phone_number_id, count(*) AS n {SQL_TAIL}");
        Ok(match self {
            Self::Sqlite(s) => sqlx::query(&sql)
                .fetch_all(&s.readers)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?,
            Self::Postgres(s) => sqlx::query(&sql)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?,
        })
    }

    /// How many outbound messages are in each state (tests, the crash test, reports).
    pub async fn outbound_state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, count(*) AS n FROM outbound_messages GROUP BY state ORDER BY state";
        Ok(match self {
            Self::Sqlite(s) => sqlx::query(sql)
                .fetch_all(&s.readers)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?,
            Self::Postgres(s) => sqlx::query(sql)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?,
        })
    }
}

fn queued_row<R>(row: &R) -> Result<(i64, QueuedMessage), sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        row.try_get("k")?,
        QueuedMessage {
            id: row.try_get("id")?,
            recipient: row.try_get("recipient")?,
            kind: row.try_get("kind")?,
            body: row.try_get("body")?,
            not_before: row.try_get("not_before")?,
            expires_at: row.try_get("expires_at")?,
            attempts: row.try_get("attempts")?,
            possibly_duplicated: row.try_get("dup")?,
        },
    ))
}

fn detail_row<R>(
    row: &R,
    dup: impl Fn(&R) -> Result<bool, sqlx::Error>,
    reconciled: impl Fn(&R) -> Result<bool, sqlx::Error>,
) -> Result<OutboundDetail, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OutboundDetail {
        id: row.try_get("id")?,
        phone_number_id: row.try_get("phone_number_id")?,
        recipient: row.try_get("recipient")?,
        wamid: row.try_get("wamid")?,
        state: row.try_get("state")?,
        kind: row.try_get("kind")?,
        callback_data: row.try_get("callback_data")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        not_before: row.try_get("not_before")?,
        expires_at: row.try_get("expires_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        possibly_duplicated: dup(row)?,
        reconciled: reconciled(row)?,
        statuses: Vec::new(),
    })
}

fn statuses_of<R>(rows: &[R]) -> Result<Vec<(String, i64, Option<String>)>, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("status_timestamp")?, r.try_get("errors")?)))
        .collect()
}

async fn sqlite_enqueue(s: &SqliteStore, rows: &[NewQueued]) -> Result<Vec<Enqueued>, StoreError> {
    let now = now_millis();
    let mut tx = s.writer.begin().await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let done = sqlx::query(
            "INSERT INTO outbound_messages (id, phone_number_id, recipient, state, body, created_at, updated_at, \
             kind, callback_data, not_before, expires_at, idempotency_key, request_sha256) \
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&m.id)
        .bind(&m.phone_number_id)
        .bind(&m.recipient)
        .bind(&m.body)
        .bind(now)
        .bind(&m.kind)
        .bind(&m.callback_data)
        .bind(m.not_before)
        .bind(m.expires_at)
        .bind(&m.idempotency_key)
        .bind(&m.request_sha256)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            out.push(Enqueued::Inserted);
        } else {
            let row =
                sqlx::query("SELECT id, request_sha256 FROM outbound_messages WHERE idempotency_key = ?1")
                    .bind(&m.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
            out.push(Enqueued::Existing {
                id: row.try_get("id")?,
                request_sha256: row.try_get("request_sha256")?,
            });
        }
    }
    tx.commit().await?;
    Ok(out)
}

async fn pg_enqueue(s: &PgStore, rows: &[NewQueued]) -> Result<Vec<Enqueued>, StoreError> {
    let now = now_millis();
    let mut tx = s.pool.begin().await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let done = sqlx::query(
            "INSERT INTO outbound_messages (id, phone_number_id, recipient, state, body, created_at, updated_at, \
             kind, callback_data, not_before, expires_at, idempotency_key, request_sha256) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&m.id)
        .bind(&m.phone_number_id)
        .bind(&m.recipient)
        .bind(&m.body)
        .bind(now)
        .bind(&m.kind)
        .bind(&m.callback_data)
        .bind(m.not_before)
        .bind(m.expires_at)
        .bind(&m.idempotency_key)
        .bind(&m.request_sha256)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            out.push(Enqueued::Inserted);
        } else {
            let row =
                sqlx::query("SELECT id, request_sha256 FROM outbound_messages WHERE idempotency_key = $1")
                    .bind(&m.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
            out.push(Enqueued::Existing {
                id: row.try_get("id")?,
                request_sha256: row.try_get("request_sha256")?,
            });
        }
    }
    tx.commit().await?;
    Ok(out)
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
                "4, last_error), possibly_duplicated = (possibly_duplicated OR ",
                $p,
                "5), sending_since = NULL, \
                updated_at = ",
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
        ]
    };
}

const SQLITE_OPS: [&str; 5] = op_sql!("?");
const PG_OPS: [&str; 5] = op_sql!("$");

async fn sqlite_ops(s: &SqliteStore, ops: &[OutboundOp]) -> Result<(), StoreError> {
    let now = now_millis();
    let mut tx = s.writer.begin().await?;
    let mut wamids = Vec::new();
    for op in ops {
        let q = match op {
            OutboundOp::MarkSending { id } => sqlx::query(SQLITE_OPS[0]).bind(now).bind(id),
            OutboundOp::Sent { id, wamid } | OutboundOp::Reconciled { id, wamid } => {
                wamids.push(wamid.as_str());
                let reconciled = matches!(op, OutboundOp::Reconciled { .. });
                sqlx::query(SQLITE_OPS[1]).bind(now).bind(id).bind(wamid).bind(reconciled)
            }
            OutboundOp::Requeue { id, not_before, error, possibly_duplicated } => sqlx::query(SQLITE_OPS[2])
                .bind(now)
                .bind(id)
                .bind(not_before)
                .bind(error)
                .bind(possibly_duplicated),
            OutboundOp::Fail { id, error } => sqlx::query(SQLITE_OPS[3]).bind(now).bind(id).bind(error),
            OutboundOp::Expire { id } => sqlx::query(SQLITE_OPS[4]).bind(now).bind(id),
        };
        q.execute(&mut *tx).await?;
    }
    if !wamids.is_empty() {
        sqlite::apply_statuses(&mut tx, &wamids, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn pg_ops(s: &PgStore, ops: &[OutboundOp]) -> Result<(), StoreError> {
    let now = now_millis();
    let mut tx = s.pool.begin().await?;
    let mut wamids = Vec::new();
    for op in ops {
        let q = match op {
            OutboundOp::MarkSending { id } => sqlx::query(PG_OPS[0]).bind(now).bind(id),
            OutboundOp::Sent { id, wamid } | OutboundOp::Reconciled { id, wamid } => {
                wamids.push(wamid.as_str());
                let reconciled = matches!(op, OutboundOp::Reconciled { .. });
                sqlx::query(PG_OPS[1]).bind(now).bind(id).bind(wamid).bind(reconciled)
            }
            OutboundOp::Requeue { id, not_before, error, possibly_duplicated } => sqlx::query(PG_OPS[2])
                .bind(now)
                .bind(id)
                .bind(not_before)
                .bind(error)
                .bind(possibly_duplicated),
            OutboundOp::Fail { id, error } => sqlx::query(PG_OPS[3]).bind(now).bind(id).bind(error),
            OutboundOp::Expire { id } => sqlx::query(PG_OPS[4]).bind(now).bind(id),
        };
        q.execute(&mut *tx).await?;
    }
    if !wamids.is_empty() {
        postgres::apply_statuses(&mut tx, &wamids, now).await?;
    }
    tx.commit().await?;
    if !wamids.is_empty() {
        // A webhook transaction may have stored statuses of these wamids concurrently, each transaction
        // blind to the other's rows: apply them again once ours is visible, after the intake transactions
        // holding the event-log lock have committed.
        let mut tx = s.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(postgres::EVENT_LOG_LOCK_CLASS)
            .execute(&mut *tx)
            .await?;
        postgres::apply_statuses(&mut tx, &wamids, now_millis()).await?;
        tx.commit().await?;
    }
    Ok(())
}
