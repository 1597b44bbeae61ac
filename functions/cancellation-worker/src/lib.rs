//! The cancellation worker (SQS: CancellationsQueue). Each message is a
//! `fulfilment::CancelJob` (`{shipmentId, referenceId}`) queued by the warehouse API's cancel
//! route; `Fulfiller::run_cancel_job` sends the REJECT once and tells the warehouse.
//! Up to `MAX_INSTANCES` instances run at once (template.yaml, `ScalingConfig.MaximumConcurrency`),
//! their Shipments calls paced by buckets shared in CursorsTable (`FulfilmentService::from_env`).

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use flexbridge::fulfilment::{CancelJob, FulfilmentService};
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

/// `ScalingConfig.MaximumConcurrency` of the `Cancellations` event source in template.yaml.
pub const MAX_INSTANCES: u32 = 2;

pub struct CancellationWorker {
    pub service: FulfilmentService,
    pub consumer: SqsConsumer,
}

impl CancellationWorker {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            service: FulfilmentService::from_env(env).await?,
            consumer: SqsConsumer::from_env(env).await?,
        })
    }
}

#[async_trait]
impl Function for CancellationWorker {
    async fn invoke(&self, payload: Value, inv: Invocation) -> Result<Value> {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| Error::InvalidInput(format!("not an SQS event: {e}")))?;
        let fulfiller = self.service.fulfiller(&inv);
        let amazon = self.service.orders.amazon(&inv);
        let (fulfiller, amazon, inv) = (&fulfiller, &amazon, &inv);
        let response = handle_sqs_batch(&self.consumer, event, "cancellation", 2, |msg| async move {
            let job: CancelJob = serde_json::from_str(msg.body.as_deref().unwrap_or_default())
                .map_err(|e| Error::InvalidInput(format!("not a cancellation job: {e}")))?;
            let outcome = fulfiller.run_cancel_job(&job, amazon.as_ref(), inv).await?;
            tracing::info!(shipment_id = %job.shipment_id, outcome = ?outcome, "cancellation handled");
            Ok(())
        })
        .await;
        Ok(serde_json::to_value(response)?)
    }
}
