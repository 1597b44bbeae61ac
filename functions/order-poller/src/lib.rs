//! The order poller (EventBridge schedule, every minute by default): for each location with
//! order sync on, reads ACCEPTED, CREATED and CANCELLED shipments from Amazon since each
//! status's cursor (minus the overlap), stores them, moves the cursor, then confirms and hands
//! them over; finally sweeps shipments an earlier run left half-way. Storing and confirming
//! stay in one function: the same `OrderProcessor` serves the notification consumer, and the
//! sweep makes a separate confirm queue unnecessary. Each run also raises `ShipByAtRisk` for
//! shipments not labelled close to their ship-by time (`fulfilment::shipby`).
//! While notifications flow (one handled within `orders_notifications_quiet_minutes`) a run
//! makes one pass; otherwise it polls new work again every `orders_poll_pass_seconds`.
//!
//! A run where any location failed still polls the others, then ends as a failure
//! (`flexbridge::runtime::finish_run`: the `run_failed` alert, alarmed, and a function error).

use async_trait::async_trait;
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::metrics::Metrics;
use flexbridge::orders::poller::OrderPoller as Poll;
use flexbridge::orders::poller::PollReport;
use flexbridge::orders::Orders;
use flexbridge::runtime::{finish_run, Function, Invocation};
use flexbridge::{Env, Result};
use serde_json::Value;

pub struct OrderPoller {
    pub orders: Orders,
    pub fulfilment: FulfilmentService,
    pub metrics: Metrics,
}

/// One run: the poll's report and the ship-by alerts raised.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PollRun {
    #[serde(flatten)]
    report: PollReport,
    ship_by_at_risk: usize,
    /// Label jobs and cancellations promised but never sent, sent again.
    promises_resent: usize,
}

impl OrderPoller {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let orders = Orders::from_env(env).await?;
        Ok(Self {
            fulfilment: FulfilmentService::with_orders(env, orders.clone()).await?,
            orders,
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
            let report = poller.run(&inv).await?;
            let fulfiller = self.fulfilment.fulfiller(&inv);
            let ship_by_at_risk = fulfiller.ship_by_sweep(chrono::Utc::now(), &inv).await?;
            let promises_resent = fulfiller.promise_sweep(chrono::Utc::now(), &inv).await?;
            Ok(PollRun {
                report,
                ship_by_at_risk,
                promises_resent,
            })
        };
        let done = finish_run(&self.metrics, "order poll", run.await, |r| {
            r.report.failed_polls.clone()
        })?;
        // Its absence for OrderPollAlarmMinutes is alarmed (OrderPollNotSucceedingAlarm).
        self.metrics
            .count(flexbridge::metrics::names::ORDER_POLLS_SUCCEEDED, &[]);
        Ok(done)
    }
}
