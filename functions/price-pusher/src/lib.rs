//! Sends accepted price rows to Amazon. Consumes `PriceUpdatesQueue` (one message per row,
//! written by upload-ingest), calls `patchListingsItem` with a `purchasable_offer` / `our_price`
//! patch through the shared SP-API client, whose token bucket keeps Amazon's 5 rps / burst 5,
//! and records Amazon's answer (ACCEPTED / INVALID and its issues) and the price sent per SKU
//! and marketplace in the catalog table.
//!
//! Idempotent per (upload version, SKU, marketplace) through `flexbridge::idempotency`: a
//! redelivered message is not sent twice. Outcomes: Amazon answered (even INVALID, or a 4xx
//! refusal) → recorded and acknowledged; throttling / 5xx / timeouts after the client's own
//! retries → batch item failure (SQS redelivers; `PriceUpdatesDLQ` after `maxReceiveCount`);
//! a body that is not a price update → logged and dropped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{SecondsFormat, Utc};
use flexbridge::config::keys;
use flexbridge::idempotency::Idempotency;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation};
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::models::ListingsPatch;
use flexbridge::spapi::SpApiClient;
use flexbridge::store::catalog::{CatalogStore, DynamoCatalogStore, PriceState};
use flexbridge::upload::ingest::PriceUpdate;
use flexbridge::{Env, Error, Result};
use serde_json::{json, Value};

const REMEMBER: Duration = Duration::from_secs(30 * 24 * 3600);
/// Calls in flight; the client's rate limiter paces them to Amazon's limit.
const CONCURRENCY: usize = 5;

pub struct PricePusher {
    client: SpApiClient,
    /// Read from the SP-API secret (or `SELLER_ID`) on the first price, not at init.
    seller_id: tokio::sync::OnceCell<String>,
    catalog: Arc<dyn CatalogStore>,
    idempotency: Idempotency,
}

impl PricePusher {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        let secrets = SecretCache::new(flexbridge::aws::secrets_client(&sdk));
        let client = SpApiClient::from_env(env, &secrets).await?;
        Ok(Self::new(
            client,
            Arc::new(DynamoCatalogStore::new(
                dynamodb.clone(),
                env.require(keys::CATALOG_TABLE)?,
            )),
            Idempotency::dynamodb(dynamodb, env.require(keys::IDEMPOTENCY_TABLE)?, REMEMBER),
        ))
    }

    pub fn new(
        client: SpApiClient,
        catalog: Arc<dyn CatalogStore>,
        idempotency: Idempotency,
    ) -> Self {
        Self {
            client,
            seller_id: tokio::sync::OnceCell::new(),
            catalog,
            idempotency,
        }
    }

    /// A deployment without a seller id is an environment failure: retried, never dropped.
    async fn seller_id(&self) -> Result<&str> {
        self.seller_id
            .get_or_try_init(|| async {
                self.client
                    .seller_id()
                    .await?
                    .ok_or_else(|| Error::Transient {
                        message: "no seller id: set seller_id in the SP-API secret or SELLER_ID"
                            .into(),
                        after: None,
                    })
            })
            .await
            .map(String::as_str)
    }

    pub async fn handle(&self, event: SqsEvent, inv: &Invocation) -> SqsBatchResponse {
        handle_sqs_batch(event, "price update", CONCURRENCY, |m| async move {
            self.handle_message(&m, inv).await
        })
        .await
    }

    async fn handle_message(&self, message: &SqsMessage, inv: &Invocation) -> Result<()> {
        let update: PriceUpdate = serde_json::from_str(message.body.as_deref().unwrap_or_default())
            .map_err(|e| Error::InvalidInput(format!("not a price update: {e}")))?;
        let seller_id = self.seller_id().await?;
        let key = update.idempotency_key();
        // A retaken claim may already have reached Amazon; sending the same price again is
        // harmless (a replace with the same value), so no reconciliation is needed.
        self.idempotency
            .run(&key, &update, inv, |_claim| {
                self.push(&update, seller_id, inv)
            })
            .await
            .map(|_: Value| ())
    }

    async fn push(&self, update: &PriceUpdate, seller_id: &str, inv: &Invocation) -> Result<Value> {
        let patch = ListingsPatch::price(
            &update.product_type,
            &update.marketplace_id,
            &update.currency,
            update.price as f64 / 100.0,
        );
        let client = self.client.with_deadline(inv);
        let (status, issues, submission_id) = match client
            .patch_listings_item(seller_id, &update.sku, &[&update.marketplace_id], &patch)
            .await
        {
            Ok(answer) => (
                answer.status.as_str().to_string(),
                serde_json::to_string(&answer.issues)?,
                Some(answer.submission_id).filter(|s| !s.is_empty()),
            ),
            Err(e) if e.is_retryable() => return Err(Error::SpApi(e)),
            // Amazon refused the request itself: record why, do not retry.
            Err(e) => (
                "REFUSED".to_string(),
                json!([{"code": e.code().unwrap_or_default(), "message": e.message}]).to_string(),
                None,
            ),
        };
        tracing::info!(
            sku = update.sku,
            marketplace = update.marketplace_id,
            status,
            "price sent"
        );
        self.catalog
            .put_price(&PriceState {
                sku: update.sku.clone(),
                marketplace_id: update.marketplace_id.clone(),
                price: update.price,
                currency: update.currency.clone(),
                status: status.clone(),
                issues,
                submission_id,
                upload: format!("{}#{}", update.upload, update.line),
                updated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            })
            .await?;
        Ok(json!({"sku": update.sku, "status": status}))
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
