//! The Selling Partner API client: the only way flexbridge talks to Amazon.
//!
//! One [`SpApiClient`] per process (it is `Clone`, sharing one connection pool, one access-token
//! cache and one rate-limit bucket per operation among all tasks). Build it with
//! [`SpApiClient::from_env`] in a Lambda; bound each invocation's calls with
//! [`SpApiClient::with_deadline`].
//!
//! # Retries and writes whose outcome is unknown
//! Every call waits for a token of its operation's bucket, then retries with
//! [`crate::retry::RetryPolicy`] (exponential backoff, full jitter, bounded by attempts and the
//! deadline):
//! - 429: always retried (nothing was applied); the bucket is drained so we fall back in step
//!   with Amazon's.
//! - connection refused / connect timeout: always retried (nothing was sent).
//! - an expired or rejected access token (401/403): the token is refreshed and the call retried once.
//! - 500/502/503/504, timeouts, connections lost after sending: retried for reads and for
//!   writes that are idempotent by content (batchInventory sets absolute quantities with a
//!   sequence number; patchListingsItem replaces a price). For the other writes (those
//!   [`Operation::is_idempotent`] names) the client does **not** resend: it returns an error
//!   with [`SpApiError::outcome_unknown`] set, and the caller reads the shipment back to learn
//!   whether the change happened before acting again.
//! - other 4xx: not retried; returned with Amazon's `errors[]`, the status and the request id.
//!
//! # Layout
//! - `operation`: the one list of operations and their facts (API, operationId, default rate
//!   limit, idempotent or not, grantless or not).
//! - `config`: region, endpoints, limits, timeouts, retry policy.
//! - `client`: the [`SpApiClient`] handle (construction, deadline, shared rate limits).
//! - `transport`: the request loop (rate limit, token, send, error mapping, retry, decoding).
//! - `api/`: one module per API (`shipments`, `inventory`, `returns`, `listings`,
//!   `notifications`), each the API's paths, input checks and typed methods.
//! - `auth`: LWA tokens and the credentials secret; `error`: [`SpApiError`]; `models`: the
//!   documents.

mod api;
mod auth;
mod client;
mod config;
mod error;
pub mod models;
mod operation;
mod transport;

pub use auth::{
    LwaCredentials, SpApiSecret, DEFAULT_LWA_ENDPOINT, NOTIFICATIONS_SCOPE, REFRESH_MARGIN,
};
pub use client::SpApiClient;
pub use config::{Region, SpApiConfig, USER_AGENT};
pub use error::{SpApiError, SpApiErrorKind};
pub use models::*;
pub use operation::{Api, Operation, UNPUBLISHED_LIMIT};
