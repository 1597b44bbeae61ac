//! The returns poller (EventBridge schedule): listReturns per return location and status since
//! the cursor (minus the overlap), stores each return and tells the warehouse about new returns
//! and status changes. Amazon sends no return notifications, so this is the only way in.

use async_trait::async_trait;
use flexbridge::orders::Orders;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::{Env, Result};
use serde_json::Value;

pub struct ReturnsPoller {
    pub orders: Orders,
}

impl ReturnsPoller {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            orders: Orders::from_env(env).await?,
        })
    }
}

#[async_trait]
impl Function for ReturnsPoller {
    async fn invoke(&self, _payload: Value, inv: Invocation) -> Result<Value> {
        let report = self.orders.returns(&inv).await?.poll(&inv).await?;
        Ok(serde_json::to_value(report)?)
    }
}
