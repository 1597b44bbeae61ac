//! The health report (EventBridge schedule, daily by default): the page for the last whole day
//! under `reports/health/<date>.html` and a `HealthReportReady` event with a presigned link.
//! Everything it shows is computed in `flexbridge::health`.

use async_trait::async_trait;
use chrono::NaiveDate;
use flexbridge::health::aws::HealthReporter;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

pub struct HealthReport {
    pub reporter: HealthReporter,
}

impl HealthReport {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            reporter: HealthReporter::from_env(env).await?,
        })
    }
}

/// The day a run reports on: `{"date": "YYYY-MM-DD"}` in the payload (an operator re-running a
/// day, `aws lambda invoke`), else yesterday (the schedule's event carries no date).
pub fn report_date(payload: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<NaiveDate> {
    match payload.get("date").and_then(Value::as_str) {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| Error::InvalidInput(format!("date {d:?} is not YYYY-MM-DD: {e}"))),
        None => Ok((now - chrono::Duration::days(1)).date_naive()),
    }
}

#[async_trait]
impl Function for HealthReport {
    async fn invoke(&self, payload: Value, _inv: Invocation) -> Result<Value> {
        let now = chrono::Utc::now();
        let written = self.reporter.run(report_date(&payload, now)?, now).await?;
        Ok(serde_json::to_value(written)?)
    }
}
