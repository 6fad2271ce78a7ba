//! Media deleted through the gateway (migration 0010): a note per media id, so that every instance on the
//! database stops serving its cached copy (see `media/mod.rs`). Each statement is written once, in
//! PostgreSQL's `$N` form ([`on_backend!`]).

use std::time::SystemTime;

use super::{Store, StoreError, now_millis, to_millis};

impl Store {
    /// Notes that media `id` was deleted; whether this call wrote the note (the first note stands).
    pub async fn record_media_deleted(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let done = on_backend!(self, |w, _r, sql, _pg| {
            sqlx::query(&sql(
                "INSERT INTO media_deleted (media_id, deleted_at) VALUES ($1, $2) ON CONFLICT (media_id) DO NOTHING",
            ))
            .bind(id)
            .bind(now)
            .execute(w)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Takes back the note of media `id` (a delete that Meta then refused).
    pub async fn forget_media_deleted(&self, id: &str) -> Result<(), StoreError> {
        on_backend!(self, |w, _r, sql, _pg| {
            sqlx::query(&sql("DELETE FROM media_deleted WHERE media_id = $1")).bind(id).execute(w).await?;
        });
        Ok(())
    }

    /// Whether media `id` was deleted through the gateway (and the note is not pruned yet).
    pub async fn media_deleted(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query_scalar(&sql("SELECT deleted_at FROM media_deleted WHERE media_id = $1"))
                .bind(id)
                .fetch_optional(r)
                .await?
        });
        Ok(found.is_some())
    }

    /// Up to `limit` deletions noted after `(at_ms, id)` (Unix milliseconds, then id), in that order: `(id,
    /// deleted_at)`. The next page starts after the last row of this one.
    pub async fn media_deleted_after(
        &self,
        at_ms: i64,
        id: &str,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_backend!(self, |_w, r, sql, _pg| {
            sqlx::query_as(&sql("SELECT media_id, deleted_at FROM media_deleted \
                 WHERE deleted_at > $1 OR (deleted_at = $1 AND media_id > $2) \
                 ORDER BY deleted_at, media_id LIMIT $3"))
            .bind(at_ms)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(r)
            .await?
        }))
    }

    /// Forgets deletions noted before `older_than`; how many.
    pub async fn prune_media_deleted(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let cutoff = to_millis(older_than);
        Ok(on_backend!(self, |w, _r, sql, _pg| {
            sqlx::query(&sql("DELETE FROM media_deleted WHERE deleted_at < $1"))
                .bind(cutoff)
                .execute(w)
                .await?
                .rows_affected()
        }))
    }
}
