//! Login with Amazon: refresh-token exchange and a process-wide access-token cache.
//!
//! The token is kept until about a minute before it expires; one refresh runs at a time however
//! many tasks ask (the others wait on the same lock and then read the fresh token).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::{SpApiError, SpApiErrorKind};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::secrets::{SecretCache, SecretString};

/// Amazon's token URL (the same for every region).
pub const DEFAULT_LWA_ENDPOINT: &str = "https://api.amazon.com/auth/o2/token";

/// Refresh this long before the token's expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The seller connection's LWA credentials. `Debug` shows the client id only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct LwaCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
}

impl fmt::Debug for LwaCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LwaCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// The SP-API part of the stack's one secret (`FlexbridgeSecret`, Secrets Manager). Its other
/// fields (`signing_key`, `warehouse_key`, `webhook_key`) are `warehouse::keys`' and ignored here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpApiSecret {
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    #[serde(default)]
    pub seller_id: Option<String>,
    /// The SP-API application's App ID (`amzn1.sp.solution…`, Solution Provider Portal), which
    /// Amazon puts in every notification's `ApplicationId`; notifications naming another app
    /// are dropped. Not the LWA `client_id`.
    #[serde(default)]
    pub application_id: Option<String>,
}

impl SpApiSecret {
    pub fn credentials(&self) -> LwaCredentials {
        LwaCredentials {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            refresh_token: self.refresh_token.clone(),
        }
    }
}

/// Where the LWA credentials come from: given, or read from the stack secret on first use
/// (never at init: a cold start makes no AWS call) and then from the [`SecretCache`], which
/// re-reads after its TTL so a rotated secret is picked up.
#[derive(Clone)]
pub(crate) enum CredentialsSource {
    Fixed(LwaCredentials),
    Secret { secrets: SecretCache, arn: String },
}

impl CredentialsSource {
    /// The secret's content; a secret that cannot be read is an environment failure (missing,
    /// denied, malformed): retryable, so no message is charged with it.
    pub(crate) async fn secret(&self) -> Result<Option<SpApiSecret>, SpApiError> {
        match self {
            CredentialsSource::Fixed(_) => Ok(None),
            CredentialsSource::Secret { secrets, arn } => secrets
                .get_json::<SpApiSecret>(arn)
                .await
                .map(Some)
                .map_err(|e| {
                    SpApiError::new(
                        SpApiErrorKind::Auth,
                        OP,
                        format!("SP-API credentials unavailable: {e}"),
                    )
                }),
        }
    }

    pub(crate) async fn credentials(&self) -> Result<LwaCredentials, SpApiError> {
        match self {
            CredentialsSource::Fixed(c) => Ok(c.clone()),
            CredentialsSource::Secret { .. } => Ok(self
                .secret()
                .await?
                .expect("a secret source has a secret")
                .credentials()),
        }
    }
}

/// A fresh access token and how long it lives.
#[derive(Clone)]
pub(crate) struct IssuedToken {
    pub value: SecretString,
    pub expires_in: Duration,
}

/// Where access tokens come from (LWA in production; a fake in unit tests).
#[async_trait]
pub(crate) trait TokenSource: Send + Sync {
    async fn issue(&self) -> Result<IssuedToken, SpApiError>;
}

/// Scope of grantless Notifications operations (createDestination, getDestinations).
pub const NOTIFICATIONS_SCOPE: &str = "sellingpartnerapi::notifications";

/// Which LWA grant a token source uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// The seller's authorization (every seller-specific operation).
    RefreshToken,
    /// The application's own authorization for grantless operations, limited to `scope`.
    ClientCredentials { scope: &'static str },
}

/// An LWA token grant.
pub(crate) struct LwaTokenSource {
    pub http: reqwest::Client,
    pub url: String,
    pub credentials: CredentialsSource,
    pub grant: Grant,
    pub user_agent: String,
    /// Whole-request timeout of one token request.
    pub timeout: Duration,
}

#[derive(Deserialize)]
struct LwaTokenResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct LwaErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

const OP: &str = "lwaToken";

#[async_trait]
impl TokenSource for LwaTokenSource {
    async fn issue(&self) -> Result<IssuedToken, SpApiError> {
        let credentials = self.credentials.credentials().await?;
        // Built in a block: the serializer is not Send and must not live across the await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            match &self.grant {
                Grant::RefreshToken => form
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", credentials.refresh_token.expose()),
                Grant::ClientCredentials { scope } => form
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("scope", scope),
            };
            form.append_pair("client_id", &credentials.client_id)
                .append_pair("client_secret", credentials.client_secret.expose())
                .finish()
        };
        let resp = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let mut err = SpApiError::new(SpApiErrorKind::Auth, OP, transport_message(&e));
                if e.is_timeout() {
                    err.message = format!("LWA token request timed out: {}", err.message);
                }
                err
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            SpApiError::new(
                SpApiErrorKind::Auth,
                OP,
                format!("reading LWA answer: {}", transport_message(&e)),
            )
        })?;
        if (200..300).contains(&status) {
            let t: LwaTokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
                SpApiError::new(
                    SpApiErrorKind::Auth,
                    OP,
                    format!("LWA answer is not a token ({:?} error)", e.classify()),
                )
            })?;
            return Ok(IssuedToken {
                value: t.access_token,
                expires_in: Duration::from_secs(t.expires_in.unwrap_or(3600)),
            });
        }
        let detail = serde_json::from_slice::<LwaErrorResponse>(&bytes)
            .map(|e| format!("{}: {}", e.error, e.error_description))
            .unwrap_or_else(|_| "no error body".to_string());
        let mut err = SpApiError::new(
            SpApiErrorKind::Auth,
            OP,
            format!("LWA refused the token request ({detail})"),
        );
        err.status = Some(status);
        Err(err)
    }
}

/// Describes a reqwest error with its causes (URLs hold ids only; tokens travel in headers).
pub(crate) fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

struct Cached {
    value: SecretString,
    expires_at: Instant,
}

/// The process-wide access-token cache of one seller connection.
pub(crate) struct TokenCache {
    source: Arc<dyn TokenSource>,
    state: Mutex<Option<Cached>>,
    issued: AtomicU64,
    retry: RetryPolicy,
}

impl TokenCache {
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            state: Mutex::new(None),
            issued: AtomicU64::new(0),
            retry: RetryPolicy::new(3, Duration::from_millis(200), Duration::from_secs(2)),
        }
    }

    /// A valid access token, from the cache or freshly issued.
    pub async fn token(&self) -> Result<SecretString, SpApiError> {
        let mut state = self.state.lock().await;
        if let Some(c) = state.as_ref() {
            if Instant::now() + REFRESH_MARGIN < c.expires_at {
                return Ok(c.value.clone());
            }
        }
        // The lock stays held while we fetch: concurrent callers wait for this one refresh.
        let issued = self
            .retry
            .run_with(
                None,
                |_| self.source.issue(),
                |e: &SpApiError| {
                    if e.is_retryable() {
                        RetryDecision::Retry
                    } else {
                        RetryDecision::Stop
                    }
                },
            )
            .await?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            expires_in_s = issued.expires_in.as_secs(),
            "LWA access token refreshed"
        );
        *state = Some(Cached {
            value: issued.value.clone(),
            expires_at: Instant::now() + issued.expires_in,
        });
        Ok(issued.value)
    }

    /// Drops `stale` if it is still the cached token (Amazon rejected it); a newer one is kept.
    pub async fn invalidate(&self, stale: &SecretString) {
        let mut state = self.state.lock().await;
        if state.as_ref().is_some_and(|c| &c.value == stale) {
            *state = None;
        }
    }

    /// How many tokens this cache obtained so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    struct Fake {
        calls: AtomicU32,
        lifetime: Duration,
        fail_first: u32,
    }

    #[async_trait]
    impl TokenSource for Fake {
        async fn issue(&self) -> Result<IssuedToken, SpApiError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            // Slow enough that every concurrent caller arrives while this one is in flight.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if n <= self.fail_first {
                let mut e = SpApiError::new(SpApiErrorKind::Auth, OP, "LWA 503");
                e.status = Some(503);
                return Err(e);
            }
            Ok(IssuedToken {
                value: SecretString::new(format!("token-{n}")),
                expires_in: self.lifetime,
            })
        }
    }

    fn fake(lifetime: Duration, fail_first: u32) -> Arc<Fake> {
        Arc::new(Fake {
            calls: AtomicU32::new(0),
            lifetime,
            fail_first,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn fifty_concurrent_callers_cause_one_token_request() {
        let source = fake(Duration::from_secs(3600), 0);
        let cache = Arc::new(TokenCache::new(source.clone()));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.token().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "token-1");
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.issued(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_a_minute_before_expiry() {
        let source = fake(Duration::from_secs(3600), 0);
        let cache = TokenCache::new(source.clone());
        assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        tokio::time::sleep(Duration::from_secs(3600 - 61)).await;
        assert_eq!(
            cache.token().await.unwrap().expose(),
            "token-1",
            "still valid 61 s before expiry"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            cache.token().await.unwrap().expose(),
            "token-2",
            "refreshed inside the last minute"
        );
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_lwa_failures_are_retried() {
        let source = fake(Duration::from_secs(3600), 2);
        let cache = TokenCache::new(source.clone());
        assert_eq!(cache.token().await.unwrap().expose(), "token-3");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_only_drops_the_stale_token() {
        let source = fake(Duration::from_secs(3600), 0);
        let cache = TokenCache::new(source.clone());
        let t1 = cache.token().await.unwrap();
        cache.invalidate(&SecretString::new("other")).await;
        assert_eq!(cache.token().await.unwrap(), t1);
        cache.invalidate(&t1).await;
        assert_eq!(cache.token().await.unwrap().expose(), "token-2");
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let c = LwaCredentials {
            client_id: "amzn1.app".into(),
            client_secret: "s3cr3t".into(),
            refresh_token: "Atzr|r3fr3sh".into(),
        };
        let d = format!("{c:?}");
        assert!(d.contains("amzn1.app"));
        assert!(!d.contains("s3cr3t") && !d.contains("r3fr3sh"), "{d}");
        let s: SpApiSecret = serde_json::from_str(
            r#"{"client_id":"id","client_secret":"s3cr3t","refresh_token":"r3fr3sh","seller_id":"A1","signing_key":"k3y"}"#,
        )
        .unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("r3fr3sh"), "{d}");
        // The stack secret's key fields sit beside the credentials and are not read here.
        assert!(!d.contains("k3y"), "{d}");
    }
}
