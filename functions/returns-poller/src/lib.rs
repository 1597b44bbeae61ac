//! The returns poller (EventBridge schedule): listReturns per return location and status since
//! the cursor (minus the overlap), stores each return and tells the warehouse about new returns
//! and status changes. Amazon sends no return notifications, so this is the only way in.
//! A run where any return location failed still polls the others, then ends as a failure
//! (`flexbridge::runtime::finish_run`: the `run_failed` alert, alarmed, and a function error).

use async_trait::async_trait;
use flexbridge::metrics::Metrics;
use flexbridge::orders::Orders;
use flexbridge::runtime::{finish_run, Function, Invocation};
use flexbridge::{Env, Result};
use serde_json::Value;

pub struct ReturnsPoller {
    pub orders: Orders,
    pub metrics: Metrics,
}

impl ReturnsPoller {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            orders: Orders::from_env(env).await?,
            metrics: Metrics::from_env(env),
        })
    }
}

#[async_trait]
impl Function for ReturnsPoller {
    async fn invoke(&self, _payload: Value, inv: Invocation) -> Result<Value> {
        let run = async { self.orders.returns(&inv).await?.poll(&inv).await };
        finish_run(&self.metrics, "returns poll", run.await, |r| {
            r.failed_polls.clone()
        })
    }
}
