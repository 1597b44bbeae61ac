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
use crate::orders::ports::ShipmentsQuery;
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
    /// Problems that did not stop the run (the shipment is retried by the next run's sweep).
    pub errors: Vec<String>,
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
                    report
                        .errors
                        .push(format!("{}/{status}: {e}", loc.location_id));
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
        loop {
            let page = self.processor.amazon.get_shipments(&query).await?;
            report.pages += 1;
            for item in &page.items {
                report.shipments_seen += 1;
                let shipment = match AmazonShipment::from_json(item) {
                    Ok(s) => s,
                    Err(e) => {
                        // Nothing we could store; say so loudly, keep the rest of the page.
                        tracing::error!(error = %e, "unreadable shipment skipped");
                        report.errors.push(e.to_string());
                        continue;
                    }
                };
                let (r, outcome) = self.processor.store(&shipment).await?;
                match outcome {
                    Stored::New => report.stored_new += 1,
                    Stored::Updated => report.stored_updated += 1,
                    Stored::Unchanged => {}
                }
                to_drive.push(r.id);
            }
            match page.next_token {
                Some(t) => query.pagination_token = Some(t),
                None => break,
            }
        }
        if let Some(c) = &self.processor.crash_points {
            c.reached(Step::PagesStored, location_id).await;
        }
        self.cursors
            .advance(CursorKind::Shipments, location_id, status, started)
            .await?;
        for id in to_drive {
            if inv.remaining() < self.settings.reserve {
                break; // the sweep of the next run picks these up
            }
            match self.processor.drive(&id, inv).await {
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
