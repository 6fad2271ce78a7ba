//! What reconciliation, `GET /v1/messages/{id}`, status events and reports read about outbound messages.

use sqlx::Row;

use super::{InDoubt, OutboundDetail};
use crate::store::{Store, StoreError};

/// The status timeline in the order things happened, not the order webhooks arrived (Meta sends them
/// concurrently): by Meta's timestamp (seconds), then by rank within a second, then by arrival.
const TIMELINE_ORDER: &str = "status_timestamp, CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 \
     WHEN 'read' THEN 3 WHEN 'played' THEN 4 ELSE 5 END, id";

/// The status timeline of a wamid: its rows are found through their status events' dedupe keys (migration
/// 0006 on both backends), in the range [`status_dedupe_range`](wabridge_types::webhook::status_dedupe_range)
/// gives, and their wamid is compared too. The placeholders are the backend's: low key, high key, wamid.
fn timeline_sql([low, high, wamid]: [&str; 3]) -> String {
    format!(
        "SELECT status, status_timestamp, errors FROM message_statuses \
         WHERE id IN (SELECT seq FROM events WHERE dedupe_key > {low} AND dedupe_key < {high}) \
         AND wamid = {wamid} ORDER BY {TIMELINE_ORDER}"
    )
}

const DETAIL_COLUMNS: &str = "id, phone_number_id, recipient, wamid, state, kind, callback_data, created_at, \
     updated_at, not_before, expires_at, attempts, last_error, possibly_duplicated, reconciled";

fn in_doubt_row<R>(row: &R) -> Result<InDoubt, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let since: i64 = row.try_get("since")?;
    Ok(InDoubt { id: row.try_get("id")?, sending_since: since, grace_from: since })
}

impl Store {
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
            .map(in_doubt_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Self::Postgres(s) => sqlx::query(
                "SELECT id, coalesce(sending_since, updated_at) AS since FROM outbound_messages \
                     WHERE phone_number_id = $1 AND state = 'sending'",
            )
            .bind(number)
            .fetch_all(&s.pool)
            .await?
            .iter()
            .map(in_doubt_row)
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
                // `json`, not `jsonb`: jsonb refuses a `\u0000` anywhere in a payload, which one stored event
                // would turn into a failure of every lookup over its time range.
                sqlx::query(
                    "SELECT DISTINCT payload::json #>> '{statuses,0,biz_opaque_callback_data}' AS cb, \
                     payload::json #>> '{statuses,0,id}' AS wamid FROM events WHERE kind = 'status' \
                     AND created_at >= $1 AND payload::json #>> '{statuses,0,biz_opaque_callback_data}' = ANY($2)",
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

    /// The message queued with this `Idempotency-Key`, if any: its id and the hash of its request.
    pub async fn outbound_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = match self {
            Self::Sqlite(s) => {
                sqlx::query("SELECT id, request_sha256 FROM outbound_messages WHERE idempotency_key = ?1")
                    .bind(key)
                    .fetch_optional(&s.readers)
                    .await?
                    .map(|row| Ok::<_, sqlx::Error>((row.try_get("id")?, row.try_get("request_sha256")?)))
            }
            Self::Postgres(s) => {
                sqlx::query("SELECT id, request_sha256 FROM outbound_messages WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&s.pool)
                    .await?
                    .map(|row| Ok::<_, sqlx::Error>((row.try_get("id")?, row.try_get("request_sha256")?)))
            }
        };
        Ok(row.transpose()?)
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
                let statuses = match wamid {
                    Some(wamid) => {
                        let (low, high) = wabridge_types::webhook::status_dedupe_range(&wamid);
                        sqlx::query(&timeline_sql(["?1", "?2", "?3"]))
                            .bind(low)
                            .bind(high)
                            .bind(&wamid)
                            .fetch_all(&s.readers)
                            .await?
                    }
                    None => Vec::new(),
                };
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
                let statuses = match wamid {
                    Some(wamid) => {
                        let (low, high) = wabridge_types::webhook::status_dedupe_range(&wamid);
                        sqlx::query(&timeline_sql(["$1", "$2", "$3"]))
                            .bind(low)
                            .bind(high)
                            .bind(&wamid)
                            .fetch_all(&s.pool)
                            .await?
                    }
                    None => Vec::new(),
                };
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

    /// Messages not yet sent (queued or sending), per business number: the backlogs at start.
    pub async fn outbound_backlogs(&self) -> Result<Vec<(String, i64)>, StoreError> {
        // One count per state, so that each reads its own partial index (`outbound_queued`,
        // `outbound_sending`) rather than the whole table, which keeps every message ever sent.
        let sql = "SELECT phone_number_id, CAST(SUM(n) AS BIGINT) FROM (\
             SELECT phone_number_id, count(*) AS n FROM outbound_messages WHERE state = 'queued' GROUP BY phone_number_id \
             UNION ALL \
             SELECT phone_number_id, count(*) AS n FROM outbound_messages WHERE state = 'sending' GROUP BY phone_number_id\
             ) AS per_state GROUP BY phone_number_id";
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
