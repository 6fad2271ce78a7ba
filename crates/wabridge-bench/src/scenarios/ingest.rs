//! `ingest`: signed webhooks, every body unique, in a realistic mix — three statuses (sent, delivered,
//! read) per outbound message and one inbound message — against the gateway on SQLite and on PostgreSQL,
//! with the same load against a no-op axum handler in the same run (the HTTP ceiling).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;
use wabridge_gateway::store::{create_schema, drop_schema};
use wabridge_types::signature::{SIGNATURE_HEADER, sign};

use super::{Machine, Result};
use crate::Common;
use crate::load::{self, LoadReport};

const APP_SECRET: &str = "bench-app-secret";
const WABA: &str = "102290129340398";
const NUMBER_ID: &str = "106540352242922";

/// Options of the ingest scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also measure PostgreSQL at this URL (a schema of its own is created and dropped).
    #[arg(long, env = "TEST_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Skip the no-op ceiling.
    #[arg(long)]
    pub no_ceiling: bool,
    /// SQLite `synchronous` mode (full or normal).
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// PostgreSQL `synchronous_commit` (on, off, ...): `off` shows what waiting for the flush costs.
    #[arg(long, default_value = "on")]
    pub postgres_synchronous_commit: String,
}

/// The `n`-th body of connection `conn`: statuses of outbound message `n / 4`, then an inbound message.
fn body(conn: usize, n: u64, ts: u64) -> String {
    let msg = n / 4;
    let user = 16_505_550_000 + (conn as u64 * 7919 + msg) % 10_000;
    let meta = format!(
        r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER_ID}"}}"#
    );
    let contacts = format!(
        r#""contacts":[{{"profile":{{"name":"Bench User"}},"wa_id":"{user}","user_id":"US.{user}"}}]"#
    );
    let value = match n % 4 {
        3 => format!(
            r#"{{{meta},{contacts},"messages":[{{"from":"{user}","from_user_id":"US.{user}","id":"wamid.IN{conn}X{msg}","timestamp":"{ts}","type":"text","text":{{"body":"Hello, is my order {msg} on its way?"}}}}]}}"#
        ),
        k => {
            let status = ["sent", "delivered", "read"][usize::try_from(k).unwrap_or(0)];
            format!(
                r#"{{{meta},{contacts},"statuses":[{{"id":"wamid.OUT{conn}X{msg}","status":"{status}","timestamp":"{ts}","recipient_id":"{user}","recipient_user_id":"US.{user}","pricing":{{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}}}]}}"#
            )
        }
    };
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{WABA}","changes":[{{"value":{value},"field":"messages"}}]}}]}}"#
    )
}

fn factory(host: String, path: &'static str) -> Arc<dyn load::RequestFactory> {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Arc::new(move |conn: usize, n: u64, out: &mut Vec<u8>| {
        let b = body(conn, n, ts);
        let sig = sign(APP_SECRET.as_bytes(), b.as_bytes());
        load::post_json(out, path, &host, b.as_bytes(), &[(SIGNATURE_HEADER, &sig)]);
    })
}

async fn drive(
    common: &Common,
    addr: std::net::SocketAddr,
    path: &'static str,
) -> anyhow::Result<LoadReport> {
    let plan = common.plan(addr);
    let f = factory(addr.to_string(), path);
    Ok(tokio::task::spawn_blocking(move || load::run(plan, f)).await?)
}

/// What the gateway itself measured during a run.
struct GatewayFigures {
    durability: String,
    last_seq: i64,
    commits: u64,
    mean_batch: f64,
    mean_commit_ms: f64,
    mean_intake_ms: f64,
}

async fn gateway_run(common: &Common, config: Config) -> anyhow::Result<(LoadReport, GatewayFigures)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw = Gateway::start(config, listener).await?;
    let report = drive(common, gw.addr(), "/webhook").await?;
    let m = &gw.state().metrics;
    let figures = GatewayFigures {
        durability: gw.state().store.durability().to_owned(),
        last_seq: gw.state().store.max_seq().await?,
        commits: m.commit_batch_size.count(),
        mean_batch: m.commit_batch_size.mean(),
        mean_commit_ms: m.commit_seconds.mean() * 1000.0,
        mean_intake_ms: m.intake_seconds.mean() * 1000.0,
    };
    gw.shutdown().await?;
    Ok((report, figures))
}

/// The gateway's configuration: any `WABRIDGE_*` variable of the bench's own environment (to measure another
/// setting, e.g. `WABRIDGE_INTAKE__PG_COMMITTERS=4`), then the scenario's own settings, which win — so that a
/// `WABRIDGE_DATABASE__URL` exported in the shell for a real gateway never sends the benchmark's fake
/// webhooks into that database. Where the store is and which app secret signs are the scenario's alone.
fn config(env: Vec<(String, String)>) -> anyhow::Result<Config> {
    let scenario_only = |k: &str| {
        matches!(k, "WABRIDGE_DATABASE__URL" | "WABRIDGE_DATABASE__POSTGRES_SCHEMA" | "WABRIDGE_DATA_DIR")
            || k.starts_with("WABRIDGE_META__")
    };
    let mut all: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| k.starts_with("WABRIDGE_") && !scenario_only(k)).collect();
    all.push(("WABRIDGE_META__APP_SECRETS".to_owned(), format!("[\"{APP_SECRET}\"]")));
    all.extend(env);
    Ok(Config::load(None, all)?)
}

/// Runs the scenario; one result per target.
pub async fn ingest(args: &IngestArgs) -> anyhow::Result<Vec<Result>> {
    let mut results = Vec::new();
    let mut ceiling = None;
    if !args.no_ceiling {
        let report = super::noop::serve_and_load(&args.common, factory).await?;
        ceiling = Some(report.rps);
        results.push(result(
            "ingest-noop-ceiling",
            serde_json::json!({"handler": "no-op axum"}),
            report,
            &args.common,
        ));
    }
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("wabridge-bench-{}", std::process::id()));
        let cfg = config(vec![
            ("WABRIDGE_DATA_DIR".into(), dir.display().to_string()),
            ("WABRIDGE_DATABASE__SQLITE_SYNCHRONOUS".into(), args.sqlite_synchronous.clone()),
        ])?;
        let (report, figures) = gateway_run(&args.common, cfg).await?;
        let _ = std::fs::remove_dir_all(&dir);
        let setup = setup(&figures, &report, ceiling);
        results.push(result("ingest-sqlite", setup, report, &args.common));
    }
    if let Some(url) = &args.postgres_url {
        let schema = format!("wabridge_bench_{}", std::process::id());
        create_schema(url, &schema).await?;
        let cfg = config(vec![
            ("WABRIDGE_DATABASE__URL".into(), url.clone()),
            ("WABRIDGE_DATABASE__POSTGRES_SCHEMA".into(), schema.clone()),
            (
                "WABRIDGE_DATABASE__POSTGRES_SYNCHRONOUS_COMMIT".into(),
                args.postgres_synchronous_commit.clone(),
            ),
        ])?;
        let run = gateway_run(&args.common, cfg).await;
        drop_schema(url, &schema).await?;
        let (report, figures) = run?;
        let setup = setup(&figures, &report, ceiling);
        results.push(result("ingest-postgres", setup, report, &args.common));
    }
    Ok(results)
}

fn setup(f: &GatewayFigures, report: &LoadReport, ceiling: Option<f64>) -> serde_json::Value {
    serde_json::json!({
        "durability": f.durability,
        "mix": "3 statuses per outbound message + 1 inbound message, every body unique and signed",
        "last_seq": f.last_seq,
        "commits": f.commits,
        "mean_batch": f.mean_batch,
        "mean_commit_ms": f.mean_commit_ms,
        "mean_intake_ms": f.mean_intake_ms,
        "ratio_to_ceiling": ceiling.map(|c| if c > 0.0 { report.rps / c } else { 0.0 }),
    })
}

fn result(scenario: &'static str, setup: serde_json::Value, load: LoadReport, common: &Common) -> Result {
    let mut setup = setup;
    if let Some(obj) = setup.as_object_mut() {
        obj.insert("connections".into(), common.connections.into());
        obj.insert("load_threads".into(), common.load_threads.into());
    }
    Result { scenario, setup, load, machine: Machine::here() }
}
