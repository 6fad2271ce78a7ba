//! Settings changed through the API, stored as one JSON document per name (`application`, …), so they
//! survive a restart and are shared by every instance on one PostgreSQL database.

use super::{Store, StoreError, now_millis};

impl Store {
    /// The stored JSON document `name`, if it was ever set.
    pub async fn api_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(match self {
            Self::Sqlite(s) => {
                sqlx::query_scalar("SELECT value FROM api_settings WHERE name = ?1")
                    .bind(name)
                    .fetch_optional(&s.writer)
                    .await?
            }
            Self::Postgres(s) => {
                sqlx::query_scalar("SELECT value FROM api_settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&s.pool)
                    .await?
            }
        })
    }

    /// Stores `value` (JSON) as setting `name`, replacing what was there.
    pub async fn set_api_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let now = now_millis();
        match self {
            Self::Sqlite(s) => {
                sqlx::query(
                    "INSERT INTO api_settings (name, value, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(&s.writer)
                .await?;
            }
            Self::Postgres(s) => {
                sqlx::query(
                    "INSERT INTO api_settings (name, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(&s.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Removes setting `name` (back to the configured defaults).
    pub async fn delete_api_setting(&self, name: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => {
                sqlx::query("DELETE FROM api_settings WHERE name = ?1").bind(name).execute(&s.writer).await?;
            }
            Self::Postgres(s) => {
                sqlx::query("DELETE FROM api_settings WHERE name = $1").bind(name).execute(&s.pool).await?;
            }
        }
        Ok(())
    }
}

/// Raises the integer setting `name` to `value` on SQLite: it never goes down, whoever writes it (retention
/// passes of several instances may overlap).
pub(super) async fn raise_sqlite(
    writer: &sqlx::SqlitePool,
    name: &str,
    value: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_settings (name, value, updated_at) VALUES (?1, CAST(?2 AS TEXT), ?3) \
         ON CONFLICT (name) DO UPDATE SET value = CAST(max(CAST(api_settings.value AS INTEGER), \
         CAST(excluded.value AS INTEGER)) AS TEXT), updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now_millis())
    .execute(writer)
    .await?;
    Ok(())
}

/// [`raise_sqlite`] on PostgreSQL.
pub(super) async fn raise_pg(pool: &sqlx::PgPool, name: &str, value: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_settings (name, value, updated_at) VALUES ($1, $2::text, $3) \
         ON CONFLICT (name) DO UPDATE SET value = GREATEST(api_settings.value::bigint, \
         excluded.value::bigint)::text, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now_millis())
    .execute(pool)
    .await?;
    Ok(())
}
