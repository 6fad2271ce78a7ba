//! The users each WABA reached outside their 24-hour window (`waba_reached`): what the messaging-limit tier
//! counts, kept so that an instance taking a WABA's sending lease starts from them. Rows are written by the
//! schedulers' state changes ([`super::OutboundOp::Reached`]); this reads them and drops the expired ones.

use sqlx::Row;

use crate::store::{Store, StoreError};

impl Store {
    /// `(user, reached at, Unix ms)` of the users `waba` reached since `since` (Unix ms), after deleting the
    /// WABA's rows older than that. Bounded by the primary key's prefix: at most the tier's size of rows.
    pub async fn waba_reached(&self, waba: &str, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.prune_waba_reached(waba, since).await?;
        let rows: Vec<(String, i64)> = match self {
            Self::Sqlite(s) => {
                sqlx::query("SELECT recipient, reached_at FROM waba_reached WHERE waba_id = ?1")
                    .bind(waba)
                    .fetch_all(&s.writer)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("recipient")?, row.try_get("reached_at")?)))
                    .collect::<Result<_, sqlx::Error>>()?
            }
            Self::Postgres(s) => {
                sqlx::query("SELECT recipient, reached_at FROM waba_reached WHERE waba_id = $1")
                    .bind(waba)
                    .fetch_all(&s.pool)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("recipient")?, row.try_get("reached_at")?)))
                    .collect::<Result<_, sqlx::Error>>()?
            }
        };
        Ok(rows.into_iter().filter(|(_, at)| *at >= since).collect())
    }

    /// Deletes `waba`'s rows older than `before` (Unix ms): users no longer counted by the tier.
    pub async fn prune_waba_reached(&self, waba: &str, before: i64) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => sqlx::query("DELETE FROM waba_reached WHERE waba_id = ?1 AND reached_at < ?2")
                .bind(waba)
                .bind(before)
                .execute(&s.writer)
                .await?
                .rows_affected(),
            Self::Postgres(s) => {
                sqlx::query("DELETE FROM waba_reached WHERE waba_id = $1 AND reached_at < $2")
                    .bind(waba)
                    .bind(before)
                    .execute(&s.pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(())
    }
}
