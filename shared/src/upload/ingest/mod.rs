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
//!
//! Laid out as [`ports`] (what a run talks to), [`checkpoint`] (where an upload stands),
//! `parser` (the parser thread), `guards` (the guardrails), `passes` (validate, apply,
//! disable/zero), `report` (the errors report and the summary) and [`memory`] (the twins).

use chrono::Utc;

pub mod checkpoint;
mod guards;
pub mod memory;
mod parser;
mod passes;
pub mod ports;
mod report;

/// The price queue's message, at its old path.
pub use crate::prices::PriceUpdate;
pub use checkpoint::{Checkpoint, RunResult, Validated};
pub use guards::{
    DEFAULT_MAX_DISABLE_SHARE, DEFAULT_MAX_ZERO_SHARE, MAX_PRICE_CHANGE,
    SETTING_ALLOW_MASS_DISABLE, SETTING_ALLOW_MASS_ZERO, SETTING_MAX_DISABLE_SHARE,
    SETTING_MAX_ZERO_SHARE,
};
pub use ports::{
    CheckpointStore, IngestConfig, ObjectSource, Ports, PriceQueue, ReportBody, ReportSink,
    UploadRef,
};

use crate::error::{Error, Result};
use crate::retry::Deadline;
use crate::upload::{Kind, UploadKey};
use guards::stock_of;
use passes::{apply_pass, validate_pass};
use report::{finish, now_string};

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

#[cfg(test)]
mod tests;
