//! The order poller (EventBridge schedule, every minute by default): for each location with
//! order sync on, reads ACCEPTED, CREATED and CANCELLED shipments from Amazon since each
//! status's cursor (minus the overlap), stores them, moves the cursor, then confirms and hands
//! them over; finally sweeps shipments an earlier run left half-way. Storing and confirming
//! stay in one function: the same `OrderProcessor` serves the notification consumer, and the
//! sweep makes a separate confirm queue unnecessary.
//!
//! A run where any location failed still polls the others, then ends as a failure
//! (`flexbridge::runtime::finish_run`: the `RunsFailed` metric, alarmed, and a function error).

use async_trait::async_trait;
use flexbridge::metrics::Metrics;
use flexbridge::orders::poller::OrderPoller as Poll;
use flexbridge::orders::Orders;
use flexbridge::runtime::{finish_run, Function, Invocation};
use flexbridge::{Env, Result};
use serde_json::Value;

pub struct OrderPoller {
    pub orders: Orders,
    pub metrics: Metrics,
}

impl OrderPoller {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            orders: Orders::from_env(env).await?,
            metrics: Metrics::from_env(env),
        })
    }
}

#[async_trait]
impl Function for OrderPoller {
    async fn invoke(&self, _payload: Value, inv: Invocation) -> Result<Value> {
        let processor = self.orders.processor(&inv);
        let run = async {
            let poller = Poll {
                processor: &processor,
                cursors: self.orders.cursors.as_ref(),
                settings: self.orders.poll_settings().await?,
            };
            poller.run(&inv).await
        };
        finish_run(&self.metrics, "order poll", run.await, |r| {
            r.failed_polls.clone()
        })
    }
}
