//! The SP-API client's error: what failed, Amazon's own error list and request id, whether a
//! retry can help, and, for writes, whether the change may have been applied anyway.

use std::fmt;
use std::time::Duration;

use super::models::ApiError;
use crate::retry::{RetryDecision, Retryable};

/// How a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpApiErrorKind {
    /// Amazon answered with a non-success HTTP status (see `status` and `errors`).
    Status,
    /// No complete answer within the request timeout (the request may have been processed).
    Timeout,
    /// Could not connect: the request was never sent.
    Connect,
    /// The connection failed after the request may have been sent.
    Transport,
    /// A success status whose body we could not read.
    Decode,
    /// Login with Amazon refused or could not issue an access token.
    Auth,
    /// We refused to send a request that cannot be valid (e.g. 11 inventory requests).
    InvalidInput,
    /// The caller's deadline left no time for a (further) attempt.
    DeadlineExceeded,
}

/// An error from (or on the way to) the Selling Partner API.
#[derive(Clone)]
pub struct SpApiError {
    pub kind: SpApiErrorKind,
    /// The operationId, e.g. `processShipment`.
    pub operation: &'static str,
    /// HTTP status when Amazon (or LWA) answered.
    pub status: Option<u16>,
    /// Amazon's `errors[]` (code, message, details).
    pub errors: Vec<ApiError>,
    /// `x-amzn-RequestId` of the failing answer, to quote to Amazon support.
    pub request_id: Option<String>,
    /// Our own description (never contains secrets or buyer data).
    pub message: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// Set by the client for writes that may have been applied although the call failed.
    pub(crate) outcome_unknown: bool,
}

impl SpApiError {
    pub(crate) fn new(
        kind: SpApiErrorKind,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            status: None,
            errors: Vec::new(),
            request_id: None,
            message: message.into(),
            attempts: 0,
            outcome_unknown: false,
        }
    }

    pub fn invalid_input(operation: &'static str, message: impl Into<String>) -> Self {
        Self::new(SpApiErrorKind::InvalidInput, operation, message)
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Amazon's first error code (e.g. `SC_00003`), if any.
    pub fn code(&self) -> Option<&str> {
        self.errors.first().map(|e| e.code.as_str())
    }

    pub fn is_throttled(&self) -> bool {
        self.status == Some(429)
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// 409: the request conflicts with the shipment's current state (e.g. already confirmed).
    pub fn is_conflict(&self) -> bool {
        self.status == Some(409)
    }

    /// 400/422: the request itself is wrong; sending it again cannot help.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self.status, Some(400 | 413 | 415 | 422))
            || self.kind == SpApiErrorKind::InvalidInput
    }

    /// True when a **write** failed in a way that does not tell whether Amazon applied it
    /// (5xx, timeout, connection lost after sending, or a success whose body was unreadable). The client does not resend such writes;
    /// the caller must read the resource back (e.g. getShipment) and reconcile before acting again.
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// Whether the same call can succeed later (throttling, Amazon-side failures, timeouts,
    /// connection problems, deadline). Note that for writes with [`outcome_unknown`](Self::outcome_unknown)
    /// "later" means "after reconciling", never a blind resend.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            SpApiErrorKind::Status | SpApiErrorKind::Auth => {
                matches!(self.status, Some(429 | 500 | 502 | 503 | 504))
                    || (self.kind == SpApiErrorKind::Auth && self.status.is_none())
            }
            SpApiErrorKind::Timeout
            | SpApiErrorKind::Connect
            | SpApiErrorKind::Transport
            | SpApiErrorKind::DeadlineExceeded => true,
            SpApiErrorKind::Decode | SpApiErrorKind::InvalidInput => false,
        }
    }
}

impl SpApiError {
    /// Who this failure is charged to (`crate::error` explains the classification): retryable
    /// → transient; Login with Amazon refusing our credentials (`invalid_grant`,
    /// `invalid_client`) or Amazon answering 401/403 → the environment (credentials, app
    /// authorization, roles); any other refusal (400, 404, 409, 422, an unreadable answer) →
    /// this item.
    pub fn failure_kind(&self) -> crate::error::FailureKind {
        use crate::error::FailureKind;
        if self.is_retryable() {
            FailureKind::Transient
        } else if self.kind == SpApiErrorKind::Auth || matches!(self.status, Some(401 | 403)) {
            FailureKind::Environment
        } else {
            FailureKind::Message
        }
    }
}

impl Retryable for SpApiError {
    /// For generic code wrapping client calls: never resend a write whose outcome is unknown.
    fn retry_decision(&self) -> RetryDecision {
        if self.outcome_unknown {
            RetryDecision::Stop
        } else if self.is_throttled() {
            RetryDecision::RetryAfter(Duration::from_millis(200))
        } else if self.is_retryable() && self.kind != SpApiErrorKind::DeadlineExceeded {
            RetryDecision::Retry
        } else {
            RetryDecision::Stop
        }
    }
}

impl fmt::Display for SpApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sp-api {}", self.operation)?;
        match self.status {
            Some(s) => write!(f, " HTTP {s}")?,
            None => write!(f, " {:?}", self.kind)?,
        }
        if let Some(e) = self.errors.first() {
            write!(f, " {}: {}", e.code, e.message)?;
            if let Some(d) = &e.details {
                write!(f, " ({d})")?;
            }
        } else if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if self.errors.len() > 1 {
            write!(f, " (+{} more)", self.errors.len() - 1)?;
        }
        if self.outcome_unknown {
            f.write_str(" [outcome unknown: read back before retrying]")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpApiError")
            .field("kind", &self.kind)
            .field("operation", &self.operation)
            .field("status", &self.status)
            .field("errors", &self.errors)
            .field("request_id", &self.request_id)
            .field("message", &self.message)
            .field("attempts", &self.attempts)
            .field("outcome_unknown", &self.outcome_unknown)
            .finish()
    }
}

impl std::error::Error for SpApiError {}
