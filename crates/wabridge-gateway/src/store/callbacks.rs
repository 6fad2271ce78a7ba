//! Application callbacks and their delivery state.
//!
//! Why a cursor AND rows: each callback keeps `scan_seq`, the point up to which the log has been turned
//! into delivery rows, and one row per event not yet delivered. The cursor makes the table hold only the
//! undelivered window (a delivered row is deleted), so steady state costs one insert and one delete per
//! event; the rows carry what a cursor cannot: per-event attempts, next attempt time and failure, and
//! per-contact progress (a contact whose head event keeps failing holds back only its own later events,
//! while the cursor moves on). Both survive restarts; a lease on a row being sent lets a crashed
//! instance's work be taken again.
//!
//! Which record a worker works for: a callback deleted and created again under the same id, or given other
//! settings, is another callback to the workers of other instances, which hold the record they loaded until
//! they read it again. So the worker's statements ([`Store::queue_deliveries_for`],
//! [`Store::claim_deliveries_for`]) name the whole record and do nothing once the stored one differs in a
//! setting that shapes its deliveries or in its creation time: an event committed after a change is never
//! queued under the old filter nor sent to the old URL with the old secret. (No version column is needed: two
//! records alike in all of that deliver alike.)
//!
//! Statements that are the same on both backends are written once in PostgreSQL's `$N` form; for SQLite the
//! `$` becomes `?`, the same positional parameter (`?N`). Where the dialects differ, each has its own text.

use std::time::SystemTime;

use sqlx::Row;

use super::{Store, StoreError, from_millis, now_millis};

/// A callback target as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// `cloud` or `onprem`.
    pub shape: String,
    /// Requests in flight at once at most.
    pub max_concurrent: u32,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only this business number.
    pub phone_number_id: Option<String>,
    /// `config` or `api`.
    pub source: String,
    /// Every event up to this seq has been queued (or filtered out).
    pub scan_seq: i64,
    /// When it was created.
    pub created_at: SystemTime,
}

impl std::fmt::Debug for CallbackRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .field("shape", &self.shape)
            .field("max_concurrent", &self.max_concurrent)
            .field("kinds", &self.kinds)
            .field("phone_number_id", &self.phone_number_id)
            .field("source", &self.source)
            .field("scan_seq", &self.scan_seq)
            .finish_non_exhaustive()
    }
}

/// An event queued for a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The event.
    pub seq: i64,
    /// Deliveries with the same key go out in seq order (the contact, or a stand-in for events without one).
    pub contact_key: String,
    /// When the event was committed.
    pub event_at: SystemTime,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The event.
    pub seq: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Where its age starts: the event's commit, or its replay.
    pub queued_at: SystemTime,
    /// The lease this claim holds: its outcome is written only while the row still holds it.
    pub lease_until: SystemTime,
}

/// Delivery figures of one callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Events queued and not delivered yet.
    pub pending: u64,
    /// Events given up on (replayable).
    pub failed: u64,
    /// Commit time of the oldest pending event.
    pub oldest_pending_at: Option<SystemTime>,
    /// Attempts made on pending events so far.
    pub retrying: u64,
    /// Pending events waiting behind an earlier event of their contact that is being retried (they cannot
    /// go before it).
    pub held_back: u64,
}

fn record<'r, R>(row: &'r R) -> Result<CallbackRecord, sqlx::Error>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kinds: String = row.try_get("kinds")?;
    Ok(CallbackRecord {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        shape: row.try_get("shape")?,
        max_concurrent: u32::try_from(row.try_get::<i64, _>("max_concurrent")?).unwrap_or(1),
        // Read back exactly as written (empty entries kept): the worker's statements compare the text again.
        kinds: if kinds.is_empty() { Vec::new() } else { kinds.split(',').map(str::to_owned).collect() },
        phone_number_id: row.try_get("phone_number_id")?,
        source: row.try_get("source")?,
        scan_seq: row.try_get("scan_seq")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// `WHERE` conditions that hold while the stored callback is still `record` as a worker holds it (see the
/// module's documentation), on the columns of `callbacks` under `alias` (`"c."`, or `""` for the table an
/// `UPDATE` writes), with the parameters `$n`…`$n+6`, bound by [`bind_same!`].
fn same_callback(pg: bool, alias: &str, n: usize) -> String {
    // `phone_number_id` may be NULL on both sides.
    let same = if pg { "IS NOT DISTINCT FROM" } else { "IS" };
    format!(
        "{alias}url = ${} AND {alias}secret = ${} AND {alias}shape = ${} AND {alias}max_concurrent = ${} \
         AND {alias}kinds = ${} AND {alias}phone_number_id {same} ${} AND {alias}created_at = ${}",
        n,
        n + 1,
        n + 2,
        n + 3,
        n + 4,
        n + 5,
        n + 6
    )
}

/// Binds the parameters of [`same_callback`] to the values of `$record`, in order.
macro_rules! bind_same {
    ($query:expr, $record:expr) => {
        $query
            .bind(&$record.url)
            .bind(&$record.secret)
            .bind(&$record.shape)
            .bind(i32::try_from($record.max_concurrent).unwrap_or(i32::MAX))
            .bind($record.kinds.join(","))
            .bind(&$record.phone_number_id)
            .bind(super::to_millis($record.created_at))
    };
}

/// A callback row, with every column bound by [`bind_callback!`].
const INSERT_CALLBACK: &str = "INSERT INTO callbacks (id, url, secret, shape, max_concurrent, kinds, phone_number_id, \
     source, scan_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// What a changed callback takes of the row given to [`INSERT_CALLBACK`] (its cursor and creation time stay,
/// unless a replacement says otherwise).
const UPDATE_SETTINGS: &str = " ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
     shape = excluded.shape, max_concurrent = excluded.max_concurrent, kinds = excluded.kinds, \
     phone_number_id = excluded.phone_number_id, source = excluded.source";

/// Binds the columns of [`INSERT_CALLBACK`] to the fields of `$callback`, in order.
macro_rules! bind_callback {
    ($query:expr, $callback:expr) => {
        $query
            .bind(&$callback.id)
            .bind(&$callback.url)
            .bind(&$callback.secret)
            .bind(&$callback.shape)
            .bind(i32::try_from($callback.max_concurrent).unwrap_or(i32::MAX))
            .bind($callback.kinds.join(","))
            .bind(&$callback.phone_number_id)
            .bind(&$callback.source)
            .bind($callback.scan_seq)
            .bind(super::to_millis($callback.created_at))
    };
}

const COLUMNS: &str = "id, url, secret, shape, CAST(max_concurrent AS BIGINT) AS max_concurrent, kinds, phone_number_id, source, \
     scan_seq, created_at";

impl Store {
    /// Inserts a callback starting after `scan_seq`; `Ok(false)` when the id is taken. With `replace`, an
    /// existing callback of that id keeps its delivery state and takes the new settings.
    pub async fn put_callback(&self, callback: &CallbackRecord, replace: bool) -> Result<bool, StoreError> {
        let conflict = if replace { UPDATE_SETTINGS } else { " ON CONFLICT (id) DO NOTHING" };
        let statement = format!("{INSERT_CALLBACK}{conflict}");
        let done = on_backend!(self, |w, _r, sql, _pg| {
            bind_callback!(sqlx::query(&sql(&statement)), callback).execute(w).await?.rows_affected()
        });
        Ok(done == 1)
    }

    /// Puts `callback` in the place of the callback of its id, if any, in one transaction: the old one's
    /// delivery state goes, and the new one starts after its `scan_seq`, as a callback created anew. Either the
    /// whole change is made or none of it: a failure leaves the old callback, its cursor and its undelivered
    /// events as they were.
    pub async fn replace_callback(&self, callback: &CallbackRecord) -> Result<(), StoreError> {
        // The callback's row first, then its deliveries: on PostgreSQL, a worker of the old record queueing at
        // the same time either waits for this row and is then refused (its conditions no longer hold), or
        // committed its rows before this row was written, and the delete below (a statement of its own, so a
        // snapshot taken after that commit) removes them.
        let statement = format!(
            "{INSERT_CALLBACK}{UPDATE_SETTINGS}, scan_seq = excluded.scan_seq, created_at = excluded.created_at"
        );
        on_backend!(self, |w, _r, sql, _pg| {
            let mut tx = w.begin().await?;
            bind_callback!(sqlx::query(&sql(&statement)), callback).execute(&mut *tx).await?;
            sqlx::query(&sql("DELETE FROM callback_deliveries WHERE callback_id = $1"))
                .bind(&callback.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether the stored callback of `record`'s id is still `record` as a worker holds it (see the module's
    /// documentation); `false` when it was deleted, created anew or given other settings.
    pub async fn callback_is_current(&self, record: &CallbackRecord) -> Result<bool, StoreError> {
        let n: i64 = on_backend!(self, |_w, r, sql, pg| {
            let statement =
                format!("SELECT count(*) FROM callbacks WHERE id = $1 AND {}", same_callback(pg, "", 2));
            bind_same!(sqlx::query_scalar(&sql(&statement)).bind(&record.id), record).fetch_one(r).await?
        });
        Ok(n > 0)
    }

    /// Deletes the callbacks of `source` whose id is not in `keep` (and their delivery state).
    pub async fn delete_callbacks_except(&self, source: &str, keep: &[String]) -> Result<u64, StoreError> {
        let existing = self.callbacks().await?;
        let mut deleted = 0;
        for c in existing.iter().filter(|c| c.source == source && !keep.contains(&c.id)) {
            deleted += u64::from(self.delete_callback(&c.id).await?);
        }
        Ok(deleted)
    }

    /// Every callback, by id.
    pub async fn callbacks(&self) -> Result<Vec<CallbackRecord>, StoreError> {
        let statement = format!("SELECT {COLUMNS} FROM callbacks ORDER BY id");
        Ok(on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query(&sql(&statement)).fetch_all(r).await?.iter().map(record).collect::<Result<_, _>>()?
        }))
    }

    /// The callback `id`.
    pub async fn callback(&self, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
        let statement = format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1");
        Ok(on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query(&sql(&statement))
                .bind(id)
                .fetch_optional(r)
                .await?
                .as_ref()
                .map(record)
                .transpose()?
        }))
    }

    /// Deletes the callback `id` and its delivery state; whether it existed.
    pub async fn delete_callback(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_backend!(self, |w, _r, sql, _pg| {
            let mut tx = w.begin().await?;
            sqlx::query(&sql("DELETE FROM callback_deliveries WHERE callback_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(&sql("DELETE FROM callbacks WHERE id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(done == 1)
    }

    /// Queues `deliveries` and moves the callback's cursor from `from_scan_seq` to `to_scan_seq`, in one
    /// transaction. `Ok(false)` (nothing written) when the cursor is no longer at `from_scan_seq` (another
    /// instance got there first).
    pub async fn queue_deliveries(
        &self,
        callback_id: &str,
        from_scan_seq: i64,
        to_scan_seq: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        self.queue(callback_id, None, from_scan_seq, to_scan_seq, deliveries).await
    }

    /// [`queue_deliveries`](Self::queue_deliveries) by the worker of `record`: also `Ok(false)` when the stored
    /// callback is no longer `record` (see the module's documentation), whose filter chose `deliveries`.
    pub async fn queue_deliveries_for(
        &self,
        record: &CallbackRecord,
        from_scan_seq: i64,
        to_scan_seq: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        self.queue(&record.id, Some(record), from_scan_seq, to_scan_seq, deliveries).await
    }

    async fn queue(
        &self,
        callback_id: &str,
        held: Option<&CallbackRecord>,
        from_scan_seq: i64,
        to_scan_seq: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        Ok(on_backend!(self, |w, _r, sql, pg| {
            let mut tx = w.begin().await?;
            // The conditions are on the row being written (no subquery): on PostgreSQL, an update waiting for a
            // concurrent change of the row checks them again on the row as changed.
            let same = held.map(|_| format!(" AND {}", same_callback(pg, "", 4))).unwrap_or_default();
            let statement =
                sql(&format!("UPDATE callbacks SET scan_seq = $1 WHERE id = $2 AND scan_seq = $3{same}"));
            let mut cas = sqlx::query(&statement).bind(to_scan_seq).bind(callback_id).bind(from_scan_seq);
            if let Some(record) = held {
                cas = bind_same!(cas, record);
            }
            let moved = cas.execute(&mut *tx).await?.rows_affected();
            if moved == 1 {
                // `queued_at` starts the count toward `delivery.max_age_ms`: from the event's commit (as Meta's
                // seven days of retries count from the webhook's first attempt), so that a callback that was down
                // longer than that gets through its backlog instead of giving each old event seven days more.
                let insert =
                    sql("INSERT INTO callback_deliveries (callback_id, seq, contact_key, state, attempts, \
                     next_attempt_at, queued_at, event_at) VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6) \
                     ON CONFLICT (callback_id, seq) DO NOTHING");
                for d in deliveries {
                    let event_at = super::to_millis(d.event_at);
                    sqlx::query(&insert)
                        .bind(callback_id)
                        .bind(d.seq)
                        .bind(&d.contact_key)
                        .bind(now)
                        .bind(event_at.min(now))
                        .bind(event_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            moved == 1
        }))
    }

    /// Claims up to `limit` deliveries of `callback_id` that may be sent now: pending, due, not leased, and
    /// each the lowest pending seq of its contact. They stay leased until `lease_until` (or an outcome).
    pub async fn claim_deliveries(
        &self,
        callback_id: &str,
        limit: u32,
        lease_until: SystemTime,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.claim(callback_id, None, limit, lease_until).await
    }

    /// [`claim_deliveries`](Self::claim_deliveries) by the worker of `record`, which sends them with its URL,
    /// secret and shape: `Ok(None)` (nothing claimed) when the stored callback is no longer `record` (see the
    /// module's documentation).
    ///
    /// A delivery queued before a change may still be claimed by a worker that read the callback before the
    /// change was committed, as one already in flight goes out: only events from before the change go with
    /// the old settings.
    pub async fn claim_deliveries_for(
        &self,
        record: &CallbackRecord,
        limit: u32,
        lease_until: SystemTime,
    ) -> Result<Option<Vec<ClaimedDelivery>>, StoreError> {
        let claimed = self.claim(&record.id, Some(record), limit, lease_until).await?;
        // Nothing claimed: nothing due, or the callback changed (told apart only then, to spare a read).
        if claimed.is_empty() && !self.callback_is_current(record).await? {
            return Ok(None);
        }
        Ok(Some(claimed))
    }

    async fn claim(
        &self,
        callback_id: &str,
        held: Option<&CallbackRecord>,
        limit: u32,
        lease_until: SystemTime,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = now_millis();
        let lease = super::to_millis(lease_until);
        let rows = on_backend!(self, |w, _r, sql, pg| {
            let same = held
                .map(|_| {
                    format!(
                        " AND EXISTS (SELECT 1 FROM callbacks c WHERE c.id = $2 AND {})",
                        same_callback(pg, "c.", 5)
                    )
                })
                .unwrap_or_default();
            let statement = format!(
                "UPDATE callback_deliveries SET lease_until = $1 \
                 WHERE callback_id = $2 AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                 AND seq IN (SELECT d.seq FROM callback_deliveries d \
                   WHERE d.callback_id = $2 AND d.state = 'pending' AND d.next_attempt_at <= $3 \
                   AND (d.lease_until IS NULL OR d.lease_until <= $3) \
                   AND NOT EXISTS (SELECT 1 FROM callback_deliveries e WHERE e.callback_id = d.callback_id \
                     AND e.contact_key = d.contact_key AND e.state = 'pending' AND e.seq < d.seq) \
                   ORDER BY d.seq LIMIT $4{}){same} \
                 RETURNING seq, CAST(attempts AS BIGINT) AS attempts, queued_at",
                if pg { " FOR UPDATE SKIP LOCKED" } else { "" }
            );
            let statement = sql(&statement);
            let mut query =
                sqlx::query(&statement).bind(lease).bind(callback_id).bind(now).bind(i64::from(limit));
            if let Some(record) = held {
                query = bind_same!(query, record);
            }
            query
                .fetch_all(w)
                .await?
                .iter()
                .map(|row| {
                    Ok::<_, sqlx::Error>(ClaimedDelivery {
                        seq: row.try_get("seq")?,
                        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
                        queued_at: from_millis(row.try_get("queued_at")?),
                        lease_until: from_millis(lease),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        let mut rows = rows;
        rows.sort_by_key(|d| d.seq);
        Ok(rows)
    }

    /// The event `seq` was delivered to `callback_id`: its row goes. With `lease` (the claim's), only while
    /// the row still holds that lease: once it expired and another instance claimed the event, that one's
    /// outcome decides (and the contact's next event waits for it). Whether the row went.
    pub async fn delivery_succeeded(
        &self,
        callback_id: &str,
        seq: i64,
        lease: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let held = if lease.is_some() { " AND lease_until = $3" } else { "" };
        Ok(on_backend!(self, |w, _r, sql, _pg| {
            let statement =
                sql(&format!("DELETE FROM callback_deliveries WHERE callback_id = $1 AND seq = $2{held}"));
            let mut query = sqlx::query(&statement).bind(callback_id).bind(seq);
            if let Some(lease) = lease {
                query = query.bind(super::to_millis(lease));
            }
            query.execute(w).await?.rows_affected() == 1
        }))
    }

    /// An attempt failed: try again at `next_attempt_at`, or, with `give_up`, mark it failed. With `lease`,
    /// only while the row still holds it (see [`delivery_succeeded`](Self::delivery_succeeded)).
    pub async fn delivery_failed(
        &self,
        callback_id: &str,
        seq: i64,
        lease: Option<SystemTime>,
        next_attempt_at: SystemTime,
        error: &str,
        give_up: bool,
    ) -> Result<bool, StoreError> {
        let held = if lease.is_some() { " AND lease_until = $6" } else { "" };
        Ok(on_backend!(self, |w, _r, sql, _pg| {
            let statement = sql(&format!(
                "UPDATE callback_deliveries SET attempts = attempts + 1, next_attempt_at = $1, \
                 lease_until = NULL, last_error = $2, state = $3 WHERE callback_id = $4 AND seq = $5{held}"
            ));
            let mut query = sqlx::query(&statement)
                .bind(super::to_millis(next_attempt_at))
                .bind(error)
                .bind(if give_up { "failed" } else { "pending" })
                .bind(callback_id)
                .bind(seq);
            if let Some(lease) = lease {
                query = query.bind(super::to_millis(lease));
            }
            query.execute(w).await?.rows_affected() == 1
        }))
    }

    /// When the next pending delivery of `callback_id` becomes due (or its lease expires), if any. Only the
    /// first pending delivery of each contact counts, as only those can be claimed: a later one, due long
    /// ago, waits for the one before it (its retry, its lease), and must not make the worker wake at once.
    pub async fn next_delivery_due(&self, callback_id: &str) -> Result<Option<SystemTime>, StoreError> {
        let at: Option<i64> = on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query_scalar(&sql(
                // The first pending delivery of each contact, found in one pass over the contact index (a
                // NOT EXISTS per row is quadratic on SQLite, whose planner takes the primary key for it).
                "SELECT min(CASE WHEN d.lease_until IS NOT NULL AND d.lease_until > d.next_attempt_at \
                 THEN d.lease_until ELSE d.next_attempt_at END) FROM callback_deliveries d \
                 JOIN (SELECT min(seq) AS s FROM callback_deliveries WHERE callback_id = $1 AND state = 'pending' \
                   GROUP BY contact_key) AS heads ON d.seq = heads.s \
                 WHERE d.callback_id = $1",
            ))
            .bind(callback_id)
            .fetch_one(r)
            .await?
        });
        Ok(at.map(from_millis))
    }

    /// Pending and failed counts and the oldest pending event of `callback_id`.
    pub async fn delivery_stats(&self, callback_id: &str) -> Result<DeliveryStats, StoreError> {
        let row = on_backend!(self, |_w, r, sql, _pg| {
            let row = sqlx::query(&sql(
                "SELECT CAST(COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
                 CAST(COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
                 CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND attempts > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 AS retrying, \
                 MIN(CASE WHEN state = 'pending' THEN event_at END) AS oldest \
                 FROM callback_deliveries WHERE callback_id = $1",
            ))
            .bind(callback_id)
            .fetch_one(r)
            .await?;
            // In one ordered pass over the contact index: a row is held back when an earlier pending row of
            // its contact has been tried.
            let held_back: i64 = sqlx::query_scalar(&sql(
                "SELECT count(*) FROM (SELECT min(CASE WHEN attempts > 0 THEN seq END) OVER (\
                   PARTITION BY contact_key ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS tried \
                 FROM callback_deliveries WHERE callback_id = $1 AND state = 'pending') AS w \
                 WHERE tried IS NOT NULL",
            ))
            .bind(callback_id)
            .fetch_one(r)
            .await?;
            (
                row.try_get::<i64, _>("pending")?,
                row.try_get::<i64, _>("failed")?,
                row.try_get::<i64, _>("retrying")?,
                row.try_get::<Option<i64>, _>("oldest")?,
                held_back,
            )
        });
        Ok(DeliveryStats {
            pending: u64::try_from(row.0).unwrap_or(0),
            failed: u64::try_from(row.1).unwrap_or(0),
            retrying: u64::try_from(row.2).unwrap_or(0),
            oldest_pending_at: row.3.map(from_millis),
            held_back: u64::try_from(row.4).unwrap_or(0),
        })
    }

    /// Puts the failed deliveries of `callback_id` back in the queue, due now, their age counted from now.
    pub async fn replay_failed(&self, callback_id: &str) -> Result<u64, StoreError> {
        let now = now_millis();
        Ok(on_backend!(self, |w, _r, sql, _pg| {
            sqlx::query(&sql(
                "UPDATE callback_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, \
                 queued_at = $1, lease_until = NULL WHERE callback_id = $2 AND state = 'failed'",
            ))
            .bind(now)
            .bind(callback_id)
            .execute(w)
            .await?
            .rows_affected()
        }))
    }

    /// The lowest seq some callback has not queued yet (the event after the lowest cursor); retention keeps
    /// it and everything after. Events below it are kept one by one while a delivery (pending or failed)
    /// refers to them ([`Store::prune`]), so one event that keeps failing holds back only itself.
    /// `None` when no callback exists.
    pub async fn oldest_needed_seq(&self) -> Result<Option<i64>, StoreError> {
        let seq: Option<i64> = on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query_scalar(&sql("SELECT min(scan_seq) + 1 FROM callbacks")).fetch_one(r).await?
        });
        Ok(seq)
    }
}
