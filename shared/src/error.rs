//! The one error type of the crate, and the one classification of failures.
//!
//! Every failure is charged to exactly one of three parties ([`FailureKind`], from
//! [`Error::kind`]); what an SQS consumer does with it follows from that alone
//! (`runtime::handle_sqs_batch`, docs/operate.md "What happens to a failed message"):
//!
//! | kind | what it is | examples | SQS consumer |
//! |---|---|---|---|
//! | [`FailureKind::Message`] | this message can never succeed as it is | a body that is not what the queue carries, invalid input, Amazon refused this item (400/404/409/422), a conflict with stored state, a bug this input triggers (`Internal`) | moved to the queue's DLQ at once with the reason attached, counted (alert `message_parked`), acknowledged |
//! | [`FailureKind::Environment`] | the deployment is broken, not the message | a missing or malformed setting (env var or `SettingsTable` value), SP-API 401/403, LWA `invalid_grant`/`invalid_client`, AWS AccessDenied or any other non-retryable AWS answer, a missing secret | never charged to the message: a batch item failure (retried), an error log with `alert=environment`, the `environment` alert counted (`NeedsAttention`, alarmed); on the message's last receive (`runtime::MAX_RECEIVES`) it is parked with that reason rather than left for SQS to move silently |
//! | [`FailureKind::Transient`] | trying again later can succeed | throttling, 5xx, timeouts, connection errors, a claim held by another invocation | a batch item failure; SQS redelivers it after the visibility timeout; parked with the last failure on its last receive |
//!
//! When in doubt a failure is `Environment`, never `Message`: an environment failure consumes
//! nothing, so the worst case is a retried message and an alarm, never a lost one.

use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required setting is missing, malformed or unreadable (an environment variable, a
    /// `SettingsTable` value, a secret): never retryable, never the message's fault.
    #[error("configuration: {0}")]
    Config(String),
    /// Input from a seller, the warehouse or Amazon that we refuse (never retryable).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Something we looked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write or state transition lost (someone else got there first).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An error answered by the Selling Partner API.
    #[error(transparent)]
    SpApi(#[from] crate::spapi::SpApiError),
    /// An AWS service call failed; `retryable` is decided where the SDK error is inspected.
    #[error("aws {service}: {message}")]
    Aws {
        service: &'static str,
        message: String,
        retryable: bool,
    },
    /// A transient condition; the caller may try again after `after` if given.
    #[error("transient: {message}")]
    Transient {
        message: String,
        after: Option<Duration>,
    },
    #[error("internal: {0}")]
    Internal(String),
}

/// Who a failure is charged to (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// This message (or item) can never succeed as it is.
    Message,
    /// Configuration, credentials, permissions: fix the deployment, the message is fine.
    Environment,
    /// Trying again later can succeed.
    Transient,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Message => "message",
            FailureKind::Environment => "environment",
            FailureKind::Transient => "transient",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The one classification of failures (see the module documentation).
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Config(_) => FailureKind::Environment,
            Error::InvalidInput(_) | Error::NotFound(_) | Error::Conflict(_) => {
                FailureKind::Message
            }
            Error::Internal(_) => FailureKind::Message,
            Error::SpApi(e) => e.failure_kind(),
            Error::Aws { retryable, .. } => {
                if *retryable {
                    FailureKind::Transient
                } else {
                    // AccessDenied, a missing table or queue, a KMS key we may not use: the
                    // deployment, not the message (and never consume a message on doubt).
                    FailureKind::Environment
                }
            }
            Error::Transient { .. } => FailureKind::Transient,
        }
    }

    /// A write to Amazon failed without telling whether it was applied (see
    /// [`SpApiError::outcome_unknown`](crate::spapi::SpApiError::outcome_unknown)).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::SpApi(e) if e.outcome_unknown())
    }

    /// Whether trying the same thing again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::InvalidInput(_) | Error::NotFound(_) => false,
            Error::Conflict(_) => false,
            Error::SpApi(e) => e.is_retryable(),
            Error::Aws { retryable, .. } => *retryable,
            Error::Transient { .. } => true,
            Error::Internal(_) => false,
        }
    }

    pub fn aws(service: &'static str, err: impl std::fmt::Display, retryable: bool) -> Self {
        Error::Aws {
            service,
            message: err.to_string(),
            retryable,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidInput(format!("json: {e}"))
    }
}
