//! Signatures of callback requests.
//!
//! `X-Wabridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the timestamp is
//! covered, so a receiver can refuse replays of old requests; `v1` names the scheme so it can change
//! without breaking receivers. Cloud-shape callbacks also carry Meta's `X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256(secret, body)>`, so a receiver written for Meta's webhooks accepts them as they
//! are. `X-Wabridge-Event-Id` holds the event's seq: the same on every attempt, so receivers deduplicate.

use wabridge_types::signature::{constant_time_eq, hmac_sha256_hex};

/// The header of the gateway's own signature.
pub const SIGNATURE_HEADER: &str = "X-Wabridge-Signature";
/// The header of the event's stable id (its seq).
pub const EVENT_ID_HEADER: &str = "X-Wabridge-Event-Id";

/// The `X-Wabridge-Signature` value for `body` sent at `timestamp` (Unix seconds).
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hmac_sha256_hex(secret, &signed_bytes(timestamp, body)))
}

fn signed_bytes(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    message
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not `t=<digits>,v1=<hex>`.
    #[error("malformed X-Wabridge-Signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("the signature's timestamp is outside the tolerance")]
    Expired,
    /// No `v1` matches.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks an `X-Wabridge-Signature` header over `body` (receivers and tests): the `v1` HMAC, and the
/// timestamp within `tolerance_secs` of `now` (Unix seconds).
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::Expired);
    }
    let expected = hmac_sha256_hex(secret, &signed_bytes(timestamp, body));
    let mut ok = false;
    for c in candidates {
        ok |= constant_time_eq(expected.as_bytes(), c.as_bytes());
    }
    if ok { Ok(()) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let header = sign(b"s", 1_700_000_000, b"{}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(&header, b"{}", b"s", 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(&header, b"{ }", b"s", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(&header, b"{}", b"x", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(&header, b"{}", b"s", 1_700_001_000, 300), Err(VerifyError::Expired));
        assert_eq!(verify("v1=ab", b"{}", b"s", 0, 300), Err(VerifyError::Malformed));
    }
}
