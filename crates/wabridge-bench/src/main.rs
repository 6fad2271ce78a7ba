//! `wabridge-bench`: wabridge's benchmark scenarios, with its own load generator (no external tool).
//!
//! Each scenario starts what it measures in-process (the server on the main runtime, the load generator on
//! a runtime of its own, both on this machine's cores) and prints one JSON object per result line. The
//! figures and the command lines that produced them are recorded in `docs/benchmarks.md`.

mod load;
mod scenarios;

/// The same allocator as `wabridge serve`, so the server under test runs as it does in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Options every scenario shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Threads of the load generator (the server keeps the default runtime).
    #[arg(long, default_value_t = 2)]
    pub load_threads: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
}

impl Common {
    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup)
    }

    /// The load plan these options describe, against `target`.
    fn plan(&self, target: std::net::SocketAddr) -> load::LoadPlan {
        load::LoadPlan {
            target,
            connections: self.connections,
            threads: self.load_threads,
            duration: self.duration(),
            max_requests: None,
            warmup: self.warmup(),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "wabridge-bench",
    about = "wabridge's benchmark scenarios; prints one JSON object per result"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The HTTP ceiling: a no-op axum handler on this machine.
    Noop(Common),
    /// The Cloud API sandbox alone, limits lifted, under a saturating client.
    Sandbox(Common),
    /// Durable webhook intake: signed, unique webhooks against the gateway on SQLite (and PostgreSQL).
    Ingest(scenarios::IngestArgs),
    /// Webhook → WebSocket latency with many subscribers, at a paced webhook rate.
    Fanout(scenarios::FanoutArgs),
    /// Sending: N numbers with a backlog against the sandbox at their levels, measured at the sandbox.
    Outbound(scenarios::OutboundArgs),
    /// `POST /v1/messages` with an API key, every body unique, on SQLite (and PostgreSQL).
    Enqueue(scenarios::EnqueueArgs),
    /// Start-to-ready time of the gateway, on an empty database and with queued messages.
    Ready(scenarios::ReadyArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("server").build()?;
    match cli.scenario {
        Scenario::Noop(common) => {
            let report = server.block_on(scenarios::noop(&common))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Scenario::Sandbox(common) => {
            let report = server.block_on(scenarios::sandbox(&common))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Scenario::Fanout(args) => {
            let result = server.block_on(scenarios::fanout(&args))?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Scenario::Outbound(args) => {
            for result in server.block_on(scenarios::outbound(&args))? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Scenario::Enqueue(args) => {
            for result in server.block_on(scenarios::enqueue(&args))? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Scenario::Ready(args) => {
            for result in server.block_on(scenarios::ready(&args))? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Scenario::Ingest(args) => {
            for result in server.block_on(scenarios::ingest(&args))? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
    }
    Ok(())
}
