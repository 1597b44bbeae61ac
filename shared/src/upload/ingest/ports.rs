//! What a run talks to: the ports, and the run's configuration.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Checkpoint;
use crate::error::Result;
use crate::events::EventSink;
use crate::inventory::changes::StockChanges;
use crate::prices::answers::AnswerStore;
use crate::prices::PriceUpdate;
use crate::store::catalog::CatalogStore;
use crate::store::settings::SettingsStore;
pub use crate::upload::object::{ObjectSource, ReportBody, ReportSink, UploadRef};

#[async_trait]
pub trait PriceQueue: Send + Sync {
    async fn send(&self, updates: &[PriceUpdate]) -> Result<()>;
}

#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn get(&self, upload: &UploadRef) -> Result<Option<Checkpoint>>;
    async fn put(&self, upload: &UploadRef, checkpoint: &Checkpoint) -> Result<()>;
}

/// Everything a run talks to.
#[derive(Clone)]
pub struct Ports {
    pub source: Arc<dyn ObjectSource>,
    pub catalog: Arc<dyn CatalogStore>,
    pub prices: Arc<dyn PriceQueue>,
    pub reports: Arc<dyn ReportSink>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub events: Arc<dyn EventSink>,
    /// Amazon's answers to price rows (the ingest side sets how many to expect).
    pub answers: Arc<dyn AnswerStore>,
    /// The inventory sync: inventory rows are stored through it, and catalog changes that
    /// alter what is advertised mark their SKUs pending. `None`: inventory files are an
    /// environment error, and catalog changes reach Amazon with the next sweep only.
    pub stock: Option<Arc<StockChanges>>,
    /// `UploadRowsAccepted` / `UploadRowsRejected` (dimension `Kind`), once per upload.
    pub metrics: crate::metrics::Metrics,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Marketplace of price rows that name none (the location's, `MARKETPLACE_ID`, required).
    pub default_marketplace: String,
    /// Rows applied per window (one checkpoint per window).
    pub window_rows: usize,
    /// Stop this long before the deadline, leaving time to save and re-enqueue.
    pub stop_margin: Duration,
}

impl IngestConfig {
    /// The defaults, for price rows without a marketplace going to `default_marketplace`.
    pub fn new(default_marketplace: impl Into<String>) -> Self {
        Self {
            default_marketplace: default_marketplace.into(),
            window_rows: 500,
            stop_margin: Duration::from_secs(20),
        }
    }
}
