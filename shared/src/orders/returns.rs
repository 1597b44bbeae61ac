//! Returns: Amazon has no return notification, so a scheduled poll of listReturns per return
//! location and status (`lastUpdatedSince` = cursor − overlap, in bounded windows with the
//! cursor saved after each page, as the order poller does) stores each
//! return and tells the warehouse (`ReturnCreated`, then `ReturnStatusChanged` per new status).
//! The warehouse reports what arrived (`sellable`/`unsellable` units): the return is closed and
//! the sellable units are credited as stock to add back at that location.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, FailureKind, Result};
use crate::events::{EventName, EventSink, OutboundEvent, ReturnCreated, ReturnStatusChanged};
use crate::metrics::{names, Unit};
use crate::orders::poller::{Window, UNBOUNDED};
use crate::orders::ports::{
    is_unreadable, LocationDirectory, ReturnsQuery, ShipmentsApi, Unreadable,
};
use crate::runtime::Invocation;
use crate::shipment::{ReturnReceipt, ReturnRecord, ReturnStage};
use crate::spapi::ReturnStatus;
use crate::store::cursors::{cursor_time, CursorKind, CursorStore, PageMark};
use crate::store::inventory::InventoryStore;
use crate::store::shipments::ShipmentStore;

/// Every return status of the 2024-09-11 model; `lastUpdatedSince` needs one status per call.
pub const RETURN_STATUSES: &[&str] = ReturnStatus::KNOWN;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnsReport {
    pub locations: usize,
    pub pages: usize,
    pub returns_seen: usize,
    pub announced: usize,
    /// Unreadable in a page, then read alone with getReturn.
    pub read_back: usize,
    /// Unreadable even alone: stored in stage `unreadable` for a person.
    pub quarantined: usize,
    /// Records without an ID: counted (cursor, `AmazonRecordsUnreadable`) and logged.
    pub nameless: usize,
    pub cursor_saves: usize,
    /// Return location/status polls that stopped before reaching the present (deadline or
    /// page budget); the next run goes on from the saved page.
    pub behind: Vec<String>,
    pub errors: Vec<String>,
    /// Return location/status polls that failed (cursor kept; the other locations were still
    /// polled). Any makes the run a failure (`runtime::finish_run`).
    pub failed_polls: Vec<String>,
}

#[derive(Clone)]
pub struct ReturnsService {
    pub amazon: Arc<dyn ShipmentsApi>,
    pub store: Arc<dyn ShipmentStore>,
    pub cursors: Arc<dyn CursorStore>,
    pub events: Arc<dyn EventSink>,
    pub inventory: Arc<dyn InventoryStore>,
    pub locations: Arc<dyn LocationDirectory>,
    pub overlap: Duration,
    pub first_lookback: Duration,
    /// As in `PollSettings`: the longest window asked for, and pages per status and run.
    pub max_window: Duration,
    pub max_pages: usize,
    pub metrics: crate::metrics::Metrics,
}

impl ReturnsService {
    pub async fn poll(&self, inv: &Invocation) -> Result<ReturnsReport> {
        // Windows end here: the next whole second (`lastUpdatedBefore` is strict and sent in
        // whole seconds), so whatever changed before this run is in its windows.
        let started = cursor_time(Utc::now()) + chrono::Duration::seconds(1);
        let mut report = ReturnsReport::default();
        for loc in self.locations.locations().await? {
            let Some(rloc) = loc.return_location_id.clone() else {
                continue;
            };
            report.locations += 1;
            for status in RETURN_STATUSES {
                if inv.remaining() < Duration::from_secs(3) {
                    report
                        .errors
                        .push(format!("stopped before {rloc}/{status}: out of time"));
                    return Ok(report);
                }
                if let Err(e) = self
                    .poll_one(&rloc, &loc.hub, status, started, inv, &mut report)
                    .await
                {
                    tracing::error!(return_location_id = %rloc, status, error = %e, "returns poll failed");
                    let failure = format!("{rloc}/{status}: {e}");
                    report.errors.push(failure.clone());
                    report.failed_polls.push(failure);
                }
            }
        }
        tracing::info!(report = ?report, "returns poll finished");
        Ok(report)
    }

    async fn poll_one(
        &self,
        rloc: &str,
        hub: &str,
        status: &str,
        started: DateTime<Utc>,
        inv: &Invocation,
        report: &mut ReturnsReport,
    ) -> Result<()> {
        let kind = CursorKind::Returns;
        let mut cursor = self.cursors.read(kind, rloc, status).await?;
        let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        let at = *cursor
            .at
            .get_or_insert(cursor_time(started - span(self.first_lookback)));
        let mut window = match cursor.mark.clone() {
            Some(m) if m.before > at => Some(Window::resume(m)),
            _ => Some(Window::after(at, started, self.overlap, self.max_window)),
        };
        let mut pages = 0;
        // A whole window in one page was sparse: the next may be twice as long, or reach the
        // present after an empty one (a fresh cursor's first lookback then costs a call, not
        // one per `max_window`); a dense one keeps the cap.
        let mut span = self.max_window;
        while let Some(w) = window.take() {
            let first_page = pages;
            let mut q = ReturnsQuery {
                return_location_id: rloc.to_string(),
                status: status.to_string(),
                last_updated_since: w.after,
                last_updated_until: Some(w.before),
                next_token: w.token.clone(),
            };
            loop {
                if pages >= self.max_pages || inv.remaining() < Duration::from_secs(3) {
                    report.behind.push(format!("{rloc}/{status}"));
                    return Ok(());
                }
                let page = match self.amazon.list_returns(&q).await {
                    // A kept token Amazon no longer takes: read the window again from its start.
                    Err(e)
                        if q.next_token.is_some()
                            && q.next_token == w.token
                            && e.kind() == FailureKind::Message =>
                    {
                        tracing::warn!(return_location_id = rloc, status, error = %e, "a kept page token was refused; reading its window again");
                        q.next_token = None;
                        continue;
                    }
                    page => page?,
                };
                pages += 1;
                report.pages += 1;
                let listed = page.items.len() + page.unreadable.len();
                let nameless = self
                    .store_page(rloc, hub, status, page.items, page.unreadable, report)
                    .await?;
                if nameless > 0 {
                    cursor.unreadable += nameless as u64;
                    report.nameless += nameless;
                    self.metrics.put(
                        names::AMAZON_RECORDS_UNREADABLE,
                        nameless as f64,
                        Unit::Count,
                        &[],
                    );
                }
                match &page.next_token {
                    Some(t) => {
                        q.next_token = Some(t.clone());
                        cursor.mark = Some(PageMark {
                            after: w.after,
                            before: w.before,
                            token: t.clone(),
                        });
                    }
                    None => {
                        cursor.at = Some(w.before);
                        cursor.mark = None;
                    }
                }
                if !self.cursors.save(kind, rloc, status, &cursor).await? {
                    return Ok(()); // a newer run got further
                }
                report.cursor_saves += 1;
                if page.next_token.is_none() {
                    if w.token.is_none() && pages == first_page + 1 {
                        span = if listed == 0 {
                            UNBOUNDED // nothing there: the next window may reach the present
                        } else {
                            span.saturating_mul(2)
                        };
                    }
                    window = (w.before < started)
                        .then(|| Window::after(w.before, started, self.overlap, span));
                    break;
                }
            }
        }
        Ok(())
    }

    /// Stores one page's returns; returns how many records had no ID at all.
    async fn store_page(
        &self,
        rloc: &str,
        hub: &str,
        status: &str,
        items: Vec<serde_json::Value>,
        mut unreadable: Vec<Unreadable>,
        report: &mut ReturnsReport,
    ) -> Result<usize> {
        let mut readable = Vec::with_capacity(items.len());
        for item in &items {
            match ReturnRecord::from_json(item) {
                Ok(r) => readable.push(r),
                Err(e) => unreadable.push(Unreadable {
                    id: item.get("id").and_then(|v| v.as_str()).map(str::to_string),
                    error: e.to_string(),
                }),
            }
        }
        report.returns_seen += readable.len() + unreadable.len();
        let mut nameless = 0;
        for bad in unreadable {
            let Some(id) = bad.id else {
                // Nothing to read back by; a mended record moves its time and is met again.
                nameless += 1;
                tracing::error!(return_location_id = rloc, status, error = %bad.error, alert = "return_unreadable", "a return without an id in listReturns; counted, the cursor moves on");
                report.errors.push(format!(
                    "{rloc}/{status}: a return without an id: {}",
                    bad.error
                ));
                continue;
            };
            report.read_back += 1;
            match self.read_back(&id).await? {
                Ok(r) => readable.push(r),
                Err(alone) => {
                    let error = format!("in listReturns: {}; alone: {alone}", bad.error);
                    if self.quarantine(&id, rloc, status, &error).await? {
                        report.quarantined += 1;
                    }
                    report
                        .errors
                        .push(format!("return {id} unreadable: {error}"));
                }
            }
        }
        for r in readable {
            if self.absorb(r, hub).await? {
                report.announced += 1;
            }
        }
        Ok(nameless)
    }

    /// Reads one return alone (a page reported it unreadable: a single record may parse).
    /// `Ok(Err(why))`: its data cannot be read; `Err`: Amazon could not answer now.
    pub async fn read_back(
        &self,
        return_id: &str,
    ) -> Result<std::result::Result<ReturnRecord, String>> {
        let read = match self.amazon.get_return(return_id).await {
            Ok(v) => ReturnRecord::from_json(&v),
            Err(e) => Err(e),
        };
        match read {
            Ok(r) if r.id == return_id => Ok(Ok(r)),
            Ok(r) => Ok(Err(format!("getReturn answered with return {}", r.id))),
            Err(e) if is_unreadable(&e) => Ok(Err(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Keeps a return whose data cannot be read where a person sees it: stage `unreadable`
    /// (listed by `GET /v1/returns?stage=unreadable`) and an error log line. A return we already
    /// had keeps its progress and goes back to it once readable. Returns whether it was newly
    /// quarantined.
    pub async fn quarantine(
        &self,
        return_id: &str,
        return_location_id: &str,
        status: &str,
        error: &str,
    ) -> Result<bool> {
        for _ in 0..8 {
            let mut r = match self.store.get_return(return_id).await? {
                Some(old) if old.stage == ReturnStage::Unreadable => return Ok(false),
                Some(mut old) => {
                    old.quarantined_from = Some(old.stage);
                    old.stage = ReturnStage::Unreadable;
                    old.unreadable = Some(error.to_string());
                    old
                }
                None => ReturnRecord::unreadable_placeholder(
                    return_id,
                    return_location_id,
                    status,
                    error,
                ),
            };
            match self.store.save_return(&mut r).await {
                Ok(()) => {
                    tracing::error!(
                        return_id,
                        return_location_id = %r.return_location_id,
                        status = %r.status,
                        error,
                        alert = "return_unreadable",
                        "return unreadable even alone; quarantined in stage unreadable for a person"
                    );
                    return Ok(true);
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Transient {
            message: format!("return {return_id} kept changing while being quarantined"),
            after: None,
        })
    }

    /// Stores Amazon's view if newer and tells the warehouse about a status it has not heard of.
    /// Returns whether an event was published.
    pub async fn absorb(&self, incoming: ReturnRecord, hub: &str) -> Result<bool> {
        for _ in 0..8 {
            let existing = self.store.get_return(&incoming.id).await?;
            let mut changed = false;
            let mut r = match existing {
                None => {
                    changed = true;
                    incoming.clone()
                }
                // Readable again: back to where it was (or, never handled, open).
                Some(mut old)
                    if old.stage == ReturnStage::Unreadable
                        && incoming.amazon_updated_at >= old.amazon_updated_at =>
                {
                    let back_to = old.quarantined_from.unwrap_or(ReturnStage::Open);
                    old.absorb(&incoming);
                    old.stage = back_to;
                    old.unreadable = None;
                    old.quarantined_from = None;
                    tracing::warn!(return_id = %old.id, stage = old.stage.as_str(), "unreadable return is readable again");
                    changed = true;
                    old
                }
                // Whole-second times: a same-time view with another status is a change too.
                Some(mut old)
                    if incoming.amazon_updated_at > old.amazon_updated_at
                        || (incoming.amazon_updated_at == old.amazon_updated_at
                            && incoming.status != old.status) =>
                {
                    old.absorb(&incoming);
                    changed = true;
                    old
                }
                Some(old) => old,
            };
            if r.stage == ReturnStage::Unreadable {
                return Ok(false); // an older view than the one that could not be read
            }
            let mut announced = false;
            if r.announced_status.as_deref() != Some(r.status.as_str()) {
                // Published before the marker is saved: a repeat carries the same event ID.
                let ev = match r.announced_status {
                    None => OutboundEvent::new(
                        EventName::ReturnCreated,
                        &r.id,
                        Utc::now(),
                        ReturnCreated {
                            return_id: r.id.clone(),
                            hub: hub.to_string(),
                            shipment_id: r.shipment_id.clone(),
                            sku: r.sku.clone().unwrap_or_default(),
                            quantity: r.units,
                            reason: r.return_reason.clone(),
                        },
                    )?,
                    Some(_) => OutboundEvent::new(
                        EventName::ReturnStatusChanged,
                        &format!("{}#{}", r.id, r.status),
                        Utc::now(),
                        ReturnStatusChanged {
                            return_id: r.id.clone(),
                            status: r.status.clone(),
                        },
                    )?,
                };
                self.events.publish(&[ev]).await?;
                r.announced_status = Some(r.status.clone());
                changed = true;
                announced = true;
            }
            if !changed {
                return Ok(false);
            }
            match self.store.save_return(&mut r).await {
                Ok(()) => return Ok(announced),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Transient {
            message: format!("return {} kept changing while being stored", incoming.id),
            after: None,
        })
    }

    /// The warehouse received the return: close it and credit the sellable units back.
    /// Repeating the same report is a no-op; a different report for a closed return is refused.
    pub async fn receive(&self, return_id: &str, receipt: ReturnReceipt) -> Result<ReturnRecord> {
        for _ in 0..8 {
            let mut r = self
                .store
                .get_return(return_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("return {return_id}")))?;
            if r.stage == ReturnStage::Unreadable {
                return Err(Error::Conflict(format!(
                    "return {return_id} is unreadable at Amazon; it can be received once Amazon's data can be read"
                )));
            }
            if r.stage == ReturnStage::Closed {
                return if r.receipt == Some(receipt) {
                    Ok(r)
                } else {
                    Err(Error::Conflict(format!(
                        "return {return_id} was already received with {:?}",
                        r.receipt
                    )))
                };
            }
            let total = receipt.sellable + receipt.unsellable;
            if total == 0 || total > r.units {
                return Err(Error::InvalidInput(format!(
                    "return {return_id} has {} unit(s); sellable + unsellable must be between 1 and {}, got {total}",
                    r.units, r.units
                )));
            }
            let sku = r.sku.clone().ok_or_else(|| {
                Error::InvalidInput(format!(
                    "return {return_id} has no SKU from Amazon; cannot credit stock"
                ))
            })?;
            let location = self
                .locations
                .by_return_location(&r.return_location_id)
                .await?;
            let location_id = location
                .as_ref()
                .map(|l| l.location_id.clone())
                .unwrap_or_else(|| r.return_location_id.clone());
            if receipt.sellable > 0 {
                // Back on the hub's shelf: on hand grows once, and the inventory sync pushes it.
                self.inventory
                    .credit_return(
                        &location_id,
                        location.as_ref().map(|l| l.hub.as_str()),
                        &sku,
                        return_id,
                        receipt.sellable,
                    )
                    .await?;
            }
            r.stage = ReturnStage::Closed;
            r.receipt = Some(receipt);
            match self.store.save_return(&mut r).await {
                Ok(()) => {
                    tracing::info!(
                        return_id,
                        sellable = receipt.sellable,
                        unsellable = receipt.unsellable,
                        "return received"
                    );
                    return Ok(r);
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Transient {
            message: format!("return {return_id} kept changing"),
            after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::MemoryEventSink;
    use crate::orders::ports::{MemoryAmazon, MemoryLocations, OrderLocation, UnmappedSkuAction};
    use crate::shipment::sort_time;
    use crate::store::cursors::MemoryCursorStore;
    use crate::store::inventory::MemoryInventoryStore;
    use crate::store::shipments::MemoryShipmentStore;

    fn ret(id: &str, status: &str) -> serde_json::Value {
        json!({
            "id": id, "returnLocationId": "RLOC1", "merchantSku": "A", "numberOfUnits": 2,
            "status": status, "fulfillmentLocationId": "LOC1", "returnType": "CUSTOMER",
            "returnMetadata": {"returnReason": "DAMAGED", "rmaId": "RMA1"},
            "marketplaceChannelDetails": {"shipmentId": "S1"},
            "lastUpdatedDateTime": sort_time(Utc::now()),
        })
    }

    fn service() -> (
        ReturnsService,
        Arc<MemoryAmazon>,
        Arc<MemoryEventSink>,
        Arc<MemoryInventoryStore>,
    ) {
        let amazon = Arc::new(MemoryAmazon::new());
        let events = Arc::new(MemoryEventSink::new());
        let inventory = Arc::new(MemoryInventoryStore::new());
        let s = ReturnsService {
            amazon: amazon.clone(),
            store: Arc::new(MemoryShipmentStore::new()),
            cursors: Arc::new(MemoryCursorStore::new()),
            events: events.clone(),
            inventory: inventory.clone(),
            locations: Arc::new(MemoryLocations::new(vec![OrderLocation {
                location_id: "LOC1".into(),
                hub: "HUB1".into(),
                order_sync: true,
                return_location_id: Some("RLOC1".into()),
                unmapped_sku: UnmappedSkuAction::Hold,
                adopt_existing: Default::default(),
            }])),
            overlap: Duration::from_secs(300),
            first_lookback: Duration::from_secs(3600),
            max_window: Duration::from_secs(3600),
            max_pages: 10,
            metrics: crate::metrics::Metrics::memory("t", "returns").0,
        };
        (s, amazon, events, inventory)
    }

    fn inv() -> Invocation {
        Invocation::new("t", Duration::from_secs(60))
    }

    /// Returns that piled up over a 6-hour outage: read in bounded windows, a page budget per
    /// run, the cursor kept after every page; every return is announced once.
    #[tokio::test]
    async fn a_returns_backlog_is_read_in_parts_and_the_cursor_moves_every_run() {
        let (mut s, amazon, events, _) = service();
        s.max_pages = 2;
        let start = Utc::now() - chrono::Duration::hours(6);
        for i in 0..20 {
            let mut r = ret(&format!("R{i:02}"), "CREATED");
            r["lastUpdatedDateTime"] = sort_time(start + chrono::Duration::minutes(18 * i)).into();
            amazon.put_return(r);
        }
        s.cursors
            .advance(CursorKind::Returns, "RLOC1", "CREATED", start)
            .await
            .unwrap();
        let mut last = s
            .cursors
            .read(CursorKind::Returns, "RLOC1", "CREATED")
            .await
            .unwrap();
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs < 20, "never caught up");
            let report = s.poll(&inv()).await.unwrap();
            assert!(report.failed_polls.is_empty(), "{report:?}");
            let now = s
                .cursors
                .read(CursorKind::Returns, "RLOC1", "CREATED")
                .await
                .unwrap();
            if !report.behind.iter().any(|b| b == "RLOC1/CREATED") {
                break;
            }
            assert_ne!(now, last, "run {runs} moved the cursor");
            last = now;
        }
        assert!(runs >= 3, "{runs}");
        let created = events
            .events()
            .into_iter()
            .filter(|e| e.name == EventName::ReturnCreated)
            .count();
        assert_eq!(created, 20);
    }

    #[tokio::test]
    async fn a_poll_where_one_return_location_fails_processes_the_others_then_fails() {
        use crate::metrics::Metrics;
        let (mut s, amazon, events, _) = service();
        let loc = |id: &str, rloc: &str| OrderLocation {
            location_id: id.into(),
            hub: "HUB1".into(),
            order_sync: true,
            return_location_id: Some(rloc.into()),
            unmapped_sku: UnmappedSkuAction::Hold,
            adopt_existing: Default::default(),
        };
        s.locations = Arc::new(MemoryLocations::new(vec![
            loc("LOC0", "RLOC0"),
            loc("LOC1", "RLOC1"),
        ]));
        amazon
            .failing_locations
            .lock()
            .unwrap()
            .insert("RLOC0".into());
        amazon.put_return(ret("R1", "CREATED"));
        let result = s.poll(&inv()).await;
        let report = result.as_ref().unwrap();
        assert_eq!(report.announced, 1, "RLOC1 was processed: {report:?}");
        assert!(!events.events().is_empty());
        assert_eq!(
            report.failed_polls.len(),
            RETURN_STATUSES.len(),
            "{report:?}"
        );
        assert!(report.failed_polls.iter().all(|f| f.starts_with("RLOC0/")));
        let (metrics, recorded) = Metrics::memory("s", "ReturnsPoller");
        let e = crate::runtime::finish_run(&metrics, "returns poll", result, |r| {
            r.failed_polls.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("RLOC0/"), "{e}");
        assert_eq!(recorded.alerts(crate::metrics::Alert::RunFailed), 1.0);
    }

    #[tokio::test]
    async fn an_unreadable_return_is_read_back_then_quarantined_and_nothing_is_lost() {
        let (s, amazon, events, _) = service();
        for id in ["R1", "R2", "R3"] {
            amazon.put_return(ret(id, "CREATED"));
        }
        amazon
            .unreadable_in_pages
            .lock()
            .unwrap()
            .extend(["R2".to_string(), "R3".to_string()]);
        amazon.unreadable_alone.lock().unwrap().insert("R3".into());
        let report = s.poll(&inv()).await.unwrap();
        assert_eq!((report.read_back, report.quarantined), (2, 1), "{report:?}");
        let reads = amazon.reads_alone.lock().unwrap().clone();
        assert!(reads.contains(&"R2".into()) && reads.contains(&"R3".into()));
        // R2 read alone: handled like R1.
        let created: Vec<String> = events
            .events()
            .iter()
            .filter(|e| e.name == EventName::ReturnCreated)
            .map(|e| e.fields["returnId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(created, vec!["R1".to_string(), "R2".to_string()]);
        // R3 kept where a person sees it; the cursor moved on.
        let listed = s
            .store
            .list_returns(ReturnStage::Unreadable, None, 10, None)
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].id, "R3");
        assert_eq!(listed.items[0].return_location_id, "RLOC1");
        assert!(listed.items[0]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("lineItems"));
        assert!(s
            .cursors
            .get(CursorKind::Returns, "RLOC1", "CREATED")
            .await
            .unwrap()
            .is_some());
        let refused = s
            .receive(
                "R3",
                ReturnReceipt {
                    sellable: 1,
                    unsellable: 0,
                },
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("unreadable"), "{refused}");

        // Readable again: announced once, open.
        amazon.unreadable_in_pages.lock().unwrap().clear();
        amazon.unreadable_alone.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(5)).await;
        amazon.put_return(ret("R3", "CREATED"));
        s.poll(&inv()).await.unwrap();
        let r3 = s.store.get_return("R3").await.unwrap().unwrap();
        assert_eq!(r3.stage, ReturnStage::Open);
        assert!(r3.unreadable.is_none());
        assert_eq!(
            events
                .events()
                .iter()
                .filter(|e| e.name == EventName::ReturnCreated)
                .count(),
            3
        );
    }

    #[tokio::test]
    async fn returns_are_announced_once_per_status_and_received_once() {
        let (s, amazon, events, inventory) = service();
        amazon.put_return(ret("R1", "CREATED"));
        s.poll(&inv()).await.unwrap();
        s.poll(&inv()).await.unwrap();
        let names: Vec<EventName> = events.events().iter().map(|e| e.name).collect();
        assert_eq!(names, vec![EventName::ReturnCreated]);

        tokio::time::sleep(Duration::from_millis(5)).await;
        amazon.put_return(ret("R1", "DELIVERED"));
        s.poll(&inv()).await.unwrap();
        let names: Vec<EventName> = events.events().iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            vec![EventName::ReturnCreated, EventName::ReturnStatusChanged]
        );

        let bad = s
            .receive(
                "R1",
                ReturnReceipt {
                    sellable: 3,
                    unsellable: 0,
                },
            )
            .await
            .unwrap_err();
        assert!(bad.to_string().contains("between 1 and 2"), "{bad}");
        let receipt = ReturnReceipt {
            sellable: 1,
            unsellable: 1,
        };
        let r = s.receive("R1", receipt).await.unwrap();
        assert_eq!(r.stage, ReturnStage::Closed);
        s.receive("R1", receipt).await.unwrap();
        assert!(s
            .receive(
                "R1",
                ReturnReceipt {
                    sellable: 2,
                    unsellable: 0
                }
            )
            .await
            .is_err());
        assert_eq!(
            inventory
                .position("LOC1", "A")
                .await
                .unwrap()
                .returned_sellable,
            1
        );
    }
}
