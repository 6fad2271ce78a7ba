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
