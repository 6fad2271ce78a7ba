//! Access tokens and where they come from.
//!
//! A token travels only in the `Authorization` header: never in a URL, a log line or `Debug` output.
//! [`AccessToken`] prints as `[redacted]`; [`TokenProvider`] lets a program refresh tokens (Meta's user tokens
//! expire within a day, system-user tokens after 60 days or never — `cloud-api.md` §0).

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

/// A Graph API access token. Its `Debug` and `Display` print `[redacted]`; only
/// [`AccessToken::expose`] gives the value, for the `Authorization` header and `appsecret_proof`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self(Arc::from(token.into()))
    }

    /// The token itself. Use it only to build the `Authorization` header or a proof.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for AccessToken {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for AccessToken {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// An app secret (for `appsecret_proof` and webhook signatures); redacted like [`AccessToken`].
#[derive(Clone, PartialEq, Eq)]
pub struct AppSecret(Arc<str>);

impl AppSecret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::from(secret.into()))
    }

    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret([redacted])")
    }
}

/// Gives the client the app secret its `appsecret_proof` is made with, read before each Graph call — so a
/// program that rotates its app secret (a reload) does not have to build a new client. An [`AppSecret`] is
/// one that never changes (what [`crate::ClientBuilder::app_secret`] configures).
pub trait AppSecretProvider: Send + Sync + 'static {
    /// The secret to prove the access token with; `None`: the call goes without a proof.
    fn app_secret(&self) -> Option<AppSecret>;
}

impl AppSecretProvider for AppSecret {
    fn app_secret(&self) -> Option<AppSecret> {
        Some(self.clone())
    }
}

/// Why a [`TokenProvider`] could not give a token.
pub type TokenError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Gives the client its access token, and a fresh one when Meta refused the last.
///
/// The client asks with `refresh = false` before a call; when Meta answers an auth error (code 190, or HTTP
/// 401), it asks once more with `refresh = true` and repeats the call a single time with the new token.
/// Implementations typically cache the token and fetch a new one only on `refresh`.
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to use; `refresh` is `true` after Meta refused the previous one.
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>>;
}

/// A provider that always gives the same token (what [`crate::ClientBuilder::access_token`] configures).
#[derive(Debug, Clone)]
pub struct StaticToken(pub AccessToken);

impl TokenProvider for StaticToken {
    fn token(&self, _refresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}
