//! What can change without a restart: API tokens (`api.tokens`), app secrets (`meta.app_secrets`), the
//! Cloud API access token (`meta.access_token`) and the TLS certificate. [`crate::Gateway::reload`] applies
//! a freshly loaded configuration; `wabridge serve` calls it on SIGHUP. Everything else needs a restart.

use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use wabridge_cloud::{AccessToken, TokenError, TokenProvider};

use crate::config::Config;

/// The secrets the gateway reads on every use, so a reload takes effect at once.
#[derive(Debug)]
pub struct Secrets {
    app_secrets: RwLock<Vec<SecretString>>,
    access_token: RwLock<Option<SecretString>>,
}

impl Secrets {
    /// The secrets of `config`.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        Self {
            app_secrets: RwLock::new(config.meta.app_secrets.clone()),
            access_token: RwLock::new(config.meta.access_token.clone()),
        }
    }

    /// The app secrets webhooks may be signed with.
    #[must_use]
    pub fn app_secrets(&self) -> Vec<SecretString> {
        self.app_secrets.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the app secrets and the access token with `config`'s. An access token is replaced, never
    /// removed: a configuration without one (a variable missing from the environment of a reload, say) keeps
    /// the current token — logged — as every Cloud API call would fail without one; removing it takes a
    /// restart. (Adding one to a gateway started without is refused by `wabridge serve` likewise.)
    ///
    /// App secrets are replaced, never emptied, for the same reason: with none, every webhook would be
    /// refused (401) and Meta would give up on them after its retries; removing the last takes a restart.
    pub fn replace(&self, config: &Config) {
        let mut secrets = self.app_secrets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if config.meta.app_secrets.is_empty() && !secrets.is_empty() {
            tracing::error!(
                "reload: the new configuration has no meta.app_secrets; the current ones are kept (every webhook \
                 would be refused without one; removing them takes a restart)"
            );
        } else {
            secrets.clone_from(&config.meta.app_secrets);
        }
        drop(secrets);
        let mut token = self.access_token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &config.meta.access_token {
            Some(fresh) => *token = Some(fresh.clone()),
            None if token.is_some() => tracing::error!(
                "reload: the new configuration has no meta.access_token; the current one is kept (removing \
                 it takes a restart)"
            ),
            None => {}
        }
    }

    fn access_token(&self) -> Option<AccessToken> {
        let token = self.access_token.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        token.as_ref().map(|t| AccessToken::new(t.expose_secret().to_owned()))
    }
}

/// The Cloud API clients' token: the current `meta.access_token`, read on every call.
#[derive(Debug, Clone)]
pub struct ReloadableToken(pub Arc<Secrets>);

impl TokenProvider for ReloadableToken {
    fn token(&self, _refresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        let token = self.0.access_token().ok_or_else(|| TokenError::from("no access token is configured"));
        Box::pin(std::future::ready(token))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::Secrets;
    use crate::config::Config;

    fn with_secrets(secrets: &[&str]) -> Config {
        let mut config = Config::load(None, Vec::new()).unwrap();
        config.meta.app_secrets = secrets.iter().map(|s| SecretString::from((*s).to_owned())).collect();
        config
    }

    fn exposed(secrets: &Secrets) -> Vec<String> {
        secrets.app_secrets().iter().map(|s| s.expose_secret().to_owned()).collect()
    }

    #[test]
    fn app_secrets_are_replaced_but_never_emptied() {
        let secrets = Secrets::new(&with_secrets(&["first"]));
        secrets.replace(&with_secrets(&["second", "first"]));
        assert_eq!(exposed(&secrets), ["second", "first"]);
        secrets.replace(&with_secrets(&[]));
        assert_eq!(exposed(&secrets), ["second", "first"], "kept: every webhook would be refused");
        secrets.replace(&with_secrets(&["third"]));
        assert_eq!(exposed(&secrets), ["third"]);
    }
}
