//! `wabridge migrate` creates the store's schema and exits 0; run again, it changes nothing and exits 0. On
//! SQLite in an empty directory with no configuration at all (`./data/wabridge.db`), and on a fresh PostgreSQL
//! schema (`database.url`, `database.postgres_schema`).
//!
//! This crate has no SQL client of its own, so the schema is checked through the store's queries on a store
//! opened without migrating: they fail on a database without the schema (checked first), and one of them reads
//! the column the last migration added.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wabridge_gateway::store::{
    EventFilter, IntakeBatchItem, NewEvent, NewRawWebhook, PgOptions, SqliteOptions, Store, StoreError,
    create_schema, drop_schema,
};

const NUMBER: &str = "106540352242922";

/// Runs `wabridge migrate` in `dir` with nothing from the environment but `PATH` and `env`.
fn migrate(dir: &Path, env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wabridge"))
        .arg("migrate")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn assert_migrated(output: &Output, backend: &str, run: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{run} `wabridge migrate`: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(stdout.contains(&format!("migrations applied: {backend}")), "{run}: {stdout}");
}

/// A fresh, empty directory under the temp dir.
fn empty_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!("wabridge-{name}-{}-{nanos}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Queries on the tables of the intake, the contacts and the outbound queue, one of them reading the column
/// the last migration (0008) added (`retries`, read when claiming).
async fn use_schema(store: &Store) -> Result<(), StoreError> {
    store.max_seq().await?;
    store.events_after(0, &EventFilter::default(), 10).await?;
    store.rejected_webhooks(10).await?;
    store.contact_last_inbound(NUMBER, "16505551234").await?;
    store.outbound_message("no-such-message").await?;
    store.outbound_backlogs().await?;
    store.claim_queued(NUMBER, "migrate-test", 10).await?;
    Ok(())
}

/// Stores one webhook with one event, as the intake does.
async fn store_one_event(store: &Store) {
    let event = NewEvent {
        dedupe_key: "msg:wamid.MIGRATE".to_owned(),
        kind: "message".to_owned(),
        field: "messages".to_owned(),
        waba_id: "102290129340398".to_owned(),
        phone_number_id: Some(NUMBER.to_owned()),
        contact: Some("16505551234".to_owned()),
        payload: r#"{"id":"wamid.MIGRATE"}"#.to_owned(),
    };
    let item = IntakeBatchItem {
        raw: NewRawWebhook::accepted(r#"{"object":"whatsapp_business_account"}"#, true),
        events: vec![event],
        inbound: Vec::new(),
        statuses: Vec::new(),
    };
    store.commit_intake(&[item]).await.unwrap();
}

/// Migrates twice with `env` in `dir`, checking the schema after each run (on a store `open` opens without
/// migrating) and that the second run kept what was stored in between. `unmigrated` is a store without the
/// schema, on which the check must fail.
async fn migrate_twice<F, Fut>(dir: &Path, env: &[(&str, String)], backend: &str, unmigrated: Store, open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    assert!(use_schema(&unmigrated).await.is_err(), "the schema check passes without migrations");
    unmigrated.close().await;

    assert_migrated(&migrate(dir, env), backend, "the first");
    let store = open().await;
    use_schema(&store).await.unwrap();
    store_one_event(&store).await;
    store.close().await;

    assert_migrated(&migrate(dir, env), backend, "the second");
    let store = open().await;
    use_schema(&store).await.unwrap();
    let events = store.events_after(0, &EventFilter::default(), 10).await.unwrap();
    assert_eq!(events.len(), 1, "what was stored before the second run is kept");
    assert_eq!(events[0].dedupe_key, "msg:wamid.MIGRATE");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_sqlite_schema_once() {
    let dir = empty_dir("migrate-sqlite");
    // The check that must fail runs on a database elsewhere: `wabridge migrate` starts in an empty directory.
    let elsewhere = empty_dir("migrate-sqlite-unmigrated");
    let unmigrated =
        Store::open_sqlite(elsewhere.join("wabridge.db"), SqliteOptions::default()).await.unwrap();
    let db = dir.join("data").join("wabridge.db");
    let open = || {
        assert!(db.exists(), "`wabridge migrate` did not create {}", db.display());
        let db = db.clone();
        async move { Store::open_sqlite(db, SqliteOptions::default()).await.unwrap() }
    };
    migrate_twice(&dir, &[], "sqlite", unmigrated, open).await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_postgres_schema_once() {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("notice: TEST_POSTGRES_URL is not set; skipping the PostgreSQL migrate test");
        return;
    };
    let dir = empty_dir("migrate-postgres");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("wabridge_migrate_{}_{nanos}", std::process::id());
    create_schema(&url, &schema).await.unwrap();
    let test = {
        let (dir, schema, url) = (dir.clone(), schema.clone(), url.clone());
        async move {
            let env = [
                ("WABRIDGE_DATABASE__URL", url.clone()),
                ("WABRIDGE_DATABASE__POSTGRES_SCHEMA", schema.clone()),
            ];
            let open = || {
                let options = PgOptions { search_path: Some(schema.clone()), ..PgOptions::default() };
                let url = url.clone();
                async move { Store::connect_postgres(&url, options).await.unwrap() }
            };
            migrate_twice(&dir, &env, "postgres", open().await, open).await;
        }
    };
    // The schema goes whether the test passed or not.
    let outcome = tokio::spawn(test).await;
    drop_schema(&url, &schema).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
