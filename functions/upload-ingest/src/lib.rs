//! Applies the seller's catalog (`catalog/delta/…`, `catalog/full/…`), price (`prices/…`) and
//! inventory (`inventory/delta/…`, `inventory/full/<hub>/…`) CSV uploads. Consumes `UploadsQueue`, which S3 fills with `ObjectCreated` notifications.
//!
//! Each message goes to `flexbridge::upload::process::UploadProcessor` (which uploads it names,
//! the once-per-upload claim, resume messages for files that need more than one run); the work
//! is `flexbridge::upload::ingest::run`. Outcomes per message: done, already done or paused →
//! acknowledged; an error → returned to `flexbridge::runtime::handle_sqs_batch`, which decides
//! between a retry and the DLQ. Inventory rows and catalog changes mark SKUs pending for the
//! inventory pusher (`flexbridge::inventory::changes::StockChanges`) and nudge it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use flexbridge::config::keys;
use flexbridge::events::EventBridgeSink;
use flexbridge::idempotency::Idempotency;
use flexbridge::inventory::changes::StockChanges;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::store::catalog::DynamoCatalogStore;
use flexbridge::store::settings::DynamoSettingsStore;
use flexbridge::upload::aws::{
    DynamoAnswers, DynamoCheckpoints, S3Uploads, SqsPriceQueue, SqsRequeue,
};
use flexbridge::upload::ingest::{IngestConfig, Ports};
use flexbridge::upload::process::{UploadProcessor, REMEMBER};
use flexbridge::{Env, Error, Result};
use serde_json::Value;

pub struct UploadIngest {
    processor: UploadProcessor,
    consumer: SqsConsumer,
}

impl UploadIngest {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        let sqs = flexbridge::aws::sqs_client(&sdk);
        let s3 = S3Uploads::new(
            flexbridge::aws::s3_client(&sdk),
            env.require(keys::BUCKET_NAME)?,
        );
        let cursors = env.require(keys::CURSORS_TABLE)?;
        let ports = Ports {
            source: Arc::new(s3.clone()),
            catalog: Arc::new(DynamoCatalogStore::new(
                dynamodb.clone(),
                env.require(keys::CATALOG_TABLE)?,
            )),
            prices: Arc::new(SqsPriceQueue::new(
                sqs.clone(),
                env.require(keys::PRICE_UPDATES_QUEUE_URL)?,
            )),
            reports: Arc::new(s3.clone()),
            checkpoints: Arc::new(DynamoCheckpoints::new(dynamodb.clone(), cursors)),
            settings: Arc::new(DynamoSettingsStore::new(
                dynamodb.clone(),
                env.require(keys::SETTINGS_TABLE)?,
            )),
            events: Arc::new(EventBridgeSink::new(
                flexbridge::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            )),
            answers: Arc::new(DynamoAnswers::new(dynamodb.clone(), cursors)),
            stock: Some(Arc::new(StockChanges::from_env(env).await?)),
            metrics: flexbridge::metrics::Metrics::from_env(env),
        };
        Ok(Self {
            processor: UploadProcessor {
                ports,
                // No fallback: a price row without a marketplace must not go to a guessed one.
                config: IngestConfig::new(env.require(keys::MARKETPLACE_ID)?),
                versions: Arc::new(s3),
                requeue: Arc::new(SqsRequeue::new(sqs, env.require(keys::UPLOADS_QUEUE_URL)?)),
                idempotency: Idempotency::dynamodb(
                    dynamodb,
                    env.require(keys::IDEMPOTENCY_TABLE)?,
                    REMEMBER,
                ),
            },
            consumer: SqsConsumer::from_env(env).await?,
        })
    }

    /// Replaces the ingest settings (tests, the benchmark).
    pub fn with_config(mut self, config: IngestConfig) -> Self {
        self.processor.config = config;
        self
    }

    pub async fn handle(&self, event: SqsEvent, inv: &Invocation) -> SqsBatchResponse {
        // One message at a time: an upload already uses the bounded DynamoDB concurrency.
        handle_sqs_batch(&self.consumer, event, "upload message", 1, |m| async move {
            let body = m.body.as_deref().unwrap_or_default();
            self.processor.handle_message(body, inv).await
        })
        .await
    }
}

#[async_trait]
impl Function for UploadIngest {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let batch: SqsEvent = serde_json::from_value(payload)?;
        let response = self.handle(batch, &invocation).await;
        serde_json::to_value(response).map_err(|e| Error::Internal(e.to_string()))
    }
}
