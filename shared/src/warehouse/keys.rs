//! The HMAC keys of the warehouse interface, rotatable without a refused request or an
//! undelivered event (docs/keys.md).
//!
//! A key is a Secrets Manager secret (`WarehouseSecret`: the warehouse signs with it;
//! `WebhookSecret`: we sign with it). Rotating one is a `put-secret-value`: the new value
//! becomes `AWSCURRENT` and the old one `AWSPREVIOUS`. Both count for [`ROTATION_WINDOW`] after
//! the current version was created (its `CreatedDate`), so the other side can switch at any
//! moment of that window:
//! - inbound, a request signed with either key is accepted;
//! - outbound, every delivery carries both signatures (`v2=<current>,v2=<previous>`), so a
//!   receiver holding either key verifies it.
//!
//! Keys are cached for [`SecretCache::DEFAULT_TTL`]. A signature that matches none of the cached
//! keys (inbound), or a webhook answering 401/403 (outbound), re-reads the secret at once, at
//! most once per [`REREAD_INTERVAL`] per process, so a rotation is seen at the first request
//! that needs it, and a flood of bad signatures costs one Secrets Manager read per interval.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::secrets::{SecretCache, SecretString, SecretVersions};
use crate::warehouse::signing::{self, SignatureError, Signed, Verified};

/// How long the previous key counts after the current one was put. One day: long enough for the
/// other side (the warehouse's configuration, the webhook receiver) to switch within a working
/// day, short enough that a key rotated because it leaked stops working the next day without
/// anyone having to remember to drop it (end it earlier by removing `AWSPREVIOUS`, docs/keys.md).
pub const ROTATION_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Shortest time between two on-demand re-reads of one secret in one process.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(30);

/// One signing key secret, read through the process's [`SecretCache`] (which holds the cache
/// and the re-read limit, so this is cheap to build per request).
#[derive(Clone, Debug)]
pub struct SigningKeys {
    secrets: SecretCache,
    arn: String,
    window: Duration,
    reread_interval: Duration,
}

/// What [`SigningKeys::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    pub result: std::result::Result<Verified, SignatureError>,
    /// The secret was re-read for this request (its signature matched no cached key).
    pub reread: bool,
}

impl SigningKeys {
    pub fn new(secrets: SecretCache, arn: impl Into<String>) -> Self {
        Self {
            secrets,
            arn: arn.into(),
            window: ROTATION_WINDOW,
            reread_interval: REREAD_INTERVAL,
        }
    }

    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    pub fn with_reread_interval(mut self, interval: Duration) -> Self {
        self.reread_interval = interval;
        self
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    fn keys_of(&self, versions: &SecretVersions, now: DateTime<Utc>) -> Vec<SecretString> {
        versions
            .values_at(now, self.window)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The keys that count now: the current one first, then the previous one while it is in
    /// the window.
    pub async fn keys(&self) -> Result<Vec<SecretString>> {
        let versions = self.secrets.versions(&self.arn, self.window).await?;
        Ok(self.keys_of(&versions, Utc::now()))
    }

    /// Reads the secret again unless that was done less than the re-read interval ago (then the
    /// cache, which that re-read refreshed: a concurrent request refused by the same stale keys
    /// gets the new ones too); the keys when they differ from `known`, else `None` (nothing new
    /// to try).
    pub async fn reread(&self, known: &[SecretString]) -> Result<Option<Vec<SecretString>>> {
        let keys = match self
            .secrets
            .reread_versions(&self.arn, self.window, self.reread_interval)
            .await?
        {
            Some(versions) => self.keys_of(&versions, Utc::now()),
            None => self.keys().await?,
        };
        Ok((keys.as_slice() != known).then_some(keys))
    }

    /// Checks a signed request against the keys, re-reading them (rate-limited) when its
    /// signature matches none: the warehouse may sign with a key put after our cache was
    /// filled. `Err` only when the keys cannot be read at all.
    pub async fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        req: &Signed<'_>,
        now: i64,
        accept_v1: bool,
    ) -> Result<KeyCheck> {
        let keys = self.keys().await?;
        let check = |keys: &[SecretString]| {
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.expose().as_bytes()).collect();
            signing::verify_any(&keys, timestamp, signature, req, now, accept_v1)
        };
        let first = check(&keys);
        if first != Err(SignatureError::Mismatch) {
            return Ok(KeyCheck {
                result: first,
                reread: false,
            });
        }
        match self.reread(&keys).await {
            Ok(Some(fresh)) => Ok(KeyCheck {
                result: check(&fresh),
                reread: true,
            }),
            Ok(None) => Ok(KeyCheck {
                result: first,
                reread: false,
            }),
            Err(e) => {
                // The cached keys still stand; the request is refused by them.
                tracing::warn!(arn = self.arn, error = %e, "could not re-read a signing key");
                Ok(KeyCheck {
                    result: first,
                    reread: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::warehouse::signing::{signed_headers, signed_headers_all, Scheme};

    const ARN: &str = "arn:warehouse";

    fn cache(value: &str) -> SecretCache {
        SecretCache::from_static(HashMap::from([(ARN.to_string(), value.to_string())]))
    }

    fn req() -> Signed<'static> {
        Signed::new("POST", "/v1/inventory", b"{}")
            .content_type("application/json")
            .idempotency_key("k1")
    }

    async fn check(keys: &SigningKeys, key: &str, now: i64) -> KeyCheck {
        let [(_, ts), (_, sig)] = signed_headers(key.as_bytes(), now, &req());
        keys.verify(Some(&ts), Some(&sig), &req(), now, false)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn both_keys_count_in_the_window_and_only_the_current_after_it() {
        let now = signing::now_unix();
        let secrets = cache("old");
        secrets.put_static(ARN, "new", Utc::now());
        let keys = SigningKeys::new(secrets.clone(), ARN);
        assert_eq!(
            keys.keys()
                .await
                .unwrap()
                .iter()
                .map(|k| k.expose())
                .collect::<Vec<_>>(),
            ["new", "old"],
            "current first"
        );
        for key in ["old", "new"] {
            let c = check(&keys, key, now).await;
            assert_eq!(c.result.unwrap().scheme, Scheme::V2, "{key}");
            assert!(!c.reread);
        }
        assert_eq!(
            check(&keys, "neither", now).await.result,
            Err(SignatureError::Mismatch)
        );

        // Put 25 hours ago: the window is over, only the current key counts, and the
        // previous one is not even read.
        let secrets = cache("old");
        secrets.put_static(ARN, "new", Utc::now() - chrono::Duration::hours(25));
        let keys = SigningKeys::new(secrets.clone(), ARN);
        assert_eq!(
            check(&keys, "new", now).await.result.unwrap().scheme,
            Scheme::V2
        );
        assert_eq!(
            check(&keys, "old", now).await.result,
            Err(SignatureError::Mismatch)
        );
        // One read of AWSCURRENT for the cache, one re-read for the mismatch: no AWSPREVIOUS.
        assert_eq!(secrets.fetch_count(), 2);

        // The window is measured from the current version's creation, whatever the cache says.
        let versions = SecretVersions {
            current: crate::secrets::SecretVersion {
                value: "new".into(),
                created: Some(Utc::now()),
            },
            previous: Some(crate::secrets::SecretVersion {
                value: "old".into(),
                created: None,
            }),
        };
        assert_eq!(versions.values_at(Utc::now(), ROTATION_WINDOW).len(), 2);
        assert_eq!(
            versions
                .values_at(Utc::now() + chrono::Duration::hours(24), ROTATION_WINDOW)
                .len(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_mismatch_rereads_the_secret_at_most_once_per_interval() {
        let now = signing::now_unix();
        let secrets = cache("old");
        let keys = SigningKeys::new(secrets.clone(), ARN);
        assert!(check(&keys, "old", now).await.result.is_ok());
        assert_eq!(
            secrets.fetch_count(),
            2,
            "AWSCURRENT, and AWSPREVIOUS (none yet)"
        );
        let before = secrets.fetch_count();

        // Rotated after our cache was filled; the warehouse signs with the new key at once.
        secrets.put_static(ARN, "new", Utc::now());
        let c = check(&keys, "new", now).await;
        assert!(c.reread);
        assert_eq!(c.result.unwrap().scheme, Scheme::V2);
        assert_eq!(
            secrets.fetch_count(),
            before + 2,
            "AWSCURRENT and AWSPREVIOUS"
        );
        // The old key still counts (it is the previous one now), from the cache.
        let c = check(&keys, "old", now).await;
        assert!(c.result.is_ok() && !c.reread);

        // Another request that was refused by the stale keys at the same time gets the fresh
        // ones from the cache, without a read of its own.
        let before = secrets.fetch_count();
        let stale = vec![SecretString::new("old")];
        let fresh = keys
            .reread(&stale)
            .await
            .unwrap()
            .expect("the re-read keys");
        assert_eq!(
            fresh.iter().map(|k| k.expose()).collect::<Vec<_>>(),
            ["new", "old"]
        );
        assert_eq!(keys.reread(&fresh).await.unwrap(), None, "nothing newer");
        assert_eq!(secrets.fetch_count(), before);

        // A flood of bad signatures: no more reads within the interval...
        let before = secrets.fetch_count();
        for _ in 0..100 {
            let c = check(&keys, "forged", now).await;
            assert_eq!(c.result, Err(SignatureError::Mismatch));
            assert!(!c.reread);
        }
        assert_eq!(secrets.fetch_count(), before);
        // ...one after it, then none again.
        tokio::time::advance(REREAD_INTERVAL).await;
        for _ in 0..100 {
            check(&keys, "forged", now).await;
        }
        assert_eq!(secrets.fetch_count(), before + 2);

        // A second rotation seen the same way, once the interval has passed again.
        secrets.put_static(ARN, "newer", Utc::now());
        assert_eq!(
            check(&keys, "newer", now).await.result,
            Err(SignatureError::Mismatch),
            "still inside the interval"
        );
        tokio::time::advance(REREAD_INTERVAL).await;
        let c = check(&keys, "newer", now).await;
        assert!(c.reread && c.result.is_ok());
        // "old" is two rotations back now: no longer counted.
        assert_eq!(
            check(&keys, "old", now).await.result,
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_header_with_two_signatures_verifies_with_either_key() {
        let now = 1_700_000_000;
        let [(_, ts), (_, both)] = signed_headers_all(&[b"new", b"old"], now, &req());
        assert_eq!(both.matches("v2=").count(), 2);
        assert!(both.starts_with(&signing::sign(b"new", now, &req())));
        for key in [&b"new"[..], b"old"] {
            let v = signing::verify(key, Some(&ts), Some(&both), &req(), now, false).unwrap();
            // The ID is the matching signature's, the same as when it is sent alone.
            let [_, (_, alone)] = signed_headers(key, now, &req());
            let single = signing::verify(key, Some(&ts), Some(&alone), &req(), now, false);
            assert_eq!(v.signature_id, single.unwrap().signature_id);
        }
        assert_eq!(
            signing::verify(b"other", Some(&ts), Some(&both), &req(), now, false),
            Err(SignatureError::Mismatch)
        );
        // Spaces after the comma are fine; a malformed value, or too many, refuse the header.
        let spaced = both.replace(',', ", ");
        assert!(signing::verify(b"old", Some(&ts), Some(&spaced), &req(), now, false).is_ok());
        for bad in [
            format!("{both},zz"),
            format!("{both},"),
            [both.as_str(); 3].join(","),
        ] {
            assert_eq!(
                signing::verify(b"old", Some(&ts), Some(&bad), &req(), now, false),
                Err(SignatureError::MalformedSignature),
                "{bad}"
            );
        }
        // A v1 value next to a v2 one: the v1 is not counted where v1 is refused.
        let v1 = signing::sign_v1(b"old", now, &req());
        let mixed = format!("{},{v1}", signing::sign(b"new", now, &req()));
        assert!(signing::verify(b"old", Some(&ts), Some(&mixed), &req(), now, false).is_err());
        assert_eq!(
            signing::verify(b"old", Some(&ts), Some(&mixed), &req(), now, true)
                .unwrap()
                .scheme,
            Scheme::V1
        );
    }
}
