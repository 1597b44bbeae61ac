//! The one error type of the crate. Every variant says whether a retry can help,
//! so SQS consumers know whether to report a batch item failure or give up.

use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required setting is missing or malformed (never retryable: fix the deployment).
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

impl Error {
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
