//! Changing the stack's one secret by hand (`flexbridge secret`): the seller fills the SP-API
//! credentials into the JSON without touching the generated `signing_key` (a whole-value put
//! would drop it, and with it both HMAC keys), and rotates one HMAC key alone
//! (`warehouse::keys`). Pure functions over the secret's JSON: the CLI reads and puts it.
//! Messages name fields, never values.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::secrets::{SecretString, SecretVersions};
use crate::warehouse::keys::{open_windows, KeyRole, ROTATION_WINDOW, SIGNING_KEY_FIELD};

/// The fields `flexbridge secret set` fills: the SP-API connection's (docs/deploy.md, step 5).
pub const CREDENTIAL_FIELDS: [&str; 5] = [
    "client_id",
    "client_secret",
    "refresh_token",
    "seller_id",
    "application_id",
];

fn object(raw: &str, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::InvalidInput(format!("{what} is not a JSON object"))),
        // serde_json can quote input in some messages: position only.
        Err(e) => Err(Error::InvalidInput(format!(
            "{what} is not JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))),
    }
}

/// What a change did: the new secret string and the fields it changed (names only).
#[derive(Debug)]
pub struct Change {
    pub secret: SecretString,
    pub changed: Vec<String>,
}

/// The secret `current` with the credential fields of `given` (a JSON object) put in; every
/// other field (`signing_key`, `warehouse_key`, `webhook_key`) kept as it is. A field outside
/// [`CREDENTIAL_FIELDS`] (a typo, or a key) is refused, and so is a value that is not a string.
pub fn merge_credentials(current: &SecretString, given: &str) -> Result<Change> {
    let given = object(given, "the given credentials")?;
    let mut secret = object(current.expose(), "the stack secret")?;
    let mut changed = Vec::new();
    for (field, value) in given {
        if !CREDENTIAL_FIELDS.contains(&field.as_str()) {
            return Err(Error::InvalidInput(format!(
                "{field:?} is not a credential field (one of {}); keys change with `flexbridge secret rotate`",
                CREDENTIAL_FIELDS.join(", ")
            )));
        }
        if !value.is_string() {
            return Err(Error::InvalidInput(format!("{field} must be a string")));
        }
        if secret.get(&field) != Some(&value) {
            changed.push(field.clone());
            secret.insert(field, value);
        }
    }
    changed.sort();
    Ok(Change {
        secret: Value::Object(secret).to_string().into(),
        changed,
    })
}

/// The secret `current` with `role`'s key set to `new_key` explicitly (the other key and the
/// credentials unchanged).
pub fn rotate(current: &SecretString, role: KeyRole, new_key: &SecretString) -> Result<Change> {
    let mut secret = object(current.expose(), "the stack secret")?;
    secret.insert(role.field().into(), Value::from(new_key.expose()));
    Ok(Change {
        secret: Value::Object(secret).to_string().into(),
        changed: vec![role.field().into()],
    })
}

/// The secret `current` with a new `signing_key` and no explicit key field: both keys change
/// at once, to keys derived from `new_signing_key` (the credentials unchanged).
pub fn rotate_both(current: &SecretString, new_signing_key: &SecretString) -> Result<Change> {
    let mut secret = object(current.expose(), "the stack secret")?;
    let mut changed = vec![SIGNING_KEY_FIELD.to_string()];
    for role in KeyRole::ALL {
        if secret.remove(role.field()).is_some() {
            changed.push(role.field().into());
        }
    }
    secret.insert(
        SIGNING_KEY_FIELD.into(),
        Value::from(new_signing_key.expose()),
    );
    Ok(Change {
        secret: Value::Object(secret).to_string().into(),
        changed,
    })
}

/// When the previous version stops counting: [`ROTATION_WINDOW`] after the current one was put.
pub fn window_end(versions: &SecretVersions) -> Option<DateTime<Utc>> {
    let window = chrono::Duration::from_std(ROTATION_WINDOW).ok()?;
    versions.current.created.map(|c| c + window)
}

/// Whether a new version may be put at `now`. It moves the current version to `AWSPREVIOUS`,
/// so a key only the previous version had stops counting at once: while a rotation window is
/// open ([`open_windows`]) that is refused unless `end_window` (the other side already uses
/// the new key).
pub fn may_put(versions: &SecretVersions, now: DateTime<Utc>, end_window: bool) -> Result<()> {
    let open = open_windows(versions, now, ROTATION_WINDOW);
    if open.is_empty() || end_window {
        return Ok(());
    }
    let names: Vec<&str> = open.iter().map(|r| r.name()).collect();
    Err(Error::InvalidInput(format!(
        "the {} key was rotated less than 24 hours ago (its old key counts until {}); a new \
         version now ends that window and the old key stops working at once. Wait, or pass \
         --end-window if the other side already uses the new key",
        names.join(" and "),
        window_end(versions).map_or("?".into(), |u| u.to_rfc3339())
    )))
}

/// A fresh random key: 32 bytes as 64 hex characters, the shape of the generated ones.
pub fn new_key() -> SecretString {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    SecretString::new(hex::encode(bytes))
}

/// Whether `secret` still has what both keys are made from (see `warehouse::keys`).
pub fn keys_present(secret: &SecretString) -> bool {
    KeyRole::ALL.iter().all(|r| r.key_in(secret).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed() -> SecretString {
        r#"{"client_id":"","client_secret":"","refresh_token":"","signing_key":"g"}"#.into()
    }

    #[test]
    fn filling_the_credentials_keeps_both_keys() {
        let before: Vec<_> = KeyRole::ALL
            .iter()
            .map(|r| r.key_in(&deployed()).unwrap())
            .collect();
        let c = merge_credentials(
            &deployed(),
            r#"{"client_id":"amzn1.x","client_secret":"hunter2","refresh_token":"Atzr|y","seller_id":"A1"}"#,
        )
        .unwrap();
        assert_eq!(
            c.changed,
            ["client_id", "client_secret", "refresh_token", "seller_id"]
        );
        let after: Vec<_> = KeyRole::ALL
            .iter()
            .map(|r| r.key_in(&c.secret).unwrap())
            .collect();
        assert_eq!(before, after, "no key changed");
        let v: Value = serde_json::from_str(c.secret.expose()).unwrap();
        assert_eq!(v["client_secret"], "hunter2");
        assert_eq!(v["signing_key"], "g");
        assert!(!format!("{c:?}").contains("hunter2"));

        // The same values again change nothing.
        let again = merge_credentials(&c.secret, r#"{"client_id":"amzn1.x"}"#).unwrap();
        assert!(again.changed.is_empty());
    }

    #[test]
    fn a_new_version_is_refused_while_a_rotation_window_is_open() {
        let now = Utc::now();
        let version = |v: &SecretString, created| crate::secrets::SecretVersion {
            value: v.clone(),
            created: Some(created),
        };
        let rotated = rotate(&deployed(), KeyRole::Warehouse, &new_key())
            .unwrap()
            .secret;
        let versions = SecretVersions {
            current: version(&rotated, now - chrono::Duration::hours(1)),
            previous: Some(version(&deployed(), now - chrono::Duration::days(3))),
        };
        let e = may_put(&versions, now, false).unwrap_err().to_string();
        assert!(
            e.contains("warehouse key") && e.contains("--end-window"),
            "{e}"
        );
        assert!(
            e.contains(&window_end(&versions).unwrap().to_rfc3339()),
            "{e}"
        );
        assert!(may_put(&versions, now, true).is_ok());
        // A day after the rotation, or when the versions differ only in credentials: no window.
        assert!(may_put(&versions, now + chrono::Duration::days(1), false).is_ok());
        let filled = merge_credentials(&deployed(), r#"{"client_id":"x"}"#)
            .unwrap()
            .secret;
        let credentials_only = SecretVersions {
            current: version(&filled, now),
            previous: Some(version(&deployed(), now)),
        };
        assert!(may_put(&credentials_only, now, false).is_ok());
    }

    #[test]
    fn keys_and_typos_are_refused_without_echoing_values() {
        for bad in [
            r#"{"signing_key":"x"}"#,
            r#"{"warehouse_key":"x"}"#,
            r#"{"client_secrt":"hunter2"}"#,
        ] {
            let e = merge_credentials(&deployed(), bad).unwrap_err().to_string();
            assert!(e.contains("not a credential field"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = merge_credentials(&deployed(), r#"{"client_id": 5}"#).unwrap_err();
        assert!(e.to_string().contains("client_id must be a string"));
        let e = merge_credentials(&deployed(), "hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn rotating_one_key_leaves_the_other() {
        let k = new_key();
        assert_eq!(k.expose().len(), 64);
        assert_ne!(k, new_key());
        let c = rotate(&deployed(), KeyRole::Webhook, &k).unwrap();
        assert_eq!(KeyRole::Webhook.key_in(&c.secret).unwrap(), k);
        assert_eq!(
            KeyRole::Warehouse.key_in(&c.secret).unwrap(),
            KeyRole::Warehouse.key_in(&deployed()).unwrap()
        );
        assert!(keys_present(&c.secret));
        assert!(!keys_present(&r#"{"client_id":"x"}"#.into()));

        // Both at once: a new signing key, and the explicit webhook key dropped.
        let sk = new_key();
        let both = rotate_both(&c.secret, &sk).unwrap();
        assert_eq!(both.changed, ["signing_key", "webhook_key"]);
        for role in KeyRole::ALL {
            assert_eq!(role.key_in(&both.secret).unwrap(), role.derive(&sk));
            assert_ne!(
                role.key_in(&both.secret).unwrap(),
                role.key_in(&c.secret).unwrap()
            );
        }
        let v: Value = serde_json::from_str(both.secret.expose()).unwrap();
        assert_eq!(v["client_id"], "");
    }
}
