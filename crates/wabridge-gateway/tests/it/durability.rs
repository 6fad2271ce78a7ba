//! PostgreSQL durability as applied, not only as configured: the intake commits with
//! `synchronous_commit=on` even where the database's own default is `off`.
//!
//! The store does not hand out its pool, so the setting is read where it counts: inside the intake's own
//! transactions. The test connects the gateway as a role of its own whose default is `off`, and a trigger on
//! the events table records `current_setting('synchronous_commit')` in every transaction that stores events.

use sqlx::PgPool;

use crate::intake::{now_secs, text_message};
use crate::support::backend::{Backend, TestDb, run};
use crate::support::gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_intake_commits_with_synchronous_commit_on() {
    run(Backend::Postgres, synchronous_commit_is_applied).await;
}

/// `url` with `user:password` as its credentials.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = match rest.split_once('@') {
        Some((credentials, host)) if !credentials.contains('/') => host,
        _ => rest,
    };
    format!("{scheme}://{user}:{password}@{host}")
}

async fn execute(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn synchronous_commit_is_applied(db: TestDb) {
    let TestDb::Postgres { url, schema } = &db else { unreachable!("a PostgreSQL test") };
    let admin = PgPool::connect(url).await.unwrap();
    let role = format!("{schema}_role");
    let password = uuid::Uuid::new_v4().simple().to_string();
    execute(&admin, &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'")).await;
    execute(&admin, &format!("ALTER ROLE {role} SET synchronous_commit = off")).await;
    execute(&admin, &format!("GRANT ALL ON SCHEMA {schema} TO {role}")).await;
    let role_db = TestDb::Postgres { url: as_user(url, &role, &password), schema: schema.clone() };

    let outcome = tokio::spawn(settings_of_intake_commits(role_db, admin.clone())).await;

    // The role goes whatever happened; the schema (and what the role created in it) goes with the test's.
    execute(
        &admin,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    )
    .await;
    execute(&admin, &format!("DROP OWNED BY {role}")).await;
    execute(&admin, &format!("DROP ROLE {role}")).await;
    admin.close().await;
    let (role_default, with_defaults, with_local) = match outcome {
        Ok(settings) => settings,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };

    assert_eq!(role_default, "off", "the role's own default, which the gateway must override");
    assert!(!with_defaults.is_empty(), "no intake transaction was recorded");
    assert!(
        with_defaults.iter().all(|s| s == "on"),
        "intake commits ran with synchronous_commit {with_defaults:?}, not on"
    );
    // The trigger sees the gateway's setting: configured otherwise, it records that.
    assert!(!with_local.is_empty() && with_local.iter().all(|s| s == "local"), "{with_local:?}");
}

/// Returns the role's default `synchronous_commit`, then the settings recorded in intake transactions by a
/// gateway with the default configuration, then by one configured with `local`.
async fn settings_of_intake_commits(db: TestDb, admin: PgPool) -> (String, Vec<String>, Vec<String>) {
    let TestDb::Postgres { url, schema } = &db else { unreachable!("a PostgreSQL test") };
    let plain = PgPool::connect(url).await.unwrap();
    let role_default: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&plain).await.unwrap();
    plain.close().await;

    // The first start creates the schema's tables (as the role); then the trigger goes on the events table.
    let gw = gateway::start(gateway::config(&db)).await;
    let record = [
        format!("CREATE TABLE {schema}.commit_settings (n BIGSERIAL PRIMARY KEY, setting TEXT NOT NULL)"),
        format!("GRANT INSERT ON {schema}.commit_settings TO PUBLIC"),
        format!("GRANT USAGE ON SEQUENCE {schema}.commit_settings_n_seq TO PUBLIC"),
        format!(
            "CREATE FUNCTION {schema}.record_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO {schema}.commit_settings (setting) VALUES (current_setting('synchronous_commit')); \
             RETURN NULL; END $$"
        ),
        format!(
            "CREATE TRIGGER record_commit_setting AFTER INSERT ON {schema}.events \
             FOR EACH STATEMENT EXECUTE FUNCTION {schema}.record_commit_setting()"
        ),
    ];
    for sql in &record {
        execute(&admin, sql).await;
    }
    // What the trigger recorded since the last call.
    let take_recorded = || {
        let admin = admin.clone();
        let sql = format!("DELETE FROM {schema}.commit_settings RETURNING setting");
        async move { sqlx::query_scalar::<_, String>(&sql).fetch_all(&admin).await.unwrap() }
    };

    // Concurrent webhooks: several commits, on whichever pooled connections the intake uses.
    let ts = now_secs();
    let url = gw.url();
    let posts: Vec<_> = (0..32)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let body = text_message(&format!("wamid.SC{i}"), &format!("1650555{i:04}"), ts);
                gateway::post_webhook(&reqwest::Client::new(), &url, &body).await
            })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), 200);
    }
    gw.shutdown().await.unwrap();
    let with_defaults = take_recorded().await;

    let mut config = gateway::config(&db);
    config.database.postgres_synchronous_commit = "local".to_owned();
    let gw = gateway::start(config).await;
    let body = text_message("wamid.SC_LOCAL", "16505559999", ts);
    assert_eq!(gateway::post_webhook(&reqwest::Client::new(), &gw.url(), &body).await, 200);
    gw.shutdown().await.unwrap();
    let with_local = take_recorded().await;
    (role_default, with_defaults, with_local)
}
