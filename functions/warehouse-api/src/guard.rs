//! What every request passes before a route sees it, in this order:
//! 1. body size (413 `body_too_large`);
//! 2. signature and timestamp window (401, one code per reason; `v1` only while the setting
//!    `WAREHOUSE_ACCEPT_V1_SIGNATURES` allows it), with the current key or, during a rotation,
//!    the previous one (`flexbridge::warehouse::keys`);
//! 3. for POST (and any other method but GET/HEAD/OPTIONS, which change nothing): one use per
//!    signature: its hash is recorded (`signature#<hash>` in the idempotency table, until the
//!    timestamp leaves the window) and a second use is 401 `signature_reused`;
//! 4. for those: an `Idempotency-Key` (400) and a JSON body (400 `malformed_json`);
//! 5. for those: the idempotency claim: a repeat with the same key and request replays the saved
//!    response (status, headers and raw body) without running the route again
//!    (`Idempotent-Replayed: true`), the same key with another request is 422, a repeat while
//!    the first still runs is 409.
//!
//! Refusals write nothing but the signature's use. Every request carries an [`Invocation`] (the
//! Lambda request ID and deadline, inserted by `main.rs` or the local runner); routes with
//! effects take [`Effect`]. Only 2xx responses are saved; any other response releases the claim,
//! so a corrected or retried request can use the key again.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use flexbridge::idempotency::{hash_bytes, ActionKey, Begin, Claim, ClaimToken};
use flexbridge::runtime::Invocation;
use flexbridge::warehouse::signing::{
    self, SignatureError, Signed, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

pub use flexbridge::warehouse::signing::IDEMPOTENCY_KEY_HEADER;
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Largest request body accepted (a Function URL allows 6 MB; the warehouse never needs that).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest response body kept for replay: base64 of it still fits a DynamoDB item (400 KB).
pub const MAX_SAVED_RESPONSE_BYTES: usize = 256 * 1024;
const MAX_KEY_LEN: usize = 255;
/// Used when nothing told us the invocation's deadline (tests calling the router directly).
const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(29);
/// Response headers the transport computes; every other header is saved and replayed.
const UNSAVED_HEADERS: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::DATE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// The response saved under an idempotency key: enough to answer a repeat exactly.
#[derive(Debug, Serialize, Deserialize)]
struct SavedResponse {
    status: u16,
    headers: Vec<(String, String)>,
    /// The raw body, base64 (bodies need not be JSON, nor UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    /// Set instead of the body when it was too large to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    omitted_bytes: Option<usize>,
}

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    // Every request carries its invocation; without one (tests), a local stand-in.
    let invocation = req
        .extensions()
        .get::<Invocation>()
        .cloned()
        .unwrap_or_else(|| Invocation::new(uuid::Uuid::new_v4().to_string(), DEFAULT_BUDGET));
    // A panic or running into the deadline is counted as the function_error alert (the one
    // alarm; flexbridge::runtime::guarded) and answered like any other failure.
    let metrics = flexbridge::metrics::Metrics::from_env(&state.env);
    let run = async { Ok(check_and_run(state, req, next, &invocation).await) };
    let resp = match flexbridge::runtime::guarded(&metrics, &invocation, run).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    tracing::info!(
        request_id = %invocation.request_id,
        %method,
        path,
        status = resp.status().as_u16(),
        replayed = resp.headers().contains_key(REPLAYED_HEADER),
        ms = started.elapsed().as_millis() as u64,
        "warehouse request"
    );
    resp
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds {MAX_BODY_BYTES} bytes; send fewer items per request"),
    )
}

/// An encoded `/` or `\`, a NUL, or a `.`/`..` segment (raw or encoded): traversal attempts.
fn hostile_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "\\", "%00"]
        .iter()
        .any(|bad| lower.contains(bad))
    {
        return true;
    }
    lower.split('/').any(|segment| {
        let segment = segment.replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(e: SignatureError, path: &str) -> ApiError {
    tracing::info!(
        code = e.code(),
        path,
        "refused unsigned or badly signed request"
    );
    ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
}

async fn check_and_run(
    state: AppState,
    req: Request,
    next: Next,
    invocation: &Invocation,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();

    // 0. a path that would name something else once decoded: no route takes one
    if hostile_path(parts.uri.path()) {
        return Err(ApiError::bad_request(
            "invalid_path",
            "the path has an encoded '/' or '\\', a NUL, or a '.' or '..' segment; \
             IDs in paths are sent as they are",
        ));
    }

    // 1. size, before reading more than the limit
    let declared = header_str(&parts.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;

    // 2. signature
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let path = parts.uri.path().to_string();
    let key_header = header_str(&parts.headers, IDEMPOTENCY_KEY_HEADER).map(str::to_string);
    let mut signed = Signed::new(parts.method.as_str(), &path_and_query, &bytes);
    signed.content_type = header_str(&parts.headers, header::CONTENT_TYPE.as_str());
    signed.idempotency_key = key_header.as_deref();
    // The current key or, during a rotation, the previous one; a signature matching neither
    // re-reads the secret (rate-limited) in case the key was rotated since it was cached.
    let check = state
        .warehouse_keys()
        .verify(
            header_str(&parts.headers, TIMESTAMP_HEADER),
            header_str(&parts.headers, SIGNATURE_HEADER),
            &signed,
            signing::now_unix(),
            state.accept_v1_signatures,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot load the warehouse signing secret");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secret_unavailable",
                "the signing secret cannot be loaded right now",
            )
            .with_retry_after(5)
        })?;
    if check.reread {
        tracing::info!(
            path,
            "re-read the warehouse key for a signature the cached keys did not match"
        );
    }
    let verified = check.result.map_err(|e| unauthorized(e, &path))?;
    if verified.scheme == signing::Scheme::V1 {
        tracing::warn!(
            path,
            "accepted a v1 signature; the warehouse should move to v2"
        );
    }

    parts.extensions.insert(invocation.clone());

    // Reads change nothing: they need no key, and repeating one (a poll twice in a second has
    // the same signature) is harmless.
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let req = Request::from_parts(parts, Body::from(bytes));
        return Ok(next.run(req).await);
    }

    // 3. one use per signature for everything else (POST today)
    let first = state
        .idempotency
        .first_use(
            &ActionKey::Signature(&verified.signature_id).to_string(),
            verified.valid_until() + 1,
        )
        .await?;
    if !first {
        return Err(unauthorized(SignatureError::Reused, &path));
    }

    // 4. POST: key and JSON
    let key = key_header
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_idempotency_key",
                "every POST needs an Idempotency-Key header (a unique value per operation, e.g. a UUID)",
            )
        })?
        .to_string();
    if key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key must be 1-{MAX_KEY_LEN} printable ASCII characters without spaces"
            ),
        ));
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return Err(ApiError::bad_request(
            "malformed_json",
            if bytes.is_empty() {
                "request body is empty; send a JSON object".to_string()
            } else {
                format!("request body is not valid JSON: {e}")
            },
        ));
    }

    // 5. claim
    let mut fingerprint = Vec::with_capacity(bytes.len() + path_and_query.len() + 8);
    fingerprint.extend_from_slice(parts.method.as_str().as_bytes());
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(path_and_query.as_bytes());
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(&bytes);
    let validation = hash_bytes(&fingerprint);
    let record_key = ActionKey::Warehouse(&key).to_string();
    let token = match state
        .idempotency
        .begin(&record_key, &validation, invocation)
        .await?
    {
        Begin::Claimed(token) => token,
        Begin::Replay(saved) => return replay(saved),
        Begin::PayloadMismatch => {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; use a new key for a new operation",
            ))
        }
        Begin::InProgress { retry_after } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .with_retry_after(retry_after.as_secs()))
        }
    };

    parts.extensions.insert(token.claim);
    parts.extensions.insert(IdempotencyKey(key));
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    if !resp.status().is_success() {
        if let Err(e) = state.idempotency.release(&token).await {
            tracing::warn!(error = %e, "could not release idempotency claim");
        }
        return Ok(resp);
    }
    save(&state, &token, resp).await
}

/// Completes the claim with the route's response and answers with it. The route's effects are
/// done, so the claim is always completed (never released): with the response, or, when that
/// cannot be kept, with a record saying so.
async fn save(state: &AppState, token: &ClaimToken, resp: Response) -> Result<Response, ApiError> {
    let (parts, body) = resp.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !UNSAVED_HEADERS.contains(name))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    // Our own routes build their bodies in memory: reading one whole cannot run away.
    let body = axum::body::to_bytes(body, usize::MAX).await;
    let saved = SavedResponse {
        status: parts.status.as_u16(),
        headers,
        body_base64: match &body {
            Ok(b) if b.len() <= MAX_SAVED_RESPONSE_BYTES => {
                Some(base64::engine::general_purpose::STANDARD.encode(b))
            }
            _ => None,
        },
        omitted_bytes: match &body {
            Ok(b) if b.len() > MAX_SAVED_RESPONSE_BYTES => Some(b.len()),
            Ok(_) => None,
            Err(_) => Some(0),
        },
    };
    if saved.omitted_bytes.is_some() {
        tracing::error!(
            key = token.key,
            bytes = saved.omitted_bytes,
            "response too large to keep for replay; a repeat of this key is answered 410"
        );
    }
    let value = serde_json::to_value(&saved).map_err(|e| {
        flexbridge::Error::Internal(format!("saved response is not serializable: {e}"))
    });
    let stored = match value {
        Ok(v) => state.idempotency.complete(token, &v).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        // Unsaved, the claim expires at the invocation's deadline and a repeat is `Retaken`,
        // which routes reconcile; failing now would invite a retry of done work.
        tracing::error!(key = token.key, error = %e, "could not save the response of a completed request");
    }
    match body {
        Ok(b) => Ok(Response::from_parts(parts, Body::from(b))),
        Err(e) => Err(flexbridge::Error::Internal(format!(
            "the request was applied but its response could not be read: {e}"
        ))
        .into()),
    }
}

fn replay(saved: serde_json::Value) -> Result<Response, ApiError> {
    let saved: SavedResponse = serde_json::from_value(saved)
        .map_err(|e| flexbridge::Error::Internal(format!("saved response: {e}")))?;
    let Some(encoded) = saved.body_base64 else {
        return Err(ApiError::new(
            StatusCode::GONE,
            "response_not_replayable",
            format!(
                "the request with this Idempotency-Key succeeded (status {}), but its response ({} bytes) was too large to keep; read the result with a GET route",
                saved.status,
                saved.omitted_bytes.unwrap_or(0)
            ),
        ));
    };
    let body = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| flexbridge::Error::Internal(format!("saved response body: {e}")))?;
    let status = StatusCode::from_u16(saved.status)
        .map_err(|e| flexbridge::Error::Internal(format!("saved response status: {e}")))?;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    for (name, value) in saved.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            return Err(
                flexbridge::Error::Internal(format!("saved response header {name}")).into(),
            );
        };
        resp.headers_mut().append(name, value);
    }
    resp.headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(resp)
}

/// The request's `Idempotency-Key` (POST routes); routes may use it as a business key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

/// What a route with effects (any POST) gets from the guard: the Lambda invocation (request ID
/// and real deadline, for every claim and call it makes), how it got the request's idempotency
/// claim, and the key. `claim` is [`Claim::Retaken`] when an earlier attempt with this key died
/// after it may have acted: the route reads its state back (reconciles) before acting again.
#[derive(Debug, Clone)]
pub struct Effect {
    pub invocation: Invocation,
    pub claim: Claim,
    pub key: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Effect {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let found = (
            parts.extensions.get::<Invocation>(),
            parts.extensions.get::<Claim>(),
            parts.extensions.get::<IdempotencyKey>(),
        );
        match found {
            (Some(inv), Some(claim), Some(key)) => Ok(Effect {
                invocation: inv.clone(),
                claim: *claim,
                key: key.0.clone(),
            }),
            // Only a route registered for GET can get here: a programming error.
            _ => Err(flexbridge::Error::Internal(
                "route with effects reached without the guard's idempotency claim".into(),
            )
            .into()),
        }
    }
}
