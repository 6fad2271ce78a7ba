//! Who may call the `/v1` API.
//!
//! Interim model, until users and API keys arrive: a list of configured tokens (`api.tokens`), each granting
//! every scope, compared in constant time. The shape is the one API keys will fill: a [`Credential`] taken
//! from the request goes to the [`Authenticator`], which answers a [`Principal`] with its [`Scope`]s; a
//! handler asks the principal for the scope it needs. `/metrics` and `/webhook` are outside this.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use wabridge_types::signature::constant_time_eq;

use crate::AppState;
use crate::api_error::ApiError;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send messages.
    Send,
    /// Read the event log, subscribe to it, manage callbacks.
    Events,
    /// Administration.
    Admin,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Succeeds when the principal holds `scope`, else a 403 naming it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this credential lacks the {scope:?} scope")))
        }
    }
}

/// A credential presented by a request.
pub enum Credential {
    /// `Authorization: Bearer <token>`, or `?access_token=<token>` (browsers cannot set headers on a
    /// WebSocket).
    Bearer(SecretString),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential::Bearer([REDACTED])")
    }
}

/// The one route that takes its credential from the query string.
const WEBSOCKET_PATH: &str = "/v1/events/ws";

impl Credential {
    /// The credential of a request: the `Authorization` header first, then the `access_token` query
    /// parameter — on `/v1` only for the WebSocket route (browsers cannot set headers on a WebSocket): a
    /// token in a URL ends up in proxies' access logs. The Cloud-compatible routes take it as Graph does.
    /// `None` when there is neither.
    #[must_use]
    pub fn from_parts(parts: &Parts) -> Option<Self> {
        Self::from_request(&parts.headers, &parts.uri)
    }

    /// [`from_parts`](Self::from_parts), from a request's headers and URI.
    #[must_use]
    pub fn from_request(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Option<Self> {
        if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            // The scheme is case-insensitive (RFC 9110 §11.1): `BEARER` is a bearer token too.
            let (scheme, token) = value.trim_start().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            return Some(Self::Bearer(SecretString::from(token.trim().to_owned())));
        }
        let path = uri.path().trim_end_matches('/');
        if path.starts_with("/v1/") && path != WEBSOCKET_PATH {
            return None;
        }
        let query = uri.query()?;
        form_urlencoded_pairs(query)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| Self::Bearer(SecretString::from(v)))
    }
}

/// `k=v` pairs of a query string, percent-decoded.
fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| -> Option<String> {
            let s = s.replace('+', " ");
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' && i + 2 < bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).ok()
        };
        Some((decode(k)?, decode(v)?))
    })
}

/// Checks credentials against the configured tokens.
pub struct Authenticator {
    tokens: std::sync::RwLock<Vec<SecretString>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.tokens().len()).finish()
    }
}

impl Authenticator {
    /// An authenticator accepting `tokens` (each with every scope).
    #[must_use]
    pub fn new(tokens: Vec<SecretString>) -> Self {
        Self { tokens: std::sync::RwLock::new(tokens) }
    }

    /// Replaces the accepted tokens (a configuration reload).
    pub fn replace(&self, tokens: Vec<SecretString>) {
        *self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
    }

    fn tokens(&self) -> Vec<SecretString> {
        self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether any credential can pass (at least one token is configured).
    #[must_use]
    pub fn is_configured(&self) -> bool {
        !self.tokens().is_empty()
    }

    /// The principal behind `credential`, or a 401 saying why not.
    pub fn authenticate(&self, credential: Option<&Credential>) -> Result<Principal, ApiError> {
        let tokens = self.tokens();
        if tokens.is_empty() {
            return Err(ApiError::unauthorized(
                "no API token is configured on this gateway (api.tokens / WABRIDGE_API__TOKENS)",
            ));
        }
        let Some(Credential::Bearer(given)) = credential else {
            return Err(ApiError::unauthorized(
                "missing credential: send Authorization: Bearer <token> (or ?access_token= on WebSockets)",
            ));
        };
        // Compare with every token, so the time taken does not tell which one (or how many) matched.
        let mut ok = false;
        for token in &tokens {
            ok |= constant_time_eq(token.expose_secret().as_bytes(), given.expose_secret().as_bytes());
        }
        if ok {
            Ok(Principal { scopes: vec![Scope::Send, Scope::Events, Scope::Admin] })
        } else {
            Err(ApiError::unauthorized("invalid credential"))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        principal_of(parts, state).await
    }
}

/// The principal behind a request's credential: a configured token, a login token or an API key.
///
/// # Errors
/// A 401 when there is no valid credential (or a 500 when the store fails).
pub async fn principal_of(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let result = principal_for(Credential::from_parts(parts).as_ref(), state).await;
    if let Err(e) = &result {
        tracing::info!(path = %parts.uri.path(), reason = %e.details, "API request refused");
    }
    result
}

/// The principal behind `credential` now (a token removed by a reload, a revoked key, an expired or logged-out
/// login no longer has one). Long-lived connections ask again while they last.
///
/// # Errors
/// A 401 when the credential is missing or not valid (or a 500 when the store fails).
pub async fn principal_for(credential: Option<&Credential>, state: &AppState) -> Result<Principal, ApiError> {
    {
        let mut result = state.auth.authenticate(credential);
        // Login tokens and API keys (`accounts.rs`) are checked when no configured token matched.
        if result.is_err()
            && let Some(Credential::Bearer(secret)) = &credential
        {
            match state.accounts.principal(secret).await {
                Ok(Some(principal)) => result = Ok(principal),
                Ok(None) => result = Err(ApiError::unauthorized("invalid or expired credential")),
                Err(e) => return Err(ApiError::from(e)),
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let auth = Authenticator::new(vec![SecretString::from("t1"), SecretString::from("t2")]);
        let ok = Credential::Bearer(SecretString::from("t2"));
        assert!(auth.authenticate(Some(&ok)).unwrap().scopes.contains(&Scope::Events));
        let bad = Credential::Bearer(SecretString::from("t3"));
        assert_eq!(auth.authenticate(Some(&bad)).unwrap_err().code, 1005);
        assert!(auth.authenticate(None).is_err());
        assert!(Authenticator::new(Vec::new()).authenticate(Some(&ok)).is_err());
    }

    #[test]
    fn a_token_in_the_query_counts_only_where_headers_cannot_be_set() {
        let token_of = |uri: &str| {
            let (parts, ()) = http::Request::builder().uri(uri).body(()).unwrap().into_parts();
            Credential::from_parts(&parts).is_some()
        };
        assert!(token_of("/v1/events/ws?access_token=t"));
        assert!(token_of("/v23.0/123/messages?access_token=t"), "Graph takes it in the query");
        assert!(!token_of("/v1/messages?access_token=t"));
        assert!(!token_of("/v1/events?access_token=t"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token_of = |header: &str| {
            let (parts, ()) = http::Request::builder()
                .uri("/v1/messages")
                .header(AUTHORIZATION, header)
                .body(())
                .unwrap()
                .into_parts();
            match Credential::from_parts(&parts) {
                Some(Credential::Bearer(t)) => Some(t.expose_secret().to_owned()),
                _ => None,
            }
        };
        for header in ["Bearer tok", "bearer tok", "BEARER tok", "BeArEr  tok "] {
            assert_eq!(token_of(header).as_deref(), Some("tok"), "{header}");
        }
        assert_eq!(token_of("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token_of("Bearertok"), None);
    }

    #[test]
    fn query_pairs_are_decoded() {
        let pairs: Vec<_> = form_urlencoded_pairs("a=1&access_token=x%2By+z&b").collect();
        assert_eq!(pairs[1], ("access_token".to_owned(), "x+y z".to_owned()));
        assert_eq!(pairs[2], ("b".to_owned(), String::new()));
    }
}
