//! HMAC-SHA256 signatures: Meta's `X-Hub-Signature-256` on webhooks, and `appsecret_proof` on calls.
//!
//! The signature covers the raw bytes of the request body exactly as they arrived (Meta signs its
//! escaped-Unicode payload as sent). Never parse and re-serialize a body before checking it: the bytes
//! would differ and a genuine webhook would be refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Meta puts its webhook signature in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";

/// Why a webhook signature was refused. Each case is distinct so the log can say what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request carries no `X-Hub-Signature-256` header.
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    /// The header is not `sha256=` followed by 64 hexadecimal digits.
    #[error("the X-Hub-Signature-256 header is malformed: {0}")]
    Malformed(&'static str),
    /// The header is well formed but no configured app secret produces it.
    #[error("the X-Hub-Signature-256 header does not match the body for any configured app secret")]
    Mismatch,
    /// No app secret is configured (an empty one counts as none), so nothing can be verified.
    #[error("no app secret is configured")]
    NoSecret,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The lowercase hex HMAC-SHA256 of `message` under `key`.
#[must_use]
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut m = mac(key);
    m.update(message);
    hex::encode(m.finalize().into_bytes())
}

/// The `X-Hub-Signature-256` header value for `body` signed with `app_secret`: `sha256=<hex>`.
/// Tests and the sandbox use it to build requests a verifier accepts.
#[must_use]
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    format!("{PREFIX}{}", hmac_sha256_hex(app_secret, body))
}

/// Verifies `header` (the value of `X-Hub-Signature-256`, if present) over the raw `body` against each of
/// `app_secrets` — several during a secret rotation — in constant time. Returns the index of the secret
/// that matched.
///
/// An empty secret is no secret: anyone can compute an HMAC with an empty key, so empty entries are
/// skipped, and a list holding only empty ones is [`SignatureError::NoSecret`].
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    app_secrets: &[S],
) -> Result<usize, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    if app_secrets.iter().all(|s| s.as_ref().is_empty()) {
        return Err(SignatureError::NoSecret);
    }
    let hex_part = header
        .strip_prefix(PREFIX)
        .or_else(|| header.strip_prefix("SHA256="))
        .ok_or(SignatureError::Malformed("expected the prefix sha256="))?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed("expected 64 hexadecimal digits after sha256="));
    }
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut expected)
        .map_err(|_| SignatureError::Malformed("expected 64 hexadecimal digits after sha256="))?;
    let mut matched = None;
    // Check every secret, so the time taken does not tell which one matched.
    for (i, secret) in app_secrets.iter().enumerate() {
        if secret.as_ref().is_empty() {
            continue;
        }
        let mut m = mac(secret.as_ref());
        m.update(body);
        if m.verify_slice(&expected).is_ok() && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(SignatureError::Mismatch)
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 with the app secret as key over the access token
/// (`cloud-api.md` §0). Sent as a query parameter when the app requires it.
#[must_use]
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    hmac_sha256_hex(app_secret.as_bytes(), access_token.as_bytes())
}

/// Compares two byte strings in constant time (for tokens and keys).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
