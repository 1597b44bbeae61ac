//! The API's one error shape: `{"error": {"code": "...", "message": "..."}}` with a specific
//! status. Codes are stable; messages say what to fix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a specific code (the request itself is wrong).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: well-formed JSON that breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<flexbridge::Error> for ApiError {
    fn from(e: flexbridge::Error) -> Self {
        use flexbridge::Error as E;
        match &e {
            E::InvalidInput(m) => ApiError::unprocessable("invalid_request", m.clone()),
            E::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m.clone()),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m.clone()),
            _ if e.is_retryable() => {
                tracing::warn!(error = %e, "temporary failure serving warehouse request");
                let after = match &e {
                    E::Transient { after: Some(d), .. } => d.as_secs(),
                    _ => 1,
                };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "a dependency is temporarily unavailable; retry with the same Idempotency-Key",
                )
                .with_retry_after(after)
            }
            _ => {
                tracing::error!(error = %e, "failed to serve warehouse request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; retry with the same Idempotency-Key",
                )
            }
        }
    }
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; routes live under /v1/ (see docs/warehouse-api.md)",
    )
}

/// A known route called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method (see docs/warehouse-api.md)",
    )
}
