//! `enqueue`: single-message `POST /v1/messages` with an API key, every body unique (distinct `to` and
//! text), against the gateway on SQLite and on PostgreSQL. Each `201` means the message is durably queued.
//!
//! By default sending is paused (no access token: the gateway keeps messages queued), so the figure is the
//! API and the queue's insert path alone. With `--sending-mps N` the in-process sandbox runs as `wabridge
//! serve` wires it without a token, and every number sends at N msg/s during the run (status webhooks come
//! back to the gateway): the realistic mix.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use wabridge_gateway::Gateway;
use wabridge_gateway::auth::Scope;
use wabridge_gateway::config::{Config, NumberConfig};
use wabridge_gateway::store::{create_schema, drop_schema};
use wabridge_sandbox::SandboxConfig;

use super::{Machine, Result};
use crate::Common;
use crate::load::{self, LoadReport};

const NUMBER_ID: &str = "106540352242922";

/// Options of the enqueue scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also measure PostgreSQL at this URL (a schema of its own is created and dropped).
    #[arg(long, env = "TEST_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
    /// SQLite `synchronous` mode (full or normal).
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Send concurrently at this many messages per second (the in-process sandbox); 0: sending paused.
    #[arg(long, default_value_t = 0)]
    pub sending_mps: u32,
}

/// The `n`-th request body of connection `conn`: a text to a recipient of its own.
fn body(conn: usize, n: u64) -> String {
    // 1 + 4 digits of connection + 8 of sequence: 13 digits, unique per (conn, n) below 10^8 requests.
    let to = format!("+1{:04}{:08}", conn % 10_000, n % 100_000_000);
    format!(
        r#"{{"to":"{to}","type":"text","text":{{"body":"Hello {conn}-{n}: your order has shipped."}},"force":true}}"#
    )
}

fn factory(host: String, key: &SecretString) -> Arc<dyn load::RequestFactory> {
    let auth = format!("Bearer {}", key.expose_secret());
    Arc::new(move |conn: usize, n: u64, out: &mut Vec<u8>| {
        load::post_json(out, "/v1/messages", &host, body(conn, n).as_bytes(), &[("authorization", &auth)]);
    })
}

/// What the gateway measured during a run.
struct Figures {
    durability: String,
    queued: i64,
    sent: u64,
}

async fn run(args: &EnqueueArgs, mut config: Config) -> anyhow::Result<(LoadReport, Figures)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut sandbox = None;
    if args.sending_mps > 0 {
        let mut sb = SandboxConfig::default();
        for n in &mut sb.numbers {
            n.mps = Some(args.sending_mps);
        }
        sb.history_limit = 10_000;
        config.numbers.clear();
        let url = format!("http://{addr}");
        let started =
            wabridge_gateway::outbound::embedded::start_sandbox(&mut config, &url, Some(sb)).await?;
        for n in &mut config.numbers {
            n.level_mps = Some(args.sending_mps);
        }
        sandbox = Some(started);
    }
    let gw = Gateway::start(config, listener).await?;
    let key = gw.state().accounts.create_key("bench", &[Scope::Send]).await?;
    let plan = args.common.plan(addr);
    let f = factory(addr.to_string(), &key.key);
    let report = tokio::task::spawn_blocking(move || load::run(plan, f)).await?;
    let figures = Figures {
        durability: gw.state().store.durability().to_owned(),
        queued: gw.state().outbound.backlog(NUMBER_ID),
        sent: sandbox.as_ref().map_or(0, |s| s.control().counters().accepted),
    };
    gw.shutdown().await?;
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    Ok((report, figures))
}

fn config(env: Vec<(String, String)>) -> anyhow::Result<Config> {
    let mut config = Config::load(None, env)?;
    config.numbers = vec![NumberConfig {
        id: NUMBER_ID.to_owned(),
        waba_id: SandboxConfig::default().waba_id,
        display_phone_number: None,
        level_mps: None,
    }];
    // The run queues far more than the default backlog limit (100,000) allows.
    config.outbound.max_backlog_per_number = i64::MAX / 2;
    config.admin.password = Some(SecretString::from("bench-admin-password".to_owned()));
    Ok(config)
}

/// Runs the scenario; one result per store.
pub async fn enqueue(args: &EnqueueArgs) -> anyhow::Result<Vec<Result>> {
    let mut results = Vec::new();
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("wabridge-bench-enqueue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = config(vec![
            ("WABRIDGE_DATA_DIR".into(), dir.display().to_string()),
            ("WABRIDGE_DATABASE__SQLITE_SYNCHRONOUS".into(), args.sqlite_synchronous.clone()),
        ])?;
        let outcome = run(args, cfg).await;
        let _ = std::fs::remove_dir_all(&dir);
        let (report, figures) = outcome?;
        results.push(result("enqueue-sqlite", args, &figures, report));
    }
    if let Some(url) = &args.postgres_url {
        let schema = format!("wabridge_bench_enqueue_{}", std::process::id());
        create_schema(url, &schema).await?;
        let cfg = config(vec![
            ("WABRIDGE_DATABASE__URL".into(), url.clone()),
            ("WABRIDGE_DATABASE__POSTGRES_SCHEMA".into(), schema.clone()),
        ]);
        let outcome = match cfg {
            Ok(cfg) => run(args, cfg).await,
            Err(e) => Err(e),
        };
        drop_schema(url, &schema).await?;
        let (report, figures) = outcome?;
        results.push(result("enqueue-postgres", args, &figures, report));
    }
    Ok(results)
}

fn result(scenario: &'static str, args: &EnqueueArgs, f: &Figures, load: LoadReport) -> Result {
    let sending = if args.sending_mps > 0 {
        format!("concurrent: in-process sandbox, the number sending at {} msg/s", args.sending_mps)
    } else {
        "paused (no access token: messages stay queued)".to_owned()
    };
    Result {
        scenario,
        setup: serde_json::json!({
            "durability": f.durability,
            "request": "POST /v1/messages, API key (send scope), a text with a distinct to and body, force: true",
            "sending": sending,
            "queued_at_end": f.queued,
            "sent_during_run": f.sent,
            "connections": args.common.connections,
            "load_threads": args.common.load_threads,
            "warmup_seconds": args.common.warmup,
            "load_average_at_end": super::load_average(),
        }),
        load,
        machine: Machine::here(),
    }
}
