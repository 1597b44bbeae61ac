//! Applying one upload (one object version) — plain Rust over small ports, so a unit test
//! drives it with the in-memory twins and Lambda with S3/DynamoDB/SQS.
//!
//! Each run streams the file (a blocking parser thread hands validated rows over a bounded
//! channel, so memory stays flat):
//! 1. **validate** (first run only): every row checked, price rows also against the guardrails
//!    (catalog reads only). Writes the errors report. A whole-file problem stops here with
//!    nothing written. In full mode, the mass-disable guard is decided here too.
//! 2. **apply**: the file is parsed again from the top (cheap, and it rebuilds the duplicate
//!    detection exactly) and rows after the checkpoint are applied in windows: catalog rows
//!    upserted (unchanged rows write nothing), price rows sent to the price queue. After each
//!    window the checkpoint (line reached, counts) is saved; near the deadline the run stops
//!    and returns [`RunResult::Paused`] so the caller re-enqueues the upload.
//! 3. **disable** (catalog, full mode): SKUs the file no longer lists are switched off, page by
//!    page of the catalog scan, the scan position saved in the checkpoint after each page; near
//!    the deadline it pauses like the apply pass (a resumed run re-reads the file to rebuild the
//!    set of listed SKUs, applying nothing, and continues from the saved page).
//! 4. **report**: summary JSON, `UploadProcessed` event, change log entry; for prices, the
//!    number of queued rows, so the price pusher can write Amazon's answers ([`super::answers`]).
//!    The finished summary is kept in the checkpoint: a run of a finished upload returns it and
//!    repeats nothing.
//!
//! Inventory files (`inventory/…`) go through the same passes: rows are on-hand figures stored
//! through [`StockChanges::report_on_hand`] (an older figure never overwrites a newer one; the
//! figure's time is its `as_of`, else the file's S3 event time), which marks the affected
//! (location, SKU) pending for the inventory pusher. A row whose hub is not mapped to a location
//! with inventory sync on is a row error. `inventory/full/<hub>/…` also sets every SKU of that
//! hub the file does not list to zero, behind a mass-zero guard like the catalog's. Catalog rows
//! that change `enabled`, `safety_stock` or `max_quantity` mark their SKUs pending too.
//!
//! A catalog row never changes what the file does not state (a missing column or an empty
//! cell keeps the stored value; see [`CatalogUpdate`]). Blocking work (parsing, the errors
//! CSV file) runs on blocking threads, never on the async executor.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::answers::{self, AnswerStore};
use super::order::UploadOrder;
use super::reader::{FileRejection, Outcome, UploadReader};
use super::report::{ErrorCsv, RowError, UploadSummary};
use super::skuset::SkuSet;
use super::validate::Cents;
use super::{Kind, Mode, UploadKey};
use crate::error::{Error, Result};
use crate::events::{EventName, EventSink, OutboundEvent, UploadProcessed};
use crate::inventory::changes::StockChanges;
use crate::retry::Deadline;
use crate::store::catalog::{self, CatalogItem, CatalogStore, CatalogUpdate};
use crate::store::inventory::OnHand;
use crate::store::settings::{self, SettingsStore};

/// Setting: the largest share of active SKUs a full catalog upload may disable (0.0–1.0).
pub const SETTING_MAX_DISABLE_SHARE: &str = "catalog_max_disable_share";
/// Setting: `true` lets every full catalog upload disable any number of SKUs.
pub const SETTING_ALLOW_MASS_DISABLE: &str = "catalog_allow_mass_disable";
pub const DEFAULT_MAX_DISABLE_SHARE: f64 = 0.2;
/// Setting: the largest share of a hub's SKUs in stock a full inventory upload may set to zero.
pub const SETTING_MAX_ZERO_SHARE: &str = "inventory_max_zero_share";
/// Setting: `true` lets every full inventory upload zero any number of SKUs.
pub const SETTING_ALLOW_MASS_ZERO: &str = "inventory_allow_mass_zero";
pub const DEFAULT_MAX_ZERO_SHARE: f64 = 0.2;
/// A price further than this from the last price we sent needs `force`.
pub const MAX_PRICE_CHANGE: f64 = 0.5;

/// One accepted price row on its way to Amazon (the price queue's message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceUpdate {
    /// `key@version` of the price file.
    pub upload: String,
    /// The price file's key and version (where its answers are counted).
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub version_id: String,
    /// The price file's [`UploadOrder`]: sent and stored only if newer than the last price
    /// applied for the SKU and marketplace. (A message without one is older than any.)
    #[serde(default)]
    pub order: String,
    pub line: u64,
    pub sku: String,
    pub asin: String,
    pub product_type: String,
    pub marketplace_id: String,
    pub currency: String,
    /// Hundredths of the currency unit.
    pub price: i64,
}

impl PriceUpdate {
    /// The business key that makes a redelivered message harmless.
    pub fn idempotency_key(&self) -> String {
        crate::idempotency::ActionKey::Price {
            upload: &self.upload,
            sku: &self.sku,
            marketplace_id: &self.marketplace_id,
        }
        .to_string()
    }

    /// The price file this row came from.
    pub fn upload_ref(&self) -> UploadRef {
        UploadRef::new(self.key.clone(), self.version_id.clone())
    }
}

/// The object one upload is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRef {
    pub key: String,
    /// S3's version ID, or `etag:<etag>` in a bucket without versioning.
    pub version_id: String,
    /// Where the upload stands among uploads (from its S3 notification); price uploads need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UploadOrder>,
}

impl UploadRef {
    pub fn new(key: impl Into<String>, version_id: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version_id: version_id.into(),
            order: None,
        }
    }

    pub fn with_order(mut self, order: UploadOrder) -> Self {
        self.order = Some(order);
        self
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.key, self.version_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Ports

#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The object's bytes as a blocking reader; it is read on a blocking thread.
    async fn open(&self, upload: &UploadRef) -> Result<Box<dyn Read + Send>>;
}

/// A report body: small ones in memory, the errors CSV from a temporary file.
pub enum ReportBody {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[async_trait]
pub trait ReportSink: Send + Sync {
    async fn put(&self, key: &str, body: ReportBody, content_type: &str) -> Result<()>;
}

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

// ---------------------------------------------------------------------------------------------
// Checkpoint

/// Pass 1's verdict, kept so later runs do not repeat it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validated {
    pub rows_read: u64,
    /// Rows refused (of `rejected`) by the price guardrails.
    pub guard_refused: u64,
    pub rejected: u64,
    pub extra_columns: Vec<String>,
    pub delimiter: String,
    pub errors_report: Option<String>,
    /// Set when the whole file was rejected or refused: (`rejected`|`refused`, reason).
    pub stopped: Option<(String, String)>,
}

/// Where an upload stands across runs (CursorsTable, see [`super::aws`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub started_at: String,
    pub runs: u32,
    pub validated: Option<Validated>,
    /// Every row up to this line has been applied.
    pub applied_through_line: u64,
    /// Byte offset where the next row starts (informational: the apply pass re-reads the
    /// top of the file anyway to rebuild duplicate detection).
    pub applied_through_byte: u64,
    pub applied: bool,
    pub written: u64,
    pub unchanged: u64,
    pub queued: u64,
    /// Price rows the guardrails refused when applied; more than pass 1 refused means the
    /// catalog changed in between.
    pub apply_refused: u64,
    pub disabled: u64,
    /// Inventory: figures skipped because a newer one is stored.
    #[serde(default)]
    pub older: u64,
    /// Inventory, full mode: SKUs of the hub set to zero because the file does not list them.
    #[serde(default)]
    pub zeroed: u64,
    /// Full mode: every row is applied and the disable pass is running.
    #[serde(default)]
    pub rows_applied: bool,
    /// Full mode: where the disable pass's catalog scan continues.
    #[serde(default)]
    pub disable_page: Option<String>,
    /// Set once the upload is finished: a later run returns it and repeats nothing.
    #[serde(default)]
    pub finished: Option<Box<UploadSummary>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    Done(Box<UploadSummary>),
    /// Stopped before the deadline; run again (re-enqueue) to continue.
    Paused {
        applied_through_line: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// The parser thread

/// A price row, owned, as it crosses the channel.
#[derive(Debug, Clone)]
struct PriceLine {
    sku: String,
    price: Cents,
    currency: String,
    marketplace_id: Option<String>,
    force: bool,
}

/// An inventory row, owned.
#[derive(Debug, Clone)]
struct StockLine {
    sku: String,
    hub: String,
    on_hand: u32,
    as_of: Option<DateTime<Utc>>,
}

#[derive(Debug)]
enum RowData {
    Catalog(CatalogUpdate),
    Price(PriceLine),
    Stock(StockLine),
}

#[derive(Debug)]
enum Event {
    Row {
        line: u64,
        byte: u64,
        data: RowData,
    },
    Rejected {
        line: u64,
        byte: u64,
        errors: Vec<RowError>,
    },
}

impl Event {
    fn line(&self) -> u64 {
        match self {
            Event::Row { line, .. } | Event::Rejected { line, .. } => *line,
        }
    }
    fn byte(&self) -> u64 {
        match self {
            Event::Row { byte, .. } | Event::Rejected { byte, .. } => *byte,
        }
    }
}

struct ParseEnd {
    rows_read: u64,
    extra_columns: Vec<String>,
    delimiter: String,
    skus: SkuSet,
}

const CHANNEL_BATCH: usize = 256;

/// Parses on a blocking thread; events go out in batches. Returns early (Ok) if the receiver
/// is gone (the consumer stopped for the deadline).
fn spawn_parser(
    kind: Kind,
    input: Box<dyn Read + Send>,
    source: String,
    now: String,
) -> (
    mpsc::Receiver<Vec<Event>>,
    tokio::task::JoinHandle<std::result::Result<ParseEnd, FileRejection>>,
) {
    let (tx, rx) = mpsc::channel::<Vec<Event>>(8);
    let handle = tokio::task::spawn_blocking(move || {
        let mut reader = UploadReader::open(kind, input)?;
        let mut batch = Vec::with_capacity(CHANNEL_BATCH);
        while let Some(p) = reader.next_row()? {
            let (line, byte) = (p.line, p.byte);
            batch.push(match p.outcome {
                Outcome::Catalog(c) => Event::Row {
                    line,
                    byte,
                    data: RowData::Catalog(CatalogUpdate {
                        sku: c.sku.to_string(),
                        asin: c.asin.to_string(),
                        title: c.title.map(str::to_string),
                        product_type: c.product_type.map(str::to_string),
                        enabled: c.enabled,
                        safety_stock: c.safety_stock,
                        max_quantity: c.max_quantity,
                        updated_at: now.clone(),
                        source: source.clone(),
                    }),
                },
                Outcome::Price(p) => Event::Row {
                    line,
                    byte,
                    data: RowData::Price(PriceLine {
                        sku: p.sku.to_string(),
                        price: p.price,
                        currency: p.currency_str().to_string(),
                        marketplace_id: p.marketplace_id.map(str::to_string),
                        force: p.force,
                    }),
                },
                Outcome::Inventory(r) => Event::Row {
                    line,
                    byte,
                    data: RowData::Stock(StockLine {
                        sku: r.sku.to_string(),
                        hub: r.hub.to_string(),
                        on_hand: r.on_hand,
                        as_of: r.as_of,
                    }),
                },
                Outcome::Rejected(errors) => Event::Rejected {
                    line,
                    byte,
                    errors: errors.to_vec(),
                },
            });
            if batch.len() == CHANNEL_BATCH
                && tx
                    .blocking_send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(CHANNEL_BATCH),
                    ))
                    .is_err()
            {
                break;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(ParseEnd {
            rows_read: reader.rows_read(),
            extra_columns: reader.extra_columns().to_vec(),
            delimiter: reader.dialect().delimiter_name().to_string(),
            skus: reader.into_skus(),
        })
    });
    (rx, handle)
}

async fn join_parser(
    handle: tokio::task::JoinHandle<std::result::Result<ParseEnd, FileRejection>>,
) -> Result<std::result::Result<ParseEnd, FileRejection>> {
    handle
        .await
        .map_err(|e| Error::Internal(format!("the CSV parser thread failed: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Guardrails

/// Checks price rows against the catalog and the last price sent. Returns, per row, either
/// the update to send or the reason it is refused.
async fn guard_prices(
    catalog: &dyn CatalogStore,
    rows: &[(u64, &PriceLine)],
    upload: &UploadRef,
    default_marketplace: &str,
) -> Result<Vec<std::result::Result<PriceUpdate, RowError>>> {
    let skus: Vec<String> = rows.iter().map(|(_, r)| r.sku.clone()).collect();
    let items: HashMap<String, CatalogItem> = catalog
        .get_items(&skus)
        .await?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let market = |r: &PriceLine| {
        r.marketplace_id
            .clone()
            .unwrap_or_else(|| default_marketplace.to_string())
    };
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|(_, r)| (r.sku.clone(), market(r)))
        .collect();
    let last: HashMap<(String, String), catalog::PriceState> = catalog
        .get_prices(&keys)
        .await?
        .into_iter()
        .map(|p| ((p.sku.clone(), p.marketplace_id.clone()), p))
        .collect();
    Ok(rows
        .iter()
        .map(|&(line, r)| {
            let refuse = |column: &str, value: String, reason: String| RowError {
                line,
                column: column.into(),
                value,
                reason,
            };
            let item = items.get(&r.sku).ok_or_else(|| {
                refuse(
                    "sku",
                    r.sku.clone(),
                    "SKU is not in the catalog; upload it under catalog/ first".into(),
                )
            })?;
            if !item.enabled {
                return Err(refuse("sku", r.sku.clone(), "SKU is disabled in the catalog".into()));
            }
            let product_type = item.product_type.clone().ok_or_else(|| {
                refuse(
                    "sku",
                    r.sku.clone(),
                    "the catalog has no product_type for this SKU; Amazon needs it to change a price".into(),
                )
            })?;
            let marketplace_id = market(r);
            if let Some(prev) = last.get(&(r.sku.clone(), marketplace_id.clone())) {
                let change = (r.price.0 - prev.price).abs() as f64 / prev.price.max(1) as f64;
                if !r.force && prev.currency == r.currency && change > MAX_PRICE_CHANGE {
                    return Err(refuse(
                        "price",
                        r.price.to_string(),
                        format!(
                            "price {} is more than {:.0}% away from the last price we sent ({}); set force to true to send it anyway",
                            r.price,
                            MAX_PRICE_CHANGE * 100.0,
                            Cents(prev.price)
                        ),
                    ));
                }
            }
            Ok(PriceUpdate {
                upload: upload.label(),
                key: upload.key.clone(),
                version_id: upload.version_id.clone(),
                order: upload.order.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                line,
                sku: r.sku.clone(),
                asin: item.asin.clone(),
                product_type,
                marketplace_id,
                currency: r.currency.clone(),
                price: r.price.0,
            })
        })
        .collect())
}

/// Checks inventory rows: the hub must be the folder's (full mode) and mapped to a location
/// with inventory sync on. Returns, per row, the figure to store or the reason it is refused.
async fn guard_stock(
    stock: &StockChanges,
    key: &UploadKey,
    rows: &[(u64, &StockLine)],
    file_time: DateTime<Utc>,
) -> Result<Vec<std::result::Result<OnHand, RowError>>> {
    let mut mapped: HashMap<String, bool> = HashMap::new();
    for (_, r) in rows {
        if !mapped.contains_key(&r.hub) {
            let synced = !stock.synced_locations(&r.hub).await?.is_empty();
            mapped.insert(r.hub.clone(), synced);
        }
    }
    Ok(rows
        .iter()
        .map(|&(line, r)| {
            let refuse = |reason: String| RowError {
                line,
                column: "hub".into(),
                value: r.hub.clone(),
                reason,
            };
            if let Some(hub) = key.hub.as_deref().filter(|h| *h != r.hub) {
                return Err(refuse(format!(
                    "this file is the whole stock of hub {hub} (its folder inventory/full/{hub}/); a row for another hub does not belong in it"
                )));
            }
            if !mapped[&r.hub] {
                return Err(refuse(format!(
                    "hub {} is not mapped to an Amazon location with inventory sync on",
                    r.hub
                )));
            }
            Ok(OnHand {
                hub: r.hub.clone(),
                sku: r.sku.clone(),
                on_hand: r.on_hand,
                reported_at: r.as_of.unwrap_or(file_time),
            })
        })
        .collect())
}

/// The time of an inventory file's figures without `as_of`: its S3 event time (the order),
/// else when processing started (a stable value, kept in the checkpoint).
fn file_time(upload: &UploadRef, cp: &Checkpoint) -> DateTime<Utc> {
    upload
        .order
        .as_ref()
        .and_then(|o| o.as_str().split('|').next())
        .or(Some(cp.started_at.as_str()))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

fn stock_of(ports: &Ports) -> Result<&StockChanges> {
    ports.stock.as_deref().ok_or_else(|| {
        Error::Config(
            "inventory uploads need the inventory sync (INVENTORY_TABLE, LOCATIONS_TABLE); this function has none".into(),
        )
    })
}

fn stock_rows(window: &[Event]) -> Vec<(u64, &StockLine)> {
    window
        .iter()
        .filter_map(|e| match e {
            Event::Row {
                line,
                data: RowData::Stock(r),
                ..
            } => Some((*line, r)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The run

fn now_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "flexbridge-upload-{}.errors.csv",
        uuid::Uuid::new_v4()
    ))
}

/// Removes the temporary file however the function returns (on a blocking thread).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.0);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || std::fs::remove_file(path));
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The errors report, written to a temporary file by a blocking thread that receives the
/// rows' errors over a channel.
struct ErrorsWriter {
    tx: mpsc::Sender<Vec<RowError>>,
    handle: tokio::task::JoinHandle<std::io::Result<u64>>,
}

impl ErrorsWriter {
    fn start(path: PathBuf) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<RowError>>(8);
        let handle = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&path)?;
            let mut errors = ErrorCsv::new(std::io::BufWriter::new(file))?;
            while let Some(batch) = rx.blocking_recv() {
                for e in &batch {
                    errors.write(e)?;
                }
            }
            let rows = errors.rows();
            std::io::Write::flush(&mut errors.finish()?)?;
            Ok(rows)
        });
        Self { tx, handle }
    }

    async fn write(&self, batch: Vec<RowError>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.tx.send(batch).await.is_err() {
            // The writer stopped on an error; `finish` reports it.
            return Err(Error::Internal("errors report: the writer stopped".into()));
        }
        Ok(())
    }

    /// Rows written.
    async fn finish(self) -> Result<u64> {
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| Error::Internal(format!("errors report thread failed: {e}")))?
            .map_err(|e| Error::Internal(format!("errors report: {e}")))
    }
}

/// Processes (or continues) one upload until it is done or the deadline comes near.
pub async fn run(
    ports: &Ports,
    config: &IngestConfig,
    upload: &UploadRef,
    deadline: Deadline,
) -> Result<RunResult> {
    let key = UploadKey::classify(&upload.key).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{} is not a catalog, price or inventory upload",
            upload.key
        ))
    })?;
    if key.kind == Kind::Inventory {
        stock_of(ports)?;
    }
    if key.kind == Kind::Prices && upload.order.is_none() {
        return Err(Error::InvalidInput(format!(
            "{}: a price upload needs its order (the S3 notification's eventTime)",
            upload.label()
        )));
    }
    let started = Utc::now();
    let mut cp = ports
        .checkpoints
        .get(upload)
        .await?
        .unwrap_or_else(|| Checkpoint {
            started_at: now_string(started),
            ..Default::default()
        });
    if let Some(summary) = cp.finished.take() {
        tracing::info!(
            upload = upload.label(),
            "already finished; nothing is repeated"
        );
        return Ok(RunResult::Done(summary));
    }
    cp.runs += 1;

    if cp.validated.is_none() {
        let validated = validate_pass(ports, config, &key, upload, &cp).await?;
        cp.validated = Some(validated);
        ports.checkpoints.put(upload, &cp).await?;
    }
    let validated = cp.validated.clone().unwrap_or_default();
    if validated.stopped.is_none() && !cp.applied {
        if let Some(paused) = apply_pass(ports, config, &key, upload, &mut cp, deadline).await? {
            return Ok(paused);
        }
    }
    let summary = Box::new(finish(ports, &key, upload, &cp, &validated).await?);
    cp.finished = Some(summary.clone());
    // The work is done: failing to remember it must not make a retry repeat it (a repeat
    // would find no mark and finish again, which is what the claim's record prevents).
    if let Err(e) = ports.checkpoints.put(upload, &cp).await {
        tracing::warn!(upload = upload.label(), error = %e, "could not mark the upload finished");
    }
    Ok(RunResult::Done(summary))
}

async fn validate_pass(
    ports: &Ports,
    config: &IngestConfig,
    key: &UploadKey,
    upload: &UploadRef,
    cp: &Checkpoint,
) -> Result<Validated> {
    if key.kind == Kind::Inventory && key.mode == Mode::Full && key.hub.is_none() {
        return Ok(Validated {
            stopped: Some((
                "rejected".into(),
                "a full inventory file must sit in a folder named after its hub: inventory/full/<hub>/<file>.csv; nothing was changed".into(),
            )),
            ..Default::default()
        });
    }
    let time = file_time(upload, cp);
    let input = ports.source.open(upload).await?;
    let (mut rx, handle) = spawn_parser(key.kind, input, upload.label(), now_string(Utc::now()));
    let tmp = TempFile(temp_path());
    let mut errors = ErrorsWriter::start(tmp.0.clone());
    let (mut rejected_rows, mut guard_refused) = (0u64, 0u64);
    let mut window: Vec<Event> = Vec::new();
    let mut rows_in_window = 0usize;
    let mut flush = async |window: &mut Vec<Event>, errors: &mut ErrorsWriter| -> Result<()> {
        let (rejected, refused) =
            check_window(ports, config, key, upload, window, errors, time).await?;
        rejected_rows += rejected;
        guard_refused += refused;
        window.clear();
        Ok(())
    };
    while let Some(batch) = rx.recv().await {
        for ev in batch {
            if matches!(ev, Event::Row { .. }) {
                rows_in_window += 1;
            }
            window.push(ev);
            if rows_in_window >= config.window_rows {
                flush(&mut window, &mut errors).await?;
                rows_in_window = 0;
            }
        }
    }
    if !window.is_empty() {
        flush(&mut window, &mut errors).await?;
    }
    let end = match join_parser(handle).await? {
        Ok(end) => end,
        Err(rejection) => {
            // Let the writer close its file before the temporary file is removed.
            let _ = errors.finish().await;
            return Ok(Validated {
                stopped: Some(("rejected".into(), rejection.message)),
                ..Default::default()
            });
        }
    };
    let error_rows = errors.finish().await?;

    let mut validated = Validated {
        rows_read: end.rows_read,
        rejected: rejected_rows,
        guard_refused,
        extra_columns: end.extra_columns,
        delimiter: end.delimiter,
        errors_report: None,
        stopped: None,
    };
    if key.kind == Kind::Catalog && key.mode == Mode::Full {
        validated.stopped = mass_disable_guard(ports, key, &end.skus).await?;
    }
    if key.kind == Kind::Inventory && key.mode == Mode::Full {
        validated.stopped = mass_zero_guard(ports, key, &end.skus).await?;
    }
    if error_rows > 0 {
        let report = key.errors_report_key();
        ports
            .reports
            .put(
                &report,
                ReportBody::File(tmp.0.clone()),
                "text/csv; charset=utf-8",
            )
            .await?;
        validated.errors_report = Some(report);
    }
    Ok(validated)
}

/// Writes a window's errors in line order; price rows also go through the guardrails.
/// Returns the rows rejected, and how many of those the guardrails refused.
async fn check_window(
    ports: &Ports,
    config: &IngestConfig,
    key: &UploadKey,
    upload: &UploadRef,
    window: &[Event],
    errors: &mut ErrorsWriter,
    time: DateTime<Utc>,
) -> Result<(u64, u64)> {
    let prices: Vec<(u64, &PriceLine)> = window
        .iter()
        .filter_map(|e| match e {
            Event::Row {
                line,
                data: RowData::Price(p),
                ..
            } => Some((*line, p)),
            _ => None,
        })
        .collect();
    let mut refused: HashMap<u64, RowError> = HashMap::new();
    if !prices.is_empty() {
        for r in guard_prices(
            ports.catalog.as_ref(),
            &prices,
            upload,
            &config.default_marketplace,
        )
        .await?
        {
            if let Err(e) = r {
                refused.insert(e.line, e);
            }
        }
    }
    let stock = stock_rows(window);
    if !stock.is_empty() {
        for r in guard_stock(stock_of(ports)?, key, &stock, time).await? {
            if let Err(e) = r {
                refused.insert(e.line, e);
            }
        }
    }
    let refused_rows = refused.len() as u64;
    let mut rejected = 0;
    let mut batch = Vec::new();
    for ev in window {
        match ev {
            Event::Rejected { errors: list, .. } => {
                rejected += 1;
                batch.extend(list.iter().cloned());
            }
            Event::Row { line, .. } => {
                if let Some(e) = refused.remove(line) {
                    rejected += 1;
                    batch.push(e);
                }
            }
        }
    }
    errors.write(batch).await?;
    Ok((rejected, refused_rows))
}

/// Full mode: refuses when the file would disable more than the allowed share of active SKUs.
async fn mass_disable_guard(
    ports: &Ports,
    key: &UploadKey,
    present: &SkuSet,
) -> Result<Option<(String, String)>> {
    let settings = ports.settings.as_ref();
    let allowed_by_setting = settings::get_or(settings, SETTING_ALLOW_MASS_DISABLE, false).await?;
    if key.allows_mass_disable() || allowed_by_setting {
        return Ok(None);
    }
    let share: f64 = settings::get_or(
        settings,
        SETTING_MAX_DISABLE_SHARE,
        DEFAULT_MAX_DISABLE_SHARE,
    )
    .await?;
    let (mut active, mut absent) = (0u64, 0u64);
    let mut page = None;
    loop {
        let p = ports.catalog.scan_items(page).await?;
        for item in p.items.iter().filter(|i| i.enabled) {
            active += 1;
            if !present.contains(item.sku.as_bytes()) {
                absent += 1;
            }
        }
        match p.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    if active > 0 && absent as f64 > share * active as f64 {
        return Ok(Some((
            "refused".into(),
            format!(
                "this full catalog would disable {absent} of {active} active SKUs ({:.0}%), more than the {:.0}% allowed; \
                 nothing was changed. If that is intended, upload it again with \"allow-mass-disable\" in the file name \
                 or set {SETTING_MAX_DISABLE_SHARE}",
                absent as f64 * 100.0 / active as f64,
                share * 100.0
            ),
        )));
    }
    Ok(None)
}

/// The SKUs of the hub with stock that a full inventory file does not list.
async fn absent_in_stock(ports: &Ports, hub: &str, present: &SkuSet) -> Result<(u64, Vec<String>)> {
    let stock = stock_of(ports)?.on_hand.hub_stock(hub).await?;
    let in_stock: Vec<&(String, i64)> = stock.iter().filter(|(_, n)| *n > 0).collect();
    let absent = in_stock
        .iter()
        .filter(|(sku, _)| !present.contains_pair(sku.as_bytes(), hub.as_bytes()))
        .map(|(sku, _)| sku.clone())
        .collect();
    Ok((in_stock.len() as u64, absent))
}

/// Inventory full mode: refuses when the file would zero more than the allowed share of the
/// hub's SKUs in stock (a broken export must not wipe the listing).
async fn mass_zero_guard(
    ports: &Ports,
    key: &UploadKey,
    present: &SkuSet,
) -> Result<Option<(String, String)>> {
    let settings = ports.settings.as_ref();
    let allowed_by_setting = settings::get_or(settings, SETTING_ALLOW_MASS_ZERO, false).await?;
    let Some(hub) = key.hub.as_deref() else {
        return Ok(None);
    };
    if key.allows_mass_zero() || allowed_by_setting {
        return Ok(None);
    }
    let share: f64 =
        settings::get_or(settings, SETTING_MAX_ZERO_SHARE, DEFAULT_MAX_ZERO_SHARE).await?;
    let (in_stock, absent) = absent_in_stock(ports, hub, present).await?;
    let absent = absent.len() as u64;
    if in_stock > 0 && absent as f64 > share * in_stock as f64 {
        return Ok(Some((
            "refused".into(),
            format!(
                "this full inventory file for hub {hub} would set {absent} of its {in_stock} SKUs in stock to zero ({:.0}%), \
                 more than the {:.0}% allowed; nothing was changed. If that is intended, upload it again with \
                 \"allow-mass-zero\" in the file name or set {SETTING_MAX_ZERO_SHARE}",
                absent as f64 * 100.0 / in_stock as f64,
                share * 100.0
            ),
        )));
    }
    Ok(None)
}

/// Inventory full mode: every SKU of the hub in stock that the file does not list is zero,
/// as of the file's time (so a newer figure is never overwritten).
async fn zero_absent(
    ports: &Ports,
    key: &UploadKey,
    upload: &UploadRef,
    present: &SkuSet,
    cp: &mut Checkpoint,
) -> Result<()> {
    let Some(hub) = key.hub.as_deref() else {
        return Ok(());
    };
    let stock = stock_of(ports)?;
    let (_, absent) = absent_in_stock(ports, hub, present).await?;
    let time = file_time(upload, cp);
    for chunk in absent.chunks(500) {
        let figures = chunk
            .iter()
            .map(|sku| OnHand {
                hub: hub.to_string(),
                sku: sku.clone(),
                on_hand: 0,
                reported_at: time,
            })
            .collect();
        let out = stock.report_on_hand(figures).await?;
        cp.zeroed += out.stored as u64;
        ports.checkpoints.put(upload, cp).await?;
    }
    Ok(())
}

/// Returns `Some(Paused)` when it stopped for the deadline.
async fn apply_pass(
    ports: &Ports,
    config: &IngestConfig,
    key: &UploadKey,
    upload: &UploadRef,
    cp: &mut Checkpoint,
    deadline: Deadline,
) -> Result<Option<RunResult>> {
    let input = ports.source.open(upload).await?;
    let (mut rx, handle) = spawn_parser(key.kind, input, upload.label(), now_string(Utc::now()));
    let mut window: Vec<Event> = Vec::new();
    let mut rows_in_window = 0usize;
    // Every run applies at least one window, so a run always makes progress.
    let mut windows_this_run = 0u32;
    let mut stopped = false;
    'read: while let Some(batch) = rx.recv().await {
        for ev in batch {
            if ev.line() <= cp.applied_through_line {
                continue;
            }
            if matches!(ev, Event::Row { .. }) {
                rows_in_window += 1;
            }
            window.push(ev);
            if rows_in_window >= config.window_rows {
                if windows_this_run > 0 && deadline.remaining() < config.stop_margin {
                    stopped = true;
                    break 'read;
                }
                apply_window(ports, config, key, upload, &window, cp).await?;
                windows_this_run += 1;
                window.clear();
                rows_in_window = 0;
                ports.checkpoints.put(upload, cp).await?;
            }
        }
    }
    // The short last window counts as a window too.
    if !stopped
        && !window.is_empty()
        && windows_this_run > 0
        && deadline.remaining() < config.stop_margin
    {
        stopped = true;
    }
    if stopped {
        drop(rx);
        let _ = handle.await;
        ports.checkpoints.put(upload, cp).await?;
        return Ok(Some(RunResult::Paused {
            applied_through_line: cp.applied_through_line,
        }));
    }
    if !window.is_empty() {
        apply_window(ports, config, key, upload, &window, cp).await?;
    }
    let end = match join_parser(handle).await? {
        Ok(end) => end,
        // The file changed under a fixed version? It cannot; but never apply half a file silently.
        Err(rejection) => {
            return Err(Error::Internal(format!(
                "file became unreadable: {rejection}"
            )))
        }
    };
    if key.kind == Kind::Catalog && key.mode == Mode::Full {
        if !cp.rows_applied {
            cp.rows_applied = true;
            ports.checkpoints.put(upload, cp).await?;
        }
        if let Some(paused) = disable_absent(ports, upload, &end.skus, deadline, config, cp).await?
        {
            return Ok(Some(paused));
        }
    }
    if key.kind == Kind::Inventory && key.mode == Mode::Full {
        // Repeatable: a run that stopped half-way zeroes the rest (and the same again).
        zero_absent(ports, key, upload, &end.skus, cp).await?;
    }
    cp.applied = true;
    ports.checkpoints.put(upload, cp).await?;
    Ok(None)
}

async fn apply_window(
    ports: &Ports,
    config: &IngestConfig,
    key: &UploadKey,
    upload: &UploadRef,
    window: &[Event],
    cp: &mut Checkpoint,
) -> Result<()> {
    if let Some(last) = window.last() {
        cp.applied_through_line = last.line();
        cp.applied_through_byte = last.byte();
    }
    match key.kind {
        Kind::Catalog => {
            let items: Vec<CatalogUpdate> = window
                .iter()
                .filter_map(|e| match e {
                    Event::Row {
                        data: RowData::Catalog(c),
                        ..
                    } => Some(c.clone()),
                    _ => None,
                })
                .collect();
            if !items.is_empty() {
                let (counts, stock_changed) =
                    catalog::upsert_listing_stock_changes(ports.catalog.as_ref(), items).await?;
                cp.written += counts.written;
                cp.unchanged += counts.unchanged;
                if let Some(stock) = &ports.stock {
                    stock.catalog_changed(&stock_changed).await?;
                }
            }
        }
        Kind::Inventory => {
            let rows = stock_rows(window);
            if rows.is_empty() {
                return Ok(());
            }
            let stock = stock_of(ports)?;
            let mut figures = Vec::with_capacity(rows.len());
            for r in guard_stock(stock, key, &rows, file_time(upload, cp)).await? {
                match r {
                    Ok(f) => figures.push(f),
                    Err(_) => cp.apply_refused += 1,
                }
            }
            let out = stock.report_on_hand(figures).await?;
            cp.written += out.stored as u64;
            cp.older += out.skipped_as_older as u64;
            cp.apply_refused += out.refused.len() as u64;
        }
        Kind::Prices => {
            let rows: Vec<(u64, &PriceLine)> = window
                .iter()
                .filter_map(|e| match e {
                    Event::Row {
                        line,
                        data: RowData::Price(p),
                        ..
                    } => Some((*line, p)),
                    _ => None,
                })
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            let mut send = Vec::with_capacity(rows.len());
            for r in guard_prices(
                ports.catalog.as_ref(),
                &rows,
                upload,
                &config.default_marketplace,
            )
            .await?
            {
                match r {
                    Ok(update) => send.push(update),
                    // Refused in pass 1 already (and reported there) or the catalog changed since.
                    Err(_) => cp.apply_refused += 1,
                }
            }
            if !send.is_empty() {
                ports.prices.send(&send).await?;
                cp.queued += send.len() as u64;
            }
        }
    }
    Ok(())
}

/// Switches off the SKUs the file does not list, one catalog page at a time from the
/// checkpoint's page; returns `Some(Paused)` when it stopped for the deadline (after at least
/// one page, so every run makes progress).
async fn disable_absent(
    ports: &Ports,
    upload: &UploadRef,
    present: &SkuSet,
    deadline: Deadline,
    config: &IngestConfig,
    cp: &mut Checkpoint,
) -> Result<Option<RunResult>> {
    let now = now_string(Utc::now());
    let mut pages_this_run = 0u32;
    loop {
        if pages_this_run > 0 && deadline.remaining() < config.stop_margin {
            return Ok(Some(RunResult::Paused {
                applied_through_line: cp.applied_through_line,
            }));
        }
        let p = ports.catalog.scan_items(cp.disable_page.clone()).await?;
        let off: Vec<CatalogItem> = p
            .items
            .into_iter()
            .filter(|i| i.enabled && !present.contains(i.sku.as_bytes()))
            .map(|mut i| {
                i.enabled = false;
                i.updated_at = now.clone();
                i.source = upload.label();
                i
            })
            .collect();
        if !off.is_empty() {
            ports.catalog.put_items(&off).await?;
            cp.disabled += off.len() as u64;
            if let Some(stock) = &ports.stock {
                let skus: Vec<String> = off.iter().map(|i| i.sku.clone()).collect();
                stock.catalog_changed(&skus).await?;
            }
        }
        pages_this_run += 1;
        match p.next {
            Some(next) => {
                cp.disable_page = Some(next);
                ports.checkpoints.put(upload, cp).await?;
            }
            None => return Ok(None),
        }
    }
}

async fn finish(
    ports: &Ports,
    key: &UploadKey,
    upload: &UploadRef,
    cp: &Checkpoint,
    validated: &Validated,
) -> Result<UploadSummary> {
    let finished = Utc::now();
    let started = DateTime::parse_from_rfc3339(&cp.started_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(finished);
    let (status, reason) = match &validated.stopped {
        Some((status, reason)) => (status.clone(), Some(reason.clone())),
        None => ("processed".to_string(), None),
    };
    let rejected = validated.rejected + cp.apply_refused.saturating_sub(validated.guard_refused);
    let amazon_report =
        (key.kind == Kind::Prices && validated.stopped.is_none()).then(|| key.amazon_report_key());
    if amazon_report.is_some() {
        answers::expect(
            ports.answers.as_ref(),
            ports.reports.as_ref(),
            upload,
            cp.queued,
        )
        .await?;
    }
    let summary = UploadSummary {
        key: upload.key.clone(),
        version_id: upload.version_id.clone(),
        kind: Some(key.kind),
        mode: (key.kind != Kind::Prices).then_some(key.mode),
        status: status.clone(),
        reason,
        rows_read: validated.rows_read,
        accepted: if validated.stopped.is_some() {
            0
        } else {
            validated.rows_read.saturating_sub(rejected)
        },
        unchanged: cp.unchanged,
        rejected,
        disabled: cp.disabled,
        zeroed: cp.zeroed,
        skipped_as_older: cp.older,
        queued: cp.queued,
        extra_columns: validated.extra_columns.clone(),
        delimiter: (!validated.delimiter.is_empty()).then(|| validated.delimiter.clone()),
        started_at: cp.started_at.clone(),
        finished_at: now_string(finished),
        duration_ms: (finished - started).num_milliseconds().max(0) as u64,
        runs: cp.runs,
        summary_report: key.summary_report_key(),
        errors_report: validated.errors_report.clone(),
        amazon_report,
    };
    ports
        .reports
        .put(
            &summary.summary_report,
            ReportBody::Bytes(serde_json::to_vec_pretty(&summary)?),
            "application/json",
        )
        .await?;

    #[derive(Serialize)]
    struct Fields<'a> {
        #[serde(flatten)]
        event: UploadProcessed,
        summary: &'a UploadSummary,
    }
    let event = OutboundEvent::new(
        EventName::UploadProcessed,
        &upload.label(),
        finished,
        Fields {
            event: UploadProcessed {
                upload_key: upload.key.clone(),
                kind: key.kind.name().into(),
                rows_accepted: summary.accepted,
                rows_rejected: summary.rejected,
                report_key: summary.summary_report.clone(),
            },
            summary: &summary,
        },
    )?;
    ports.events.publish(&[event]).await?;
    let at = [(
        "Kind",
        if key.kind == Kind::Catalog {
            "catalog"
        } else {
            "prices"
        },
    )];
    use crate::metrics::{names, Unit};
    let (accepted, rejected) = (summary.accepted as f64, summary.rejected as f64);
    ports
        .metrics
        .put(names::UPLOAD_ROWS_ACCEPTED, accepted, Unit::Count, &at);
    ports
        .metrics
        .put(names::UPLOAD_ROWS_REJECTED, rejected, Unit::Count, &at);

    // The change log: one entry per upload (key, version, counts, when).
    ports
        .settings
        .put(
            &format!("upload:{}", upload.key),
            serde_json::json!({
                "version_id": upload.version_id,
                "status": status,
                "rows_read": summary.rows_read,
                "accepted": summary.accepted,
                "unchanged": summary.unchanged,
                "rejected": summary.rejected,
                "disabled": summary.disabled,
                "zeroed": summary.zeroed,
                "skipped_as_older": summary.skipped_as_older,
                "queued": summary.queued,
                "at": summary.finished_at,
            }),
            None,
            "upload-ingest",
        )
        .await?;
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// In-memory twins of the ports (unit tests, the benchmark's parse stage)

pub mod memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct MemoryObjects {
        objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    }

    impl MemoryObjects {
        pub fn put(&self, key: &str, version: &str, body: impl Into<Vec<u8>>) {
            self.objects
                .lock()
                .expect("lock")
                .insert((key.into(), version.into()), body.into());
        }
    }

    #[async_trait]
    impl ObjectSource for MemoryObjects {
        async fn open(&self, upload: &UploadRef) -> Result<Box<dyn Read + Send>> {
            let body = self
                .objects
                .lock()
                .expect("lock")
                .get(&(upload.key.clone(), upload.version_id.clone()))
                .cloned()
                .ok_or_else(|| Error::NotFound(upload.label()))?;
            Ok(Box::new(std::io::Cursor::new(body)))
        }
    }

    #[derive(Default)]
    pub struct MemoryReports {
        pub reports: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl MemoryReports {
        pub fn get(&self, key: &str) -> Option<String> {
            self.reports
                .lock()
                .expect("lock")
                .get(key)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        }
    }

    #[async_trait]
    impl ReportSink for MemoryReports {
        async fn put(&self, key: &str, body: ReportBody, _content_type: &str) -> Result<()> {
            let bytes = match body {
                ReportBody::Bytes(b) => b,
                ReportBody::File(p) => tokio::fs::read(&p)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?,
            };
            self.reports.lock().expect("lock").insert(key.into(), bytes);
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct MemoryPriceQueue {
        pub sent: Mutex<Vec<PriceUpdate>>,
    }

    #[async_trait]
    impl PriceQueue for MemoryPriceQueue {
        async fn send(&self, updates: &[PriceUpdate]) -> Result<()> {
            self.sent.lock().expect("lock").extend_from_slice(updates);
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct MemoryCheckpoints {
        pub saved: Mutex<BTreeMap<String, Checkpoint>>,
    }

    #[async_trait]
    impl CheckpointStore for MemoryCheckpoints {
        async fn get(&self, upload: &UploadRef) -> Result<Option<Checkpoint>> {
            Ok(self
                .saved
                .lock()
                .expect("lock")
                .get(&upload.label())
                .cloned())
        }
        async fn put(&self, upload: &UploadRef, checkpoint: &Checkpoint) -> Result<()> {
            self.saved
                .lock()
                .expect("lock")
                .insert(upload.label(), checkpoint.clone());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
