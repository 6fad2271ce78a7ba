//! The migrations, embedded in the binary.
//!
//! `sqlx::migrate!` needs sqlx's `macros` feature (a proc-macro build of sqlx for the host, which costs
//! minutes on two cores), so the files are embedded with `include_str!` and handed to sqlx's [`Migrator`] as
//! a [`MigrationSource`]. Same layout and naming as the sqlx CLI (`<version>_<description>.sql`), so either
//! tool reads the folders. A new migration is a new file plus one line in the list of its backend.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::StoreError;

/// One migration file: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

pub(super) const SQLITE: &[Embedded] = &[
    (1, "intake", include_str!("../../migrations/sqlite/0001_intake.sql")),
    (2, "delivery", include_str!("../../migrations/sqlite/0002_delivery.sql")),
    (3, "sending", include_str!("../../migrations/sqlite/0003_sending.sql")),
    (4, "settings", include_str!("../../migrations/sqlite/0004_settings.sql")),
    (5, "raw body dedupe", include_str!("../../migrations/sqlite/0005_raw_body_dedupe.sql")),
    (6, "timeline by event", include_str!("../../migrations/sqlite/0006_timeline_by_event.sql")),
];

pub(super) const POSTGRES: &[Embedded] = &[
    (1, "intake", include_str!("../../migrations/postgres/0001_intake.sql")),
    (2, "delivery", include_str!("../../migrations/postgres/0002_delivery.sql")),
    (3, "sending", include_str!("../../migrations/postgres/0003_sending.sql")),
    (4, "settings", include_str!("../../migrations/postgres/0004_settings.sql")),
    (5, "intake function", include_str!("../../migrations/postgres/0005_intake_function.sql")),
];

#[derive(Debug)]
struct EmbeddedMigrations(&'static [Embedded]);

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The migrator for one backend's embedded migrations.
pub(super) async fn migrator(migrations: &'static [Embedded]) -> Result<Migrator, StoreError> {
    Migrator::new(EmbeddedMigrations(migrations)).await.map_err(StoreError::Migrate)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::SQLITE;

    /// The SQLite migrations up to `version`, on a database in memory (foreign keys off, as the store runs
    /// them).
    fn sqlite_at(version: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for (_, _, sql) in SQLITE.iter().filter(|(v, _, _)| *v <= version) {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    /// Migration 6 keeps each timeline row whose status event is still in the log (the first of repeats), as
    /// the row of that event, and drops the rest; the rows then go with their events.
    #[test]
    fn sqlite_6_keys_the_timeline_by_status_event() {
        let conn = sqlite_at(5);
        conn.execute_batch(
            "INSERT INTO raw_webhooks (received_at, body, body_sha256, signature_ok, status) \
             VALUES (1, x'00', x'01', 1, 'accepted');
             INSERT INTO events (dedupe_key, kind, field, waba_id, payload, raw_id, created_at) VALUES
               ('status:w1:sent', 'status', 'messages', 'x', '{}', 1, 1),
               ('status:w1:delivered', 'status', 'messages', 'x', '{}', 1, 1),
               ('status:w2:read', 'status', 'messages', 'x', '{}', 1, 1);
             INSERT INTO message_statuses (wamid, status, status_timestamp, errors, received_at) VALUES
               ('w1', 'sent', 10, NULL, 0), ('w1', 'delivered', 20, NULL, 0), ('w1', 'delivered', 21, NULL, 0),
               ('w2', 'read', 30, '[]', 0), ('w3', 'sent', 5, NULL, 0);",
        )
        .unwrap();
        let (_, _, six) = SQLITE.iter().find(|(v, _, _)| *v == 6).unwrap();
        conn.execute_batch(six).unwrap();
        let rows = |conn: &Connection| -> Vec<(i64, String, String, i64)> {
            let mut query = conn
                .prepare("SELECT id, wamid, status, status_timestamp FROM message_statuses ORDER BY id")
                .unwrap();
            query
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let expected = vec![
            (1, "w1".to_owned(), "sent".to_owned(), 10),
            (2, "w1".to_owned(), "delivered".to_owned(), 20),
            (3, "w2".to_owned(), "read".to_owned(), 30),
        ];
        assert_eq!(rows(&conn), expected);
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute("DELETE FROM events WHERE dedupe_key = 'status:w1:sent'", []).unwrap();
        assert_eq!(rows(&conn), expected[1..].to_vec());
    }
}
