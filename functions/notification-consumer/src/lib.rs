//! The notification consumer (SQS: NotificationsQueue, Amazon's destination). Each message is an
//! `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` envelope (PascalCase or camelCase), handled as a
//! signal: deduplicated on its notification ID, then the shipment is read back from Amazon and
//! ingested. Failures that a retry can fix (throttling, a claim held by a concurrent invocation)
//! are reported as batch item failures and come back after the visibility timeout; a body that
//! can never be handled (not an envelope, no shipment ID) is logged and dropped (the poller is
//! the safety net for anything a notification would have told us). Other notification types are
//! acknowledged and ignored.

use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use flexbridge::orders::notifications::NotificationHandler;
use flexbridge::orders::Orders;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

pub struct NotificationConsumer {
    pub orders: Orders,
}

impl NotificationConsumer {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            orders: Orders::from_env(env).await?,
        })
    }
}

#[async_trait]
impl Function for NotificationConsumer {
    async fn invoke(&self, payload: Value, inv: Invocation) -> Result<Value> {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| Error::InvalidInput(format!("not an SQS event: {e}")))?;
        let processor = self.orders.processor(&inv);
        let handler = NotificationHandler {
            processor: &processor,
            idempotency: &self.orders.idempotency,
        };
        let mut failures = Vec::new();
        for msg in event.records {
            let id = msg.message_id.clone().unwrap_or_default();
            let body = msg.body.as_deref().unwrap_or_default();
            match handler.handle(body, &inv).await {
                Ok(outcome) => {
                    tracing::info!(message_id = %id, outcome = ?outcome, "notification handled")
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(message_id = %id, error = %e, "notification will be retried");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    failures.push(failure);
                }
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "notification dropped: it can never be handled")
                }
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        Ok(serde_json::to_value(response)?)
    }
}
