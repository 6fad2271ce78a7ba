//! `outbound`: the gateway sending a backlog to the sandbox at the numbers' levels.
//!
//! N numbers, each with a backlog queued before measuring (through the gateway's queue, by a first gateway
//! without an access token, so nothing is sent while it fills), then a second gateway on the same store
//! sends it to the sandbox. Everything is measured at the sandbox: a middleware on the sandbox's own router
//! records when each send was accepted, per number; the sandbox's counters give the limit errors (130429
//! throughput, 131056 pair limit). Per number: accepted sends per second over the measured window ÷ the
//! level, the jitter of the inter-send gaps against `1 / level`, and the most sends in any one-second window.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::Serialize;
use wabridge_gateway::Gateway;
use wabridge_gateway::config::{Config, NumberConfig};
use wabridge_gateway::store::{Enqueued, NewQueued};
use wabridge_sandbox::{Sandbox, SandboxConfig};
use wabridge_types::limits::ThroughputLevel;
use wabridge_types::send::OutboundMessage;

use super::Machine;

/// Options of the outbound scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct OutboundArgs {
    /// Seconds of measurement (per level).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of sending before measuring (lease, level read, first loads).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Business numbers sending at once.
    #[arg(long, default_value_t = 5)]
    pub numbers: usize,
    /// Levels to run, in messages per second, one after the other (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![80, 1000])]
    pub level: Vec<u32>,
    /// Deliver the sandbox's status webhooks (sent, delivered, read) to the gateway during the run.
    #[arg(long)]
    pub webhooks: bool,
    /// SQLite `synchronous` mode (full or normal).
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Sends in flight per number (the gateway's `outbound.in_flight`); default: the gateway's default.
    #[arg(long)]
    pub in_flight: Option<usize>,
    /// API calls per rolling hour of the (single) WABA, enforced by the sandbox and paced by the gateway.
    /// Meta's figure, 11,880,000, is 3,300 calls/s: five numbers at 1,000 msg/s need more than one WABA
    /// (the sandbox models one), so this lifts the quota to stand for numbers on separate WABAs.
    #[arg(long, default_value_t = 11_880_000)]
    pub waba_calls_per_hour: u64,
}

/// One result line: one level.
#[derive(Debug, Serialize)]
pub struct OutboundResult {
    pub scenario: &'static str,
    pub setup: serde_json::Value,
    pub level: u32,
    pub seconds: f64,
    pub numbers: Vec<NumberFigures>,
    /// Accepted sends per second over all numbers.
    pub aggregate_rate: f64,
    /// `numbers × level`.
    pub aggregate_target: f64,
    /// The lowest `ratio` among the numbers.
    pub min_ratio: f64,
    pub rejected_130429: u64,
    pub rejected_131056: u64,
    /// Whether every number reached ≥ 0.99 of its level with zero limit errors.
    pub meets_target: bool,
    pub sandbox_counters: serde_json::Value,
    pub machine: Machine,
}

/// What the sandbox saw of one number during the measured window.
#[derive(Debug, Serialize)]
pub struct NumberFigures {
    pub phone_number_id: String,
    pub accepted: u64,
    pub rate: f64,
    /// `rate / level`.
    pub ratio: f64,
    /// Deviation of the inter-send gaps from `1 / level`, in milliseconds.
    pub jitter_p50_ms: f64,
    pub jitter_p99_ms: f64,
    pub jitter_max_ms: f64,
    /// Most sends accepted in any one-second window of the whole run (Meta's limit: the level).
    pub max_in_1s: u64,
    /// Refused sends by HTTP status, over the whole run.
    pub refused_by_http_status: BTreeMap<u16, u64>,
    /// Messages still queued when the run ended (0 would mean the backlog, not the scheduler, set the rate).
    pub backlog_left: i64,
}

/// Accept times per number, taken by a middleware on the sandbox's router.
struct Recorder {
    epoch: Instant,
    numbers: HashMap<String, NumberLog>,
}

#[derive(Default)]
struct NumberLog {
    /// Nanoseconds since `epoch`, one per accepted send.
    accepts: Mutex<Vec<u64>>,
    refused: Mutex<BTreeMap<u16, u64>>,
    answered: AtomicU64,
}

impl Recorder {
    fn new(ids: &[String]) -> Self {
        let numbers = ids.iter().map(|id| (id.clone(), NumberLog::default())).collect();
        Self { epoch: Instant::now(), numbers }
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Records the answer to every `POST /{version}/{phone-number-id}/messages`.
async fn record(State(rec): State<Arc<Recorder>>, req: Request, next: Next) -> Response {
    let number = (req.method() == http::Method::POST)
        .then(|| {
            let mut parts = req.uri().path().trim_start_matches('/').split('/');
            let (_version, id, tail) = (parts.next(), parts.next()?, parts.next()?);
            (tail == "messages" && parts.next().is_none()).then(|| id.to_owned())
        })
        .flatten();
    let response = next.run(req).await;
    let at = Instant::now();
    if let Some(log) = number.and_then(|id| rec.numbers.get(&id)) {
        log.answered.fetch_add(1, Ordering::Relaxed);
        if response.status().is_success() {
            log.accepts.lock().unwrap_or_else(PoisonError::into_inner).push(rec.ns(at));
        } else {
            *log.refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(response.status().as_u16())
                .or_default() += 1;
        }
    }
    response
}

fn number_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("10654035224{:04}", 2922 + i)).collect()
}

/// The sandbox: `numbers` numbers enforcing `level`, the messaging-limit tier off (templates to many new
/// users), status webhooks to `webhook` if given.
fn sandbox_config(
    ids: &[String],
    level: u32,
    webhook: Option<String>,
    waba_calls_per_hour: u64,
) -> SandboxConfig {
    let numbers = ids
        .iter()
        .enumerate()
        .map(|(i, id)| wabridge_sandbox::NumberConfig {
            id: id.clone(),
            display_phone_number: format!("1555078{:04}", 3881 + i),
            verified_name: format!("Bench Business {i}"),
            level: if level >= 1000 { ThroughputLevel::High } else { ThroughputLevel::Standard },
            mps: Some(level),
            ..wabridge_sandbox::NumberConfig::default()
        })
        .collect();
    let mut config = SandboxConfig { numbers, history_limit: 10_000, ..SandboxConfig::default() };
    config.limits.messaging_limit = None;
    config.limits.waba_calls_per_hour = waba_calls_per_hour;
    config.webhooks.callback_urls = webhook.into_iter().collect();
    config
}

fn gateway_config(
    args: &OutboundArgs,
    dir: &std::path::Path,
    ids: &[String],
    level: u32,
) -> anyhow::Result<Config> {
    let mut config = Config::load(
        None,
        vec![
            ("WABRIDGE_DATA_DIR".to_owned(), dir.display().to_string()),
            ("WABRIDGE_DATABASE__SQLITE_SYNCHRONOUS".to_owned(), args.sqlite_synchronous.clone()),
        ],
    )?;
    config.numbers = ids
        .iter()
        .map(|id| NumberConfig {
            id: id.clone(),
            waba_id: SandboxConfig::default().waba_id,
            display_phone_number: None,
            level_mps: Some(level),
        })
        .collect();
    config.outbound.messaging_limit = 0;
    config.outbound.waba_calls_per_hour = args.waba_calls_per_hour;
    if let Some(n) = args.in_flight {
        config.outbound.in_flight = n;
    }
    config.outbound.max_backlog_per_number = i64::MAX / 2;
    config.admin.password = Some(SecretString::from("bench-admin-password".to_owned()));
    Ok(config)
}

/// A template message (`order_update`, unique parameters) to recipient `to`, as the queue stores it.
fn template_body(to: u64, order: u64) -> anyhow::Result<String> {
    let raw = format!(
        r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"{to}","type":"template","template":{{"name":"order_update","language":{{"code":"en_US"}},"components":[{{"type":"body","parameters":[{{"type":"text","text":"Customer {to}"}},{{"type":"text","text":"A-{order}"}},{{"type":"text","text":"May 3"}}]}},{{"type":"button","sub_type":"url","index":"0","parameters":[{{"type":"text","text":"A-{order}"}}]}}]}}}}"#
    );
    let message: OutboundMessage = serde_json::from_str(&raw)?;
    message.validate().map_err(|e| anyhow::anyhow!("the bench's template message is invalid: {e}"))?;
    Ok(serde_json::to_string(&message)?)
}

/// Queues `per_number` messages for each number through a gateway that does not send (no access token).
async fn fill_backlog(config: Config, ids: &[String], per_number: u64) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw = Gateway::start(config, listener).await?;
    let started = Instant::now();
    let outbound = gw.state().outbound.clone();
    let jobs = (0..per_number).flat_map(|i| ids.iter().enumerate().map(move |(k, id)| (i, k, id.clone())));
    let mut inserts = futures_util::stream::iter(jobs)
        .map(|(i, k, id)| {
            let outbound = outbound.clone();
            async move {
                // A distinct recipient per message of a number: the pair limit never binds.
                let to = 16_500_000_000 + (k as u64) * 1_000_000 + i;
                let body = template_body(to, i)?;
                let queued = NewQueued {
                    id: uuid_like(k, i),
                    phone_number_id: id,
                    recipient: to.to_string(),
                    kind: "template".to_owned(),
                    body,
                    callback_data: None,
                    not_before: None,
                    expires_at: None,
                    idempotency_key: None,
                    request_sha256: None,
                };
                match outbound.enqueue(queued).await? {
                    Enqueued::Inserted => Ok(()),
                    Enqueued::Existing { .. } => Err(anyhow::anyhow!("message queued twice")),
                }
            }
        })
        .buffer_unordered(512);
    while let Some(r) = inserts.next().await {
        r?;
    }
    drop(inserts);
    let secs = started.elapsed().as_secs_f64();
    gw.shutdown().await?;
    Ok(secs)
}

/// A unique message id (the gateway's are UUID v7 in simple form; any unique text works).
fn uuid_like(number: usize, i: u64) -> String {
    format!("bench{number:04}x{i:012}")
}

/// Runs every requested level; one result per level.
pub async fn outbound(args: &OutboundArgs) -> anyhow::Result<Vec<OutboundResult>> {
    let mut results = Vec::new();
    for &level in &args.level {
        results.push(run_level(args, level).await?);
    }
    Ok(results)
}

async fn run_level(args: &OutboundArgs, level: u32) -> anyhow::Result<OutboundResult> {
    anyhow::ensure!(
        level > 0 && args.numbers > 0 && args.seconds > 0,
        "level, numbers and seconds must be > 0"
    );
    let dir = std::env::temp_dir().join(format!("wabridge-bench-outbound-{}-{level}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ids = number_ids(args.numbers);
    // Enough for warm-up, measurement and a margin: the backlog must never run dry while measuring.
    let per_number = u64::from(level) * (args.warmup + args.seconds + 3) + 200;
    let fill_secs = fill_backlog(gateway_config(args, &dir, &ids, level)?, &ids, per_number).await?;

    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw_addr = gw_listener.local_addr()?;
    let webhook = args.webhooks.then(|| format!("http://{gw_addr}/webhook"));
    let sandbox = Sandbox::start(
        sandbox_config(&ids, level, webhook, args.waba_calls_per_hour),
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    // A second server on the sandbox's state, with the recorder in front: the gateway sends through it.
    let recorder = Arc::new(Recorder::new(&ids));
    let app = wabridge_sandbox::router(sandbox.state())
        .layer(axum::middleware::from_fn_with_state(recorder.clone(), record));
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let front_addr: SocketAddr = front.local_addr()?;
    let front = super::nodelay(front);
    let front_server = tokio::spawn(async move { axum::serve(front, app).await });

    let mut config = gateway_config(args, &dir, &ids, level)?;
    config.meta.access_token = Some(SecretString::from(sandbox.access_token().to_owned()));
    config.meta.graph_url = format!("http://{front_addr}");
    if let Some(secret) = sandbox.app_secret() {
        config.meta.app_secrets.push(SecretString::from(secret.to_owned()));
    }
    let load_before = super::load_average();
    let gw = Gateway::start(config, gw_listener).await?;
    let started = Instant::now();
    let from = started + Duration::from_secs(args.warmup);
    let until = from + Duration::from_secs(args.seconds);
    tokio::time::sleep_until(until.into()).await;
    // The last sends in flight are answered after `until`; they fall outside the window anyway.
    let backlogs: Vec<i64> = ids.iter().map(|id| gw.state().outbound.backlog(id)).collect();
    let counters = sandbox.control().counters();
    let metrics = &gw.state().metrics;
    let send_ms = metrics.outbound_send_seconds.mean() * 1000.0;
    let in_flight = gw.state().outbound.config().in_flight;
    gw.shutdown().await?;
    front_server.abort();
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let window = (recorder.ns(from), recorder.ns(until));
    let seconds = (until - from).as_secs_f64();
    let mut numbers = Vec::new();
    for (id, backlog_left) in ids.iter().zip(backlogs) {
        let Some(log) = recorder.numbers.get(id) else { continue };
        let mut accepts = log.accepts.lock().unwrap_or_else(PoisonError::into_inner).clone();
        accepts.sort_unstable();
        let refused = log.refused.lock().unwrap_or_else(PoisonError::into_inner).clone();
        numbers.push(figures(id, &accepts, window, seconds, level, refused, backlog_left));
    }
    let rejected = |code: i64| counters.rejected.get(&code).copied().unwrap_or(0);
    let (r429, r1056) = (rejected(130_429), rejected(131_056));
    let aggregate_rate: f64 = numbers.iter().map(|n| n.rate).sum();
    let min_ratio = numbers.iter().map(|n| n.ratio).fold(f64::INFINITY, f64::min);
    #[allow(clippy::cast_precision_loss)]
    let aggregate_target = f64::from(level) * ids.len() as f64;
    Ok(OutboundResult {
        scenario: "outbound",
        setup: serde_json::json!({
            "store": format!("sqlite (synchronous={})", args.sqlite_synchronous),
            "backlog_per_number": per_number,
            "backlog_fill_seconds": fill_secs,
            "message": "template order_update, a distinct recipient per message (pair limit never binds)",
            "levels": "sandbox enforces the level (GCRA, 100 ms burst); gateway level_mps = level",
            "waba_calls_per_hour": args.waba_calls_per_hour,
            "warmup_seconds": args.warmup,
            "in_flight_per_number": in_flight,
            "gateway_mean_send_request_ms": send_ms,
            "status_webhooks_to_gateway": args.webhooks,
            "load_average_at_start": load_before,
            "measured_at": "sandbox: accept time of each send, per number",
        }),
        level,
        seconds,
        numbers,
        aggregate_rate,
        aggregate_target,
        min_ratio,
        rejected_130429: r429,
        rejected_131056: r1056,
        meets_target: min_ratio >= 0.99 && r429 == 0 && r1056 == 0,
        sandbox_counters: serde_json::to_value(&counters)?,
        machine: Machine::here(),
    })
}

/// The figures of one number from its sorted accept times (ns since the recorder's epoch).
fn figures(
    id: &str,
    accepts: &[u64],
    (from, until): (u64, u64),
    seconds: f64,
    level: u32,
    refused: BTreeMap<u16, u64>,
    backlog_left: i64,
) -> NumberFigures {
    let inside: Vec<u64> = accepts.iter().copied().filter(|t| (from..until).contains(t)).collect();
    #[allow(clippy::cast_precision_loss)]
    let rate = inside.len() as f64 / seconds;
    let ideal_ns = 1e9 / f64::from(level);
    #[allow(clippy::cast_precision_loss)]
    let mut deviations: Vec<f64> =
        inside.windows(2).map(|w| ((w[1] - w[0]) as f64 - ideal_ns).abs() / 1e6).collect();
    deviations.sort_unstable_by(f64::total_cmp);
    // Most accepts in any one-second window: two pointers over the sorted times.
    let mut max_in_1s = 0usize;
    let mut lo = 0usize;
    for (hi, t) in accepts.iter().enumerate() {
        while accepts[lo] + 1_000_000_000 <= *t {
            lo += 1;
        }
        max_in_1s = max_in_1s.max(hi - lo + 1);
    }
    NumberFigures {
        phone_number_id: id.to_owned(),
        accepted: inside.len() as u64,
        rate,
        ratio: rate / f64::from(level),
        jitter_p50_ms: quantile(&deviations, 0.50),
        jitter_p99_ms: quantile(&deviations, 0.99),
        jitter_max_ms: deviations.last().copied().unwrap_or(0.0),
        max_in_1s: max_in_1s as u64,
        refused_by_http_status: refused,
        backlog_left,
    }
}

/// The `q` quantile of sorted `values` (0 when empty).
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_perfect_pace() {
        // 100 msg/s for 3 s, exactly every 10 ms.
        let accepts: Vec<u64> = (0..300).map(|i| i * 10_000_000).collect();
        let f = figures("n", &accepts, (1_000_000_000, 2_000_000_000), 1.0, 100, BTreeMap::new(), 5);
        assert_eq!(f.accepted, 100);
        assert!((f.ratio - 1.0).abs() < 1e-9);
        assert!(f.jitter_p99_ms < 1e-6);
        assert_eq!(f.max_in_1s, 100);
    }

    #[test]
    fn the_template_message_is_valid() {
        assert!(template_body(16_500_000_001, 7).is_ok());
    }
}
