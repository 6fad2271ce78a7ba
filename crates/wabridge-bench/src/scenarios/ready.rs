//! `ready`: the time from `Gateway::start` to ready (migrations, queue recovery, template cache loaded from
//! the sandbox) on an empty database and with a backlog of queued messages, on SQLite (and PostgreSQL).

use std::time::Instant;

use serde::Serialize;
use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;
use wabridge_gateway::store::{NewQueued, create_schema, drop_schema};

use super::Machine;

/// Options of the ready scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadyArgs {
    /// Backlogs to measure with (queued messages written before the start), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0,100000")]
    pub queued: Vec<u64>,
    /// Also measure PostgreSQL at this URL (a schema of its own is created and dropped).
    #[arg(long, env = "TEST_POSTGRES_URL")]
    pub postgres_url: Option<String>,
}

/// One result line.
#[derive(Debug, Serialize)]
pub struct ReadyResult {
    pub scenario: &'static str,
    pub backend: &'static str,
    pub queued: u64,
    /// Milliseconds from `Gateway::start` to its return (ready).
    pub ready_ms: f64,
    /// Milliseconds spent writing the backlog (not part of the start).
    pub fill_ms: f64,
    pub machine: Machine,
}

/// Runs the scenario.
pub async fn ready(args: &ReadyArgs) -> anyhow::Result<Vec<ReadyResult>> {
    let mut results = Vec::new();
    for &queued in &args.queued {
        let dir = std::env::temp_dir().join(format!("wabridge-bench-ready-{}-{queued}", std::process::id()));
        let env = vec![("WABRIDGE_DATA_DIR".to_owned(), dir.display().to_string())];
        results.push(measure("sqlite", Config::load(None, env)?, queued).await?);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        if let Some(url) = &args.postgres_url {
            let schema = format!("wabridge_bench_ready_{}_{queued}", std::process::id());
            create_schema(url, &schema).await?;
            let env = vec![
                ("WABRIDGE_DATA_DIR".to_owned(), dir.display().to_string()),
                ("WABRIDGE_DATABASE__URL".to_owned(), url.clone()),
                ("WABRIDGE_DATABASE__POSTGRES_SCHEMA".to_owned(), schema.clone()),
            ];
            let result = measure("postgres", Config::load(None, env)?, queued).await;
            drop_schema(url, &schema).await?;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            results.push(result?);
        }
    }
    Ok(results)
}

async fn measure(backend: &'static str, mut config: Config, queued: u64) -> anyhow::Result<ReadyResult> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let sandbox = wabridge_gateway::outbound::embedded::start_sandbox(&mut config, &url, None).await?;
    let number = config.numbers.first().map(|n| n.id.clone()).unwrap_or_default();
    let filled = Instant::now();
    if queued > 0 {
        let store = wabridge_gateway::open_store(&config).await?;
        let mut n = 0;
        while n < queued {
            let batch: Vec<NewQueued> = (n..queued.min(n + 5000))
                .map(|i| NewQueued {
                    id: format!("bench{i:012}"),
                    phone_number_id: number.clone(),
                    recipient: format!("1631{:07}", i % 10_000_000),
                    kind: "text".into(),
                    body: r#"{"messaging_product":"whatsapp","type":"text","text":{"body":"hi"}}"#.into(),
                    callback_data: None,
                    // Far in the future: the measured start recovers them but does not send them.
                    not_before: Some(i64::MAX / 2),
                    expires_at: None,
                    idempotency_key: None,
                    request_sha256: None,
                })
                .collect();
            n += batch.len() as u64;
            store.enqueue_outbound(&batch).await?;
        }
        store.close().await;
    }
    let fill_ms = filled.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let gateway = Gateway::start(config, listener).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    gateway.shutdown().await?;
    sandbox.shutdown().await;
    Ok(ReadyResult { scenario: "ready", backend, queued, ready_ms, fill_ms, machine: Machine::here() })
}
