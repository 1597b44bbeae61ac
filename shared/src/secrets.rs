//! Secrets from AWS Secrets Manager, loaded by ARN and cached for the life of the process
//! (a warm Lambda keeps them), with a TTL so a rotated secret is picked up.
//!
//! Signing keys are read in two versions ([`SecretCache::versions`]): Secrets Manager's
//! `AWSCURRENT` and `AWSPREVIOUS` stages, with the current one's creation time, so a key can be
//! rotated without a moment where only one side knows the new one
//! (`flexbridge::warehouse::keys`). [`SecretCache::reread_versions`] reads them again at most
//! once per interval, for a signature that matches neither.
//!
//! Values never reach a log: errors name the ARN only, and [`SecretString`] redacts itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

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

/// A Secrets Manager version stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `AWSCURRENT`: what `put-secret-value` just stored.
    Current,
    /// `AWSPREVIOUS`: the version that was current before it (moved there by Secrets Manager).
    Previous,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Previous => "AWSPREVIOUS",
        }
    }
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub value: SecretString,
    /// Secrets Manager's `CreatedDate` of the version (when it was put).
    pub created: Option<DateTime<Utc>>,
}

/// A secret's current version and, when it is still of use, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersions {
    pub current: SecretVersion,
    pub previous: Option<SecretVersion>,
}

impl SecretVersions {
    /// Whether the previous version still counts at `now`: the current one was created less
    /// than `window` ago (or its creation time is unknown).
    pub fn previous_in_window(
        current_created: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        window: Duration,
    ) -> bool {
        match current_created {
            None => true,
            Some(created) => chrono::Duration::from_std(window)
                .map(|w| now < created + w)
                .unwrap_or(true),
        }
    }

    /// The values to use at `now`: the current one first, then the previous one while it is in
    /// its `window`.
    pub fn values_at(&self, now: DateTime<Utc>, window: Duration) -> Vec<&SecretString> {
        let mut out = vec![&self.current.value];
        if let Some(p) = &self.previous {
            if Self::previous_in_window(self.current.created, now, window) {
                out.push(&p.value);
            }
        }
        out
    }
}

/// A fixed secret's versions (the static source).
#[derive(Clone)]
struct StaticSecret {
    current: SecretVersion,
    previous: Option<SecretVersion>,
}

#[derive(Clone)]
enum Source {
    Aws(aws_sdk_secretsmanager::Client),
    /// Fixed values (unit tests, tools); keyed by ARN. [`SecretCache::put_static`] rotates one.
    Static(Arc<std::sync::Mutex<HashMap<String, StaticSecret>>>),
}

struct Entry {
    value: SecretString,
    loaded: Instant,
}

struct VersionsEntry {
    versions: SecretVersions,
    loaded: Instant,
}

fn remember(cache: &mut HashMap<String, VersionsEntry>, arn: &str, versions: &SecretVersions) {
    cache.insert(
        arn.to_string(),
        VersionsEntry {
            versions: versions.clone(),
            loaded: Instant::now(),
        },
    );
}

/// Loads secrets by ARN and caches them. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct SecretCache {
    source: Source,
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    versions: Arc<Mutex<HashMap<String, VersionsEntry>>>,
    /// When each ARN's versions were last re-read on demand (the rate limit of re-reads).
    rereads: Arc<Mutex<HashMap<String, Instant>>>,
    /// Calls to the source (every stage read), for tests and benchmarks.
    fetches: Arc<AtomicU64>,
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
        let values = values
            .into_iter()
            .map(|(arn, v)| {
                let current = SecretVersion {
                    value: SecretString::new(v),
                    created: None,
                };
                (
                    arn,
                    StaticSecret {
                        current,
                        previous: None,
                    },
                )
            })
            .collect();
        Self::with_source(Source::Static(Arc::new(std::sync::Mutex::new(values))))
    }

    /// Puts a new current value into a static source, as `put-secret-value` does: the current
    /// one becomes the previous one, and the new one is created at `created`. What this cache
    /// already holds is kept until it expires or is re-read. No effect on an AWS source.
    pub fn put_static(&self, arn: &str, value: &str, created: DateTime<Utc>) {
        if let Source::Static(map) = &self.source {
            let mut map = map.lock().expect("static secrets");
            let new = SecretVersion {
                value: SecretString::new(value),
                created: Some(created),
            };
            match map.get_mut(arn) {
                Some(s) => s.previous = Some(std::mem::replace(&mut s.current, new)),
                None => {
                    map.insert(
                        arn.to_string(),
                        StaticSecret {
                            current: new,
                            previous: None,
                        },
                    );
                }
            }
        }
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            ttl: Self::DEFAULT_TTL,
            entries: Arc::new(Mutex::new(HashMap::new())),
            versions: Arc::new(Mutex::new(HashMap::new())),
            rereads: Arc::new(Mutex::new(HashMap::new())),
            fetches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many stage reads reached the source so far (every clone counts).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
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
        let value = self.fetch(arn, Stage::Current).await?.value;
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

    /// The secret's current version and, if that was created less than `previous_for` ago,
    /// its previous one (none when the secret has no `AWSPREVIOUS`). Cached like [`Self::get`];
    /// once the current version is older than `previous_for`, only it is read (one call).
    pub async fn versions(&self, arn: &str, previous_for: Duration) -> Result<SecretVersions> {
        let mut cached = self.versions.lock().await;
        if let Some(e) = cached.get(arn) {
            if e.loaded.elapsed() < self.ttl {
                return Ok(e.versions.clone());
            }
        }
        let versions = self.fetch_versions(arn, previous_for).await?;
        remember(&mut cached, arn, &versions);
        Ok(versions)
    }

    /// Reads the versions again now (a signature matched none of the cached ones: the secret may
    /// have been rotated since), unless this ARN was re-read less than `min_interval` ago: then
    /// `None`, so a flood of bad signatures costs at most one read per interval per process. A
    /// failed read counts as a re-read too.
    pub async fn reread_versions(
        &self,
        arn: &str,
        previous_for: Duration,
        min_interval: Duration,
    ) -> Result<Option<SecretVersions>> {
        {
            let mut rereads = self.rereads.lock().await;
            if rereads.get(arn).is_some_and(|t| t.elapsed() < min_interval) {
                return Ok(None);
            }
            rereads.insert(arn.to_string(), Instant::now());
        }
        let mut cached = self.versions.lock().await;
        let versions = self.fetch_versions(arn, previous_for).await?;
        remember(&mut cached, arn, &versions);
        Ok(Some(versions))
    }

    async fn fetch_versions(&self, arn: &str, previous_for: Duration) -> Result<SecretVersions> {
        let current = self.fetch(arn, Stage::Current).await?;
        let previous =
            if SecretVersions::previous_in_window(current.created, Utc::now(), previous_for) {
                match self.fetch(arn, Stage::Previous).await {
                    Ok(p) => Some(p),
                    // No AWSPREVIOUS: never rotated, or the previous version was dropped.
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
        Ok(SecretVersions { current, previous })
    }

    async fn fetch(&self, arn: &str, stage: Stage) -> Result<SecretVersion> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match &self.source {
            Source::Static(map) => {
                let map = map.lock().expect("static secrets");
                let secret = map
                    .get(arn)
                    .ok_or_else(|| Error::Config(format!("secret {arn} does not exist")))?;
                match stage {
                    Stage::Current => Ok(secret.current.clone()),
                    Stage::Previous => secret.previous.clone().ok_or_else(|| {
                        Error::NotFound(format!("secret {arn} has no {}", stage.as_str()))
                    }),
                }
            }
            Source::Aws(client) => {
                let out = crate::retry::RetryPolicy::new(
                    3,
                    Duration::from_millis(100),
                    Duration::from_secs(1),
                )
                .run_with(
                    None,
                    |_| {
                        client
                            .get_secret_value()
                            .secret_id(arn)
                            .version_stage(stage.as_str())
                            .send()
                    },
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
                    // Asked for AWSPREVIOUS of a secret that has none.
                    if stage == Stage::Previous && code == "ResourceNotFoundException" {
                        return Error::NotFound(format!("secret {arn} has no {}", stage.as_str()));
                    }
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
                        format!("GetSecretValue {arn} {}: {code}", stage.as_str()),
                        retryable,
                    )
                })?;
                let value = out
                    .secret_string()
                    .map(SecretString::new)
                    .ok_or_else(|| Error::Config(format!("secret {arn} has no SecretString")))?;
                let created = out
                    .created_date()
                    .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()));
                Ok(SecretVersion { value, created })
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
