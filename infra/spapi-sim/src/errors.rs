//! Amazon's error bodies: `ErrorList {errors:[{code, message, details?}]}` with the External
//! Fulfillment codes (SC_000xx) and the LWA error shape.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// An SP-API error answer: status + one `Error` in an `ErrorList`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    /// 400 SC_00002 InvalidInput.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SC_00002", message)
    }

    /// 404 SC_00003 NotFound: "Requested Entity with '%s' '%s' is not found."
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SC_00003",
            format!("Requested Entity with '{kind}' '{id}' is not found."),
        )
    }

    /// 409 SC_00004: the step was already applied (a repeat).
    pub fn duplicate(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "SC_00004", message)
    }

    /// 422 SC_00002: well-formed, but cannot be applied in the shipment's current state.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "SC_00002", message)
    }

    /// 500 SC_00000 InternalFailure.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SC_00000",
            "Internal failure occurred, contact Amazon Support.",
        )
    }

    /// 503 SC_00001 ServiceUnavailable.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SC_00001",
            "Temporary failure occurred, retry operation",
        )
    }

    /// 429: the gateway's throttling answer (same body for every API).
    pub fn throttled() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "QuotaExceeded",
            "You exceeded your quota for the requested resource.",
        )
    }

    /// 403: missing, unknown or expired access token.
    pub fn unauthorized(details: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Unauthorized",
            "Access to requested resource is denied.",
        )
        .with_details(details)
    }

    pub fn body(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.details {
            e["details"] = json!(d);
        }
        json!({ "errors": [e] })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// An LWA error body `{error, error_description}`.
pub fn lwa_error(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}
