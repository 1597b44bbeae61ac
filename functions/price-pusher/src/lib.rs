//! Sends accepted price rows to Amazon. Consumes `PriceUpdatesQueue` (one message per row,
//! written by upload-ingest); the work is `flexbridge::upload::push::PriceSender`: in upload
//! order (an older file's row never overrides a newer one's), Amazon's answer recorded per SKU
//! and marketplace and counted for the upload's `reports/<key>.amazon.csv`.
//!
//! Only Amazon's verdict on the price is an answer; any other failure (credentials, 5xx,
//! throttling after retries) is returned to `handle_sqs_batch`, which retries or parks it.
//!
//! Amazon allows 5 requests per second (burst 5) for the seller. The event source runs at most
//! `MAX_INSTANCES` instances (template.yaml, `ScalingConfig.MaximumConcurrency`); each instance
//! paces itself to its share, `5 / MAX_INSTANCES` rps, so the seller's total holds. The pace is
//! passed to `PriceSender` in ONE place (`pace:` below): a limiter shared across instances
//! replaces it there.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use flexbridge::config::keys;
use flexbridge::idempotency::Idempotency;
use flexbridge::ratelimit::{Limit, TokenBucket};
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::SpApiClient;
use flexbridge::store::catalog::DynamoCatalogStore;
use flexbridge::upload::aws::{DynamoAnswers, S3Uploads};
use flexbridge::upload::push::PriceSender;
use flexbridge::{Env, Error, Result};
use serde_json::Value;

const REMEMBER: Duration = Duration::from_secs(30 * 24 * 3600);
/// Calls in flight per instance; the pace spaces them out.
const CONCURRENCY: usize = 5;
/// `ScalingConfig.MaximumConcurrency` of the `PriceUpdates` event source in template.yaml.
pub const MAX_INSTANCES: u32 = 2;
/// Amazon's `patchListingsItem` limit for the seller.
pub const AMAZON_LIMIT: Limit = Limit::new(5.0, 5);

/// This instance's share of Amazon's limit.
pub fn instance_share() -> Limit {
    Limit::new(
        AMAZON_LIMIT.rate / f64::from(MAX_INSTANCES),
        (AMAZON_LIMIT.burst / MAX_INSTANCES).max(1),
    )
}

pub struct PricePusher {
    sender: PriceSender,
    consumer: SqsConsumer,
}

impl PricePusher {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        let secrets = SecretCache::new(flexbridge::aws::secrets_client(&sdk));
        let client = SpApiClient::from_env(env, &secrets).await?;
        Ok(Self {
            sender: PriceSender {
                client,
                seller_id: tokio::sync::OnceCell::new(),
                catalog: Arc::new(DynamoCatalogStore::new(
                    dynamodb.clone(),
                    env.require(keys::CATALOG_TABLE)?,
                )),
                idempotency: Idempotency::dynamodb(
                    dynamodb.clone(),
                    env.require(keys::IDEMPOTENCY_TABLE)?,
                    REMEMBER,
                ),
                answers: Arc::new(DynamoAnswers::new(
                    dynamodb,
                    env.require(keys::CURSORS_TABLE)?,
                )),
                reports: Arc::new(S3Uploads::new(
                    flexbridge::aws::s3_client(&sdk),
                    env.require(keys::BUCKET_NAME)?,
                )),
                // The one place the rate limit is chosen (see the module comment).
                pace: Arc::new(TokenBucket::new(instance_share())),
            },
            consumer: SqsConsumer::from_env(env).await?,
        })
    }

    pub async fn handle(&self, event: SqsEvent, inv: &Invocation) -> SqsBatchResponse {
        handle_sqs_batch(
            &self.consumer,
            event,
            "price update",
            CONCURRENCY,
            |m| async move {
                let body = m.body.as_deref().unwrap_or_default();
                self.sender.handle_message(body, inv).await
            },
        )
        .await
    }
}

#[async_trait]
impl Function for PricePusher {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let batch: SqsEvent = serde_json::from_value(payload)?;
        let response = self.handle(batch, &invocation).await;
        serde_json::to_value(response).map_err(|e| Error::Internal(e.to_string()))
    }
}
