//! What every request passes before a route sees it, in this order (each refusal writes nothing):
//! 1. body size (413 `body_too_large`);
//! 2. signature and timestamp window (401, one code per reason);
//! 3. for POST (and any other method but GET/HEAD/OPTIONS): an `Idempotency-Key` (400) and a
//!    JSON body (400 `malformed_json`);
//! 4. for those: the idempotency claim: a repeat with the same key and request replays the saved
//!    response without running the route again (`Idempotent-Replayed: true`), the same key with
//!    another request is 422, a repeat while the first still runs is 409.
//!
//! Only 2xx responses are saved; any other response releases the claim, so a corrected or
//! retried request can use the key again.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flexbridge::idempotency::{hash_bytes, Begin, Claim};
use flexbridge::runtime::Invocation;
use flexbridge::warehouse::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Largest request body accepted (a Function URL allows 6 MB; the warehouse never needs that).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest saved response; bigger ones are not replayable, so they are refused up front by routes.
const MAX_SAVED_RESPONSE_BYTES: usize = 256 * 1024;
const MAX_KEY_LEN: usize = 255;
/// Used when nothing told us the invocation's deadline (local runner without one).
const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(29);

/// The response saved under an idempotency key.
#[derive(Debug, Serialize, Deserialize)]
struct SavedResponse {
    status: u16,
    body: serde_json::Value,
}

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = match check_and_run(state, req, next).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    tracing::info!(
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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn check_and_run(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();

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
    let secret = state.warehouse_secret().await.map_err(|e| {
        tracing::error!(error = %e, "cannot load the warehouse signing secret");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secret_unavailable",
            "the signing secret cannot be loaded right now",
        )
        .with_retry_after(5)
    })?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    signing::verify(
        secret.expose().as_bytes(),
        header_str(&parts.headers, TIMESTAMP_HEADER),
        header_str(&parts.headers, SIGNATURE_HEADER),
        parts.method.as_str(),
        &path_and_query,
        &bytes,
        signing::now_unix(),
    )
    .map_err(|e| {
        tracing::info!(code = e.code(), path = %parts.uri.path(), "refused unsigned or badly signed request");
        ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    })?;

    // Routes read the invocation (and its deadline) from the extensions, as the guard does.
    let invocation = parts
        .extensions
        .get::<Invocation>()
        .cloned()
        .unwrap_or_else(|| Invocation::new(uuid::Uuid::new_v4().to_string(), DEFAULT_BUDGET));
    parts.extensions.insert(invocation.clone());

    // Reads need no key; every method that can change something does (POST today).
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let req = Request::from_parts(parts, Body::from(bytes));
        return Ok(next.run(req).await);
    }

    // 3. POST: key and JSON
    let key = header_str(&parts.headers, IDEMPOTENCY_KEY_HEADER)
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

    // 4. claim
    let mut fingerprint = Vec::with_capacity(bytes.len() + path_and_query.len() + 8);
    fingerprint.extend_from_slice(parts.method.as_str().as_bytes());
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(path_and_query.as_bytes());
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(&bytes);
    let validation = hash_bytes(&fingerprint);
    let record_key = format!("warehouse#{key}");
    let token = match state
        .idempotency
        .begin(&record_key, &validation, &invocation)
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
    let (resp_parts, resp_body) = resp.into_parts();
    let body = axum::body::to_bytes(resp_body, MAX_SAVED_RESPONSE_BYTES)
        .await
        .map_err(|e| flexbridge::Error::Internal(format!("response body: {e}")))?;
    let saved = SavedResponse {
        status: resp_parts.status.as_u16(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    };
    // The route's effects are done; failing to record them must not turn success into an error.
    let saved = serde_json::to_value(&saved).unwrap_or_default();
    if let Err(e) = state.idempotency.complete(&token, &saved).await {
        tracing::warn!(error = %e, "could not save idempotent response; a repeat will run again");
    }
    Ok(Response::from_parts(resp_parts, Body::from(body)))
}

fn replay(saved: serde_json::Value) -> Result<Response, ApiError> {
    let saved: SavedResponse = serde_json::from_value(saved)
        .map_err(|e| flexbridge::Error::Internal(format!("saved response: {e}")))?;
    let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, axum::Json(saved.body)).into_response();
    resp.headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(resp)
}

/// The request's `Idempotency-Key` (POST routes); routes may use it as a business key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

/// Routes read how they got their claim: `Claim::Retaken` means an earlier attempt with this key
/// may have applied part of its effects, so the route must make its writes idempotent or check.
pub fn claim_of(parts: &axum::http::request::Parts) -> Claim {
    parts
        .extensions
        .get::<Claim>()
        .copied()
        .unwrap_or(Claim::Fresh)
}
