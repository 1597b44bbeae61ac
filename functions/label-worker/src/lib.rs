//! The label worker (SQS: LabelsQueue). Each message is a `fulfilment::LabelJob`
//! (`{shipmentId, packVersion}`) queued by the warehouse API when a shipment is packed or a
//! reprint is asked for; `Fulfiller::run_label_job` resumes it at its first step not done.
//! Jobs of one batch run side by side: each Shipments operation has its own rate bucket, so
//! one shipment's createPackages and another's generateShipLabels do not wait for each other.
//! Up to `MAX_INSTANCES` instances run at once (template.yaml, `ScalingConfig.MaximumConcurrency`);
//! their buckets are shared in CursorsTable (`FulfilmentService::from_env`), so together they
//! stay within Amazon's per-operation limits.

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use flexbridge::fulfilment::{FulfilmentService, LabelJob};
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

/// Label jobs worked on at once within one invocation.
pub const CONCURRENCY: usize = 10;
/// `ScalingConfig.MaximumConcurrency` of the `Labels` event source in template.yaml.
pub const MAX_INSTANCES: u32 = 2;

pub struct LabelWorker {
    pub service: FulfilmentService,
    pub consumer: SqsConsumer,
}

impl LabelWorker {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            service: FulfilmentService::from_env(env).await?,
            consumer: SqsConsumer::from_env(env).await?,
        })
    }
}

#[async_trait]
impl Function for LabelWorker {
    async fn invoke(&self, payload: Value, inv: Invocation) -> Result<Value> {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| Error::InvalidInput(format!("not an SQS event: {e}")))?;
        let fulfiller = self.service.fulfiller(&inv);
        let (fulfiller, inv) = (&fulfiller, &inv);
        let response = handle_sqs_batch(&self.consumer, event, "label job", CONCURRENCY, |msg| async move {
            let job: LabelJob = serde_json::from_str(msg.body.as_deref().unwrap_or_default())
                .map_err(|e| Error::InvalidInput(format!("not a label job: {e}")))?;
            let outcome = fulfiller.run_label_job(&job, inv).await?;
            tracing::info!(shipment_id = %job.shipment_id, outcome = ?outcome, "label job handled");
            Ok(())
        })
        .await;
        Ok(serde_json::to_value(response)?)
    }
}
