//! SettingsTable: the seller's settings, every change to them, and system status.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | setting | `SETTING` | `<name>` | `value` (JSON text), `version` (N, starts at 1), `updatedAt`, `updatedBy` |
//! | change log entry | `CHANGE#<name>` | `<version, 10 digits>` | `old` (JSON text, absent for the first), `new`, `at`, `by` |
//! | status | `STATUS` | `<name>` (e.g. `heartbeat`) | `value` (JSON text), `at` |
//!
//! Access patterns: read one setting (GetItem); read all settings (Query `pk = SETTING`);
//! change a setting (one transaction: conditional put on `version` + the change log entry,
//! so a change is never lost from the log and two concurrent edits cannot both win); the
//! history of one setting, newest first (Query `pk = CHANGE#<name>`, descending); record and
//! read a status value (not audited: written by the system, often).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::dynamo::{
    ddb_error, get_n, get_s, is_transaction_cancelled, n, query_all, s, Item,
};

/// Names of the settings flexbridge itself reads (others may be stored too).
pub mod names {
    /// Days the warehouse needs from order to handover (bool-free number).
    pub const HANDLING_TIME_DAYS: &str = "handling_time_days";
    /// Master switch for pushing warehouse stock to Amazon.
    pub const INVENTORY_PUSH_ENABLED: &str = "inventory_push_enabled";
    /// Master switch for accepting new shipments automatically.
    pub const AUTO_CONFIRM_ORDERS: &str = "auto_confirm_orders";
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub value: Value,
    pub version: u64,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SettingChange {
    pub name: String,
    pub version: u64,
    pub old: Option<Value>,
    pub new: Value,
    pub at: String,
    pub by: String,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<Setting>>;
    async fn list(&self) -> Result<Vec<Setting>>;
    /// Sets `name` to `value` and logs the change. `expected_version`: `Some(v)` fails with
    /// [`Error::Conflict`] unless the stored version is `v` (`Some(0)` = must not exist yet);
    /// `None` overwrites whatever is there (still logged). Setting the same value again is a
    /// no-op that returns the stored setting.
    async fn put(
        &self,
        name: &str,
        value: Value,
        expected_version: Option<u64>,
        by: &str,
    ) -> Result<Setting>;
    /// Changes of one setting, newest first.
    async fn history(&self, name: &str) -> Result<Vec<SettingChange>>;
    async fn record_status(&self, name: &str, value: Value) -> Result<()>;
    async fn status(&self, name: &str) -> Result<Option<(Value, String)>>;
}

/// A setting's value as `T`, or `default` when it is not set.
pub async fn get_or<T: serde::de::DeserializeOwned>(
    store: &dyn SettingsStore,
    name: &str,
    default: T,
) -> Result<T> {
    match store.get(name).await? {
        None => Ok(default),
        // A malformed setting is the deployment's problem, never the message's being handled.
        Some(s) => serde_json::from_value(s.value)
            .map_err(|e| Error::Config(format!("setting {name} has an unexpected value: {e}"))),
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The rules of [`SettingsStore::put`] before anything is written: a stale
/// `expected_version` is a conflict; the same value again returns the stored setting.
fn check_put(
    name: &str,
    current: Option<&Setting>,
    value: &Value,
    expected_version: Option<u64>,
) -> Result<Option<Setting>> {
    let current_version = current.map(|c| c.version).unwrap_or(0);
    if let Some(expected) = expected_version {
        if expected != current_version {
            return Err(Error::Conflict(format!(
                "setting {name} is at version {current_version}, not {expected}; reload and try again"
            )));
        }
    }
    Ok(current.filter(|c| &c.value == value).cloned())
}

fn parse_json(name: &str, raw: Option<&str>) -> Result<Value> {
    let raw = raw.ok_or_else(|| Error::Config(format!("setting {name}: value missing")))?;
    serde_json::from_str(raw)
        .map_err(|e| Error::Config(format!("setting {name}: stored value is not JSON: {e}")))
}

pub struct DynamoSettingsStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSettingsStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn setting_from(item: &Item) -> Result<Setting> {
        let name = get_s(item, "sk").unwrap_or_default().to_string();
        Ok(Setting {
            value: parse_json(&name, get_s(item, "value"))?,
            version: get_n(item, "version").unwrap_or(0),
            updated_at: get_s(item, "updatedAt").unwrap_or_default().to_string(),
            updated_by: get_s(item, "updatedBy").unwrap_or_default().to_string(),
            name,
        })
    }
}

#[async_trait]
impl SettingsStore for DynamoSettingsStore {
    async fn get(&self, name: &str) -> Result<Option<Setting>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("SETTING"))
            .key("sk", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        out.item.as_ref().map(Self::setting_from).transpose()
    }

    async fn list(&self) -> Result<Vec<Setting>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s("SETTING"))
            .consistent_read(true);
        query_all(query, Self::setting_from).await
    }

    async fn put(
        &self,
        name: &str,
        value: Value,
        expected_version: Option<u64>,
        by: &str,
    ) -> Result<Setting> {
        let current = self.get(name).await?;
        if let Some(unchanged) = check_put(name, current.as_ref(), &value, expected_version)? {
            return Ok(unchanged);
        }
        let current_version = current.as_ref().map(|c| c.version).unwrap_or(0);
        let version = current_version + 1;
        let at = now();
        let new_text = value.to_string();
        let condition = if current_version == 0 {
            "attribute_not_exists(pk)".to_string()
        } else {
            "version = :v".to_string()
        };
        let mut setting_put = Put::builder()
            .table_name(&self.table)
            .item("pk", s("SETTING"))
            .item("sk", s(name))
            .item("value", s(new_text.clone()))
            .item("version", n(version))
            .item("updatedAt", s(at.clone()))
            .item("updatedBy", s(by))
            .condition_expression(condition);
        if current_version != 0 {
            setting_put = setting_put.expression_attribute_values(":v", n(current_version));
        }
        let mut change_put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("CHANGE#{name}")))
            .item("sk", s(format!("{version:010}")))
            .item("new", s(new_text))
            .item("at", s(at.clone()))
            .item("by", s(by))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(c) = &current {
            change_put = change_put.item("old", s(c.value.to_string()));
        }
        let res = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        setting_put
                            .build()
                            .map_err(|e| Error::Internal(e.to_string()))?,
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        change_put
                            .build()
                            .map_err(|e| Error::Internal(e.to_string()))?,
                    )
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(Setting {
                name: name.to_string(),
                value,
                version,
                updated_at: at,
                updated_by: by.to_string(),
            }),
            Err(e) if is_transaction_cancelled(&e) => {
                // A transaction whose answer was lost and that the SDK sent again is cancelled
                // by its own first write (DynamoDB answers a retry with the same
                // ClientRequestToken as the first, moto does not): ours if the setting now is
                // exactly what we wrote.
                match self.get(name).await? {
                    Some(now)
                        if now.version == version
                            && now.updated_at == at
                            && now.updated_by == by
                            && now.value == value =>
                    {
                        Ok(now)
                    }
                    _ => Err(Error::Conflict(format!(
                        "setting {name} was changed by someone else at the same time; reload and try again"
                    ))),
                }
            }
            Err(e) => Err(ddb_error("TransactWriteItems", e)),
        }
    }

    async fn history(&self, name: &str) -> Result<Vec<SettingChange>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("CHANGE#{name}")))
            .scan_index_forward(false);
        query_all(query, |item| {
            Ok(SettingChange {
                name: name.to_string(),
                version: get_s(item, "sk").and_then(|v| v.parse().ok()).unwrap_or(0),
                old: get_s(item, "old")
                    .map(|o| parse_json(name, Some(o)))
                    .transpose()?,
                new: parse_json(name, get_s(item, "new"))?,
                at: get_s(item, "at").unwrap_or_default().to_string(),
                by: get_s(item, "by").unwrap_or_default().to_string(),
            })
        })
        .await
    }

    async fn record_status(&self, name: &str, value: Value) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("STATUS"))
            .item("sk", s(name))
            .item("value", s(value.to_string()))
            .item("at", s(now()))
            .send()
            .await
            .map_err(|e| ddb_error("PutItem", e))?;
        Ok(())
    }

    async fn status(&self, name: &str) -> Result<Option<(Value, String)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("STATUS"))
            .key("sk", s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        match out.item {
            None => Ok(None),
            Some(item) => Ok(Some((
                parse_json(name, get_s(&item, "value"))?,
                get_s(&item, "at").unwrap_or_default().to_string(),
            ))),
        }
    }
}

/// The in-memory twin for unit tests.
#[derive(Default)]
pub struct MemorySettingsStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    settings: BTreeMap<String, Setting>,
    changes: BTreeMap<String, Vec<SettingChange>>,
    status: BTreeMap<String, (Value, String)>,
}

impl MemorySettingsStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SettingsStore for MemorySettingsStore {
    async fn get(&self, name: &str) -> Result<Option<Setting>> {
        Ok(self
            .inner
            .lock()
            .expect("settings lock")
            .settings
            .get(name)
            .cloned())
    }

    async fn list(&self) -> Result<Vec<Setting>> {
        Ok(self
            .inner
            .lock()
            .expect("settings lock")
            .settings
            .values()
            .cloned()
            .collect())
    }

    async fn put(
        &self,
        name: &str,
        value: Value,
        expected_version: Option<u64>,
        by: &str,
    ) -> Result<Setting> {
        let mut inner = self.inner.lock().expect("settings lock");
        let current = inner.settings.get(name).cloned();
        if let Some(unchanged) = check_put(name, current.as_ref(), &value, expected_version)? {
            return Ok(unchanged);
        }
        let current_version = current.as_ref().map(|c| c.version).unwrap_or(0);
        let at = now();
        let setting = Setting {
            name: name.to_string(),
            value: value.clone(),
            version: current_version + 1,
            updated_at: at.clone(),
            updated_by: by.to_string(),
        };
        inner
            .changes
            .entry(name.to_string())
            .or_default()
            .push(SettingChange {
                name: name.to_string(),
                version: setting.version,
                old: current.map(|c| c.value),
                new: value,
                at,
                by: by.to_string(),
            });
        inner.settings.insert(name.to_string(), setting.clone());
        Ok(setting)
    }

    async fn history(&self, name: &str) -> Result<Vec<SettingChange>> {
        let inner = self.inner.lock().expect("settings lock");
        let mut out = inner.changes.get(name).cloned().unwrap_or_default();
        out.reverse();
        Ok(out)
    }

    async fn record_status(&self, name: &str, value: Value) -> Result<()> {
        self.inner
            .lock()
            .expect("settings lock")
            .status
            .insert(name.to_string(), (value, now()));
        Ok(())
    }

    async fn status(&self, name: &str) -> Result<Option<(Value, String)>> {
        Ok(self
            .inner
            .lock()
            .expect("settings lock")
            .status
            .get(name)
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn every_change_is_logged_with_old_and_new_value() {
        let st = MemorySettingsStore::new();
        st.put(names::HANDLING_TIME_DAYS, json!(1), Some(0), "seed")
            .await
            .unwrap();
        let s = st
            .put(names::HANDLING_TIME_DAYS, json!(2), Some(1), "seller")
            .await
            .unwrap();
        assert_eq!(s.version, 2);
        let h = st.history(names::HANDLING_TIME_DAYS).await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].old.clone(), h[0].new.clone(), h[0].by.as_str()),
            (Some(json!(1)), json!(2), "seller")
        );
        assert_eq!(h[1].old, None);
    }

    #[tokio::test]
    async fn a_stale_version_is_a_conflict_and_the_same_value_is_a_no_op() {
        let st = MemorySettingsStore::new();
        st.put("x", json!(true), None, "a").await.unwrap();
        let err = st.put("x", json!(false), Some(0), "b").await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        st.put("x", json!(true), None, "c").await.unwrap();
        assert_eq!(st.history("x").await.unwrap().len(), 1);
        assert!(get_or(&st, "x", false).await.unwrap());
        assert_eq!(get_or(&st, "missing", 7u32).await.unwrap(), 7);
    }
}
