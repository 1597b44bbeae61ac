//! Template logical ID → the function crate's constructor. The runner invokes what this
//! returns, in process, with the `Env` the template gives that function.
//!
//! To add a function: one `r.insert(...)` below, under the same logical ID as in
//! template.yaml (and the crate as a dependency in infra/local/Cargo.toml).

use std::collections::BTreeMap;
use std::sync::Arc;

use flexbridge::runtime::Function;
use flexbridge::Env;
use futures::future::BoxFuture;

/// What a function crate hands the runner.
#[derive(Clone)]
pub enum Handler {
    /// Invoked with the JSON Lambda would deliver (SQS batch, scheduled event, ...).
    Function(Arc<dyn Function>),
    /// A Function URL function's axum router, served on a local port.
    Http(axum::Router),
}

impl Handler {
    pub fn function(f: impl Function) -> Handler {
        Handler::Function(Arc::new(f))
    }
}

pub type Constructor = fn(Env) -> BoxFuture<'static, flexbridge::Result<Handler>>;

pub fn constructors() -> BTreeMap<&'static str, Constructor> {
    let mut r: BTreeMap<&'static str, Constructor> = BTreeMap::new();

    // Foundation
    r.insert("HeartbeatFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                heartbeat::Heartbeat::from_env(&env).await?,
            ))
        })
    });

    // Warehouse interface
    r.insert("WarehouseApiFunction", |env| {
        Box::pin(async move { Ok(Handler::Http(warehouse_api::app(&env).await?)) })
    });
    r.insert("OutboundWebhookFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                outbound_webhook::OutboundWebhook::from_env(&env).await?,
            ))
        })
    });

    // Orders
    r.insert("OrderPollerFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                order_poller::OrderPoller::from_env(&env).await?,
            ))
        })
    });
    r.insert("NotificationConsumerFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                notification_consumer::NotificationConsumer::from_env(&env).await?,
            ))
        })
    });
    r.insert("ReturnsPollerFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                returns_poller::ReturnsPoller::from_env(&env).await?,
            ))
        })
    });

    // Fulfilment
    r.insert("LabelWorkerFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                label_worker::LabelWorker::from_env(&env).await?,
            ))
        })
    });
    r.insert("CancellationWorkerFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                cancellation_worker::CancellationWorker::from_env(&env).await?,
            ))
        })
    });

    // See it
    r.insert("HealthReportFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                health_report::HealthReport::from_env(&env).await?,
            ))
        })
    });

    // Uploads
    r.insert("UploadIngestFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                upload_ingest::UploadIngest::from_env(&env).await?,
            ))
        })
    });
    r.insert("PricePusherFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                price_pusher::PricePusher::from_env(&env).await?,
            ))
        })
    });

    // Inventory sync
    r.insert("InventoryPusherFunction", |env| {
        Box::pin(async move {
            Ok(Handler::function(
                inventory_pusher::InventoryPusher::from_env(&env).await?,
            ))
        })
    });

    r
}
