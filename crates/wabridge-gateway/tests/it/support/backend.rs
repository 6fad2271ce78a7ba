//! Every store test runs on SQLite and on PostgreSQL.
//!
//! [`each_backend!`] turns `async fn name(db: TestDb)` into the tests `name::sqlite` and `name::postgres`.
//! SQLite works in a fresh directory under the system's temp dir; PostgreSQL in a fresh schema of the
//! database named by `TEST_POSTGRES_URL` (skipped with a notice when the variable is not set). Both are
//! removed when the test ends, also when it fails.

use std::future::Future;
use std::path::PathBuf;

use wabridge_gateway::store::{PgOptions, SqliteOptions, Store};

/// Where PostgreSQL tests run; deliberately outside the `WABRIDGE_` configuration prefix.
pub const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of one test's own: open it (again) as often as the test likes.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite { dir: PathBuf },
    Postgres { url: String, schema: String },
}

impl TestDb {
    /// A fresh, empty database; `None` when the backend is not available here.
    async fn create(backend: Backend) -> Option<Self> {
        let name = format!("wabridge_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(name);
                Some(Self::Sqlite { dir })
            }
            Backend::Postgres => {
                let url = std::env::var(POSTGRES_URL_VAR).ok()?;
                let admin = sqlx::PgPool::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but connecting failed: {e}"));
                sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&admin).await.unwrap();
                admin.close().await;
                Some(Self::Postgres { url, schema: name })
            }
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite { .. } => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Opens the store with default options and applies the migrations.
    pub async fn open(&self) -> Store {
        self.open_with(10).await
    }

    /// Opens the store (PostgreSQL: a pool of `connections`) and applies the migrations.
    pub async fn open_with(&self, connections: u32) -> Store {
        let store = match self {
            Self::Sqlite { dir } => {
                Store::open_sqlite(dir.join("wabridge.db"), SqliteOptions::default()).await
            }
            Self::Postgres { url, schema } => {
                let options = PgOptions {
                    max_connections: connections,
                    search_path: Some(schema.clone()),
                    ..PgOptions::default()
                };
                Store::connect_postgres(url, options).await
            }
        }
        .unwrap();
        store.migrate().await.unwrap();
        store
    }

    async fn remove(&self) {
        match self {
            Self::Sqlite { dir } => {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
            Self::Postgres { url, schema } => {
                let admin = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
                admin.close().await;
                let _ = tokio::fs::remove_dir_all(std::env::temp_dir().join(schema)).await;
            }
        }
    }
}

/// Runs `test` on a fresh database of `backend`, then removes the database, whether the test passed or not.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(backend).await else {
        eprintln!("notice: {POSTGRES_URL_VAR} is not set; skipping the PostgreSQL half of this test");
        return;
    };
    let outcome = tokio::spawn(test(db.clone())).await;
    db.remove().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task did not finish: {e}"),
        }
    }
}

/// `each_backend!(a, b)` makes the tests `a::sqlite`, `a::postgres`, `b::sqlite`, `b::postgres` from the
/// functions `async fn a(db: TestDb)` and `async fn b(db: TestDb)` of the calling module.
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::support::backend::{Backend, run};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, super::$name).await;
            }
        }
    )*};
}

pub(crate) use each_backend;
