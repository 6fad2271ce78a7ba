//! The `wabridge` command.

mod serve;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: the gateway allocates per request (bodies, parsed JSON, events), and
/// under a webhook load glibc's malloc and free took ~15 % of the CPU; mimalloc gave +13 % webhooks/s on SQLite
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A self-hosted WhatsApp Business gateway.
#[derive(Debug, Parser)]
#[command(name = "wabridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: webhook intake, event log, the API (SQLite in ./data unless configured otherwise).
    Serve(serve::ServeArgs),
    /// Apply the store's migrations and exit.
    Migrate(serve::ConfigArgs),
    /// Run a local emulator of Meta's WhatsApp Cloud API (limits, signed webhooks, simulated users).
    Sandbox(Box<wabridge_sandbox::cli::SandboxArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match Cli::parse().command {
        Command::Serve(args) => serve::serve(args).await?,
        Command::Migrate(args) => serve::migrate(args).await?,
        Command::Sandbox(args) => wabridge_sandbox::cli::run(*args).await?,
    }
    Ok(())
}
