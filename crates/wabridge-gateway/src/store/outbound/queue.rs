//! Putting messages in the queue and taking them out: enqueueing (idempotency keys), claiming a number's
//! queued messages for its scheduler, cancelling, and the number leases that say which instance sends.

use sqlx::Row;

use super::{CancelOutcome, Enqueued, NewQueued, QueuedMessage};
use crate::store::{PgStore, SqliteStore, Store, StoreError, now_millis};

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
                     expires_at, retries AS attempts, possibly_duplicated <> 0 AS dup",
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
                     recipient, kind, body, not_before, expires_at, retries AS attempts, possibly_duplicated AS dup",
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

    /// Takes or renews the sending lease `number` until `until` (Unix ms); false when another instance holds
    /// a lease that has not expired. The schedulers key it by their WABA
    /// ([`crate::outbound::sending_lease_key`]), all numbers of a WABA sharing one row.
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

    /// Gives up every number lease `owner` holds (a graceful stop): another instance takes the numbers at
    /// its next try instead of waiting for the leases to run out.
    pub async fn release_number_leases(&self, owner: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => sqlx::query("DELETE FROM number_leases WHERE owner = ?1")
                .bind(owner)
                .execute(&s.writer)
                .await?
                .rows_affected(),
            Self::Postgres(s) => sqlx::query("DELETE FROM number_leases WHERE owner = $1")
                .bind(owner)
                .execute(&s.pool)
                .await?
                .rows_affected(),
        };
        Ok(())
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

async fn sqlite_enqueue(s: &SqliteStore, rows: &[NewQueued]) -> Result<Vec<Enqueued>, StoreError> {
    let now = now_millis();
    let mut tx = s.writer.begin_with("BEGIN IMMEDIATE").await?;
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

/// One statement for the whole batch (arrays unnested), so a batch costs one round trip, not one per row. A
/// row whose idempotency key is known (from before, or earlier in the batch) is not inserted; the one that
/// holds the key is looked up, in one more statement, only when that happens.
async fn pg_enqueue(s: &PgStore, rows: &[NewQueued]) -> Result<Vec<Enqueued>, StoreError> {
    let now = now_millis();
    let col = |f: fn(&NewQueued) -> &str| rows.iter().map(|m| f(m).to_owned()).collect::<Vec<String>>();
    let opt = |f: fn(&NewQueued) -> Option<&str>| {
        rows.iter().map(|m| f(m).map(str::to_owned)).collect::<Vec<Option<String>>>()
    };
    let mut tx = s.pool.begin().await?;
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO outbound_messages (id, phone_number_id, recipient, state, body, created_at, updated_at, \
         kind, callback_data, not_before, expires_at, idempotency_key, request_sha256) \
         SELECT id, phone_number_id, recipient, 'queued', body, $1, $1, kind, callback_data, not_before, \
         expires_at, idempotency_key, request_sha256 \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], \
         $9::bigint[], $10::text[], $11::text[]) WITH ORDINALITY \
         AS r(id, phone_number_id, recipient, body, kind, callback_data, not_before, expires_at, \
         idempotency_key, request_sha256, n) \
         ORDER BY n \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(now)
    .bind(col(|m| &m.id))
    .bind(col(|m| &m.phone_number_id))
    .bind(col(|m| &m.recipient))
    .bind(col(|m| &m.body))
    .bind(col(|m| &m.kind))
    .bind(opt(|m| m.callback_data.as_deref()))
    .bind(rows.iter().map(|m| m.not_before).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.expires_at).collect::<Vec<_>>())
    .bind(opt(|m| m.idempotency_key.as_deref()))
    .bind(opt(|m| m.request_sha256.as_deref()))
    .fetch_all(&mut *tx)
    .await?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
    let known_keys: Vec<String> =
        rows.iter().filter(|m| !inserted.contains(&m.id)).filter_map(|m| m.idempotency_key.clone()).collect();
    let mut holders = std::collections::HashMap::new();
    if !known_keys.is_empty() {
        let found = sqlx::query(
            "SELECT idempotency_key, id, request_sha256 FROM outbound_messages WHERE idempotency_key = ANY($1)",
        )
        .bind(&known_keys)
        .fetch_all(&mut *tx)
        .await?;
        for row in found {
            let key: String = row.try_get("idempotency_key")?;
            holders.insert(
                key,
                (row.try_get::<String, _>("id")?, row.try_get::<Option<String>, _>("request_sha256")?),
            );
        }
    }
    let out = rows
        .iter()
        .map(|m| {
            if inserted.contains(&m.id) {
                return Ok(Enqueued::Inserted);
            }
            let (id, request_sha256) =
                m.idempotency_key.as_ref().and_then(|k| holders.get(k)).cloned().ok_or(
                    StoreError::Inconsistent("a queued row was neither inserted nor held by its key"),
                )?;
            Ok(Enqueued::Existing { id, request_sha256 })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.commit().await?;
    Ok(out)
}
