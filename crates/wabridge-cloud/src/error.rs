//! [`CloudError`]: everything a call can fail with, and whether trying again can help.
//!
//! Like a mail transport that tells transient from permanent failures, every error here answers
//! [`CloudError::classification`]: what kind of problem it is, whether a retry can succeed and after how
//! long, and whether it should pause the number or the WABA instead of failing one message. Meta's answers
//! are classified by their Graph error code (refined by the HTTP status, see
//! [`Classification::with_http_status`]); transport failures and timeouts count as transient.

use std::time::Duration;

use wabridge_types::error::{Classification, ErrorClass, GraphError, PauseScope};
use wabridge_types::limits::MediaKind;
use wabridge_types::validate::ValidationError;

use crate::token::TokenError;

/// The error of every [`crate::Client`] call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// Meta answered with a Graph error envelope (`{"error": {...}}`).
    #[error("Graph API answered HTTP {status}: {error}")]
    Graph {
        /// The HTTP status of the answer (Meta's table gives one per code, `cloud-api.md` §2).
        status: u16,
        /// The error as Meta sent it.
        error: Box<GraphError>,
        /// The answer's `Retry-After` header (in seconds), when it had one.
        retry_after_header: Option<Duration>,
    },
    /// A non-2xx answer whose body is not a Graph error (a proxy's page, an empty body).
    #[error("HTTP {status} without a Graph error body: {snippet:?}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body (at most 200 characters), to help diagnose.
        snippet: String,
        /// The answer's `Retry-After` header (in seconds), when it had one.
        retry_after_header: Option<Duration>,
    },
    /// The request could not be sent or the answer not received (connection, TLS, timeout). The URL is
    /// left out of the message: it may carry an `appsecret_proof`.
    #[error("HTTP transport error")]
    Http(#[source] reqwest::Error),
    /// A 2xx answer whose body is not what the call returns.
    #[error("could not decode the answer (HTTP {status})")]
    Decode {
        /// The HTTP status of the answer.
        status: u16,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The request breaks one of Meta's documented limits; nothing was sent.
    #[error("invalid request")]
    Invalid(#[from] ValidationError),
    /// A media upload that Meta would refuse (type or size); nothing was sent.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The [`crate::TokenProvider`] could not give a token.
    #[error("the token provider failed")]
    Token(#[source] TokenError),
    /// A URL the client will not call: unparsable, or one that would carry the access token in clear text
    /// to a host other than the configured base URL's.
    #[error("refusing URL: {0}")]
    Url(String),
    /// Meta answered `{"success": false}` to an action.
    #[error("Meta answered success=false")]
    Unsuccessful,
    /// The file of an upload from disk ([`crate::Client::upload_media_file`]) could not be opened; nothing
    /// was sent. (A read that fails once the upload has started ends it as [`CloudError::Http`].)
    #[error("could not open the media file to upload")]
    File(#[source] std::io::Error),
    /// A media download is larger than any media file WhatsApp allows; reading stopped there.
    #[error("the media download is larger than the {limit} bytes WhatsApp allows for any media")]
    MediaTooLarge {
        /// The largest media file Meta accepts ([`wabridge_types::limits::MEDIA_MAX_BYTES`]).
        limit: u64,
    },
}

/// Why a media upload is refused before anything is sent (`cloud-api.md` §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The MIME type is not one Meta accepts for any media kind.
    #[error("media type {mime:?} is not accepted by WhatsApp")]
    UnsupportedType {
        /// The MIME type given.
        mime: String,
    },
    /// The file is larger than Meta accepts for its kind.
    #[error("{kind:?} media is {size} bytes; at most {limit} allowed")]
    TooLarge {
        /// The kind the MIME type belongs to.
        kind: MediaKind,
        /// The file's size.
        size: u64,
        /// The kind's limit.
        limit: u64,
    },
    /// The file is empty.
    #[error("the media file is empty")]
    Empty,
}

impl CloudError {
    /// Wraps a transport error, dropping its URL (which may hold an `appsecret_proof`).
    pub(crate) fn http(e: reqwest::Error) -> Self {
        Self::Http(e.without_url())
    }

    /// The Graph error code, when Meta sent one.
    #[must_use]
    pub fn code(&self) -> Option<i64> {
        self.graph_error().map(|e| e.code)
    }

    /// The Graph error, when Meta sent one.
    #[must_use]
    pub fn graph_error(&self) -> Option<&GraphError> {
        match self {
            Self::Graph { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of Meta's answer, when there was one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Graph { status, .. } | Self::Status { status, .. } | Self::Decode { status, .. } => {
                Some(*status)
            }
            Self::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// What kind of problem this is and what to do about it. Errors that are not Graph errors are
    /// classified here: transport failures as transient server errors, a refused token provider as an auth
    /// problem, local refusals as invalid requests (our reading, \[R\]).
    #[must_use]
    pub fn classification(&self) -> Classification {
        match self {
            // Every call of the app is refused until the gateway's configuration changes: no message is at
            // fault, so this pauses the number for an operator like a refused token does.
            Self::Graph { error, .. } if is_appsecret_proof_refusal(error) => Classification {
                pause: Some(PauseScope::Number),
                needs_operator: true,
                ..classified(ErrorClass::Auth, false, None)
            },
            // The number (or WABA) a call is made on does not exist for this token: no message is at fault,
            // and every send of the number would fail the same way until an operator fixes the configuration.
            Self::Graph { error, .. } if is_unreachable_node(error) => Classification {
                pause: Some(PauseScope::Number),
                needs_operator: true,
                ..classified(ErrorClass::Permission, false, None)
            },
            Self::Graph { status, error, .. } => {
                let c = Classification::with_http_status(error.code, *status);
                // A code outside the table that says it is a rate limit is one (Graph has many such codes).
                if c.class == ErrorClass::Unknown && is_rate_limit_wording(error) {
                    return classified(ErrorClass::CallQuota, true, Some(Duration::from_secs(60)));
                }
                c.transient(error.is_transient)
            }
            // -1 is no Graph code: the HTTP status alone decides (5xx transient, 429 throughput).
            Self::Status { status, .. } => Classification::with_http_status(-1, *status),
            Self::Http(_) => classified(ErrorClass::TransientServer, true, None),
            Self::Decode { .. } => classified(ErrorClass::Unknown, false, None),
            Self::Token(_) => Classification {
                pause: Some(PauseScope::Number),
                needs_operator: true,
                ..classified(ErrorClass::Auth, false, None)
            },
            Self::Invalid(_)
            | Self::Media(_)
            | Self::Url(_)
            | Self::Unsuccessful
            | Self::File(_)
            | Self::MediaTooLarge { .. } => classified(ErrorClass::InvalidRequest, false, None),
        }
    }

    /// The error class (shortcut for `classification().class`).
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        self.classification().class
    }

    /// Whether trying the same call again later can succeed: exactly `classification().retryable`. Meta's
    /// `is_transient: true` makes an error that would fail the message retryable, never one that pauses the
    /// number or the WABA (190, 368, …); transport errors and timeouts are retryable.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.classification().retryable
    }

    /// Whether Meta may have done what the call asked although it ended in this error — so sending it again
    /// may do it twice:
    /// - a transport error after the connection was made (a timeout, a reset): the request may have been
    ///   processed;
    /// - a 2xx answer that does not read as what the call returns: Meta answered success;
    /// - a 502 or 504 without a Graph error body: a proxy on the way lost or timed out the answer, not
    ///   necessarily the request.
    ///
    /// A 500 or 503 without a Graph body is read as a refusal, and so retried: a decision, not a certainty.
    /// Meta's own server errors carry a Graph body (codes 1, 2, 131000), and a proxy answers a bare 503 when
    /// it could not reach Meta at all; taking them as unknown would put every message of an outage in doubt
    /// (the gateway waits `outbound.unknown_outcome_grace_ms` for its status, then resends it flagged as a
    /// possible duplicate) instead of retrying it shortly. A proxy that answers 500 after forwarding a send
    /// is the one case this reading gets wrong.
    ///
    /// A Graph error is Meta refusing: nothing was done.
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Http(inner) => !inner.is_connect(),
            Self::Decode { .. } | Self::Unsuccessful => true,
            Self::Status { status, .. } => matches!(status, 502 | 504),
            _ => false,
        }
    }

    /// The shortest sensible wait before trying again: the longer of the class's delay (131056: 6 s) and
    /// the answer's `Retry-After` header, when either is known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        let class = self.classification().delay;
        match (class, self.retry_after_header()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `Retry-After` header of Meta's (or a proxy's) answer, when it had one in seconds.
    #[must_use]
    pub fn retry_after_header(&self) -> Option<Duration> {
        match self {
            Self::Graph { retry_after_header, .. } | Self::Status { retry_after_header, .. } => {
                *retry_after_header
            }
            _ => None,
        }
    }

    /// Whether Meta refused the access token (code 190 or 0, or HTTP 401): a fresh token may help.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        match self {
            Self::Graph { status, error, .. } => matches!(error.code, 0 | 190) || *status == 401,
            Self::Status { status, .. } => *status == 401,
            _ => false,
        }
    }
}

/// Whether Meta refused a call for its `appsecret_proof` (`cloud-api.md` §0: code 100, "API calls from the
/// server require an appsecret_proof argument" when the app requires one and none was sent, "Invalid
/// appsecret_proof provided in the API argument" when it does not match): the app's configuration, not the
/// request, is at fault. Meta's wording is matched (in `message`, or in `error_data.details` where the
/// sandbox puts it), not any mention of the proof: code 100's generic meaning lists it among others.
#[must_use]
pub fn is_appsecret_proof_refusal(error: &GraphError) -> bool {
    const WORDINGS: [&str; 2] = ["require an appsecret_proof argument", "invalid appsecret_proof provided"];
    error.code == 100
        && [Some(error.message.as_str()), error.details()].into_iter().flatten().any(|text| {
            let text = text.to_ascii_lowercase();
            WORDINGS.iter().any(|w| text.contains(w))
        })
}

/// Whether Meta refused a POST because the object it was made on does not exist for this token: code 100,
/// subcode 33, "Unsupported post request. Object with ID '…' does not exist, cannot be loaded due to missing
/// permissions, or does not support this operation". Every POST of the Cloud API is made on a phone number
/// or a WABA (messages, media, registration, templates), and each supports it, so the object is missing or
/// out of the token's reach: a mistyped phone-number id, or a system user taken off the WABA. A GET or DELETE
/// of a media id that does not exist has the same code with its own method in the wording, and stays an
/// invalid request: that media is at fault.
#[must_use]
pub fn is_unreachable_node(error: &GraphError) -> bool {
    error.code == 100
        && error.error_subcode == Some(33)
        && error.message.to_ascii_lowercase().contains("unsupported post request")
}

/// Whether an error's own words say it is a rate limit ("(#613) Calls to this api have exceeded the rate
/// limit.", "Too many calls").
fn is_rate_limit_wording(error: &GraphError) -> bool {
    let message = error.message.to_ascii_lowercase();
    message.contains("rate limit") || message.contains("too many calls")
}

fn classified(class: ErrorClass, retryable: bool, delay: Option<Duration>) -> Classification {
    Classification { class, retryable, delay, pause: None, needs_operator: false }
}
