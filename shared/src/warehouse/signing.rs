//! Request signing shared by both directions of the warehouse interface: the warehouse signs
//! what it sends to the warehouse API, and the outbound webhook signs what we send it.
//!
//! Scheme `v2` (current): the [`SIGNATURE_HEADER`] is `v2=<hex>` with
//!
//! ```text
//! hex(HMAC-SHA256(secret, "v2" + "\n" + timestamp + "\n" + METHOD + "\n" + path_and_query + "\n"
//!                         + content_type + "\n" + idempotency_key + "\n" + body))
//! ```
//!
//! `timestamp` is unix seconds (in [`TIMESTAMP_HEADER`]); `content_type` is the `Content-Type`
//! header trimmed and lower-cased (empty when absent); `idempotency_key` is the
//! `Idempotency-Key` header as sent (empty when absent). None of the fields before the body can
//! hold a newline, so the string is unambiguous; the leading `v2` keeps it from ever equalling a
//! `v1` string (which starts with the timestamp's digits).
//!
//! Scheme `v1` (legacy, accepted only where the caller allows it): a bare 64-hex signature over
//! `timestamp + "\n" + METHOD + "\n" + path_and_query + "\n" + body`. It leaves the
//! `Idempotency-Key` and content type open to whoever holds a signed request.
//!
//! During a key rotation the [`SIGNATURE_HEADER`] carries one signature per key, comma
//! separated, the current key's first: `v2=<hex>,v2=<hex>` (at most [`MAX_SIGNATURES`]). A
//! receiver accepts the request when any of them matches any key it holds, so it may hold
//! only the old key or only the new one. Outside a rotation there is one signature, as before.
//!
//! Verification is constant time and accepts timestamps within [`CLOCK_WINDOW`] of now either
//! way; [`Verified::signature_id`] lets the receiver refuse a second use of one signature
//! within that window.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const TIMESTAMP_HEADER: &str = "x-flexbridge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-flexbridge-signature";
/// Bound into `v2` signatures: the operation's key (inbound) or the event ID (outbound).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Most signatures one header may carry (two during a rotation; more is refused unread).
pub const MAX_SIGNATURES: usize = 4;
/// How far a request's timestamp may be from our clock, in either direction.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Which signed string a signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Timestamp, method, path and body only (legacy).
    V1,
    /// Also the content type and the `Idempotency-Key`, with a version marker.
    V2,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V2 => "v2",
        }
    }
}

/// Everything a signature covers besides the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<&'a str>,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> Signed<'a> {
    /// A request without content type or key; add them with the builders below.
    pub fn new(method: &'a str, path_and_query: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            path_and_query,
            content_type: None,
            idempotency_key: None,
            body,
        }
    }

    pub fn content_type(mut self, value: &'a str) -> Self {
        self.content_type = Some(value);
        self
    }

    pub fn idempotency_key(mut self, value: &'a str) -> Self {
        self.idempotency_key = Some(value);
        self
    }
}

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
    #[error("{SIGNATURE_HEADER} must be v2= followed by 64 hex characters (during a key rotation: up to 4 of them, comma separated)")]
    MalformedSignature,
    #[error("v1 signatures are no longer accepted; sign with v2 (see docs/warehouse-api.md)")]
    V1Refused,
    #[error("signature does not match the request")]
    Mismatch,
    #[error("this signature was already used; sign every request and every retry afresh, with a later timestamp (retry at least 1 s after the attempt before; a retry keeps its Idempotency-Key)")]
    Reused,
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
            SignatureError::V1Refused => "signature_v1_refused",
            SignatureError::Mismatch => "invalid_signature",
            SignatureError::Reused => "signature_reused",
        }
    }
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    HmacSha256::new_from_slice(secret).expect("hmac accepts any key length")
}

fn mac(secret: &[u8], scheme: Scheme, timestamp: &str, req: &Signed<'_>) -> HmacSha256 {
    let mut mac = new_mac(secret);
    if scheme == Scheme::V2 {
        mac.update(b"v2\n");
    }
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(req.method.to_ascii_uppercase().as_bytes());
    mac.update(b"\n");
    mac.update(req.path_and_query.as_bytes());
    mac.update(b"\n");
    if scheme == Scheme::V2 {
        let content_type = req.content_type.unwrap_or_default().trim();
        mac.update(content_type.to_ascii_lowercase().as_bytes());
        mac.update(b"\n");
        mac.update(req.idempotency_key.unwrap_or_default().as_bytes());
        mac.update(b"\n");
    }
    mac.update(req.body);
    mac
}

/// The [`SIGNATURE_HEADER`] value (`v2=<hex>`) of one request.
pub fn sign(secret: &[u8], timestamp: i64, req: &Signed<'_>) -> String {
    let mac = mac(secret, Scheme::V2, &timestamp.to_string(), req);
    format!("v2={}", hex::encode(mac.finalize().into_bytes()))
}

/// The legacy `v1` signature (bare hex), for warehouses not yet migrated and their tests.
pub fn sign_v1(secret: &[u8], timestamp: i64, req: &Signed<'_>) -> String {
    hex::encode(
        mac(secret, Scheme::V1, &timestamp.to_string(), req)
            .finalize()
            .into_bytes(),
    )
}

/// The two headers to attach to a request, signed (`v2`) at `now` (unix seconds). The caller
/// sends `req.content_type` and `req.idempotency_key` as headers too.
pub fn signed_headers(secret: &[u8], now: i64, req: &Signed<'_>) -> [(&'static str, String); 2] {
    signed_headers_all(&[secret], now, req)
}

/// [`signed_headers`] with one signature per key, in the order given (the current key first),
/// comma separated: what a sender holding two keys during a rotation sends.
pub fn signed_headers_all(
    secrets: &[&[u8]],
    now: i64,
    req: &Signed<'_>,
) -> [(&'static str, String); 2] {
    let signatures: Vec<String> = secrets.iter().map(|s| sign(s, now, req)).collect();
    [
        (TIMESTAMP_HEADER, now.to_string()),
        (SIGNATURE_HEADER, signatures.join(",")),
    ]
}

/// A signature that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    /// The signed timestamp (unix seconds); the signature is valid until it leaves the window.
    pub timestamp: i64,
    /// sha256 (hex) of the scheme and the signature's bytes: the same for every spelling of one
    /// signature (hex case), stored to refuse a second use without storing the signature.
    pub signature_id: String,
}

impl Verified {
    /// The last second (unix) at which this signature is still inside the window.
    pub fn valid_until(&self) -> i64 {
        self.timestamp + CLOCK_WINDOW.as_secs() as i64
    }
}

fn parse_signature(raw: &str) -> Result<(Scheme, Vec<u8>), SignatureError> {
    let (scheme, hex_part) = match raw.split_once('=') {
        Some((v, rest)) if v.eq_ignore_ascii_case("v2") => (Scheme::V2, rest),
        Some((v, rest)) if v.eq_ignore_ascii_case("v1") => (Scheme::V1, rest),
        Some(_) => return Err(SignatureError::MalformedSignature),
        // A bare hex value is how v1 was always sent.
        None => (Scheme::V1, raw),
    };
    let bytes = hex::decode(hex_part).map_err(|_| SignatureError::MalformedSignature)?;
    if bytes.len() != 32 {
        return Err(SignatureError::MalformedSignature);
    }
    Ok((scheme, bytes))
}

/// Checks a request's headers against what it does at `now` (unix seconds). `accept_v1` says
/// whether the legacy scheme still counts. The window is checked first so a stale request is
/// reported as stale even if its signature is also wrong; the comparison is constant time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    req: &Signed<'_>,
    now: i64,
    accept_v1: bool,
) -> Result<Verified, SignatureError> {
    verify_any(&[secret], timestamp, signature, req, now, accept_v1)
}

/// [`verify`] against several keys (the current and the previous one during a rotation): the
/// request counts when any signature in the header matches any key. A header with a malformed
/// value is refused whole.
pub fn verify_any(
    secrets: &[&[u8]],
    timestamp: Option<&str>,
    signature: Option<&str>,
    req: &Signed<'_>,
    now: i64,
    accept_v1: bool,
) -> Result<Verified, SignatureError> {
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
    let raw_sig = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingSignature)?;
    let values: Vec<&str> = raw_sig.split(',').map(str::trim).collect();
    if values.len() > MAX_SIGNATURES {
        return Err(SignatureError::MalformedSignature);
    }
    let parsed = values
        .into_iter()
        .map(parse_signature)
        .collect::<Result<Vec<_>, _>>()?;
    let usable: Vec<&(Scheme, Vec<u8>)> = parsed
        .iter()
        .filter(|(scheme, _)| accept_v1 || *scheme != Scheme::V1)
        .collect();
    if usable.is_empty() {
        return Err(SignatureError::V1Refused);
    }
    let (scheme, sig) = usable
        .into_iter()
        .find(|(scheme, sig)| {
            secrets
                .iter()
                .any(|secret| mac(secret, *scheme, raw_ts, req).verify_slice(sig).is_ok())
        })
        .ok_or(SignatureError::Mismatch)?;
    let scheme = *scheme;
    let mut id = Sha256::new();
    id.update(scheme.as_str().as_bytes());
    id.update(sig);
    Ok(Verified {
        scheme,
        timestamp: ts,
        signature_id: hex::encode(id.finalize()),
    })
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
    fn known_vectors() {
        // Computed independently: printf '1700000000\nPOST\n/v1/inventory\n{"a":1}' |
        //   openssl dgst -sha256 -hmac whsec_test
        let req = Signed::new("post", "/v1/inventory", br#"{"a":1}"#);
        assert_eq!(
            sign_v1(SECRET, 1_700_000_000, &req),
            "33102a400deff9a2420c25523d39058e9c5f82b95a9139969b787619dfffd0f1"
        );
        // printf 'v2\n1700000000\nPOST\n/v1/inventory\napplication/json\nk-1\n{"a":1}' |
        //   openssl dgst -sha256 -hmac whsec_test
        let req = req
            .content_type(" Application/JSON ")
            .idempotency_key("k-1");
        assert_eq!(
            sign(SECRET, 1_700_000_000, &req),
            "v2=".to_string() + V2_VECTOR
        );
    }

    const V2_VECTOR: &str = "c7dc9cf81b29000c708b6dce1597e0f7d950840784b5b8f830c222656a2ac769";

    #[test]
    fn round_trip_and_every_refusal() {
        let now = 1_700_000_000;
        let body = br#"{"items":[]}"#;
        let p = "/v1/inventory?x=1";
        let req = Signed::new("POST", p, body)
            .content_type("application/json")
            .idempotency_key("k1");
        let [(_, ts), (_, sig)] = signed_headers(SECRET, now, &req);
        let check = |ts: Option<&str>, sig: Option<&str>, req: &Signed<'_>, now: i64| {
            verify(SECRET, ts, sig, req, now, false).map(|v| v.scheme)
        };
        assert_eq!(check(Some(&ts), Some(&sig), &req, now), Ok(Scheme::V2));
        assert_eq!(
            check(Some(&ts), Some(&sig), &req, now + 300),
            Ok(Scheme::V2)
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), &req, now - 300),
            Ok(Scheme::V2)
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), &req, now + 301),
            Err(SignatureError::StaleTimestamp { skew_s: 301 })
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), &req, now - 301),
            Err(SignatureError::StaleTimestamp { skew_s: -301 })
        );
        assert_eq!(
            check(None, Some(&sig), &req, now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(Some("abc"), Some(&sig), &req, now),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            check(Some(&ts), None, &req, now),
            Err(SignatureError::MissingSignature)
        );
        for bad in ["zz", "abcd", "v2=zz", "v3=abcd", "v2="] {
            assert_eq!(
                check(Some(&ts), Some(bad), &req, now),
                Err(SignatureError::MalformedSignature),
                "{bad}"
            );
        }
        // Any change to what was signed breaks it: path, body, timestamp, key, method, content
        // type, secret.
        let changed = [
            Signed {
                path_and_query: "/v1/inventory",
                ..req
            },
            Signed { body: b"{}", ..req },
            req.idempotency_key("k2"),
            Signed {
                idempotency_key: None,
                ..req
            },
            Signed {
                method: "PUT",
                ..req
            },
            req.content_type("text/plain"),
            Signed {
                content_type: None,
                ..req
            },
        ];
        for other in changed {
            assert_eq!(
                check(Some(&ts), Some(&sig), &other, now),
                Err(SignatureError::Mismatch),
                "{other:?}"
            );
        }
        let other_ts = (now + 1).to_string();
        assert_eq!(
            check(Some(&other_ts), Some(&sig), &req, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&sig), &req, now, false),
            Err(SignatureError::Mismatch)
        );
        // Hex case does not matter, and both spellings are one signature.
        let upper = format!("v2={}", sig[3..].to_uppercase());
        let a = verify(SECRET, Some(&ts), Some(&sig), &req, now, false).unwrap();
        let b = verify(SECRET, Some(&ts), Some(&upper), &req, now, false).unwrap();
        assert_eq!(a.signature_id, b.signature_id);
        assert_eq!(a.valid_until(), now + 300);
    }

    #[test]
    fn v1_only_where_accepted_and_never_as_v2() {
        let now = 1_700_000_000;
        let req = Signed::new("POST", "/v1/events/test", b"{}").idempotency_key("k1");
        let v1 = sign_v1(SECRET, now, &req);
        let ts = now.to_string();
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&v1), &req, now, false),
            Err(SignatureError::V1Refused)
        );
        let ok = verify(SECRET, Some(&ts), Some(&v1), &req, now, true).unwrap();
        assert_eq!(ok.scheme, Scheme::V1);
        // v1 does not cover the key: the weakness v2 closes.
        let fresh_key = req.idempotency_key("k2");
        assert!(verify(SECRET, Some(&ts), Some(&v1), &fresh_key, now, true).is_ok());
        // A v1 signature relabelled as v2 (or the reverse) does not match.
        let relabelled = format!("v2={v1}");
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&relabelled), &req, now, true),
            Err(SignatureError::Mismatch)
        );
        let v2 = sign(SECRET, now, &req);
        let relabelled = format!("v1={}", &v2[3..]);
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&relabelled), &req, now, true),
            Err(SignatureError::Mismatch)
        );
        assert_ne!(
            ok.signature_id,
            verify(SECRET, Some(&ts), Some(&v2), &req, now, true)
                .unwrap()
                .signature_id
        );
    }
}
