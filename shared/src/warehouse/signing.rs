//! Request signing shared by both directions of the warehouse interface: the warehouse signs
//! what it sends to the warehouse API, and the outbound webhook signs what we send it.
//!
//! `signature = hex(HMAC-SHA256(secret, timestamp + "\n" + METHOD + "\n" + path_and_query + "\n" + body))`
//! with `timestamp` in unix seconds, carried in [`TIMESTAMP_HEADER`] and [`SIGNATURE_HEADER`].
//! Verification is constant time and accepts timestamps within [`CLOCK_WINDOW`] of now either way,
//! so a captured request cannot be replayed later.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-flexbridge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-flexbridge-signature";
/// How far a request's timestamp may be from our clock, in either direction.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused. Each maps to its own 401 code in the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    #[error("{TIMESTAMP_HEADER} must be unix seconds")]
    MalformedTimestamp,
    #[error("{TIMESTAMP_HEADER} is {skew_s}s away from server time; the window is 300s")]
    StaleTimestamp { skew_s: i64 },
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("{SIGNATURE_HEADER} must be 64 hex characters")]
    MalformedSignature,
    #[error("signature does not match the request")]
    Mismatch,
}

impl SignatureError {
    /// A stable machine-readable code for error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::MalformedTimestamp => "malformed_timestamp",
            SignatureError::StaleTimestamp { .. } => "stale_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::MalformedSignature => "malformed_signature",
            SignatureError::Mismatch => "invalid_signature",
        }
    }
}

fn mac(
    secret: &[u8],
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(b"\n");
    mac.update(path_and_query.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// The hex signature of one request.
pub fn sign(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    hex::encode(
        mac(secret, &timestamp.to_string(), method, path_and_query, body)
            .finalize()
            .into_bytes(),
    )
}

/// The two headers to attach to a request, signed at `now` (unix seconds).
pub fn signed_headers(
    secret: &[u8],
    now: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> [(&'static str, String); 2] {
    [
        (TIMESTAMP_HEADER, now.to_string()),
        (
            SIGNATURE_HEADER,
            sign(secret, now, method, path_and_query, body),
        ),
    ]
}

/// Checks a request's headers against its method, path and body at `now` (unix seconds).
/// The window is checked first so a stale request is reported as stale even if its signature
/// is also wrong; the signature comparison is constant time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let raw_ts = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(SignatureError::MissingTimestamp)?;
    let ts: i64 = raw_ts
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.unsigned_abs() > CLOCK_WINDOW.as_secs() {
        return Err(SignatureError::StaleTimestamp { skew_s: skew });
    }
    let sig = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingSignature)?;
    let sig = hex::decode(sig).map_err(|_| SignatureError::MalformedSignature)?;
    if sig.len() != 32 {
        return Err(SignatureError::MalformedSignature);
    }
    mac(secret, raw_ts, method, path_and_query, body)
        .verify_slice(&sig)
        .map_err(|_| SignatureError::Mismatch)
}

/// Unix seconds now.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn known_vector() {
        // Computed independently: printf '1700000000\nPOST\n/v1/inventory\n{"a":1}' |
        //   openssl dgst -sha256 -hmac whsec_test
        let sig = sign(
            SECRET,
            1_700_000_000,
            "post",
            "/v1/inventory",
            br#"{"a":1}"#,
        );
        assert_eq!(
            sig,
            "33102a400deff9a2420c25523d39058e9c5f82b95a9139969b787619dfffd0f1"
        );
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let now = 1_700_000_000;
        let body = br#"{"items":[]}"#;
        let [(_, ts), (_, sig)] = signed_headers(SECRET, now, "POST", "/v1/inventory?x=1", body);
        let check = |ts: Option<&str>, sig: Option<&str>, path: &str, body: &[u8], now: i64| {
            verify(SECRET, ts, sig, "POST", path, body, now)
        };
        let p = "/v1/inventory?x=1";
        assert_eq!(check(Some(&ts), Some(&sig), p, body, now), Ok(()));
        assert_eq!(check(Some(&ts), Some(&sig), p, body, now + 300), Ok(()));
        assert_eq!(check(Some(&ts), Some(&sig), p, body, now - 300), Ok(()));
        assert_eq!(
            check(Some(&ts), Some(&sig), p, body, now + 301),
            Err(SignatureError::StaleTimestamp { skew_s: 301 })
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), p, body, now - 301),
            Err(SignatureError::StaleTimestamp { skew_s: -301 })
        );
        assert_eq!(
            check(None, Some(&sig), p, body, now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(Some("abc"), Some(&sig), p, body, now),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            check(Some(&ts), None, p, body, now),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            check(Some(&ts), Some("zz"), p, body, now),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(
            check(Some(&ts), Some("abcd"), p, body, now),
            Err(SignatureError::MalformedSignature)
        );
        // Any change to what was signed breaks it.
        assert_eq!(
            check(Some(&ts), Some(&sig), "/v1/inventory", body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), p, b"{}", now),
            Err(SignatureError::Mismatch)
        );
        let other_ts = (now + 1).to_string();
        assert_eq!(
            check(Some(&other_ts), Some(&sig), p, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&sig), "POST", p, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig), "PUT", p, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&ts), Some(&sig.to_uppercase()), p, body, now),
            Ok(())
        );
    }
}
