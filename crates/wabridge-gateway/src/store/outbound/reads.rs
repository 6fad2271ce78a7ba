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

/// How much earlier than asked the seq range of [`Store::statuses_by_callback_data`] starts: events are
/// numbered in commit order and stamped with the committing instance's clock, so `created_at` may go back
/// along `seq` by as much as a clock step or the difference between instances' clocks. The events of the
/// margin are read but filtered by `created_at` as before, so it costs a few minutes' rows, never a result.
const SEQ_SEARCH_MARGIN_MS: i64 = 5 * 60_000;

/// The scan of [`Store::statuses_by_callback_data`] on SQLite: a range of the primary key from `?1` (the
/// first seq of the window), then the window `created_at >= ?2` and the ids (`?3`, a JSON array).
const STATUSES_BY_CALLBACK_DATA_SQLITE: &str = "SELECT DISTINCT \
     json_extract(payload, '$.statuses[0].biz_opaque_callback_data') AS cb, \
     json_extract(payload, '$.statuses[0].id') AS wamid FROM events \
     WHERE seq >= ?1 AND kind = 'status' AND created_at >= ?2 \
     AND json_extract(payload, '$.statuses[0].biz_opaque_callback_data') IN (SELECT value FROM json_each(?3))";

/// [`STATUSES_BY_CALLBACK_DATA_SQLITE`] on PostgreSQL (`$3`: a text array). `json`, not `jsonb`: jsonb
/// refuses a `\u0000` anywhere in a payload, which one stored event would turn into a failure of every lookup
/// over its range.
const STATUSES_BY_CALLBACK_DATA_PG: &str = "SELECT DISTINCT \
     payload::json #>> '{statuses,0,biz_opaque_callback_data}' AS cb, \
     payload::json #>> '{statuses,0,id}' AS wamid FROM events \
     WHERE seq >= $1 AND kind = 'status' AND created_at >= $2 \
     AND payload::json #>> '{statuses,0,biz_opaque_callback_data}' = ANY($3)";

/// Where the rows whose `created_at` is at least `at` begin, between the log's first and last seqs
/// (`max + 1` when there is none): their first seq or a free one below it, `probe(from, below)` giving the
/// first `(seq, created_at)` in `[from, below)`. Seqs have gaps (retention, rolled-back intakes): each probe
/// looks at the first row at or after the middle, and a range found empty is skipped whole.
async fn bisect<F, Fut>(min: i64, max: i64, at: i64, probe: F) -> Result<i64, sqlx::Error>
where
    F: Fn(i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<Option<(i64, i64)>, sqlx::Error>>,
{
    // Rows below `lo` are older than `at`; the first row at `hi` or after is not (or there is none).
    let (mut lo, mut hi) = (min, max.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match probe(mid, hi).await? {
            Some((seq, created_at)) if created_at < at => lo = seq + 1,
            // The first row from `mid` is recent enough, or there is none before `hi`: nothing in between.
            _ => hi = mid,
        }
    }
    Ok(lo)
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
    ///
    /// `events.created_at` has no index (one would cost every webhook's intake), so the window is turned into
    /// a range of seqs first ([`Self::first_seq_created_since`]): a few point lookups on the primary key, then
    /// one scan of that key's range from there, whatever the size of the log.
    pub async fn statuses_by_callback_data(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(from_seq) = self.first_seq_created_since(since.saturating_sub(SEQ_SEARCH_MARGIN_MS)).await?
        else {
            return Ok(Vec::new());
        };
        let rows = match self {
            Self::Sqlite(s) => {
                let list = serde_json::to_string(ids).map_err(|_| StoreError::Inconsistent("id list"))?;
                sqlx::query(STATUSES_BY_CALLBACK_DATA_SQLITE)
                    .bind(from_seq)
                    .bind(since)
                    .bind(list)
                    .fetch_all(&s.readers)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get::<Option<String>, _>("cb")?,
                            row.try_get::<Option<String>, _>("wamid")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Self::Postgres(s) => sqlx::query(STATUSES_BY_CALLBACK_DATA_PG)
                .bind(from_seq)
                .bind(since)
                .bind(ids)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok((row.try_get::<Option<String>, _>("cb")?, row.try_get::<Option<String>, _>("wamid")?))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        };
        Ok(rows.into_iter().filter_map(|(cb, wamid)| Some((cb?, wamid?))).collect())
    }

    /// Where the events stored at `at` (Unix ms) or later begin in the event log: the seq of the first of
    /// them, or a free seq below it with no event in between (after the last event if every event is
    /// older), so that `seq >=` it reads exactly them; `None` when the log is empty.
    ///
    /// A bisection over the primary key (each step one point lookup, about 25 for a log of millions of
    /// rows), exact because `created_at` grows with `seq`: events are numbered in commit order and stamped at
    /// commit. A clock going back (a step of the system clock, instances whose clocks differ) breaks that by
    /// as much as it went back; [`Self::statuses_by_callback_data`] starts its search earlier by a margin for
    /// that.
    pub async fn first_seq_created_since(&self, at: i64) -> Result<Option<i64>, StoreError> {
        const BOUNDS: &str = "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)";
        Ok(match self {
            Self::Sqlite(s) => {
                let (min, max): (Option<i64>, Option<i64>) =
                    sqlx::query_as(BOUNDS).fetch_one(&s.readers).await?;
                let (Some(min), Some(max)) = (min, max) else { return Ok(None) };
                let probe = |from: i64, below: i64| {
                    sqlx::query_as::<_, (i64, i64)>(
                        "SELECT seq, created_at FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT 1",
                    )
                    .bind(from)
                    .bind(below)
                    .fetch_optional(&s.readers)
                };
                Some(bisect(min, max, at, probe).await?)
            }
            Self::Postgres(s) => {
                let (min, max): (Option<i64>, Option<i64>) =
                    sqlx::query_as(BOUNDS).fetch_one(&s.pool).await?;
                let (Some(min), Some(max)) = (min, max) else { return Ok(None) };
                let probe = |from: i64, below: i64| {
                    sqlx::query_as::<_, (i64, i64)>(
                        "SELECT seq, created_at FROM events WHERE seq >= $1 AND seq < $2 ORDER BY seq LIMIT 1",
                    )
                    .bind(from)
                    .bind(below)
                    .fetch_optional(&s.pool)
                };
                Some(bisect(min, max, at, probe).await?)
            }
        })
    }

    /// The query plan of [`Self::statuses_by_callback_data`]'s scan, one line per step (SQLite's `EXPLAIN
    /// QUERY PLAN` details, PostgreSQL's `EXPLAIN` lines), for the seqs from `from_seq` and events since
    /// `since`: tests check that it reads a range of the primary key, not the whole log.
    #[doc(hidden)]
    pub async fn statuses_by_callback_data_plan(
        &self,
        from_seq: i64,
        since: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = vec!["x".to_owned()];
        Ok(match self {
            Self::Sqlite(s) => {
                let list = serde_json::to_string(&ids).map_err(|_| StoreError::Inconsistent("id list"))?;
                sqlx::query(&format!("EXPLAIN QUERY PLAN {STATUSES_BY_CALLBACK_DATA_SQLITE}"))
                    .bind(from_seq)
                    .bind(since)
                    .bind(list)
                    .fetch_all(&s.readers)
                    .await?
                    .iter()
                    .map(|row| row.try_get::<String, _>("detail"))
                    .collect::<Result<_, _>>()?
            }
            Self::Postgres(s) => sqlx::query(&format!("EXPLAIN {STATUSES_BY_CALLBACK_DATA_PG}"))
                .bind(from_seq)
                .bind(since)
                .bind(&ids)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?,
        })
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

    /// The ids among `ids` of messages cancelled meanwhile (through another instance): a scheduler holding
    /// them drops them. By primary key. Only `cancelled`: a message of this scheduler's whose send just
    /// failed is still `sending` until its requeue commits, and must stay where it is in memory.
    pub async fn outbound_not_queued(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let gone = match self {
            Self::Sqlite(s) => {
                let list = serde_json::to_string(ids).map_err(|_| StoreError::Inconsistent("id list"))?;
                sqlx::query_scalar(
                    "SELECT id FROM outbound_messages WHERE id IN (SELECT value FROM json_each(?1)) \
                     AND state = 'cancelled'",
                )
                .bind(list)
                .fetch_all(&s.readers)
                .await?
            }
            Self::Postgres(s) => {
                sqlx::query_scalar(
                    "SELECT id FROM outbound_messages WHERE id = ANY($1) AND state = 'cancelled'",
                )
                .bind(ids)
                .fetch_all(&s.pool)
                .await?
            }
        };
        Ok(gone)
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
