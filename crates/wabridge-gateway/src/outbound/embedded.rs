//! The sandbox in-process: with no access token configured, `wabridge serve` sends to a local emulator of
//! the Cloud API whose signed webhooks come back to the gateway's own `/webhook`, so a new user can send and
//! watch statuses without a Meta account.

use secrecy::SecretString;
use wabridge_sandbox::{Sandbox, SandboxConfig, SandboxError};

use crate::config::{Config, NumberConfig};

/// Starts `sandbox` (default: [`built_in`]) on `127.0.0.1:0` with its webhooks pointed at
/// `gateway_url` + the webhook path, and points `config` at it: its Graph URL and token, its app secret
/// (accepted on `/webhook`), and its numbers (unless numbers are configured).
///
/// # Errors
/// When the sandbox cannot start.
pub async fn start_sandbox(
    config: &mut Config,
    gateway_url: &str,
    sandbox: Option<SandboxConfig>,
) -> Result<Sandbox, SandboxError> {
    let mut sandbox_config = sandbox.unwrap_or_else(built_in);
    let hook = format!("{}{}", gateway_url.trim_end_matches('/'), config.webhook.path);
    if !sandbox_config.webhooks.callback_urls.contains(&hook) {
        sandbox_config.webhooks.callback_urls.push(hook);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox = Sandbox::start(sandbox_config.clone(), listener).await?;
    config.meta.access_token = Some(SecretString::from(sandbox.access_token().to_owned()));
    config.meta.graph_url = sandbox.base_url();
    if let Some(secret) = sandbox.app_secret() {
        config.meta.app_secrets.push(SecretString::from(secret.to_owned()));
    }
    if config.numbers.is_empty() {
        config.numbers = sandbox_config
            .numbers
            .iter()
            .map(|n| NumberConfig {
                id: n.id.clone(),
                waba_id: sandbox.waba_id().to_owned(),
                display_phone_number: Some(format!("+{}", n.display_phone_number)),
                level_mps: None,
            })
            .collect();
    }
    Ok(sandbox)
}

/// The built-in sandbox of `wabridge serve`: the sandbox's defaults, except that every message is read and
/// that its app secret and token are drawn at random at every start. The stand-alone sandbox lets a fifth of
/// its users leave messages unread (`statuses.read_probability` 0.8), as real users do; the built-in one is
/// what a new user tries first (the README's walk-through shows sent, delivered and read for each message),
/// so it always completes the status sequence.
///
/// The secret is accepted on `/webhook` alongside the configured ones: the sandbox's published default
/// (`sandbox-secret`) would let anyone who reaches `/webhook` sign forged webhooks if a production gateway
/// ever started without its access token (a secret store not mounted, say).
#[must_use]
pub fn built_in() -> SandboxConfig {
    let mut config = SandboxConfig::default();
    config.statuses.read_probability = 1.0;
    config.app_secret = Some(format!("sandbox-{}", uuid::Uuid::new_v4().simple()));
    config.access_tokens = vec![format!("sandbox-{}", uuid::Uuid::new_v4().simple())];
    config
}
