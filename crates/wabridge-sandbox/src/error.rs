//! Errors: [`SandboxError`] for starting and running the sandbox, [`ApiError`] for answers in Meta's
//! Graph error envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wabridge_types::error::GraphError;

/// Why the sandbox could not start, or a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration cannot work.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// Binding or serving the listener failed.
    #[error("sandbox I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A callback URL did not pass the GET verification handshake.
    #[error("callback {url} failed the verification handshake: {reason}")]
    Verification {
        /// The callback URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A control operation named something the sandbox does not have.
    #[error("not found: {0}")]
    NotFound(String),
    /// A control operation's input is invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The error code of a refused Graph call, left in the response's extensions so the request
/// middleware can count refusals by code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefusedCode(pub i64);

/// A Graph API error answered in Meta's envelope with Meta's HTTP status for its code.
#[derive(Debug, Clone)]
pub struct ApiError(Box<GraphError>);

impl ApiError {
    /// An error with a code and details, formatted as Meta does.
    #[must_use]
    pub fn new(code: i64, details: impl Into<String>) -> Self {
        Self(Box::new(GraphError::new(code, details)))
    }

    /// Code 100 for an object that does not exist (Meta's wording, subcode 33).
    #[must_use]
    pub fn unknown_object(id: &str, method: &str) -> Self {
        Self::from(
            GraphError::new(
                100,
                format!(
                    "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due \
                     to missing permissions, or does not support this operation."
                ),
            )
            .with_subcode(33),
        )
    }

    /// The error's code.
    #[must_use]
    pub fn code(&self) -> i64 {
        self.0.code
    }

    /// The Graph error answered.
    #[must_use]
    pub fn graph_error(&self) -> &GraphError {
        &self.0
    }
}

impl From<GraphError> for ApiError {
    fn from(e: GraphError) -> Self {
        Self(Box::new(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = self.0.code;
        let error = *self.0;
        let error = if error.fbtrace_id.is_some() { error } else { error.with_trace_id(trace_id()) };
        let mut response = (status, Json(error.into_envelope())).into_response();
        response.extensions_mut().insert(RefusedCode(code));
        response
    }
}

/// A random trace id in the style of Meta's `fbtrace_id`.
fn trace_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
