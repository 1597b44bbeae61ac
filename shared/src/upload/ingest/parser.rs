//! The parser thread: the file streamed through [`UploadReader`] on a blocking thread, validated
//! rows handed over a bounded channel in batches, so memory stays flat.

use std::io::Read;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::store::catalog::CatalogUpdate;
use crate::upload::reader::{FileRejection, Outcome, UploadReader};
use crate::upload::report::RowError;
use crate::upload::skuset::SkuSet;
use crate::upload::validate::Cents;
use crate::upload::Kind;

/// A price row, owned, as it crosses the channel.
#[derive(Debug, Clone)]
pub(super) struct PriceLine {
    pub(super) sku: String,
    pub(super) price: Cents,
    pub(super) currency: String,
    pub(super) marketplace_id: Option<String>,
    pub(super) force: bool,
}

/// An inventory row, owned.
#[derive(Debug, Clone)]
pub(super) struct StockLine {
    pub(super) sku: String,
    pub(super) hub: String,
    pub(super) on_hand: u32,
    pub(super) as_of: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub(super) enum RowData {
    Catalog(CatalogUpdate),
    Price(PriceLine),
    Stock(StockLine),
}

#[derive(Debug)]
pub(super) enum Event {
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
    pub(super) fn line(&self) -> u64 {
        match self {
            Event::Row { line, .. } | Event::Rejected { line, .. } => *line,
        }
    }
    pub(super) fn byte(&self) -> u64 {
        match self {
            Event::Row { byte, .. } | Event::Rejected { byte, .. } => *byte,
        }
    }
}

pub(super) struct ParseEnd {
    pub(super) rows_read: u64,
    pub(super) extra_columns: Vec<String>,
    pub(super) delimiter: String,
    pub(super) skus: SkuSet,
}

pub(super) const CHANNEL_BATCH: usize = 256;

/// Parses on a blocking thread; events go out in batches. Returns early (Ok) if the receiver
/// is gone (the consumer stopped for the deadline).
pub(super) fn spawn_parser(
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

pub(super) async fn join_parser(
    handle: tokio::task::JoinHandle<std::result::Result<ParseEnd, FileRejection>>,
) -> Result<std::result::Result<ParseEnd, FileRejection>> {
    handle
        .await
        .map_err(|e| Error::Internal(format!("the CSV parser thread failed: {e}")))
}
