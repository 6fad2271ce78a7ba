//! Settings changed through the API, stored as one JSON document per name (`application`, …), so they
//! survive a restart and are shared by every instance on one PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

use super::{Store, StoreError, now_millis};

/// First key of the PostgreSQL advisory lock that serializes changes of the API settings ("WABS"); the second
/// is a hash of the schema, as for the event log's lock, so gateways in different schemas do not wait for
/// each other.
pub const SETTINGS_LOCK_CLASS: i32 = 0x5741_4253;

/// How long a change of the settings waits on PostgreSQL for the one in progress (on any instance).
const SETTINGS_LOCK_WAIT: Duration = Duration::from_secs(30);

/// How long releasing the lock may take before its session is closed instead.
const SETTINGS_UNLOCK_WAIT: Duration = Duration::from_secs(5);

/// Changes of the settings on SQLite: one file is one instance, so one process's lock is enough (one for the
/// process rather than for the store, as two stores opened on one file in a process are one instance too).
static SQLITE_SETTINGS: Mutex<()> = Mutex::const_new(());

/// A change of the API settings in progress: no other instance on the database changes them until this is
/// [released](Self::release) or dropped.
///
/// On PostgreSQL it is a session advisory lock on a connection of its own. Dropped without
/// [`release`](Self::release) (an error, a task cancelled mid-change), the connection is closed rather
/// than returned to the pool: the server ends the session, and the lock with it (also when the lock was
/// still being waited for, once it is granted to the closed session).
#[derive(Debug)]
pub struct SettingsLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Sqlite {
        _guard: MutexGuard<'static, ()>,
    },
    Postgres {
        /// The session holding (or asking for) the advisory lock.
        session: Option<PoolConnection<Postgres>>,
        /// One waiter per instance: the others wait here, not each on a pooled connection.
        _local: OwnedMutexGuard<()>,
    },
}

impl SettingsLock {
    /// Ends the change: the advisory lock is released and its connection goes back to the pool (closed
    /// instead if releasing fails, which ends the lock as well).
    pub async fn release(mut self) {
        if let Held::Postgres { session, .. } = &mut self.held
            && let Some(conn) = session.as_mut()
        {
            // Bounded: a server that does not answer must not hold this instance's settings changes (they
            // wait for the local mutex this lock keeps); the session is closed instead, which ends the lock.
            let unlocking =
                sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
                    .bind(SETTINGS_LOCK_CLASS)
                    .fetch_one(&mut **conn);
            match tokio::time::timeout(SETTINGS_UNLOCK_WAIT, unlocking).await {
                Ok(Ok(true)) => drop(session.take()),
                Ok(Ok(false)) => tracing::warn!("the settings lock was not held by its session; closing it"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the settings lock could not be released; closing its session")
                }
                Err(_) => tracing::warn!("releasing the settings lock took too long; closing its session"),
            }
        }
    }
}

impl Drop for SettingsLock {
    fn drop(&mut self) {
        if let Held::Postgres { session: Some(conn), .. } = &mut self.held {
            conn.close_on_drop();
        }
    }
}

impl Store {
    /// Waits until no other change of the API settings is in progress, on this instance or (PostgreSQL) any
    /// other on the database, and holds that until the returned lock is released or dropped. What the change
    /// reads of the settings must be read after this returns.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached, or the lock is not granted within 30 seconds.
    pub async fn lock_settings(&self) -> Result<SettingsLock, StoreError> {
        match self {
            Self::Sqlite(_) => {
                Ok(SettingsLock { held: Held::Sqlite { _guard: SQLITE_SETTINGS.lock().await } })
            }
            Self::Postgres(s) => {
                let locking = async {
                    let local = Arc::clone(&s.settings_changes).lock_owned().await;
                    let conn = s.pool.acquire().await?;
                    // From here on a drop (an error, a timeout, a cancellation) closes the session.
                    let mut lock =
                        SettingsLock { held: Held::Postgres { session: Some(conn), _local: local } };
                    if let Held::Postgres { session: Some(conn), .. } = &mut lock.held {
                        sqlx::query("SELECT pg_advisory_lock($1, hashtext(current_schema()))")
                            .bind(SETTINGS_LOCK_CLASS)
                            .execute(&mut **conn)
                            .await?;
                    }
                    Ok(lock)
                };
                tokio::time::timeout(SETTINGS_LOCK_WAIT, locking)
                    .await
                    .map_err(|_| StoreError::TimedOut(SETTINGS_LOCK_WAIT))?
            }
        }
    }

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
