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
    (
        7,
        "application callback kinds",
        include_str!("../../migrations/sqlite/0007_application_callback_kinds.sql"),
    ),
    (8, "outbound retries", include_str!("../../migrations/sqlite/0008_outbound_retries.sql")),
    (9, "waba reached", include_str!("../../migrations/sqlite/0009_waba_reached.sql")),
    (10, "media deleted", include_str!("../../migrations/sqlite/0010_media_deleted.sql")),
];

pub(super) const POSTGRES: &[Embedded] = &[
    (1, "intake", include_str!("../../migrations/postgres/0001_intake.sql")),
    (2, "delivery", include_str!("../../migrations/postgres/0002_delivery.sql")),
    (3, "sending", include_str!("../../migrations/postgres/0003_sending.sql")),
    (4, "settings", include_str!("../../migrations/postgres/0004_settings.sql")),
    (5, "intake function", include_str!("../../migrations/postgres/0005_intake_function.sql")),
    (6, "intake dedupe", include_str!("../../migrations/postgres/0006_intake_dedupe.sql")),
    (
        7,
        "application callback kinds",
        include_str!("../../migrations/postgres/0007_application_callback_kinds.sql"),
    ),
    (8, "outbound retries", include_str!("../../migrations/postgres/0008_outbound_retries.sql")),
    (9, "waba reached", include_str!("../../migrations/postgres/0009_waba_reached.sql")),
    (10, "media deleted", include_str!("../../migrations/postgres/0010_media_deleted.sql")),
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
    use std::str::FromStr;

    use rusqlite::Connection;
    use sqlx::Row;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::{POSTGRES, SQLITE};

    /// The start of the SHA-256 of every migration as released. sqlx keeps a checksum of each migration it
    /// applied and refuses to start on a database whose migration has changed since, so a released
    /// migration is never edited, not even its comments: a change is a new migration. (`.gitattributes`
    /// keeps the files' line ends as committed, which the checksum also covers.)
    const RELEASED: &[(&str, i64, &str)] = &[
        ("sqlite", 1, "b6826baaba928281"),
        ("sqlite", 2, "72b6f3682ec6f05d"),
        ("sqlite", 3, "d08f8ab05e5d3aa8"),
        ("sqlite", 4, "5bfa2283306d90d3"),
        ("sqlite", 5, "4d2bb122ed5098f5"),
        ("sqlite", 6, "ac6a53410255f0b0"),
        ("sqlite", 7, "fb1bac6574f86f48"),
        ("sqlite", 8, "c154e9272dcd3f28"),
        ("sqlite", 9, "f323382fa130a19c"),
        ("sqlite", 10, "92d052dcb540da89"),
        ("postgres", 1, "8d14e9cbd6cf66e0"),
        ("postgres", 2, "a2970199de7de1de"),
        ("postgres", 3, "126b49b5300d1441"),
        ("postgres", 4, "5bfa2283306d90d3"),
        ("postgres", 5, "d8b0797224712196"),
        ("postgres", 6, "75de1521beb351d2"),
        ("postgres", 7, "fb1bac6574f86f48"),
        ("postgres", 8, "dbb50d61d244ba4c"),
        ("postgres", 9, "a81051cbd9064123"),
        ("postgres", 10, "6d774c99a2738912"),
    ];

    #[test]
    fn released_migrations_are_never_edited() {
        use sha2::Digest as _;
        for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            for &(version, _, sql) in list {
                let digest = hex::encode(sha2::Sha256::digest(sql.as_bytes()));
                match RELEASED.iter().find(|(b, v, _)| *b == backend && *v == version) {
                    Some((_, _, pinned)) => assert!(
                        digest.starts_with(pinned),
                        "{backend} migration {version} was edited after its release (sha256 {digest}): a database \
                         migrated before would refuse to start; put the change in a new migration"
                    ),
                    // A migration not released yet: pinned when it is (add its line above).
                    None => assert!(
                        version
                            > RELEASED
                                .iter()
                                .filter(|(b, _, _)| *b == backend)
                                .map(|(_, v, _)| *v)
                                .max()
                                .unwrap(),
                        "{backend} migration {version} is missing from RELEASED"
                    ),
                }
            }
        }
    }

    /// Three status events of body 1 and the timeline rows of migration 5 (one key per (wamid, status,
    /// timestamp), so `delivered` twice; `w3` without an event), the same SQL on both backends.
    const TIMELINE_AT_5: &str = "
        INSERT INTO events (dedupe_key, kind, field, waba_id, payload, raw_id, created_at) VALUES
          ('status:w1:sent', 'status', 'messages', 'x', '{}', 1, 1),
          ('status:w1:delivered', 'status', 'messages', 'x', '{}', 1, 1),
          ('status:w2:read', 'status', 'messages', 'x', '{}', 1, 1);
        INSERT INTO message_statuses (wamid, status, status_timestamp, errors, received_at) VALUES
          ('w1', 'sent', 10, NULL, 0), ('w1', 'delivered', 20, NULL, 0), ('w1', 'delivered', 21, NULL, 0),
          ('w2', 'read', 30, '[]', 0), ('w3', 'sent', 5, NULL, 0);";

    /// The timeline after migration 6 on either backend: `(id = seq of the status event, wamid, status,
    /// timestamp)`, the first row of each event that is still in the log.
    fn timeline_at_6() -> Vec<(i64, String, String, i64)> {
        vec![
            (1, "w1".to_owned(), "sent".to_owned(), 10),
            (2, "w1".to_owned(), "delivered".to_owned(), 20),
            (3, "w2".to_owned(), "read".to_owned(), 30),
        ]
    }

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
             VALUES (1, x'00', x'01', 1, 'accepted');",
        )
        .unwrap();
        conn.execute_batch(TIMELINE_AT_5).unwrap();
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
        let expected = timeline_at_6();
        assert_eq!(rows(&conn), expected);
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute("DELETE FROM events WHERE dedupe_key = 'status:w1:sent'", []).unwrap();
        assert_eq!(rows(&conn), expected[1..].to_vec());
    }

    /// Migration 7 (the same statement on both backends) gives the `application` callback made through the
    /// API, and only it, the On-Premises kinds.
    #[test]
    fn sqlite_7_limits_the_application_callback_to_onprem_kinds() {
        let conn = sqlite_at(6);
        conn.execute_batch(
            "INSERT INTO callbacks (id, url, secret, shape, max_concurrent, kinds, source, scan_seq, created_at) VALUES \
             ('application', 'http://a', 's', 'onprem', 6, '', 'api', 0, 1), \
             ('mine', 'http://b', 's', 'cloud', 6, '', 'api', 0, 1), \
             ('alerts', 'http://c', 's', 'cloud', 6, 'alert', 'config', 0, 1);",
        )
        .unwrap();
        let (_, _, seven) = SQLITE.iter().find(|(v, _, _)| *v == 7).unwrap();
        conn.execute_batch(seven).unwrap();
        let kinds = |id: &str| -> String {
            conn.query_row("SELECT kinds FROM callbacks WHERE id = ?1", [id], |r| r.get(0)).unwrap()
        };
        assert_eq!(kinds("application"), "message,status,payment,error");
        assert_eq!((kinds("mine"), kinds("alerts")), (String::new(), "alert".to_owned()));
    }

    /// PostgreSQL migration 6: the timeline is keyed by status event (as SQLite's 6); bodies stored before it
    /// stay deduplicated by their hash (they were all stored that way); bodies stored after it are deduplicated
    /// by their events unless marked; an event no longer needs a foreign key to its body (retention and intake
    /// lock rows instead).
    #[tokio::test]
    async fn postgres_6_keys_the_timeline_by_event_and_keeps_earlier_bodies_by_hash() {
        let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
            eprintln!("notice: TEST_POSTGRES_URL is not set; skipping the PostgreSQL migration test");
            return;
        };
        let schema = format!("wabridge_mig6_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
        let options = PgConnectOptions::from_str(&url).unwrap().options([("search_path", schema.as_str())]);
        let conn = PgPoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        let checks = tokio::spawn(async move {
            for (_, _, sql) in POSTGRES.iter().filter(|(v, _, _)| *v <= 5) {
                sqlx::raw_sql(sql).execute(&conn).await.unwrap();
            }
            sqlx::raw_sql(
                "INSERT INTO raw_webhooks (received_at, body, body_sha256, signature_ok, status) \
                 VALUES (1, '\\x00', '\\x01', true, 'accepted')",
            )
            .execute(&conn)
            .await
            .unwrap();
            sqlx::raw_sql(TIMELINE_AT_5).execute(&conn).await.unwrap();
            let (_, _, six) = POSTGRES.iter().find(|(v, _, _)| *v == 6).unwrap();
            sqlx::raw_sql(six).execute(&conn).await.unwrap();

            // The timeline is keyed by status event: the first row of each event that is still in the log.
            let timeline: Vec<(i64, String, String, i64)> =
                sqlx::query("SELECT id, wamid, status, status_timestamp FROM message_statuses ORDER BY id")
                    .fetch_all(&conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect();
            assert_eq!(timeline, timeline_at_6());

            let marked: bool = sqlx::query("SELECT dedupe_by_body FROM raw_webhooks WHERE id = 1")
                .fetch_one(&conn)
                .await
                .unwrap()
                .get(0);
            assert!(marked, "a body stored before migration 6 stays deduplicated by its hash");
            let insert = |by_body: bool| {
                format!(
                    "INSERT INTO raw_webhooks (received_at, body, body_sha256, signature_ok, status, dedupe_by_body) \
                     VALUES (2, '\\x00', '\\x01', true, 'accepted', {by_body})"
                )
            };
            // The same hash again: refused when deduplicated by hash, stored when deduplicated by events.
            assert!(sqlx::raw_sql(&insert(true)).execute(&conn).await.is_err());
            sqlx::raw_sql(&insert(false)).execute(&conn).await.unwrap();
            let unmarked: bool = sqlx::query("SELECT dedupe_by_body FROM raw_webhooks WHERE received_at = 2")
                .fetch_one(&conn)
                .await
                .unwrap()
                .get(0);
            assert!(!unmarked);
            sqlx::raw_sql(
                "INSERT INTO events (dedupe_key, kind, field, waba_id, payload, raw_id, created_at) \
                 VALUES ('k', 'change', 'messages', 'w', '{}', 999, 1)",
            )
            .execute(&conn)
            .await
            .unwrap();
        })
        .await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
        if let Err(e) = checks {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
