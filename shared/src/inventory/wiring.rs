//! Builds the inventory sync's parts from a function's environment (the template's variables).

use std::sync::Arc;

use super::changes::StockChanges;
use super::pusher::Pusher;
use super::{MemoryNudge, PushNudge, SqsNudge};
use crate::config::keys;
use crate::error::Result;
use crate::events::EventBridgeSink;
use crate::secrets::SecretCache;
use crate::spapi::{Operation, SpApiClient};
use crate::store::catalog::DynamoCatalogStore;
use crate::store::inventory::DynamoInventoryStore;
use crate::store::locations::DynamoLocationStore;
use crate::store::ratelimit::DynamoBucketStore;
use crate::store::settings::DynamoSettingsStore;
use crate::Env;

/// batchInventory calls in flight per pusher (the shared rate limit paces them).
pub const PUSH_CONCURRENCY: usize = 8;
/// Tokens a pusher reserves from the shared bucket per DynamoDB write (0.1 s at 50 rps).
pub const SHARED_BUCKET_CHUNK: u32 = 5;

/// The nudge of `INVENTORY_PUSH_QUEUE_URL` (none when the function has no such queue).
pub fn nudge_from_env(env: &Env, sqs: aws_sdk_sqs::Client) -> Arc<dyn PushNudge> {
    match env.optional(keys::INVENTORY_PUSH_QUEUE_URL) {
        Some(url) => Arc::new(SqsNudge::new(sqs, url)),
        None => Arc::new(MemoryNudge::default()),
    }
}

impl StockChanges {
    /// `INVENTORY_TABLE`, `LOCATIONS_TABLE`, `INVENTORY_PUSH_QUEUE_URL`.
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let ddb = crate::aws::dynamodb_client(&sdk);
        let inventory = Arc::new(DynamoInventoryStore::new(
            ddb.clone(),
            env.require(keys::INVENTORY_TABLE)?,
        ));
        Ok(StockChanges::new(
            inventory.clone(),
            inventory,
            Arc::new(DynamoLocationStore::new(
                ddb,
                env.require(keys::LOCATIONS_TABLE)?,
            )),
            nudge_from_env(env, crate::aws::sqs_client(&sdk)),
        ))
    }
}

impl Pusher {
    /// [`Pusher::with_client`] over the SP-API client of `env`.
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let client = SpApiClient::from_env(env, &SecretCache::from_sdk_config(&sdk)).await?;
        Self::with_client(env, client, None).await
    }

    /// `INVENTORY_TABLE`, `LOCATIONS_TABLE`, `CATALOG_TABLE`, `SETTINGS_TABLE`, `CURSORS_TABLE`
    /// (the shared rate-limit bucket), `EVENT_BUS_NAME` and the SP-API client's variables.
    /// `limit` overrides batchInventory's limit (tests and the benchmark against a simulator
    /// set to other numbers).
    pub async fn with_client(
        env: &Env,
        client: SpApiClient,
        limit: Option<crate::ratelimit::Limit>,
    ) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let ddb = crate::aws::dynamodb_client(&sdk);
        client.share_rate_limit(
            Operation::BatchInventory,
            Arc::new(DynamoBucketStore::new(
                ddb.clone(),
                env.require(keys::CURSORS_TABLE)?,
            )),
            limit,
            SHARED_BUCKET_CHUNK,
        );
        Ok(Pusher {
            ledger: Arc::new(DynamoInventoryStore::new(
                ddb.clone(),
                env.require(keys::INVENTORY_TABLE)?,
            )),
            locations: Arc::new(DynamoLocationStore::new(
                ddb.clone(),
                env.require(keys::LOCATIONS_TABLE)?,
            )),
            catalog: Arc::new(DynamoCatalogStore::new(
                ddb.clone(),
                env.require(keys::CATALOG_TABLE)?,
            )),
            settings: Arc::new(DynamoSettingsStore::new(
                ddb,
                env.require(keys::SETTINGS_TABLE)?,
            )),
            amazon: Arc::new(client),
            events: Arc::new(EventBridgeSink::new(
                crate::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            )),
            concurrency: PUSH_CONCURRENCY,
            crash_after_send: None,
            metrics: crate::metrics::Metrics::from_env(env),
        })
    }
}
