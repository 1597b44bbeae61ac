//! Builds fulfilment from a function's `Env`: the orders capability (tables, bus, SP-API
//! client) plus the bucket and the queues the template gives that function. A function that
//! has no `BUCKET_NAME`, `LABELS_QUEUE_URL` or `CANCELLATIONS_QUEUE_URL` gets a stand-in that
//! fails with a configuration error if it is ever used.
//!
//! The workers (`from_env`) run as up to `MaximumConcurrency` Lambda instances at once, and
//! Amazon's Shipments limits (1 request/s, burst 2, per operation) hold for the seller, not per
//! instance: so every Shipments operation of their client waits on a token bucket shared
//! through `CURSORS_TABLE` (`store::ratelimit`), as the inventory pusher's batchInventory does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{keys, Env};
use crate::error::{Error, Result};
use crate::fulfilment::ports::{JobQueue, LabelFiles, S3LabelFiles, SqsJobQueue};
use crate::fulfilment::worker::Fulfiller;
use crate::orders::Orders;
use crate::runtime::Invocation;
use crate::spapi::{Api, SpApiClient};
use crate::store::ratelimit::DynamoBucketStore;

/// How long the links in `LabelReady` and `GET .../labels` are wanted to work (no longer than
/// the signing credentials last: `ports::link_life`).
pub const LINK_TTL: Duration = Duration::from_secs(3600);

/// Tokens reserved per DynamoDB round trip. One: at 1 request/s a round trip per call costs
/// nothing, and a token reserved but held back (while its instance is busy elsewhere) could be
/// spent later on top of another instance's burst, which Amazon would answer with 429.
pub const SHARED_BUCKET_CHUNK: u32 = 1;

/// Makes every Shipments call of `client` (and of its clones) wait on buckets shared through
/// `store` with every other instance.
pub fn share_shipments_limits(
    client: &SpApiClient,
    store: Arc<dyn crate::ratelimit::SharedBucketStore>,
) {
    for op in Api::Shipments.operations() {
        client.share_rate_limit(op, store.clone(), None, SHARED_BUCKET_CHUNK);
    }
}

#[derive(Clone)]
pub struct FulfilmentService {
    pub orders: Orders,
    pub files: Arc<dyn LabelFiles>,
    pub labels_queue: Arc<dyn JobQueue>,
    pub cancellations_queue: Arc<dyn JobQueue>,
    pub metrics: crate::metrics::Metrics,
}

impl FulfilmentService {
    /// The workers' service: [`Self::with_orders`] with the Shipments limits shared across
    /// instances (`CURSORS_TABLE`).
    pub async fn from_env(env: &Env) -> Result<Self> {
        let orders = Orders::from_env(env).await?;
        let sdk = crate::aws::config(env).await;
        share_shipments_limits(
            orders.client(),
            Arc::new(DynamoBucketStore::new(
                crate::aws::dynamodb_client(&sdk),
                env.require(keys::CURSORS_TABLE)?,
            )),
        );
        Self::with_orders(env, orders).await
    }

    pub async fn with_orders(env: &Env, orders: Orders) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let sqs = crate::aws::sqs_client(&sdk);
        let queue = |key: &'static str| -> Arc<dyn JobQueue> {
            match env.optional(key) {
                Some(url) => Arc::new(SqsJobQueue {
                    sqs: sqs.clone(),
                    url: url.to_string(),
                }),
                None => Arc::new(Unconfigured(key)),
            }
        };
        let files: Arc<dyn LabelFiles> = match env.optional(keys::BUCKET_NAME) {
            Some(bucket) => Arc::new(S3LabelFiles::new(&sdk, bucket)?),
            None => Arc::new(Unconfigured(keys::BUCKET_NAME)),
        };
        Ok(Self {
            labels_queue: queue(keys::LABELS_QUEUE_URL),
            cancellations_queue: queue(keys::CANCELLATIONS_QUEUE_URL),
            files,
            orders,
            metrics: crate::metrics::Metrics::from_env(env),
        })
    }

    /// Fulfilment bound to this invocation's deadline.
    pub fn fulfiller(&self, inv: &Invocation) -> Fulfiller {
        Fulfiller {
            shipments: self.orders.shipments.clone(),
            inventory: self.orders.inventory.clone(),
            amazon: Arc::new(self.orders.client().with_deadline(inv)),
            files: self.files.clone(),
            events: self.orders.events(inv),
            idempotency: self.orders.idempotency.clone(),
            settings: self.orders.settings.clone(),
            locations: self.orders.locations.clone(),
            processor: self.orders.processor(inv),
            labels_queue: self.labels_queue.clone(),
            cancellations_queue: self.cancellations_queue.clone(),
            link_ttl: LINK_TTL,
            metrics: self.metrics.clone(),
        }
    }
}

struct Unconfigured(&'static str);

impl Unconfigured {
    fn err(&self) -> Error {
        Error::Config(format!("{} is not set for this function", self.0))
    }
}

#[async_trait]
impl JobQueue for Unconfigured {
    async fn send(&self, _: &serde_json::Value) -> Result<()> {
        Err(self.err())
    }
}

#[async_trait]
impl LabelFiles for Unconfigured {
    async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<()> {
        Err(self.err())
    }
    async fn get(&self, _: &str) -> Result<Vec<u8>> {
        Err(self.err())
    }
    async fn link(&self, _: &str, _: Duration) -> Result<crate::fulfilment::ports::Link> {
        Err(self.err())
    }
    async fn download(&self, _: &str) -> Result<(Vec<u8>, String)> {
        Err(self.err())
    }
}
