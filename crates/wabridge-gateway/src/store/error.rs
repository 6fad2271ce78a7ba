//! The store's error.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the store. The source chain is kept; nothing here holds message data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite file's directory could not be created.
    #[error("cannot create the database directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or connected to.
    #[error("cannot connect to the {backend} database")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A setting is not acceptable.
    #[error("invalid store setting: {0}")]
    InvalidOption(&'static str),
    /// Applying the migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database statement failed")]
    Database(#[from] sqlx::Error),
    /// A statement on the SQLite intake connection failed.
    #[error("SQLite statement failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A thread of the store could not be started.
    #[error("cannot start a store thread")]
    Thread(#[source] std::io::Error),
    /// Flushing committed data to disk failed: the commits may not be durable, so they are not acknowledged.
    #[error("flushing the write-ahead log to disk failed")]
    Flush(#[source] std::io::Error),
    /// The database holds something this code does not expect.
    #[error("inconsistent data in the store: {0}")]
    Inconsistent(&'static str),
    /// A call to the database did not complete in time; its connection was closed (the server rolls back
    /// what it had not committed).
    #[error("the database did not answer within {0:?}; its connection was closed")]
    TimedOut(std::time::Duration),
    /// The intake writer is not running (shut down, or never started).
    #[error("the intake writer has stopped")]
    IntakeClosed,
    /// The batch holding this item could not be committed; the item was not stored.
    #[error("the intake batch could not be committed")]
    IntakeFailed(#[source] Arc<StoreError>),
}

impl StoreError {
    /// Whether trying again later may succeed (a lost connection, a busy database, a deadlock), as opposed to
    /// an error that will repeat (bad data, a missing migration).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::IntakeClosed | Self::Flush(_) | Self::TimedOut(_) => true,
            Self::Database(e) => is_transient(e),
            Self::Sqlite(e) => sqlite_code(e).is_some_and(|c| {
                use rusqlite::ErrorCode as C;
                matches!(c, C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure)
            }),
            Self::Thread(_) => false,
            Self::IntakeFailed(e) => e.is_retryable(),
            Self::CreateDir { .. } | Self::InvalidOption(_) | Self::Migrate(_) | Self::Inconsistent(_) => {
                false
            }
        }
    }

    /// Whether the transaction lost a race with another one (PostgreSQL deadlock or serialization failure,
    /// SQLite busy) and can be run again at once.
    #[must_use]
    pub(crate) fn is_conflict(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01" | "40001" | "5" | "517" | "6"))
            }
            Self::Sqlite(e) => sqlite_code(e).is_some_and(|c| {
                matches!(c, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }),
            _ => false,
        }
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            true
        }
        sqlx::Error::Database(db) => {
            // PostgreSQL: class 08 connection exceptions, 40 transaction rollbacks, 53 insufficient resources,
            // 57P01..03 shutdown. SQLite: BUSY (5, 517), LOCKED (6), FULL (13), IOERR (10).
            db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("40")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || matches!(c.as_ref(), "5" | "517" | "6" | "13" | "10")
            })
        }
        _ => false,
    }
}
