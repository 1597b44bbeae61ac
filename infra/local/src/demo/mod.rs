//! The main job's scenarios. Each capability adds a module with a [`Scenario`] and one line
//! in [`scenarios`]; the main job runs `seed` of every scenario, then the runner, then polls
//! `progress` until every scenario says it is done (or the time is up), and prints each
//! scenario's `summary`.

pub mod foundation;
pub mod fulfilment;
pub mod inventory;
pub mod orders;
pub mod uploads;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

use crate::runner::Runner;
use crate::seed::Seller;
use crate::stack::Stack;

/// What a scenario can use.
pub struct Ctx {
    pub stack: Stack,
    pub seller: Seller,
    pub sdk: aws_config::SdkConfig,
    /// The simulator's base URL (Amazon paths at the root, admin under `/_sim/`).
    pub spapi_url: String,
    /// The simulator's admin API (`SPAPI_SIM_URL`, or the in-process simulator).
    pub sim: spapi_sim::AdminClient,
    /// The local webhook receiver standing in for the warehouse (`WEBHOOK_URL`).
    pub webhook: Arc<crate::demo::foundation::WebhookReceiver>,
}

/// How far a scenario has come.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Short line shown while running, e.g. `orders 7/10 confirmed`.
    pub line: String,
    pub done: bool,
}

/// One line of the final summary.
#[derive(Debug, Clone)]
pub struct SummaryLine {
    pub label: String,
    pub value: String,
}

impl SummaryLine {
    pub fn new(label: impl Into<String>, value: impl ToString) -> Self {
        Self {
            label: label.into(),
            value: value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub lines: Vec<SummaryLine>,
    /// Problems the seller should look at, each with where to read more.
    pub errors: Vec<String>,
}

#[async_trait]
pub trait Scenario: Send + Sync {
    fn name(&self) -> &'static str;
    /// Creates what the scenario needs before the runner starts (orders, uploads, stock...).
    async fn seed(&self, ctx: &Ctx) -> Result<()>;
    /// Called while the runner runs (may act, e.g. send warehouse requests).
    async fn progress(&self, ctx: &Ctx, runner: &Runner) -> Result<Progress>;
    async fn summary(&self, ctx: &Ctx, runner: &Runner) -> Result<Summary>;
}

/// Every scenario, in the order they run.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(foundation::Foundation::default()),
        Box::new(orders::Orders::default()),
        Box::new(fulfilment::Fulfilment::default()),
        Box::new(uploads::Uploads::default()),
        Box::new(inventory::Inventory::default()),
        // Warehouse interface, orders, uploads: add yours here.
    ]
}

/// Queue depths of the stack's DLQs (logical ID → visible messages), for summaries.
pub async fn dead_letters(ctx: &Ctx) -> Result<BTreeMap<String, i64>> {
    let sqs = flexbridge::aws::sqs_client(&ctx.sdk);
    let mut out = BTreeMap::new();
    for (id, q) in &ctx.stack.queues {
        if !ctx
            .stack
            .queues
            .values()
            .any(|other| other.dead_letter_queue.as_deref() == Some(id))
        {
            continue;
        }
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        let n = attrs
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.insert(id.clone(), n);
    }
    Ok(out)
}
