//! `wabridge serve` and `wabridge migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;

/// Where the configuration comes from.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The TOML configuration file. Default: `wabridge.toml` in the working directory, if present.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// Loads defaults, the file, then the `WABRIDGE_*` environment.
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.file()?.as_deref(), std::env::vars())?)
    }

    /// The configuration file to read: the one given (which must exist), else `wabridge.toml` if present.
    fn file(&self) -> anyhow::Result<Option<PathBuf>> {
        match &self.config {
            Some(p) => {
                anyhow::ensure!(p.exists(), "the configuration file {} does not exist", p.display());
                Ok(Some(p.clone()))
            }
            None => Ok(Some(PathBuf::from("wabridge.toml")).filter(|p| p.exists())),
        }
    }

    /// The configuration again, for a reload: as [`load`](Self::load), except that a file read at start must
    /// still be there. Without this, a default `wabridge.toml` moved away (or caught mid-rewrite) would reload
    /// the built-in defaults: no API tokens, and whatever else the file held, gone.
    fn reload(&self, read_at_start: bool) -> anyhow::Result<Config> {
        let file = self.file()?;
        anyhow::ensure!(
            file.is_some() || !read_at_start,
            "the configuration file wabridge.toml read at start is no longer there"
        );
        Ok(Config::load(file.as_deref(), std::env::vars())?)
    }
}

/// Whether `serve` starts the built-in sandbox: only when nothing ties the gateway to a WhatsApp Business
/// Account — no access token, no phone numbers, no app secret. A configuration with numbers or app secrets but
/// no access token is a production one missing its token (a secret store not mounted, say): it must not send
/// its queue to a local emulator, which does not know its numbers and would fail every message. It runs
/// receive-only instead (webhooks verified and stored, messages accepted and kept queued) and says so.
#[must_use]
pub fn wants_built_in_sandbox(config: &Config) -> bool {
    config.meta.access_token.is_none() && config.numbers.is_empty() && config.meta.app_secrets.is_empty()
}

/// `wabridge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (overrides `listen` of the configuration). Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Runs the gateway until SIGTERM or SIGINT, then stops gracefully: no new connections, requests and
/// commits in flight finish.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Signals are taken over before anything starts: from the moment the gateway answers webhooks and sends
    // (before it reports ready), SIGTERM/SIGINT must stop it gracefully, and SIGHUP must not kill it. A stop
    // asked for while it starts takes effect as soon as it has started.
    let stop_asked = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(stop_asked.clone()));
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let mut sandbox = None;
    if wants_built_in_sandbox(&config) {
        let url = config.public_url(listener.local_addr()?);
        let started = wabridge_gateway::outbound::embedded::start_sandbox(&mut config, &url, None)
            .await
            .context("starting the built-in sandbox")?;
        sandbox = Some(started);
    }
    let gateway = Gateway::start(config.clone(), listener).await?;
    for line in wabridge_gateway::startup_report(&config, &gateway.url(), &gateway.state().store) {
        println!("{line}");
    }
    if sandbox.is_none() && config.meta.access_token.is_none() {
        tracing::warn!(
            "no access token (meta.access_token) but phone numbers or app secrets are configured: receiving and \
             storing webhooks only; messages are accepted and stay queued until the gateway is restarted with a \
             token"
        );
    }
    if let Some(sandbox) = &sandbox {
        println!(
            "  SANDBOX: no access token configured (meta.access_token), so messages go to the built-in sandbox \
             at {base} — nothing reaches WhatsApp. Simulated users: {base}/_sandbox (e.g. POST {base}/_sandbox/inbound)",
            base = sandbox.base_url()
        );
    }
    if let Some(password) = gateway.take_generated_admin_password() {
        println!(
            "  admin password (generated now, shown ONCE — store it; set admin.password to choose one): {}",
            password.expose_secret()
        );
    }
    if config.webhook.insecure_skip_signature {
        tracing::warn!("webhook signature checking is OFF (webhook.insecure_skip_signature)");
    }
    let stop = gateway.shutdown_token();
    tokio::spawn(async move {
        stop_asked.cancelled().await;
        stop.cancel();
    });
    #[cfg(unix)]
    if let Some(hangups) = hangups {
        let sandbox_secrets = sandbox
            .as_ref()
            .map(|s| (s.access_token().to_owned(), s.base_url(), s.app_secret().map(str::to_owned)));
        let receive_only = sandbox.is_none() && config.meta.access_token.is_none();
        tokio::spawn(reload_on_sighup(
            hangups,
            args.config,
            gateway.state().clone(),
            sandbox_secrets,
            receive_only,
        ));
    }
    gateway.wait().await?;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_on_signal(stop: CancellationToken) {
    wait_for_stop_signal().await;
    let first = std::time::Instant::now();
    tracing::info!(
        "shutting down: finishing requests and commits in flight (a later second signal stops at once)"
    );
    stop.cancel();
    // A second SIGINT/SIGTERM: the operator does not want to wait for the commits in flight (or for a start
    // that hangs on the database). Exit at once, as a process killed by SIGINT reports (128 + 2). One that
    // comes right after the first is the same request delivered twice (Ctrl-C reaches a whole process group,
    // and a wrapper may forward it too): it does not cut the graceful stop short.
    loop {
        wait_for_stop_signal().await;
        if first.elapsed() >= SECOND_SIGNAL_AFTER {
            break;
        }
    }
    tracing::warn!("second stop signal: exiting without waiting");
    std::process::exit(130);
}

/// How long after the first stop signal a second one counts as the operator's, not a duplicate.
const SECOND_SIGNAL_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// On SIGHUP: loads the configuration again and applies what can change without a restart (API tokens, app
/// secrets, the access token, the TLS certificate). With the built-in sandbox, its token and secret stay.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    config: ConfigArgs,
    state: std::sync::Arc<wabridge_gateway::AppState>,
    sandbox: Option<(String, String, Option<String>)>,
    receive_only: bool,
) {
    let read_at_start = config.file().is_ok_and(|f| f.is_some());
    while hup.recv().await.is_some() {
        // The process's environment does not change: a reloadable secret set there wins over the file at every
        // reload, so a new value in the file would not take. Said, so that nobody waits for it.
        for variable in ["WABRIDGE_META__ACCESS_TOKEN", "WABRIDGE_META__APP_SECRETS", "WABRIDGE_API__TOKENS"]
        {
            if std::env::var_os(variable).is_some() {
                tracing::warn!(
                    variable,
                    "SIGHUP: this setting comes from the environment, which a reload reads unchanged; to change it \
                     without a restart, set it in the configuration file instead"
                );
            }
        }
        let mut fresh = match config.reload(read_at_start) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the configuration does not load; nothing changed");
                continue;
            }
        };
        if let Some((token, url, secret)) = &sandbox {
            if fresh.meta.access_token.is_some() {
                // The gateway was started on its built-in sandbox (its senders, its webhooks): moving to
                // Meta takes a restart, not a reload that would send Meta's token to the sandbox.
                tracing::error!(
                    "SIGHUP: an access token is now configured, but this gateway runs on the built-in sandbox; \
                     restart it to use Meta. Nothing changed"
                );
                continue;
            }
            fresh.meta.access_token = Some(token.clone().into());
            fresh.meta.graph_url.clone_from(url);
            fresh.meta.app_secrets.extend(secret.clone().map(Into::into));
        }
        if receive_only && fresh.meta.access_token.take().is_some() {
            // Started without a token, the gateway runs no senders: a token it took now would be shown as
            // configured while messages stay queued.
            tracing::error!(
                "SIGHUP: an access token is now configured, but this gateway started receive-only; restart it to \
                 start sending. The rest of the configuration is applied"
            );
        }
        if let Err(e) = state.reload(&fresh) {
            tracing::error!(error = %e, "SIGHUP: reload failed; nothing changed");
        }
    }
}

/// `wabridge migrate`: applies the store's migrations and exits.
pub async fn migrate(args: ConfigArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    let store = wabridge_gateway::open_store(&config).await?;
    println!("migrations applied: {} ({})", store.backend_name(), store.durability());
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ConfigArgs, wants_built_in_sandbox};

    #[test]
    fn a_reload_needs_the_file_read_at_start() {
        // No `wabridge.toml` in the crate's directory, where tests run.
        assert!(!std::path::Path::new("wabridge.toml").exists());
        let default = ConfigArgs { config: None };
        assert!(default.reload(false).is_ok(), "started without a file: the defaults and the environment");
        let e = default.reload(true).unwrap_err();
        assert!(e.to_string().contains("no longer there"), "{e}");

        let dir = std::env::temp_dir().join(format!("wabridge-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gateway.toml");
        std::fs::write(&file, "[api]\ntokens = [\"a-token\"]\n").unwrap();
        let given = ConfigArgs { config: Some(file.clone()) };
        assert_eq!(given.reload(true).unwrap().api.tokens.len(), 1);
        std::fs::remove_file(&file).unwrap();
        assert!(given.reload(true).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    use wabridge_gateway::config::{Config, NumberConfig};

    #[test]
    fn the_sandbox_only_without_any_meta_identity() {
        let none = Config::load(None, Vec::new()).unwrap();
        assert!(wants_built_in_sandbox(&none));
        let mut numbers = none.clone();
        numbers.numbers.push(NumberConfig {
            id: "106540352242922".into(),
            waba_id: "102290129340398".into(),
            display_phone_number: None,
            level_mps: None,
        });
        assert!(
            !wants_built_in_sandbox(&numbers),
            "a number without its token: receive-only, not the sandbox"
        );
        let mut secret = none.clone();
        secret.meta.app_secrets.push("s".into());
        assert!(!wants_built_in_sandbox(&secret));
        let mut token = none;
        token.meta.access_token = Some("t".into());
        assert!(!wants_built_in_sandbox(&token));
    }
}
