//! The safety net: for every enabled location with order sync on, read getShipments per status
//! (ACCEPTED and CREATED for new work; CANCELLED for marketplace cancellations; CONFIRMED for
//! line cancellations of confirmed shipments; SHIPPED to release reservations; each status with
//! its own cursor)
//! from `cursor − overlap`, follow `paginationToken` to the end, store every shipment, and only
//! then move the cursor. Then drive what was stored, and sweep what an earlier run left unsettled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::orders::model::AmazonShipment;
use crate::orders::ports::{ShipmentsQuery, Unreadable};
use crate::orders::processor::{OrderProcessor, Step, Stored};
use crate::runtime::Invocation;
use crate::store::cursors::{CursorKind, CursorStore};

/// Statuses the poller reads, one getShipments call each (new work first).
pub const POLLED_STATUSES: [&str; 5] = ["ACCEPTED", "CREATED", "CANCELLED", "CONFIRMED", "SHIPPED"];
/// The statuses of new work, read again on every extra pass of a run.
pub const NEW_WORK_STATUSES: [&str; 2] = ["ACCEPTED", "CREATED"];

#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Re-read this much before the cursor (clock skew, late writes at Amazon).
    pub overlap: Duration,
    /// Where a location without a cursor starts.
    pub first_lookback: Duration,
    /// Stop starting new work when less than this is left of the invocation.
    pub reserve: Duration,
    /// Within one scheduled run, read new work again every this often until the invocation's
    /// time runs out (a one-minute schedule then sees a new order within about this long).
    /// Zero: one pass per run.
    pub pass_interval: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(300),
            first_lookback: Duration::from_secs(24 * 3600),
            reserve: Duration::from_secs(5),
            pass_interval: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollReport {
    pub passes: usize,
    pub locations: usize,
    pub pages: usize,
    pub shipments_seen: usize,
    pub stored_new: usize,
    pub stored_updated: usize,
    pub driven: usize,
    pub swept: usize,
    /// Unreadable in a page, then read alone with getShipment.
    pub read_back: usize,
    /// Unreadable even alone: stored in stage `unreadable` for a person.
    pub quarantined: usize,
    /// Problems that did not stop the run (the shipment is retried by the next run's sweep).
    pub errors: Vec<String>,
    /// Location/status polls that failed (their cursor did not move; the other locations
    /// were still polled). Any makes the run a failure (`runtime::finish_run`).
    pub failed_polls: Vec<String>,
}

pub struct OrderPoller<'a> {
    pub processor: &'a OrderProcessor,
    pub cursors: &'a dyn CursorStore,
    pub settings: PollSettings,
}

impl OrderPoller<'_> {
    /// One full pass (every status, then the sweep), then passes over new work only, every
    /// `pass_interval`, while the invocation has time for another.
    pub async fn run(&self, inv: &Invocation) -> Result<PollReport> {
        let mut report = PollReport::default();
        let mut pass_started = tokio::time::Instant::now();
        self.pass(&POLLED_STATUSES, true, inv, &mut report).await?;
        let interval = self.settings.pass_interval;
        while !interval.is_zero() && inv.remaining() >= interval + self.settings.reserve {
            tokio::time::sleep_until(pass_started + interval).await;
            pass_started = tokio::time::Instant::now();
            self.pass(&NEW_WORK_STATUSES, false, inv, &mut report)
                .await?;
        }
        tracing::info!(report = ?report, "order poll finished");
        Ok(report)
    }

    async fn pass(
        &self,
        statuses: &[&str],
        sweep: bool,
        inv: &Invocation,
        report: &mut PollReport,
    ) -> Result<()> {
        let started = Utc::now();
        report.passes += 1;
        let locations = self.processor.locations.locations().await?;
        report.locations = 0;
        for loc in locations.iter().filter(|l| l.order_sync) {
            report.locations += 1;
            for status in statuses {
                if inv.remaining() < self.settings.reserve {
                    report.errors.push(format!(
                        "stopped before {}/{status}: invocation nearly out of time",
                        loc.location_id
                    ));
                    return Ok(());
                }
                if let Err(e) = self
                    .poll_one(&loc.location_id, status, started, inv, report)
                    .await
                {
                    // The cursor did not move; the next run reads the same window again.
                    tracing::error!(location_id = %loc.location_id, status, error = %e, "poll failed");
                    let failure = format!("{}/{status}: {e}", loc.location_id);
                    report.errors.push(failure.clone());
                    report.failed_polls.push(failure);
                }
            }
        }
        if sweep {
            let (swept, errors) = self.processor.sweep(inv).await?;
            report.swept += swept;
            report.errors.extend(errors);
        }
        Ok(())
    }

    async fn poll_one(
        &self,
        location_id: &str,
        status: &str,
        started: DateTime<Utc>,
        inv: &Invocation,
        report: &mut PollReport,
    ) -> Result<()> {
        let cursor = self
            .cursors
            .get(CursorKind::Shipments, location_id, status)
            .await?
            .unwrap_or(
                started
                    - chrono::Duration::from_std(self.settings.first_lookback).unwrap_or_default(),
            );
        let mut query = ShipmentsQuery {
            location_id: location_id.to_string(),
            status: status.to_string(),
            last_updated_after: cursor
                - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default(),
            pagination_token: None,
        };
        let mut to_drive = Vec::new();
        // Records nobody can name: the cursor stays, so the window is read again next run.
        let mut nameless = 0;
        loop {
            let page = self.processor.amazon.get_shipments(&query).await?;
            report.pages += 1;
            let mut unreadable = page.unreadable;
            let mut readable = Vec::with_capacity(page.items.len());
            for item in &page.items {
                match AmazonShipment::from_shipment(item) {
                    Ok(s) => readable.push(s),
                    Err(e) => unreadable.push(Unreadable {
                        id: Some(item.id.clone()).filter(|id| !id.is_empty()),
                        error: e.to_string(),
                    }),
                }
            }
            report.shipments_seen += readable.len() + unreadable.len();
            for bad in unreadable {
                let Some(id) = bad.id else {
                    nameless += 1;
                    tracing::error!(location_id, status, error = %bad.error, alert = "shipment_unreadable", "a shipment without an id in getShipments; cursor kept");
                    report.errors.push(format!(
                        "{location_id}/{status}: a shipment without an id: {}",
                        bad.error
                    ));
                    continue;
                };
                report.read_back += 1;
                match self.processor.read_back(&id).await? {
                    Ok(s) => readable.push(s),
                    Err(alone) => {
                        let error = format!("in getShipments: {}; alone: {alone}", bad.error);
                        if self
                            .processor
                            .quarantine(&id, location_id, status, &error)
                            .await?
                        {
                            report.quarantined += 1;
                        }
                        report
                            .errors
                            .push(format!("shipment {id} unreadable: {error}"));
                    }
                }
            }
            for shipment in &readable {
                let (r, outcome) = self.processor.store(shipment).await?;
                match outcome {
                    Stored::New => report.stored_new += 1,
                    Stored::Updated => report.stored_updated += 1,
                    Stored::Unchanged => {}
                }
                to_drive.push(r);
            }
            match page.next_token {
                Some(t) => query.pagination_token = Some(t),
                None => break,
            }
        }
        if let Some(c) = &self.processor.crash_points {
            c.reached(Step::PagesStored, location_id).await;
        }
        if nameless == 0 {
            self.cursors
                .advance(CursorKind::Shipments, location_id, status, started)
                .await?;
        }
        for r in to_drive {
            let id = &r.id;
            if inv.remaining() < self.settings.reserve {
                break; // the sweep of the next run picks these up
            }
            match self.processor.drive_traced(&r, inv).await {
                Ok(_) => report.driven += 1,
                Err(e) => {
                    tracing::warn!(shipment_id = %id, error = %e, "could not finish shipment; next run retries");
                    report.errors.push(format!("shipment {id}: {e}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::events::EventName;
    use crate::orders::model::{fixtures, Stage};
    use crate::orders::ports::UnmappedSkuAction;
    use crate::orders::tests::{harness, inv, CrashAt};
    use crate::store::cursors::MemoryCursorStore;
    use crate::store::inventory::InventoryStore;
    use crate::store::shipments::ShipmentStore;

    fn one_pass() -> PollSettings {
        PollSettings {
            pass_interval: Duration::ZERO,
            ..PollSettings::default()
        }
    }

    #[tokio::test]
    async fn extra_passes_pick_up_new_work_within_the_run() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let cursors = MemoryCursorStore::new();
        let poller = OrderPoller {
            processor: &h.p,
            cursors: &cursors,
            settings: PollSettings {
                pass_interval: Duration::from_millis(300),
                reserve: Duration::from_millis(100),
                ..PollSettings::default()
            },
        };
        let amazon = h.amazon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(450)).await;
            amazon.put(fixtures::shipment(
                "LATE",
                "ACCEPTED",
                &now_str(),
                &[("A", 1)],
            ));
        });
        let report = poller
            .run(&Invocation::new("passes", Duration::from_millis(1200)))
            .await
            .unwrap();
        assert!(report.passes >= 3, "{report:?}");
        assert_eq!(
            h.store.get("LATE").await.unwrap().unwrap().stage,
            Stage::HandedOver
        );
    }

    fn now_str() -> String {
        crate::orders::model::sort_time(Utc::now())
    }

    #[tokio::test]
    async fn polls_every_page_and_moves_the_cursor() {
        let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
        for i in 0..5 {
            h.amazon.put(fixtures::shipment(
                &format!("S{i}"),
                "ACCEPTED",
                &now_str(),
                &[("A", 1)],
            ));
        }
        let cursors = MemoryCursorStore::new();
        let poller = OrderPoller {
            processor: &h.p,
            cursors: &cursors,
            settings: one_pass(),
        };
        let report = poller.run(&inv()).await.unwrap();
        assert_eq!(report.stored_new, 5, "{report:?}");
        assert!(
            report.pages >= 3,
            "page size 2 → at least 3 pages: {report:?}"
        );
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 5);
        assert!(cursors
            .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap()
            .is_some());
        // A second run: nothing new, nothing confirmed twice.
        let again = poller.run(&inv()).await.unwrap();
        assert_eq!(again.stored_new, 0);
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_crash_before_the_cursor_moves_loses_nothing() {
        let mut h = harness(&["A"], UnmappedSkuAction::Hold);
        h.p.crash_points = Some(Arc::new(CrashAt {
            step: Step::PagesStored,
            fired: AtomicBool::new(false),
        }));
        for i in 0..3 {
            h.amazon.put(fixtures::shipment(
                &format!("S{i}"),
                "ACCEPTED",
                &now_str(),
                &[("A", 1)],
            ));
        }
        let cursors = MemoryCursorStore::new();
        let poller = OrderPoller {
            processor: &h.p,
            cursors: &cursors,
            settings: PollSettings {
                reserve: Duration::ZERO,
                ..one_pass()
            },
        };
        let short = Invocation::new("crash", Duration::from_millis(300));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), poller.run(&short))
                .await
                .is_err()
        );
        assert!(cursors
            .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap()
            .is_none());
        poller.run(&inv()).await.unwrap();
        for i in 0..3 {
            let r = h.store.get(&format!("S{i}")).await.unwrap().unwrap();
            assert_eq!(r.stage, Stage::HandedOver);
        }
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 3);
        let accepted = h
            .events
            .events()
            .into_iter()
            .filter(|e| e.name == EventName::ShipmentAccepted)
            .count();
        assert_eq!(accepted, 3);
    }

    fn poller<'a>(
        h: &'a crate::orders::tests::Harness,
        c: &'a MemoryCursorStore,
    ) -> OrderPoller<'a> {
        OrderPoller {
            processor: &h.p,
            cursors: c,
            settings: one_pass(),
        }
    }

    #[tokio::test]
    async fn an_unreadable_shipment_in_a_page_is_read_back_alone() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        for id in ["S1", "S2"] {
            h.amazon
                .put(fixtures::shipment(id, "ACCEPTED", &now_str(), &[("A", 1)]));
        }
        h.amazon
            .unreadable_in_pages
            .lock()
            .unwrap()
            .insert("S2".into());
        let cursors = MemoryCursorStore::new();
        let report = poller(&h, &cursors).run(&inv()).await.unwrap();
        // Read back once as ACCEPTED, and again as CONFIRMED after our own CONFIRM.
        assert_eq!(report.read_back, 2, "{report:?}");
        assert_eq!(report.quarantined, 0, "{report:?}");
        assert!(h
            .amazon
            .reads_alone
            .lock()
            .unwrap()
            .contains(&"S2".to_string()));
        for id in ["S1", "S2"] {
            assert_eq!(
                h.store.get(id).await.unwrap().unwrap().stage,
                Stage::HandedOver,
                "{id}"
            );
        }
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 2);
        assert!(cursors
            .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn a_shipment_unreadable_even_alone_is_quarantined_visibly_and_nothing_is_lost() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        for id in ["S1", "S2"] {
            h.amazon
                .put(fixtures::shipment(id, "ACCEPTED", &now_str(), &[("A", 1)]));
        }
        h.amazon
            .unreadable_in_pages
            .lock()
            .unwrap()
            .insert("S2".into());
        h.amazon
            .unreadable_alone
            .lock()
            .unwrap()
            .insert("S2".into());
        let cursors = MemoryCursorStore::new();
        let poller = poller(&h, &cursors);
        let report = poller.run(&inv()).await.unwrap();
        assert_eq!((report.read_back, report.quarantined), (1, 1), "{report:?}");
        assert!(report.errors.iter().any(|e| e.contains("S2")), "{report:?}");
        assert!(h
            .amazon
            .reads_alone
            .lock()
            .unwrap()
            .contains(&"S2".to_string()));

        // Stored where a person sees it (the warehouse API lists by stage), not confirmed.
        let q = h.store.get("S2").await.unwrap().unwrap();
        assert_eq!(q.stage, Stage::Unreadable);
        assert_eq!(
            (q.location_id.as_str(), q.status.as_str()),
            ("LOC1", "ACCEPTED")
        );
        assert!(
            q.unreadable.as_deref().unwrap().contains("lineItems"),
            "{q:?}"
        );
        let listed = h
            .store
            .list(Stage::Unreadable, None, 10, None)
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].id, "S2");
        assert_eq!(*h.amazon.confirms.lock().unwrap(), vec!["S1".to_string()]);
        let held: Vec<_> = h
            .events
            .events()
            .into_iter()
            .filter(|e| e.name == EventName::ShipmentHeld)
            .collect();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].fields["shipmentId"], "S2");
        assert!(held[0].fields["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable"));
        let text = serde_json::to_string(&held[0].fields).unwrap();
        assert!(!text.contains("Secret Street") && !text.contains("Jane"));

        // The cursor moved on: the quarantined record is what keeps the shipment.
        assert!(cursors
            .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap()
            .is_some());

        // Seen again: no second alert.
        let again = poller.run(&inv()).await.unwrap();
        assert_eq!(again.quarantined, 0, "{again:?}");
        assert_eq!(
            h.events
                .events()
                .iter()
                .filter(|e| e.name == EventName::ShipmentHeld)
                .count(),
            1
        );

        // Amazon's data becomes readable: the shipment is handled as any other, once.
        h.amazon.unreadable_in_pages.lock().unwrap().clear();
        h.amazon.unreadable_alone.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(5)).await;
        h.amazon.put(fixtures::shipment(
            "S2",
            "ACCEPTED",
            &now_str(),
            &[("A", 1)],
        ));
        poller.run(&inv()).await.unwrap();
        let r = h.store.get("S2").await.unwrap().unwrap();
        assert_eq!(r.stage, Stage::HandedOver);
        assert!(r.unreadable.is_none() && r.quarantined_from.is_none());
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 2);
        assert!(h
            .store
            .list(Stage::Unreadable, None, 10, None)
            .await
            .unwrap()
            .items
            .is_empty());
    }

    #[tokio::test]
    async fn a_known_shipment_that_turns_unreadable_keeps_its_progress() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        h.amazon.put(fixtures::shipment(
            "S1",
            "ACCEPTED",
            &now_str(),
            &[("A", 1)],
        ));
        let cursors = MemoryCursorStore::new();
        let poller = poller(&h, &cursors);
        poller.run(&inv()).await.unwrap();
        assert_eq!(
            h.store.get("S1").await.unwrap().unwrap().stage,
            Stage::HandedOver
        );

        // Shipped at Amazon, but its data cannot be read.
        tokio::time::sleep(Duration::from_millis(5)).await;
        h.amazon
            .put(fixtures::shipment("S1", "SHIPPED", &now_str(), &[("A", 1)]));
        h.amazon
            .unreadable_in_pages
            .lock()
            .unwrap()
            .insert("S1".into());
        h.amazon
            .unreadable_alone
            .lock()
            .unwrap()
            .insert("S1".into());
        let report = poller.run(&inv()).await.unwrap();
        assert_eq!(report.quarantined, 1, "{report:?}");
        let q = h.store.get("S1").await.unwrap().unwrap();
        assert_eq!(q.stage, Stage::Unreadable);
        assert_eq!(q.quarantined_from, Some(Stage::HandedOver));
        assert_eq!(q.line_items.len(), 1, "what we knew is kept");
        assert_eq!(
            h.inventory.position("LOC1", "A").await.unwrap().reserved,
            1,
            "nothing is released on data we cannot read"
        );

        h.amazon.unreadable_in_pages.lock().unwrap().clear();
        h.amazon.unreadable_alone.lock().unwrap().clear();
        poller.run(&inv()).await.unwrap();
        let r = h.store.get("S1").await.unwrap().unwrap();
        assert_eq!(r.stage, Stage::Shipped);
        assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 0);
    }

    #[tokio::test]
    async fn the_cancelled_cursor_catches_marketplace_cancellations() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        h.amazon.put(fixtures::shipment(
            "S1",
            "ACCEPTED",
            &now_str(),
            &[("A", 1)],
        ));
        let cursors = MemoryCursorStore::new();
        let poller = OrderPoller {
            processor: &h.p,
            cursors: &cursors,
            settings: one_pass(),
        };
        poller.run(&inv()).await.unwrap();
        let mut v = h.amazon.shipments.lock().unwrap()["S1"].clone();
        v["status"] = "CANCELLED".into();
        tokio::time::sleep(Duration::from_millis(5)).await;
        v["lastUpdatedDateTime"] = now_str().into();
        h.amazon.put(v);
        poller.run(&inv()).await.unwrap();
        assert_eq!(
            h.store.get("S1").await.unwrap().unwrap().stage,
            Stage::Cancelled
        );
        assert!(h
            .events
            .events()
            .iter()
            .any(|e| e.name == EventName::ShipmentCancelled));
    }
}
