//! The notification consumer (SQS: NotificationsQueue, Amazon's destination). Each message is an
//! `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` envelope (PascalCase or camelCase), handled as a
//! signal: deduplicated on its notification ID, then the shipment is read back from Amazon and
//! ingested. Failures that a retry can fix (throttling, a claim held by a concurrent invocation)
//! are reported as batch item failures and come back after the visibility timeout; a body that
//! can never be handled (not an envelope, no shipment ID) is moved to `NotificationsDLQ` at once
//! with the reason attached; a failure of the environment (credentials, configuration) is kept
//! for a retry and alarmed (`flexbridge::runtime::handle_sqs_batch`). Other notification types
//! are acknowledged and ignored, and so are notifications naming another SP-API application or
//! merchant (counted as `NotificationsNotOurs`; `flexbridge::orders::notifications`).
//! Each notification of ours handled moves the notification clock the order poller reads.

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use flexbridge::orders::notifications::NotificationHandler;
use flexbridge::orders::Orders;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

/// Notifications of one batch handled at once: each is mostly a wait on Amazon and DynamoDB,
/// and two for the same shipment settle through the store's conditional writes.
const CONCURRENCY: usize = 10;

pub struct NotificationConsumer {
    pub orders: Orders,
    pub consumer: SqsConsumer,
}

impl NotificationConsumer {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            orders: Orders::from_env(env).await?,
            consumer: SqsConsumer::from_env(env).await?,
        })
    }
}

#[async_trait]
impl Function for NotificationConsumer {
    async fn invoke(&self, payload: Value, inv: Invocation) -> Result<Value> {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| Error::InvalidInput(format!("not an SQS event: {e}")))?;
        let processor = self.orders.processor(&inv);
        // An unreadable secret fails the whole batch: kept, retried and alarmed.
        let ours = self.orders.ours().await?;
        let handler = NotificationHandler {
            processor: &processor,
            idempotency: &self.orders.idempotency,
            ours: &ours,
            clock: &self.orders.notification_clock,
        };
        let (handler, inv) = (&handler, &inv);
        let response = handle_sqs_batch(&self.consumer, event, "notification", CONCURRENCY, |msg| async move {
            let outcome = handler
                .handle(msg.body.as_deref().unwrap_or_default(), inv)
                .await?;
            tracing::info!(message_id = ?msg.message_id, outcome = ?outcome, "notification handled");
            Ok(())
        })
        .await;
        Ok(serde_json::to_value(response)?)
    }
}
