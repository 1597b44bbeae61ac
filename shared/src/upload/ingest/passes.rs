//! The passes over the file: **validate** (every row checked, the errors report written, the
//! whole-file guards decided), **apply** (rows after the checkpoint applied in windows) and, in
//! full mode, **disable** (catalog SKUs the file no longer lists) or **zero** (a hub's stock
//! the file does not list).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::guards::{
    absent_in_stock, file_time, guard_prices, guard_stock, mass_disable_guard, mass_zero_guard,
    stock_of, stock_rows,
};
use super::parser::{join_parser, spawn_parser, Event, PriceLine, RowData};
use super::report::{now_string, temp_path, ErrorsWriter, TempFile};
use super::{Checkpoint, IngestConfig, Ports, RunResult, Validated};
use crate::error::{Error, Result};
use crate::retry::Deadline;
use crate::store::catalog::{self, CatalogItem, CatalogUpdate};
use crate::store::inventory::OnHand;
use crate::upload::report::RowError;
use crate::upload::skuset::SkuSet;
use crate::upload::{Kind, Mode, ReportBody, UploadKey, UploadRef};

pub(super) async fn validate_pass(
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
pub(super) async fn check_window(
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

/// Inventory full mode: every SKU of the hub in stock that the file does not list is zero,
/// as of the file's time (so a newer figure is never overwritten).
pub(super) async fn zero_absent(
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
pub(super) async fn apply_pass(
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

pub(super) async fn apply_window(
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
pub(super) async fn disable_absent(
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
