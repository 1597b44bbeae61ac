//! The client handle: built once per process from [`SpApiConfig`] (one connection pool, the
//! access-token caches, one rate-limit bucket per operation), bound to a deadline per
//! invocation. Requests go through `transport`; the operations live in `api/`, one module per API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{
    CredentialsSource, Grant, LwaCredentials, LwaTokenSource, TokenCache, TokenSource,
    NOTIFICATIONS_SCOPE,
};
use super::config::{SpApiConfig, USER_AGENT};
use super::operation::{Operation, UNPUBLISHED_LIMIT};
use crate::config::{keys, Env};
use crate::error::{Error, Result};
use crate::ratelimit::{Limit, RateLimiters, TokenBucket};
use crate::retry::{Deadline, RetryPolicy};
use crate::secrets::SecretCache;

/// What every clone shares.
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) base_url: String,
    pub(super) tokens: TokenCache,
    pub(super) grantless_tokens: TokenCache,
    pub(super) limiters: RateLimiters,
    pub(super) retry: RetryPolicy,
    pub(super) request_timeout: Duration,
    pub(super) adapt_rate_limits: bool,
    seller_id: Option<String>,
    credentials: CredentialsSource,
    pub(super) metrics: Option<crate::metrics::Metrics>,
}

/// The SP-API client. Cheap to clone; clones share everything but the deadline.
#[derive(Clone)]
pub struct SpApiClient {
    pub(super) inner: Arc<Inner>,
    pub(super) deadline: Option<Deadline>,
}

impl fmt::Debug for SpApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpApiClient")
            .field("base_url", &self.inner.base_url)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl SpApiClient {
    /// Builds the client (no network yet; the first call fetches the access token).
    pub fn new(config: SpApiConfig) -> Result<Self> {
        let credentials = CredentialsSource::Fixed(config.credentials.clone());
        Self::build(config, credentials)
    }

    fn build(config: SpApiConfig, credentials: CredentialsSource) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let lwa = |grant| -> Arc<dyn TokenSource> {
            Arc::new(LwaTokenSource {
                http: http.clone(),
                url: config.token_url(),
                credentials: credentials.clone(),
                grant,
                user_agent: USER_AGENT.to_string(),
                timeout: config.request_timeout,
            })
        };
        let tokens = TokenCache::new(lwa(Grant::RefreshToken));
        let grantless_tokens = TokenCache::new(lwa(Grant::ClientCredentials {
            scope: NOTIFICATIONS_SCOPE,
        }));
        let defaults = Operation::ALL
            .iter()
            .map(|op| (op.id().to_string(), config.limit(*op)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url(),
                tokens,
                grantless_tokens,
                limiters: RateLimiters::new(defaults, UNPUBLISHED_LIMIT),
                retry: config.retry,
                request_timeout: config.request_timeout,
                adapt_rate_limits: config.adapt_rate_limits,
                seller_id: config.seller_id,
                credentials,
                metrics: config.metrics,
            }),
            deadline: None,
        })
    }

    /// The client a Lambda uses: credentials from the `FLEXBRIDGE_SECRET_ARN` secret
    /// (`{client_id, client_secret, refresh_token, seller_id?, …}`), read on the first call that
    /// needs a token (no AWS call here, so a cold start makes none), region and endpoint
    /// overrides from `env`.
    pub async fn from_env(env: &Env, secrets: &SecretCache) -> Result<Self> {
        let arn = env.require(keys::FLEXBRIDGE_SECRET_ARN)?;
        let placeholder = LwaCredentials {
            client_id: String::new(),
            client_secret: "".into(),
            refresh_token: "".into(),
        };
        let config = SpApiConfig::from_env(env, placeholder)?;
        Self::build(
            config,
            CredentialsSource::Secret {
                secrets: secrets.clone(),
                arn: arn.to_string(),
            },
        )
    }

    /// A handle whose calls never start an attempt or a wait that would end after `deadline`
    /// (e.g. `client.with_deadline(&invocation)`); it shares everything else with `self`.
    pub fn with_deadline(&self, deadline: impl Into<Deadline>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            deadline: Some(deadline.into()),
        }
    }

    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// The selling partner id: the secret's `seller_id` when it has one, else `SELLER_ID`
    /// (reads the secret, through its cache, when the client was built by [`Self::from_env`]).
    pub async fn seller_id(&self) -> Result<Option<String>> {
        let from_secret = self
            .inner
            .credentials
            .secret()
            .await?
            .and_then(|s| s.seller_id);
        Ok(from_secret.or_else(|| self.inner.seller_id.clone()))
    }

    /// This stack's SP-API application ID: the secret's `application_id`, if set (no
    /// environment fallback: it belongs with the credentials of the same app).
    pub async fn application_id(&self) -> Result<Option<String>> {
        Ok(self
            .inner
            .credentials
            .secret()
            .await?
            .and_then(|s| s.application_id)
            .filter(|a| !a.is_empty()))
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The bucket an operation's calls wait on (to read or tune its limit).
    pub fn rate_limiter(&self, op: Operation) -> Arc<TokenBucket> {
        self.inner.limiters.bucket(op.id())
    }

    /// Makes every call of `op` (by any clone of this client) wait on a bucket shared with
    /// every other process using the same `store`, so Amazon's per-seller limit holds however
    /// many Lambda instances run. `chunk`: tokens reserved per store round trip.
    /// `limit`: the operation's configured limit when `None`.
    pub fn share_rate_limit(
        &self,
        op: Operation,
        store: Arc<dyn crate::ratelimit::SharedBucketStore>,
        limit: Option<Limit>,
        chunk: u32,
    ) {
        let limit = limit.unwrap_or_else(|| self.inner.limiters.default_limit(op.id()));
        self.inner.limiters.share(
            op.id(),
            Arc::new(crate::ratelimit::SharedBucket::new(
                store,
                op.id(),
                limit,
                chunk,
            )),
        );
    }

    /// How many seller access tokens this client obtained from LWA so far.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.tokens.issued()
    }

    /// The token cache `op` authenticates with (grantless operations: the application's).
    pub(super) fn token_cache(&self, op: Operation) -> &TokenCache {
        if op.is_grantless() {
            &self.inner.grantless_tokens
        } else {
            &self.inner.tokens
        }
    }
}
