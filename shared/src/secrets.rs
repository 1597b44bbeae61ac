//! Secrets from AWS Secrets Manager, loaded by ARN and cached for the life of the process
//! (a warm Lambda keeps them), with a TTL so a rotated secret is picked up.
//!
//! Values never reach a log: errors name the ARN only, and [`SecretString`] redacts itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A secret value whose `Debug`/`Display` never show it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; use it only where it is sent, never to format a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

#[derive(Clone)]
enum Source {
    Aws(aws_sdk_secretsmanager::Client),
    /// Fixed values (unit tests, tools); keyed by ARN.
    Static(Arc<HashMap<String, String>>),
}

struct Entry {
    value: SecretString,
    loaded: Instant,
}

/// Loads secrets by ARN and caches them. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct SecretCache {
    source: Source,
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    /// Default time a value is trusted before it is read again (picks up rotations).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self::with_source(Source::Aws(client))
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(crate::aws::secrets_client(config))
    }

    /// A cache over fixed values (ARN → secret string), for tests and tools.
    pub fn from_static(values: HashMap<String, String>) -> Self {
        Self::with_source(Source::Static(Arc::new(values)))
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            ttl: Self::DEFAULT_TTL,
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The secret string stored under `arn`. One load in flight per cache (the lock is held
    /// across the fetch, so concurrent cold callers wait for the first instead of all fetching).
    pub async fn get(&self, arn: &str) -> Result<SecretString> {
        let mut entries = self.entries.lock().await;
        if let Some(e) = entries.get(arn) {
            if e.loaded.elapsed() < self.ttl {
                return Ok(e.value.clone());
            }
        }
        let value = self.fetch(arn).await?;
        entries.insert(
            arn.to_string(),
            Entry {
                value: value.clone(),
                loaded: Instant::now(),
            },
        );
        Ok(value)
    }

    /// The secret under `arn` parsed as JSON into `T`. Parse errors name the ARN and the
    /// serde message (which names fields, never values).
    pub async fn get_json<T: DeserializeOwned>(&self, arn: &str) -> Result<T> {
        let raw = self.get(arn).await?;
        serde_json::from_str(raw.expose()).map_err(|e| {
            // serde_json messages can quote input for some errors; keep only the category and position.
            Error::Config(format!(
                "secret {arn} is not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Forgets a cached value (after the secret was found stale, e.g. a rejected credential).
    pub async fn invalidate(&self, arn: &str) {
        self.entries.lock().await.remove(arn);
    }

    async fn fetch(&self, arn: &str) -> Result<SecretString> {
        match &self.source {
            Source::Static(map) => map
                .get(arn)
                .map(|v| SecretString::new(v.clone()))
                .ok_or_else(|| Error::Config(format!("secret {arn} does not exist"))),
            Source::Aws(client) => {
                let out = crate::retry::RetryPolicy::new(
                    3,
                    Duration::from_millis(100),
                    Duration::from_secs(1),
                )
                .run_with(
                    None,
                    |_| client.get_secret_value().secret_id(arn).send(),
                    |e| {
                        use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                        let code = e.code().unwrap_or_default();
                        let transient = matches!(
                            e,
                            aws_sdk_secretsmanager::error::SdkError::TimeoutError(_)
                                | aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_)
                                | aws_sdk_secretsmanager::error::SdkError::ResponseError(_)
                        ) || code == "InternalServiceError"
                            || code == "ThrottlingException";
                        if transient {
                            crate::retry::RetryDecision::Retry
                        } else {
                            crate::retry::RetryDecision::Stop
                        }
                    },
                )
                .await
                .map_err(|e| {
                    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                    let code = e.code().unwrap_or("unknown").to_string();
                    let retryable = !matches!(
                        code.as_str(),
                        "ResourceNotFoundException"
                            | "AccessDeniedException"
                            | "InvalidParameterException"
                            | "InvalidRequestException"
                            | "DecryptionFailure"
                    );
                    Error::aws(
                        "secretsmanager",
                        format!("GetSecretValue {arn}: {code}"),
                        retryable,
                    )
                })?;
                out.secret_string()
                    .map(SecretString::new)
                    .ok_or_else(|| Error::Config(format!("secret {arn} has no SecretString")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Creds {
        client_id: String,
        client_secret: SecretString,
    }

    #[tokio::test]
    async fn parses_json_and_redacts() {
        let cache = SecretCache::from_static(HashMap::from([(
            "arn:s".to_string(),
            r#"{"client_id":"id","client_secret":"hunter2"}"#.to_string(),
        )]));
        let c: Creds = cache.get_json("arn:s").await.unwrap();
        assert_eq!(c.client_id, "id");
        assert_eq!(c.client_secret.expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{}", c.client_secret).contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_json_names_the_arn_not_the_value() {
        let cache = SecretCache::from_static(HashMap::from([(
            "arn:s".to_string(),
            r#"{"client_id": 5, "client_secret": "hunter2"}"#.to_string(),
        )]));
        let err = cache
            .get_json::<Creds>("arn:s")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("arn:s"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn missing_secret_is_not_found() {
        let cache = SecretCache::from_static(HashMap::new());
        assert!(matches!(cache.get("arn:x").await, Err(Error::Config(_))));
    }
}
