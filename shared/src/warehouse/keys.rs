//! The HMAC keys of the warehouse interface, rotatable without a refused request or an
//! undelivered event (docs/keys.md).
//!
//! Both keys live in the stack's one secret (`FlexbridgeSecret`, next to the SP-API
//! credentials): the warehouse key (the warehouse signs with it) and the webhook key (we sign
//! with it) are derived from its generated `signing_key` with HMAC-SHA256 over a fixed label
//! each ([`KeyRole`]), unless the secret names one explicitly (`warehouse_key`, `webhook_key`:
//! how one is rotated alone). One secret is $0.40 a month instead of three ($1.20), and
//! CloudFormation can generate only one field of it, hence the derivation.
//!
//! Rotating a key is a new version of the secret (`put-secret-value`): the new value becomes
//! `AWSCURRENT` and the old one `AWSPREVIOUS`. Both versions' keys count for [`ROTATION_WINDOW`]
//! after the current version was created (its `CreatedDate`), so the other side can switch at
//! any moment of that window:
//! - inbound, a request signed with either key is accepted;
//! - outbound, every delivery carries both signatures (`v2=<current>,v2=<previous>`), so a
//!   receiver holding either key verifies it.
//!
//! A version that changes only the SP-API credentials changes no key: its previous version
//! yields the same key, counted once, so no second signature appears.
//!
//! Keys are cached for [`SecretCache::DEFAULT_TTL`]. A signature that matches none of the cached
//! keys (inbound), or a webhook answering 401/403 (outbound), re-reads the secret at once, at
//! most once per [`REREAD_INTERVAL`] per process, so a rotation is seen at the first request
//! that needs it, and a flood of bad signatures costs one Secrets Manager read per interval.

use std::time::Duration;

use chrono::{DateTime, Utc};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::secrets::{SecretCache, SecretString, SecretVersions};
use crate::warehouse::signing::{self, SignatureError, Signed, Verified};

/// How long the previous key counts after the current one was put. One day: long enough for the
/// other side (the warehouse's configuration, the webhook receiver) to switch within a working
/// day, short enough that a key rotated because it leaked stops working the next day without
/// anyone having to remember to drop it (end it earlier by removing `AWSPREVIOUS`, docs/keys.md).
pub const ROTATION_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Shortest time between two on-demand re-reads of one secret in one process.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(30);

/// Which of the two keys of the stack secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRole {
    /// The warehouse signs its requests to the warehouse API with it; we verify.
    Warehouse,
    /// We sign webhook deliveries with it; the seller's receiver verifies.
    Webhook,
}

/// The generated field every key is derived from (the template's `GenerateStringKey`).
pub const SIGNING_KEY_FIELD: &str = "signing_key";

/// The key fields of the stack secret (the SP-API credentials beside them are read by
/// `spapi::auth`). Unknown fields are ignored: they are the credentials'.
#[derive(serde::Deserialize)]
struct KeyFields {
    #[serde(default)]
    signing_key: Option<SecretString>,
    #[serde(default)]
    warehouse_key: Option<SecretString>,
    #[serde(default)]
    webhook_key: Option<SecretString>,
}

fn filled(v: Option<SecretString>) -> Option<SecretString> {
    v.filter(|k| !k.expose().trim().is_empty())
}

impl KeyRole {
    pub const ALL: [KeyRole; 2] = [KeyRole::Warehouse, KeyRole::Webhook];

    /// `warehouse` or `webhook`.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Warehouse => "warehouse",
            KeyRole::Webhook => "webhook",
        }
    }

    /// The secret's field that, when set, is this key instead of the derived one.
    pub fn field(self) -> &'static str {
        match self {
            KeyRole::Warehouse => "warehouse_key",
            KeyRole::Webhook => "webhook_key",
        }
    }

    /// Fixed per role and never changed: changing one would change every deployed key.
    fn label(self) -> &'static [u8] {
        match self {
            KeyRole::Warehouse => b"flexbridge warehouse key v1",
            KeyRole::Webhook => b"flexbridge webhook key v1",
        }
    }

    /// The key derived from `signing_key`: hex HMAC-SHA256(signing_key, label), 64
    /// characters. Knowing one role's key tells nothing of the other's or of `signing_key`.
    pub fn derive(self, signing_key: &SecretString) -> SecretString {
        let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.expose().as_bytes())
            .expect("hmac accepts any key length");
        mac.update(self.label());
        SecretString::new(hex::encode(mac.finalize().into_bytes()))
    }

    /// This key in one version of the stack secret (its whole JSON string): the explicit
    /// field, else derived from `signing_key`. Errors name fields, never values.
    pub fn key_in(self, secret: &SecretString) -> Result<SecretString> {
        let fields: KeyFields = serde_json::from_str(secret.expose()).map_err(|e| {
            Error::Config(format!(
                "the flexbridge secret is not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let explicit = match self {
            KeyRole::Warehouse => fields.warehouse_key,
            KeyRole::Webhook => fields.webhook_key,
        };
        if let Some(k) = filled(explicit) {
            return Ok(k);
        }
        filled(fields.signing_key)
            .map(|s| self.derive(&s))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the flexbridge secret has neither {} nor {SIGNING_KEY_FIELD} (docs/keys.md)",
                    self.field()
                ))
            })
    }

    /// The keys of this role that count at `now` in `versions`: the current one first, then
    /// the previous version's while it is in `window` and differs (a version that changed only
    /// credentials yields the same key, counted once). A previous version without this key
    /// (malformed, or from before the key existed) is skipped: the current one decides.
    pub fn keys_at(
        self,
        versions: &SecretVersions,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Vec<SecretString>> {
        let mut keys = vec![self.key_in(&versions.current.value)?];
        if let Some(p) = &versions.previous {
            if SecretVersions::previous_in_window(versions.current.created, now, window) {
                if let Ok(k) = self.key_in(&p.value) {
                    if k != keys[0] {
                        keys.push(k);
                    }
                }
            }
        }
        Ok(keys)
    }
}

/// The roles whose rotation window is open at `now`: the previous version's key still counts
/// and differs from the current one. A new version put now would end that window (the current
/// version becomes `AWSPREVIOUS`, the older key is no longer read), so the CLI asks first.
pub fn open_windows(
    versions: &SecretVersions,
    now: DateTime<Utc>,
    window: Duration,
) -> Vec<KeyRole> {
    KeyRole::ALL
        .into_iter()
        .filter(|r| r.keys_at(versions, now, window).is_ok_and(|k| k.len() > 1))
        .collect()
}

/// One key of the stack secret, read through the process's [`SecretCache`] (which holds the
/// cache and the re-read limit, so this is cheap to build per request).
#[derive(Clone, Debug)]
pub struct SigningKeys {
    secrets: SecretCache,
    arn: String,
    role: KeyRole,
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
    pub fn new(secrets: SecretCache, arn: impl Into<String>, role: KeyRole) -> Self {
        Self {
            secrets,
            arn: arn.into(),
            role,
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

    pub fn role(&self) -> KeyRole {
        self.role
    }

    fn keys_of(&self, versions: &SecretVersions, now: DateTime<Utc>) -> Result<Vec<SecretString>> {
        self.role.keys_at(versions, now, self.window)
    }

    /// The keys that count now: the current one first, then the previous one while it is in
    /// the window.
    pub async fn keys(&self) -> Result<Vec<SecretString>> {
        let versions = self.secrets.versions(&self.arn, self.window).await?;
        self.keys_of(&versions, Utc::now())
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
            Some(versions) => self.keys_of(&versions, Utc::now())?,
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

    /// A version of the stack secret whose warehouse key is `key`.
    fn secret(key: &str) -> String {
        serde_json::json!({"client_id": "id", "warehouse_key": key}).to_string()
    }

    fn cache(key: &str) -> SecretCache {
        SecretCache::from_static(HashMap::from([(ARN.to_string(), secret(key))]))
    }

    fn warehouse(secrets: &SecretCache) -> SigningKeys {
        SigningKeys::new(secrets.clone(), ARN, KeyRole::Warehouse)
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
        secrets.put_static(ARN, &secret("new"), Utc::now());
        let keys = warehouse(&secrets);
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
        secrets.put_static(
            ARN,
            &secret("new"),
            Utc::now() - chrono::Duration::hours(25),
        );
        let keys = warehouse(&secrets);
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
        let keys = warehouse(&secrets);
        assert!(check(&keys, "old", now).await.result.is_ok());
        assert_eq!(
            secrets.fetch_count(),
            2,
            "AWSCURRENT, and AWSPREVIOUS (none yet)"
        );
        let before = secrets.fetch_count();

        // Rotated after our cache was filled; the warehouse signs with the new key at once.
        secrets.put_static(ARN, &secret("new"), Utc::now());
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
        secrets.put_static(ARN, &secret("newer"), Utc::now());
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
    fn both_keys_derive_from_the_one_generated_field_unless_named() {
        let sk = SecretString::new("generated-by-cloudformation");
        let wh = KeyRole::Warehouse.derive(&sk);
        let hook = KeyRole::Webhook.derive(&sk);
        // Fixed: a deployed key must never change with the code. Computed independently:
        // printf 'flexbridge warehouse key v1' | openssl dgst -sha256 -hmac generated-by-cloudformation
        assert_eq!(
            wh.expose(),
            "e49b621bbacc2650c0536696e934b7e0050c6608dd11e950a17c05d0fdb47f8b"
        );
        assert_eq!(wh.expose().len(), 64);
        assert_ne!(wh, hook, "two independent keys");
        assert_ne!(wh.expose(), sk.expose());

        let only_generated = serde_json::json!({
            "client_id": "", "client_secret": "", "refresh_token": "",
            "signing_key": "generated-by-cloudformation"
        })
        .to_string()
        .into();
        assert_eq!(KeyRole::Warehouse.key_in(&only_generated).unwrap(), wh);
        assert_eq!(KeyRole::Webhook.key_in(&only_generated).unwrap(), hook);

        // An explicit field overrides its own key only; an empty one is no override.
        let named = serde_json::json!({
            "signing_key": "generated-by-cloudformation", "webhook_key": "mine", "warehouse_key": " "
        })
        .to_string()
        .into();
        assert_eq!(KeyRole::Webhook.key_in(&named).unwrap().expose(), "mine");
        assert_eq!(KeyRole::Warehouse.key_in(&named).unwrap(), wh);

        // Neither: a configuration error naming the fields, not a value.
        let err = KeyRole::Warehouse
            .key_in(&r#"{"client_secret":"hunter2"}"#.into())
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        let msg = err.to_string();
        assert!(
            msg.contains("warehouse_key") && msg.contains("signing_key"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        let err = KeyRole::Warehouse
            .key_in(&"not json hunter2".into())
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_version_that_changes_only_credentials_opens_no_window() {
        let now = Utc::now();
        let version = |v: serde_json::Value| crate::secrets::SecretVersion {
            value: v.to_string().into(),
            created: Some(now),
        };
        let keys = |current: serde_json::Value, previous: serde_json::Value| SecretVersions {
            current: version(current),
            previous: Some(version(previous)),
        };
        // The seller filled the credentials after deploying: same signing_key, one key each.
        let filled = keys(
            serde_json::json!({"client_id": "amzn1", "signing_key": "g"}),
            serde_json::json!({"client_id": "", "signing_key": "g"}),
        );
        for role in KeyRole::ALL {
            assert_eq!(
                role.keys_at(&filled, now, ROTATION_WINDOW).unwrap().len(),
                1
            );
        }
        assert!(open_windows(&filled, now, ROTATION_WINDOW).is_empty());

        // The webhook key rotated alone: its window is open, the warehouse key's is not.
        let rotated = keys(
            serde_json::json!({"signing_key": "g", "webhook_key": "new"}),
            serde_json::json!({"signing_key": "g"}),
        );
        let hook = KeyRole::Webhook
            .keys_at(&rotated, now, ROTATION_WINDOW)
            .unwrap();
        assert_eq!(hook[0].expose(), "new", "current first");
        assert_eq!(hook[1], KeyRole::Webhook.derive(&"g".into()));
        assert_eq!(
            open_windows(&rotated, now, ROTATION_WINDOW),
            [KeyRole::Webhook]
        );
        // A day later only the current key counts, and nothing is open.
        let later = now + chrono::Duration::hours(25);
        assert_eq!(
            KeyRole::Webhook
                .keys_at(&rotated, later, ROTATION_WINDOW)
                .unwrap()
                .len(),
            1
        );
        assert!(open_windows(&rotated, later, ROTATION_WINDOW).is_empty());

        // A previous version without keys (malformed) is skipped; a current one fails.
        let broken_previous = SecretVersions {
            current: version(serde_json::json!({"signing_key": "g"})),
            previous: Some(crate::secrets::SecretVersion {
                value: "{".into(),
                created: None,
            }),
        };
        assert_eq!(
            KeyRole::Warehouse
                .keys_at(&broken_previous, now, ROTATION_WINDOW)
                .unwrap()
                .len(),
            1
        );
        let broken_current = SecretVersions {
            current: crate::secrets::SecretVersion {
                value: "{}".into(),
                created: None,
            },
            previous: None,
        };
        assert!(KeyRole::Warehouse
            .keys_at(&broken_current, now, ROTATION_WINDOW)
            .is_err());
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
