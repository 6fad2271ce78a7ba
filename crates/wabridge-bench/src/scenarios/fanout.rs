//! Webhook → WebSocket latency: signed webhooks POSTed at a fixed rate to the gateway (in-process, SQLite
//! in a temp dir, durable), each carrying one message, while N subscribers follow `/v1/events/ws`. The
//! latency of a delivery is from the moment its webhook was sent to the moment a subscriber read its frame:
//! the intake commit, the feed and the fan-out together.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;

use super::Machine;
use crate::Common;
use crate::load::Latencies;

const APP_SECRET: &str = "bench-app-secret";
const TOKEN: &str = "bench-api-token";
const MARK: &str = "wamid.bench.";

/// Options of the `fanout` scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Webhooks per second, paced (open loop).
    #[arg(long, default_value_t = 3300)]
    pub rate: u64,
    /// WebSocket subscribers, each receiving every event.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
}

/// The result line.
#[derive(Debug, Serialize)]
pub struct FanoutResult {
    pub scenario: &'static str,
    pub setup: serde_json::Value,
    /// Webhooks sent during the measured period.
    pub sent: u64,
    pub send_errors: u64,
    pub achieved_rate: f64,
    /// Frames received for those webhooks, over all subscribers (expected: sent × subscribers).
    pub deliveries: u64,
    pub missing: u64,
    /// Webhook sent → its 200 (durable intake), as the sender saw it.
    pub ack_p50_ms: f64,
    /// See [`Self::ack_p50_ms`].
    pub ack_p99_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub machine: Machine,
}

fn body(n: u64) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"1650555{:04}"}}],"messages":[{{"from":"1650555{:04}","id":"{MARK}{n}","timestamp":"1750263773","type":"text","text":{{"body":"hello"}}}}]}},"field":"messages"}}]}}]}}"#,
        n % 10_000,
        n % 10_000
    )
}

/// The webhook number a frame carries (found without parsing the whole JSON).
fn number_in(frame: &str) -> Option<u64> {
    let at = frame.find(MARK)? + MARK.len();
    let digits = frame[at..].bytes().take_while(u8::is_ascii_digit).count();
    frame[at..at + digits].parse().ok()
}

/// Runs the scenario.
pub async fn fanout(args: &FanoutArgs) -> anyhow::Result<FanoutResult> {
    let dir = std::env::temp_dir().join(format!("wabridge-bench-fanout-{}", std::process::id()));
    let mut config = Config { data_dir: dir.clone(), ..Config::default() };
    config.meta.app_secrets = vec![APP_SECRET.into()];
    config.api.tokens = vec![TOKEN.into()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(config, listener).await?;
    let durability = gateway.state().store.durability();
    let url = gateway.url();

    let warmup = args.common.warmup();
    let measured = args.common.duration();
    let total = (args.rate as f64 * (warmup + measured).as_secs_f64()) as u64;
    let first_measured = (args.rate as f64 * warmup.as_secs_f64()) as u64;
    // Send time of webhook n, in µs since `base` (0: not sent).
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let base = Instant::now();

    // Subscribers and sender run on a runtime of their own, like an outside client would.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.common.load_threads.max(1))
        .enable_all()
        .thread_name("clients")
        .build()?;
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let mut request = format!("{}/v1/events/ws", url.replacen("http", "ws", 1)).into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse()?);
        let (mut socket, _) = clients
            .spawn(tokio_tungstenite::connect_async_with_config(
                request,
                // As the receiver client: tungstenite zero-fills its read buffer size before every read.
                Some(
                    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                        .read_buffer_size(16 * 1024),
                ),
                false,
            ))
            .await??;
        let sent_at = sent_at.clone();
        subscribers.push(clients.spawn(async move {
            let mut latencies = Latencies::default();
            let mut received = 0_u64;
            while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(3), socket.next()).await
            {
                let Message::Text(text) = frame else { continue };
                let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
                let Some(n) = number_in(text.as_str()) else { continue };
                if n < first_measured {
                    continue;
                }
                let Some(sent) = sent_at.get(usize::try_from(n).unwrap_or(usize::MAX)) else { continue };
                let sent = sent.load(Ordering::Relaxed);
                if sent > 0 {
                    latencies.record(Duration::from_micros(now.saturating_sub(sent)));
                    received += 1;
                    if received == total - first_measured {
                        break;
                    }
                }
            }
            (latencies, received)
        }));
    }

    // The paced sender: `connections` workers, worker w sending webhooks w, w + W, w + 2W… each at its time.
    let workers = args.common.connections.max(1) as u64;
    let client = reqwest::Client::builder().pool_max_idle_per_host(workers as usize).build()?;
    let errors = Arc::new(AtomicU64::new(0));
    let rate = args.rate.max(1);
    let start = Instant::now() + Duration::from_millis(200);
    let mut senders = Vec::new();
    for w in 0..workers {
        let (client, sent_at, errors, url) = (client.clone(), sent_at.clone(), errors.clone(), url.clone());
        senders.push(clients.spawn(async move {
            let mut n = w;
            let mut acks = Latencies::default();
            while n < total {
                let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let payload = body(n);
                let signature = wabridge_types::signature::sign(APP_SECRET.as_bytes(), payload.as_bytes());
                sent_at[n as usize]
                    .store(u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
                let ok = client
                    .post(format!("{url}/webhook"))
                    .header("content-type", "application/json")
                    .header(wabridge_types::signature::SIGNATURE_HEADER, signature)
                    .body(payload)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if n >= first_measured {
                    if ok {
                        let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let sent = sent_at[n as usize].load(Ordering::Relaxed);
                        acks.record(Duration::from_micros(now.saturating_sub(sent)));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += workers;
            }
            acks
        }));
    }
    // The webhook's acknowledgement (durable intake), to tell intake latency from fan-out latency.
    let mut acks = Latencies::default();
    for s in senders {
        acks.merge(&s.await?);
    }
    let send_seconds = start.elapsed().as_secs_f64();
    let mut latencies = Latencies::default();
    let mut deliveries = 0;
    for s in subscribers {
        let (l, received) = s.await?;
        latencies.merge(&l);
        deliveries += received;
    }
    clients.shutdown_background();
    gateway.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);

    let sent = total - first_measured;
    let expected = sent * args.subscribers as u64;
    Ok(FanoutResult {
        scenario: "fanout",
        setup: serde_json::json!({
            "rate": args.rate, "subscribers": args.subscribers, "seconds": args.common.seconds,
            "warmup": args.common.warmup, "connections": args.common.connections, "durability": durability,
            "backend": "sqlite",
        }),
        sent,
        send_errors: errors.load(Ordering::Relaxed),
        achieved_rate: total as f64 / send_seconds,
        deliveries,
        missing: expected.saturating_sub(deliveries),
        ack_p50_ms: acks.quantile_ms(0.50),
        ack_p99_ms: acks.quantile_ms(0.99),
        p50_ms: latencies.quantile_ms(0.50),
        p99_ms: latencies.quantile_ms(0.99),
        p999_ms: latencies.quantile_ms(0.999),
        max_ms: latencies.max_ms(),
        machine: Machine::here(),
    })
}
