//! Selling Partner API client (owned by the Amazon-side foundation).

/// An error answered by (or on the way to) the Selling Partner API.
#[derive(Debug, thiserror::Error)]
#[error("sp-api {status}: {message}")]
pub struct SpApiError {
    pub status: u16,
    pub message: String,
}

impl SpApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
    }
}
