//! `wabridge sandbox`: run the sandbox from the command line. Every option can also be given as a
//! `WABRIDGE_SANDBOX_*` environment variable; a JSON configuration file (the serialized
//! [`SandboxConfig`]) sets everything else, and options given here override it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use wabridge_types::limits::ThroughputLevel;

use crate::Sandbox;
use crate::chaos::{FaultInjection, FaultScope};
use crate::config::{AutoReply, NumberConfig, SandboxConfig, WebhookShape};
use crate::error::SandboxError;

/// Options of `wabridge sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, env = "WABRIDGE_SANDBOX_LISTEN", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// JSON configuration file (every field of the sandbox's configuration; durations in ms). Options
    /// below override it.
    #[arg(long, env = "WABRIDGE_SANDBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Accepted access token (repeat or separate with commas). Default: sandbox-token.
    #[arg(long = "token", env = "WABRIDGE_SANDBOX_TOKENS", value_delimiter = ',')]
    pub tokens: Vec<String>,
    /// App secret: signs webhooks (X-Hub-Signature-256) and checks appsecret_proof. Default: sandbox-secret.
    #[arg(long, env = "WABRIDGE_SANDBOX_APP_SECRET")]
    pub app_secret: Option<String>,
    /// Refuse Graph calls without an appsecret_proof (code 100); a wrong proof is refused either way.
    #[arg(long, env = "WABRIDGE_SANDBOX_REQUIRE_APPSECRET_PROOF")]
    pub require_appsecret_proof: bool,
    /// Bearer token required by the control API under /_sandbox (open when unset).
    #[arg(long, env = "WABRIDGE_SANDBOX_CONTROL_TOKEN")]
    pub control_token: Option<String>,
    /// URL clients reach the sandbox at, for media URLs and paging links (default: http://LISTEN).
    #[arg(long, env = "WABRIDGE_SANDBOX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The WABA id.
    #[arg(long, env = "WABRIDGE_SANDBOX_WABA_ID")]
    pub waba_id: Option<String>,
    /// Business numbers as ID:DIGITS[:LEVEL] where LEVEL is STANDARD, HIGH or a number of messages per
    /// second (repeat or separate with commas). Default: one STANDARD number.
    #[arg(long = "number", env = "WABRIDGE_SANDBOX_NUMBERS", value_delimiter = ',')]
    pub numbers: Vec<String>,
    /// Enforce this many messages per second on every number (e.g. 100000 to lift the limit).
    #[arg(long, env = "WABRIDGE_SANDBOX_MPS")]
    pub mps: Option<u32>,
    /// Webhook callback URL (repeat or separate with commas).
    #[arg(long = "callback-url", env = "WABRIDGE_SANDBOX_CALLBACK_URLS", value_delimiter = ',')]
    pub callback_urls: Vec<String>,
    /// hub.verify_token sent in the GET verification handshake.
    #[arg(long, env = "WABRIDGE_SANDBOX_VERIFY_TOKEN")]
    pub verify_token: Option<String>,
    /// Perform the verification handshake with each callback URL at start (fail if one refuses).
    #[arg(long, env = "WABRIDGE_SANDBOX_VERIFY_CALLBACKS")]
    pub verify_callbacks: bool,
    /// Webhook payload shape.
    #[arg(long, env = "WABRIDGE_SANDBOX_WEBHOOK_SHAPE", value_enum)]
    pub webhook_shape: Option<ShapeArg>,
    /// Milliseconds from acceptance to the `sent` status.
    #[arg(long, env = "WABRIDGE_SANDBOX_SENT_DELAY_MS")]
    pub sent_delay_ms: Option<u64>,
    /// Milliseconds from acceptance to `delivered`.
    #[arg(long, env = "WABRIDGE_SANDBOX_DELIVERED_DELAY_MS")]
    pub delivered_delay_ms: Option<u64>,
    /// Milliseconds from acceptance to `read`.
    #[arg(long, env = "WABRIDGE_SANDBOX_READ_DELAY_MS")]
    pub read_delay_ms: Option<u64>,
    /// Probability (0–1) that a delivered message is read.
    #[arg(long, env = "WABRIDGE_SANDBOX_READ_PROBABILITY")]
    pub read_probability: Option<f64>,
    /// Milliseconds a new template stays PENDING before it is approved or rejected.
    #[arg(long, env = "WABRIDGE_SANDBOX_TEMPLATE_REVIEW_MS")]
    pub template_review_ms: Option<u64>,
    /// Automatic replies of simulated users to texts they read.
    #[arg(long, env = "WABRIDGE_SANDBOX_AUTO_REPLY", value_enum)]
    pub auto_reply: Option<AutoReplyArg>,
    /// Recipients that are not on WhatsApp (messages to them fail with 131026).
    #[arg(long, env = "WABRIDGE_SANDBOX_UNREACHABLE", value_delimiter = ',')]
    pub unreachable: Vec<String>,
    /// Pair limit: milliseconds between messages to the same user (default 6000).
    #[arg(long, env = "WABRIDGE_SANDBOX_PAIR_INTERVAL_MS")]
    pub pair_interval_ms: Option<u64>,
    /// Pair limit: burst of messages to the same user (default 45).
    #[arg(long, env = "WABRIDGE_SANDBOX_PAIR_BURST")]
    pub pair_burst: Option<u32>,
    /// API calls per WABA per hour (default 11880000).
    #[arg(long, env = "WABRIDGE_SANDBOX_WABA_CALLS_PER_HOUR")]
    pub waba_calls_per_hour: Option<u64>,
    /// Unique users reachable outside the window per 24 h (default 250; 0: unlimited).
    #[arg(long, env = "WABRIDGE_SANDBOX_MESSAGING_LIMIT")]
    pub messaging_limit: Option<u32>,
    /// Seed of chaos decisions and ids (deterministic runs).
    #[arg(long, env = "WABRIDGE_SANDBOX_SEED")]
    pub seed: Option<u64>,
    /// Chaos: probability (0–1) that a webhook is delivered twice.
    #[arg(long, env = "WABRIDGE_SANDBOX_CHAOS_DUPLICATE")]
    pub chaos_duplicate: Option<f64>,
    /// Chaos: probability (0–1) that a webhook event is held back so later ones overtake it.
    #[arg(long, env = "WABRIDGE_SANDBOX_CHAOS_REORDER")]
    pub chaos_reorder: Option<f64>,
    /// Chaos: probability (0–1) that a Graph call is answered with HTTP 500 (code 131000).
    #[arg(long, env = "WABRIDGE_SANDBOX_CHAOS_5XX")]
    pub chaos_5xx: Option<f64>,
    /// Chaos: milliseconds added to every Graph call.
    #[arg(long, env = "WABRIDGE_SANDBOX_CHAOS_LATENCY_MS")]
    pub chaos_latency_ms: Option<u64>,
    /// Chaos: answer this error code to sends (see --fault-next-n, --fault-every-nth, --fault-all-calls).
    #[arg(long, env = "WABRIDGE_SANDBOX_FAULT_CODE")]
    pub fault_code: Option<i64>,
    /// Chaos: only for the next N calls.
    #[arg(long, env = "WABRIDGE_SANDBOX_FAULT_NEXT_N")]
    pub fault_next_n: Option<u64>,
    /// Chaos: only every Nth call.
    #[arg(long, env = "WABRIDGE_SANDBOX_FAULT_EVERY_NTH")]
    pub fault_every_nth: Option<u64>,
    /// Chaos: the fault applies to every Graph call, not only sends.
    #[arg(long, env = "WABRIDGE_SANDBOX_FAULT_ALL_CALLS")]
    pub fault_all_calls: bool,
}

/// `--webhook-shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShapeArg {
    /// Business-scoped user ids, contacts in statuses, PMP pricing (cloud-api.md §8).
    Current,
    /// Before business-scoped ids.
    Legacy,
}

/// `--auto-reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoReplyArg {
    /// No automatic replies.
    Off,
    /// Users answer each text with "echo: <text>".
    Echo,
}

impl SandboxArgs {
    /// The configuration these options describe.
    ///
    /// # Errors
    /// When the configuration file cannot be read or a number is malformed.
    pub fn to_config(&self) -> Result<SandboxConfig, SandboxError> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                serde_json::from_str(&text)
                    .map_err(|e| SandboxError::Config(format!("{}: {e}", path.display())))?
            }
            None => SandboxConfig::default(),
        };
        if !self.tokens.is_empty() {
            c.access_tokens.clone_from(&self.tokens);
        }
        set(&mut c.app_secret, self.app_secret.clone().map(Some));
        c.require_appsecret_proof |= self.require_appsecret_proof;
        set(&mut c.control_token, self.control_token.clone().map(Some));
        set(&mut c.public_url, self.public_url.clone().map(Some));
        set(&mut c.waba_id, self.waba_id.clone());
        if !self.numbers.is_empty() {
            c.numbers = self.numbers.iter().map(|n| parse_number(n)).collect::<Result<_, _>>()?;
        }
        if let Some(mps) = self.mps {
            for n in &mut c.numbers {
                n.mps = Some(mps);
            }
        }
        c.webhooks.callback_urls.extend(self.callback_urls.iter().cloned());
        set(&mut c.webhooks.verify_token, self.verify_token.clone());
        c.webhooks.verify_at_start |= self.verify_callbacks;
        if let Some(shape) = self.webhook_shape {
            c.webhooks.shape =
                if shape == ShapeArg::Legacy { WebhookShape::Legacy } else { WebhookShape::Current };
        }
        set(&mut c.statuses.sent_delay, self.sent_delay_ms.map(Duration::from_millis));
        set(&mut c.statuses.delivered_delay, self.delivered_delay_ms.map(Duration::from_millis));
        set(&mut c.statuses.read_delay, self.read_delay_ms.map(Duration::from_millis));
        set(&mut c.statuses.read_probability, self.read_probability);
        set(&mut c.templates.review_delay, self.template_review_ms.map(Duration::from_millis));
        if let Some(reply) = self.auto_reply {
            c.users.auto_reply = if reply == AutoReplyArg::Echo { AutoReply::Echo } else { AutoReply::Off };
        }
        c.users.unreachable.extend(self.unreachable.iter().cloned());
        set(&mut c.limits.pair_interval, self.pair_interval_ms.map(Duration::from_millis));
        set(&mut c.limits.pair_burst, self.pair_burst);
        set(&mut c.limits.waba_calls_per_hour, self.waba_calls_per_hour);
        if let Some(limit) = self.messaging_limit {
            c.limits.messaging_limit = (limit > 0).then_some(limit);
        }
        set(&mut c.chaos.seed, self.seed);
        set(&mut c.chaos.duplicate_probability, self.chaos_duplicate);
        set(&mut c.chaos.reorder_probability, self.chaos_reorder);
        set(&mut c.chaos.error_5xx_probability, self.chaos_5xx);
        set(&mut c.chaos.latency, self.chaos_latency_ms.map(Duration::from_millis));
        if let Some(code) = self.fault_code {
            c.chaos.fault = Some(FaultInjection {
                code,
                next_n: self.fault_next_n,
                every_nth: self.fault_every_nth,
                scope: if self.fault_all_calls { FaultScope::All } else { FaultScope::Messages },
            });
        }
        Ok(c)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// `ID:DIGITS[:LEVEL]`.
fn parse_number(spec: &str) -> Result<NumberConfig, SandboxError> {
    let mut parts = spec.trim().split(':');
    let (Some(id), Some(display)) = (parts.next(), parts.next()) else {
        return Err(SandboxError::Config(format!("number {spec:?}: expected ID:DIGITS[:LEVEL]")));
    };
    let mut number = NumberConfig {
        id: id.to_owned(),
        display_phone_number: display.to_owned(),
        verified_name: format!("Sandbox {display}"),
        ..NumberConfig::default()
    };
    match parts.next().map(str::to_ascii_uppercase).as_deref() {
        None | Some("STANDARD") => {}
        Some("HIGH") => number.level = ThroughputLevel::High,
        Some(mps) => {
            let mps = mps
                .parse()
                .map_err(|_| SandboxError::Config(format!("number {spec:?}: unknown level {mps}")))?;
            number.mps = Some(mps);
        }
    }
    Ok(number)
}

/// Runs the sandbox until Ctrl-C (or SIGTERM), after printing where it listens and what to call it with.
///
/// # Errors
/// When the configuration is invalid or the address cannot be bound.
pub async fn run(args: SandboxArgs) -> Result<(), SandboxError> {
    let config = args.to_config()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let sandbox = Sandbox::start(config, listener).await?;
    println!("wabridge sandbox listening");
    println!("  base URL:         {}/v23.0", sandbox.base_url());
    println!("  WABA id:          {}", sandbox.waba_id());
    println!("  phone number ids: {}", sandbox.phone_number_ids().join(", "));
    println!("  access token:     {}", sandbox.access_token());
    if let Some(secret) = sandbox.app_secret() {
        println!("  app secret:       {secret}");
    }
    println!("  control API:      {}/_sandbox", sandbox.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: SandboxArgs,
    }

    #[test]
    fn options_override_the_defaults() {
        let cmd = Cmd::try_parse_from([
            "sandbox",
            "--listen",
            "127.0.0.1:9999",
            "--token",
            "a,b",
            "--number",
            "111:15550001111:HIGH,222:15550002222:20",
            "--callback-url",
            "http://127.0.0.1:1/hook",
            "--seed",
            "5",
            "--fault-code",
            "131016",
            "--fault-next-n",
            "3",
            "--messaging-limit",
            "0",
            "--webhook-shape",
            "legacy",
        ])
        .map_err(|e| e.to_string());
        let Ok(cmd) = cmd else { panic!("{cmd:?}") };
        let Ok(config) = cmd.args.to_config() else { panic!("config") };
        assert_eq!(config.access_tokens, ["a", "b"]);
        assert_eq!(config.numbers.len(), 2);
        assert_eq!(config.numbers[0].level, ThroughputLevel::High);
        assert_eq!(config.numbers[1].mps, Some(20));
        assert_eq!(config.webhooks.callback_urls, ["http://127.0.0.1:1/hook"]);
        assert_eq!(config.chaos.seed, 5);
        assert_eq!(config.chaos.fault.as_ref().map(|f| (f.code, f.next_n)), Some((131_016, Some(3))));
        assert_eq!(config.limits.messaging_limit, None);
        assert_eq!(config.webhooks.shape, WebhookShape::Legacy);
    }

    #[test]
    fn configuration_deserializes_with_defaults_and_milliseconds() {
        let parsed: Result<SandboxConfig, _> =
            serde_json::from_str(r#"{"statuses":{"sent_delay":5},"webhooks":{"max_age":1000}}"#);
        let Ok(config) = parsed else { panic!("{parsed:?}") };
        assert_eq!(config.statuses.sent_delay, Duration::from_millis(5));
        assert_eq!(config.webhooks.max_age, Duration::from_secs(1));
        assert_eq!(config.limits.standard_mps, 80);
        assert_eq!(config.templates.initial.len(), 4);
        assert!(config.check().is_ok());
    }
}
