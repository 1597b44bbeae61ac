//! The heartbeat: on its schedule, records `heartbeat` in the settings table's status
//! items (when, and which invocation), so the seller and the local run can see that
//! schedules fire and the function can reach its table.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use flexbridge::config::keys;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::{Env, Result};
use serde_json::{json, Value};

pub const STATUS_NAME: &str = "heartbeat";

pub struct Heartbeat {
    settings: Arc<dyn SettingsStore>,
}

impl Heartbeat {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let table = env.require(keys::SETTINGS_TABLE)?.to_string();
        let sdk = flexbridge::aws::config(env).await;
        Ok(Self::new(Arc::new(DynamoSettingsStore::new(
            flexbridge::aws::dynamodb_client(&sdk),
            table,
        ))))
    }

    pub fn new(settings: Arc<dyn SettingsStore>) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl Function for Heartbeat {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let beat = json!({
            "at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "scheduledFor": payload.get("time").cloned().unwrap_or(Value::Null),
            "requestId": invocation.request_id,
        });
        self.settings
            .record_status(STATUS_NAME, beat.clone())
            .await?;
        Ok(beat)
    }
}
