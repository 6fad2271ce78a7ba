//! The error body of the `/v1` routes, in the On-Premises API's shape:
//! `{"errors":[{"code":1009,"title":"Parameter value is not valid","details":"…"}],"meta":{…}}`.
//!
//! Codes and titles come from the On-Premises API's error list (`reference/onprem-error-codes.json`).
//! Internals never reach a body: a store failure answers 1014 with a generic text and is logged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One error of a `/v1` route, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The On-Premises error code, e.g. 1009.
    pub code: u32,
    /// The code's title.
    pub title: &'static str,
    /// What exactly was wrong, for the caller.
    pub details: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, title: &'static str, details: impl Into<String>) -> Self {
        Self { status, code, title, details: details.into() }
    }

    /// 401, code 1005: no or wrong credentials.
    #[must_use]
    pub fn unauthorized(details: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 1005, "Access denied", details)
    }

    /// 403, code 1005: valid credentials without the needed scope.
    #[must_use]
    pub fn forbidden(details: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, 1005, "Access denied", details)
    }

    /// 404, code 1006.
    #[must_use]
    pub fn not_found(details: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 1006, "Resource not found", details)
    }

    /// 400, code 1008.
    #[must_use]
    pub fn missing(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1008, "Required parameter is missing", details)
    }

    /// 400, code 1009.
    #[must_use]
    pub fn invalid(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1009, "Parameter value is not valid", details)
    }

    /// 429, code 1015.
    #[must_use]
    pub fn too_many_requests(details: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, 1015, "Too many requests", details)
    }

    /// 409, code 1004.
    #[must_use]
    pub fn conflict(details: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, 1004, "Resource already exists", details)
    }

    /// 500, code 1014; logs `error` (never sent to the caller).
    #[must_use]
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "internal error answering a /v1 request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            1014,
            "Internal error",
            "internal error; see the gateway's log",
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(&e)
    }
}

/// The `meta` object of every `/v1` answer.
#[must_use]
pub fn meta() -> serde_json::Value {
    json!({"api_status": "stable", "version": concat!("wabridge-", env!("CARGO_PKG_VERSION"))})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{"code": self.code, "title": self.title, "details": self.details}],
            "meta": meta(),
        });
        (self.status, Json(body)).into_response()
    }
}

/// How much of a plain-text error body (axum's own rejections) is kept as `details`.
const PLAIN_ERROR_LIMIT: usize = 2048;

/// An error answer that is not JSON — one of axum's own rejections (a path segment, a body over the limit,
/// a form, a WebSocket upgrade), or a bare status — and the text it carried, if any. `None` for answers that
/// need no change (successes, and errors already in JSON).
pub(crate) async fn plain_error(response: Response) -> Result<(StatusCode, String), Response> {
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return Err(response);
    }
    let text = axum::body::to_bytes(response.into_body(), PLAIN_ERROR_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let text = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    Ok((status, text))
}

/// Middleware of the `/v1` routes: every error answer is in the On-Premises shape, also those axum makes
/// before a handler runs.
pub(crate) async fn onprem_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (status, details) = match plain_error(next.run(request).await).await {
        Ok(plain) => plain,
        Err(response) => return response,
    };
    let (code, title) = match status.as_u16() {
        401 | 403 => (1005, "Access denied"),
        404 => (1006, "Resource not found"),
        400 | 411 | 413 | 415 | 422 => (1009, "Parameter value is not valid"),
        503 => (1011, "Service not ready"),
        _ => (1000, "Generic error"),
    };
    ApiError { status, code, title, details }.into_response()
}
