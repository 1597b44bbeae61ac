//! The heartbeat: on its schedule, records `heartbeat` in the settings table's status
//! items (when, and which invocation), so the seller and the local run can see that
//! schedules fire and the function can reach its table; then reads every DLQ's depth and
//! raises the `dead_letters` alert while one holds messages (the one alarm replaced an alarm
//! per DLQ: docs/runbook.md).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use flexbridge::config::keys;
use flexbridge::health::aws::{alert_dead_letters, DeadLetters, SqsDeadLetters};
use flexbridge::metrics::Metrics;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::{Env, Result};
use serde_json::{json, Value};

pub const STATUS_NAME: &str = "heartbeat";

pub struct Heartbeat {
    settings: Arc<dyn SettingsStore>,
    dead_letters: Arc<dyn DeadLetters>,
    metrics: Metrics,
}

impl Heartbeat {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let table = env.require(keys::SETTINGS_TABLE)?.to_string();
        let sdk = flexbridge::aws::config(env).await;
        Ok(Self::new(
            Arc::new(DynamoSettingsStore::new(
                flexbridge::aws::dynamodb_client(&sdk),
                table,
            )),
            Arc::new(SqsDeadLetters::from_env(env, &sdk)?),
            Metrics::from_env(env),
        ))
    }

    pub fn new(
        settings: Arc<dyn SettingsStore>,
        dead_letters: Arc<dyn DeadLetters>,
        metrics: Metrics,
    ) -> Self {
        Self {
            settings,
            dead_letters,
            metrics,
        }
    }
}

#[async_trait]
impl Function for Heartbeat {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let mut beat = json!({
            "at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "scheduledFor": payload.get("time").cloned().unwrap_or(Value::Null),
            "requestId": invocation.request_id,
        });
        self.settings
            .record_status(STATUS_NAME, beat.clone())
            .await?;
        // After the beat: an unreadable DLQ fails the run (counted as a function error) but
        // the seller still sees that the schedule fired.
        let waiting = alert_dead_letters(self.dead_letters.as_ref(), &self.metrics).await?;
        beat["deadLetters"] = json!(waiting
            .into_iter()
            .map(|(queue, depth)| json!({"queue": queue, "depth": depth}))
            .collect::<Vec<_>>());
        Ok(beat)
    }
}
