//! The safety net: for every enabled location with order sync on, read getShipments per status
//! (ACCEPTED and CREATED for new work; CANCELLED for marketplace cancellations; CONFIRMED for
//! line cancellations of confirmed shipments; SHIPPED to release reservations; each status with
//! its own cursor) in bounded windows from `cursor − overlap` (at most `max_window` long, so
//! a long outage is read in parts), following `paginationToken`; after each stored page the
//! cursor keeps the page's token (`store::cursors`), and a window read to its end moves the
//! cursor to the window's end. Listing stops cleanly before the invocation's deadline, and after
//! `max_pages` pages per status, so every status is read every run. Then drive what was stored
//! (new work first, [`DRIVE_CONCURRENCY`] at once), and sweep what an earlier run left unsettled
//! (a backlog is driven there).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{FailureKind, Result};
use crate::metrics::{names, Unit};
use crate::orders::notifications::NotificationClock;
use crate::orders::ports::{ShipmentsQuery, Unreadable};
use crate::orders::processor::{OrderProcessor, Step, Stored};
use crate::runtime::Invocation;
use crate::shipment::{AmazonShipment, ShipmentRecord, ShipmentStatus};
use crate::store::cursors::{cursor_time, CursorKind, CursorStore, PageMark};

/// Statuses the poller reads, one getShipments call each (new work first).
pub const POLLED_STATUSES: [ShipmentStatus; 5] = [
    ShipmentStatus::Accepted,
    ShipmentStatus::Created,
    ShipmentStatus::Cancelled,
    ShipmentStatus::Confirmed,
    ShipmentStatus::Shipped,
];
/// The statuses of new work, read again on every extra pass of a run.
pub const NEW_WORK_STATUSES: [ShipmentStatus; 2] =
    [ShipmentStatus::Accepted, ShipmentStatus::Created];

/// Shipments driven at once. One drive is several DynamoDB round trips plus Amazon's answer,
/// so one at a time drains a burst at 1/(drive time), well below processShipment's 1 request/s;
/// the shared rate limiter spaces the CONFIRMs, and every drive step is safe to repeat and saves
/// with optimistic concurrency. 8 keeps the limiter busy without piling up waiters.
pub const DRIVE_CONCURRENCY: usize = 8;

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
    /// While a notification of ours was handled within this long, notifications bring new
    /// work in seconds and a run makes its one full pass only; after this long without one
    /// (notifications off, broken, or simply nothing happening) the extra passes resume.
    /// Zero: always make the extra passes.
    pub notifications_quiet: Duration,
    /// The longest window one getShipments listing asks for (`lastUpdatedBefore` −
    /// `lastUpdatedAfter`): after an outage the backlog is read window by window.
    pub max_window: Duration,
    /// Pages read per location and status in one pass; the rest waits for the next pass, its
    /// place kept in the cursor, so one busy status cannot starve the others or the driving.
    pub max_pages: usize,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(300),
            first_lookback: Duration::from_secs(24 * 3600),
            reserve: Duration::from_secs(5),
            pass_interval: Duration::from_secs(15),
            notifications_quiet: Duration::from_secs(600),
            max_window: Duration::from_secs(3600),
            max_pages: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollReport {
    pub passes: usize,
    /// A notification was handled within `notifications_quiet`: no extra passes this run.
    pub notifications_flowing: bool,
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
    /// Records without an ID (nothing to read back or quarantine): counted on the cursor, in
    /// `AmazonRecordsUnreadable` and logged; they never hold the cursor.
    pub nameless: usize,
    /// Times a cursor was saved (a page's token kept, or a window finished).
    pub cursor_saves: usize,
    /// Location/status polls that stopped before reaching the present (the deadline or
    /// `max_pages`); the next run goes on from the saved page.
    pub behind: Vec<String>,
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
    /// One full pass (every status, then the sweep), then, unless notifications are flowing,
    /// passes over new work only, every `pass_interval`, while the invocation has time for
    /// another.
    pub async fn run(&self, inv: &Invocation) -> Result<PollReport> {
        let mut report = PollReport::default();
        let mut pass_started = tokio::time::Instant::now();
        self.pass(&POLLED_STATUSES, true, inv, &mut report).await?;
        let interval = self.settings.pass_interval;
        if !interval.is_zero() {
            report.notifications_flowing = self.notifications_flowing().await?;
        }
        while !interval.is_zero()
            && !report.notifications_flowing
            && inv.remaining() >= interval + self.settings.reserve
        {
            tokio::time::sleep_until(pass_started + interval).await;
            pass_started = tokio::time::Instant::now();
            self.pass(&NEW_WORK_STATUSES, false, inv, &mut report)
                .await?;
        }
        tracing::info!(report = ?report, "order poll finished");
        Ok(report)
    }

    /// Whether a notification of ours was handled within `notifications_quiet`
    /// (`NotificationClock`).
    async fn notifications_flowing(&self) -> Result<bool> {
        let quiet = self.settings.notifications_quiet;
        if quiet.is_zero() {
            return Ok(false);
        }
        let quiet = chrono::Duration::from_std(quiet).unwrap_or(chrono::Duration::MAX);
        Ok(NotificationClock::last(self.cursors)
            .await?
            .is_some_and(|t| Utc::now() - t < quiet))
    }

    async fn pass(
        &self,
        statuses: &[ShipmentStatus],
        sweep: bool,
        inv: &Invocation,
        report: &mut PollReport,
    ) -> Result<()> {
        // Windows end here: the next whole second (`lastUpdatedBefore` is strict and sent in
        // whole seconds), so whatever changed before this run is in its windows.
        let started = cursor_time(Utc::now()) + chrono::Duration::seconds(1);
        report.passes += 1;
        let locations = self.processor.locations.locations().await?;
        report.locations = 0;
        let mut to_drive = Vec::new();
        'listing: for loc in locations.iter().filter(|l| l.order_sync) {
            report.locations += 1;
            for status in statuses {
                if inv.remaining() < self.settings.reserve {
                    report.errors.push(format!(
                        "stopped before {}/{status}: invocation nearly out of time",
                        loc.location_id
                    ));
                    break 'listing;
                }
                if let Err(e) = self
                    .poll_one(
                        &loc.location_id,
                        status.as_str(),
                        started,
                        inv,
                        report,
                        &mut to_drive,
                    )
                    .await
                {
                    // The cursor keeps the last stored page; the next run reads on from there.
                    tracing::error!(location_id = %loc.location_id, status = status.as_str(), error = %e, "poll failed");
                    let failure = format!("{}/{status}: {e}", loc.location_id);
                    report.errors.push(failure.clone());
                    report.failed_polls.push(failure);
                }
            }
        }
        self.drive_all(to_drive, inv, report).await;
        if sweep && inv.remaining() >= self.settings.reserve {
            let (swept, errors) = self.processor.sweep(inv).await?;
            report.swept += swept;
            report.errors.extend(errors);
        }
        Ok(())
    }

    /// Drives what a pass stored, up to [`DRIVE_CONCURRENCY`] at once, in listing order (new
    /// work first); none is started once the invocation is nearly out of time (the sweep of a
    /// later run picks those up).
    async fn drive_all(
        &self,
        to_drive: Vec<ShipmentRecord>,
        inv: &Invocation,
        report: &mut PollReport,
    ) {
        let mut seen = std::collections::HashSet::new();
        // Listed under two statuses: driven once (`drive` reads the stored record anyway).
        let unique = to_drive.into_iter().filter(|r| seen.insert(r.id.clone()));
        let outcomes: Vec<_> = futures::stream::iter(unique)
            .map(|r| async move {
                if inv.remaining() < self.settings.reserve {
                    return None;
                }
                let outcome = self.processor.drive_traced(&r, inv).await;
                Some((r.id, outcome))
            })
            .buffer_unordered(DRIVE_CONCURRENCY)
            .collect()
            .await;
        for (id, outcome) in outcomes.into_iter().flatten() {
            match outcome {
                Ok(_) => report.driven += 1,
                Err(e) => {
                    tracing::warn!(shipment_id = %id, error = %e, "could not finish shipment; next run retries");
                    report.errors.push(format!("shipment {id}: {e}"));
                }
            }
        }
    }

    /// Lists one location/status window by window up to `started`, storing each page and then
    /// saving the cursor; what it stored is added to `to_drive`.
    async fn poll_one(
        &self,
        location_id: &str,
        status: &str,
        started: DateTime<Utc>,
        inv: &Invocation,
        report: &mut PollReport,
        to_drive: &mut Vec<ShipmentRecord>,
    ) -> Result<()> {
        let kind = CursorKind::Shipments;
        let mut cursor = self.cursors.read(kind, location_id, status).await?;
        let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        // Nothing older than the first lookback is wanted: that is where a new cursor stands.
        let at = *cursor
            .at
            .get_or_insert(cursor_time(started - span(self.settings.first_lookback)));
        let mut window = match cursor.mark.clone() {
            Some(m) if m.before > at => Some(Window::resume(m)),
            _ => Some(Window::after(
                at,
                started,
                self.settings.overlap,
                self.settings.max_window,
            )),
        };
        let mut pages = 0;
        // A whole window in one page was sparse: the next may be twice as long, or reach the
        // present after an empty one (a fresh cursor's first lookback then costs a call, not
        // one per `max_window`); a dense one keeps the cap.
        let mut span = self.settings.max_window;
        while let Some(w) = window.take() {
            let first_page = pages;
            let mut query = ShipmentsQuery {
                location_id: location_id.to_string(),
                status: status.to_string(),
                last_updated_after: w.after,
                last_updated_before: Some(w.before),
                pagination_token: w.token.clone(),
            };
            loop {
                if pages >= self.settings.max_pages || inv.remaining() < self.settings.reserve {
                    report.behind.push(format!("{location_id}/{status}"));
                    return Ok(());
                }
                let page = match self.processor.amazon.get_shipments(&query).await {
                    // A kept token Amazon no longer takes: read the window again from its start.
                    Err(e)
                        if query.pagination_token.is_some()
                            && query.pagination_token == w.token
                            && e.kind() == FailureKind::Message =>
                    {
                        tracing::warn!(location_id, status, error = %e, "a kept page token was refused; reading its window again");
                        query.pagination_token = None;
                        continue;
                    }
                    page => page?,
                };
                pages += 1;
                report.pages += 1;
                let listed = page.items.len() + page.unreadable.len();
                let nameless = self
                    .store_page(
                        location_id,
                        status,
                        page.items,
                        page.unreadable,
                        report,
                        to_drive,
                    )
                    .await?;
                if nameless > 0 {
                    cursor.unreadable += nameless as u64;
                    report.nameless += nameless;
                    self.processor.metrics.put(
                        names::AMAZON_RECORDS_UNREADABLE,
                        nameless as f64,
                        Unit::Count,
                        &[],
                    );
                }
                if let Some(c) = &self.processor.crash_points {
                    c.reached(Step::PagesStored, location_id).await;
                }
                match &page.next_token {
                    Some(t) => {
                        query.pagination_token = Some(t.clone());
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
                if !self
                    .cursors
                    .save(kind, location_id, status, &cursor)
                    .await?
                {
                    // A newer run got further: it carries on from there.
                    return Ok(());
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
                        .then(|| Window::after(w.before, started, self.settings.overlap, span));
                    break;
                }
            }
        }
        Ok(())
    }

    /// Stores one page's shipments (reading each unreadable one back alone, quarantining what
    /// still cannot be read); returns how many records had no ID at all.
    async fn store_page(
        &self,
        location_id: &str,
        status: &str,
        items: Vec<crate::spapi::Shipment>,
        mut unreadable: Vec<Unreadable>,
        report: &mut PollReport,
        to_drive: &mut Vec<ShipmentRecord>,
    ) -> Result<usize> {
        let mut readable = Vec::with_capacity(items.len());
        for item in &items {
            match AmazonShipment::from_shipment(item) {
                Ok(s) => readable.push(s),
                Err(e) => unreadable.push(Unreadable {
                    id: Some(item.id.clone()).filter(|id| !id.is_empty()),
                    error: e.to_string(),
                }),
            }
        }
        report.shipments_seen += readable.len() + unreadable.len();
        let mut nameless = 0;
        for bad in unreadable {
            let Some(id) = bad.id else {
                // Nothing to read back or quarantine by. When Amazon mends the record its
                // lastUpdatedDateTime moves, and a later window meets it again.
                nameless += 1;
                tracing::error!(location_id, status, error = %bad.error, alert = "shipment_unreadable", "a shipment without an id in getShipments; counted, the cursor moves on");
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
                        .quarantine(&id, location_id, &ShipmentStatus::from(status), &error)
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
        Ok(nameless)
    }
}

/// A window length past any lookback (`chrono::Duration::from_std` must still take it).
pub(crate) const UNBOUNDED: Duration = Duration::from_secs(3650 * 24 * 3600);

/// One listing window: `(after, before)`, and where in it to go on.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub after: DateTime<Utc>,
    pub before: DateTime<Utc>,
    pub token: Option<String>,
}

impl Window {
    pub(crate) fn resume(m: PageMark) -> Self {
        Self {
            after: m.after,
            before: m.before,
            token: Some(m.token),
        }
    }

    /// The window after a cursor at `at`: from `at − overlap` to at most `max_window` later,
    /// never past `now` (a cursor already there re-reads its overlap: what changed within the
    /// second it stands on).
    pub(crate) fn after(
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        overlap: Duration,
        max_window: Duration,
    ) -> Self {
        let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        Self {
            after: cursor_time(at - span(overlap)),
            before: cursor_time(now.min(at + span(max_window))).max(at),
            token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::events::EventName;
    use crate::orders::ports::UnmappedSkuAction;
    use crate::orders::tests::{harness, inv, CrashAt};
    use crate::shipment::{fixtures, Stage};
    use crate::store::cursors::{Cursor, MemoryCursorStore};
    use crate::store::inventory::InventoryStore;
    use crate::store::shipments::ShipmentStore;

    fn one_pass() -> PollSettings {
        PollSettings {
            pass_interval: Duration::ZERO,
            ..PollSettings::default()
        }
    }

    fn now_str() -> String {
        crate::shipment::sort_time(Utc::now())
    }

    /// A poller that would pass every 300 ms of a 1.2 s invocation, with the notification
    /// clock last moved `ago` (never when `None`); `quiet` is the setting.
    async fn run_with_clock(ago: Option<chrono::Duration>, quiet: Duration) -> (PollReport, bool) {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let cursors = Arc::new(MemoryCursorStore::new());
        if let Some(ago) = ago {
            NotificationClock::new(cursors.clone())
                .note(Some(Utc::now() - ago))
                .await
                .unwrap();
        }
        let poller = OrderPoller {
            processor: &h.p,
            cursors: cursors.as_ref(),
            settings: PollSettings {
                pass_interval: Duration::from_millis(300),
                reserve: Duration::from_millis(100),
                notifications_quiet: quiet,
                ..PollSettings::default()
            },
        };
        // A shipment that appears after the first pass, with no notification for it.
        let amazon = h.amazon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
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
        let late = h.store.get("LATE").await.unwrap().is_some();
        (report, late)
    }

    /// Notifications flowing (one handled a minute ago, the quiet window 10 minutes): the run
    /// makes its one full pass and ends, holding the function for that pass only.
    #[tokio::test]
    async fn one_pass_while_notifications_flow() {
        let (report, late) =
            run_with_clock(Some(chrono::Duration::minutes(1)), Duration::from_secs(600)).await;
        assert!(report.notifications_flowing, "{report:?}");
        assert_eq!(report.passes, 1, "no wait held: {report:?}");
        assert!(!late, "left to its notification (or the next run)");
    }

    /// No notification for longer than the quiet window, or never one: the passes resume and
    /// polling alone picks up the new shipment within the run.
    #[tokio::test]
    async fn the_passes_resume_when_notifications_go_quiet() {
        for ago in [Some(chrono::Duration::minutes(11)), None] {
            let (report, late) = run_with_clock(ago, Duration::from_secs(600)).await;
            assert!(!report.notifications_flowing, "{ago:?}: {report:?}");
            assert!(report.passes >= 3, "{ago:?}: {report:?}");
            assert!(late, "{ago:?}: polling alone found it within the run");
        }
    }

    /// The setting at 0 switches the decision off: the passes are made whatever notifications do.
    #[tokio::test]
    async fn a_quiet_window_of_zero_always_makes_the_passes() {
        let (report, late) =
            run_with_clock(Some(chrono::Duration::seconds(5)), Duration::ZERO).await;
        assert!(!report.notifications_flowing, "{report:?}");
        assert!(report.passes >= 3, "{report:?}");
        assert!(late);
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
        // Read back once as ACCEPTED (every status is listed before anything is driven, so the
        // CONFIRMED listing of this pass does not see it yet).
        assert_eq!(report.read_back, 1, "{report:?}");
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

    /// A long outage: the cursor stands 6 hours back and the shipments of those hours wait.
    /// Each run lists a bounded part (here 3 pages of 2 per status), keeps its place after every
    /// stored page, and the next run goes on from there: the cursor moves on every run, and
    /// every shipment is stored and confirmed exactly once.
    #[tokio::test]
    async fn a_backlog_is_read_in_bounded_parts_and_the_cursor_moves_every_run() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let now = Utc::now();
        let six_hours_ago = now - chrono::Duration::hours(6);
        for i in 0..40 {
            let at = six_hours_ago + chrono::Duration::minutes(9 * i);
            h.amazon.put(fixtures::shipment(
                &format!("S{i:02}"),
                "ACCEPTED",
                &crate::shipment::sort_time(at),
                &[("A", 1)],
            ));
        }
        let cursors = MemoryCursorStore::new();
        cursors
            .advance(CursorKind::Shipments, "LOC1", "ACCEPTED", six_hours_ago)
            .await
            .unwrap();
        let poller = OrderPoller {
            processor: &h.p,
            cursors: &cursors,
            settings: PollSettings {
                max_pages: 3,
                ..one_pass()
            },
        };
        let mut seen = vec![cursors
            .read(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap()];
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs < 30, "the backlog never drained");
            let report = poller.run(&inv()).await.unwrap();
            assert!(report.failed_polls.is_empty(), "{report:?}");
            let c = cursors
                .read(CursorKind::Shipments, "LOC1", "ACCEPTED")
                .await
                .unwrap();
            if !report.behind.iter().any(|b| b == "LOC1/ACCEPTED") {
                assert!(c.mark.is_none(), "caught up: no half-read window {c:?}");
                assert!(c.at.unwrap() > now, "{c:?}");
                break;
            }
            assert_ne!(Some(&c), seen.last(), "run {runs} moved the cursor");
            // A half-read window never moves `at` past what is stored.
            assert!(c.at.unwrap() <= now, "{c:?}");
            seen.push(c);
        }
        assert!(
            runs >= 5,
            "40 shipments at 6 a run take several runs: {runs}"
        );
        let windows: std::collections::BTreeSet<_> = seen
            .iter()
            .filter_map(|c| c.mark.as_ref().map(|m| (m.after, m.before)))
            .collect();
        for (after, before) in &windows {
            assert!(
                *before - *after <= chrono::Duration::hours(1) + chrono::Duration::minutes(5),
                "a window is at most max_window + overlap: {after} .. {before}"
            );
        }
        // Driving is bounded only by the deadline: a last run sweeps whatever is left.
        poller.run(&inv()).await.unwrap();
        let mut confirms = h.amazon.confirms.lock().unwrap().clone();
        confirms.sort();
        let expected: Vec<String> = (0..40).map(|i| format!("S{i:02}")).collect();
        assert_eq!(confirms, expected, "each confirmed exactly once");
        for id in &expected {
            assert_eq!(
                h.store.get(id).await.unwrap().unwrap().stage,
                Stage::HandedOver,
                "{id}"
            );
        }
    }

    /// Amazon answering CONFIRM slowly (as a real drive's round trips add up): the drives of
    /// one pass overlap, at most `DRIVE_CONCURRENCY` at a time, so N shipments take about
    /// N / concurrency drive times instead of N.
    #[tokio::test]
    async fn drives_overlap_up_to_the_concurrency_bound() {
        struct SlowConfirm {
            inner: Arc<crate::orders::ports::MemoryAmazon>,
            in_flight: std::sync::atomic::AtomicUsize,
            most: std::sync::atomic::AtomicUsize,
        }
        #[async_trait::async_trait]
        impl crate::orders::ports::ShipmentsApi for SlowConfirm {
            async fn get_shipments(
                &self,
                q: &ShipmentsQuery,
            ) -> Result<crate::orders::ports::AmazonPage<crate::spapi::Shipment>> {
                self.inner.get_shipments(q).await
            }
            async fn get_shipment(&self, id: &str) -> Result<crate::spapi::Shipment> {
                self.inner.get_shipment(id).await
            }
            async fn confirm(&self, id: &str) -> Result<()> {
                use std::sync::atomic::Ordering::SeqCst;
                let now = self.in_flight.fetch_add(1, SeqCst) + 1;
                self.most.fetch_max(now, SeqCst);
                tokio::time::sleep(SLOW).await;
                self.in_flight.fetch_sub(1, SeqCst);
                self.inner.confirm(id).await
            }
            async fn reject(
                &self,
                id: &str,
                reference_id: &str,
                lines: &[(String, u32)],
                reason: crate::orders::ports::RejectReason,
            ) -> Result<()> {
                self.inner.reject(id, reference_id, lines, reason).await
            }
            async fn list_returns(
                &self,
                q: &crate::orders::ports::ReturnsQuery,
            ) -> Result<crate::orders::ports::AmazonPage> {
                self.inner.list_returns(q).await
            }
            async fn get_return(&self, id: &str) -> Result<serde_json::Value> {
                self.inner.get_return(id).await
            }
        }
        const SLOW: Duration = Duration::from_millis(200);
        let n = 2 * DRIVE_CONCURRENCY;

        let mut h = harness(&["A"], UnmappedSkuAction::Hold);
        for i in 0..n {
            h.amazon.put(fixtures::shipment(
                &format!("S{i:02}"),
                "ACCEPTED",
                &now_str(),
                &[("A", 1)],
            ));
        }
        let slow = Arc::new(SlowConfirm {
            inner: h.amazon.clone(),
            in_flight: Default::default(),
            most: Default::default(),
        });
        h.p.amazon = slow.clone();
        let cursors = MemoryCursorStore::new();
        let started = std::time::Instant::now();
        let report = poller(&h, &cursors).run(&inv()).await.unwrap();
        let took = started.elapsed();

        assert_eq!(report.driven, n, "{report:?}");
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), n);
        assert_eq!(
            slow.most.load(std::sync::atomic::Ordering::SeqCst),
            DRIVE_CONCURRENCY,
            "drives overlap, and never more than the bound"
        );
        // Serially this is n × 200 ms; overlapped about n / DRIVE_CONCURRENCY × 200 ms.
        assert!(took < SLOW * n as u32 / 2, "{took:?}");
    }

    /// A kept token that Amazon refuses (expired): the window is read again from its start.
    #[tokio::test]
    async fn a_refused_page_token_reads_its_window_again() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        for i in 0..3 {
            h.amazon.put(fixtures::shipment(
                &format!("S{i}"),
                "CANCELLED",
                &now_str(),
                &[("A", 1)],
            ));
        }
        let cursors = MemoryCursorStore::new();
        let at = Utc::now() - chrono::Duration::minutes(10);
        cursors
            .save(
                CursorKind::Shipments,
                "LOC1",
                "CANCELLED",
                &Cursor {
                    at: Some(at),
                    mark: Some(PageMark {
                        after: at - chrono::Duration::minutes(5),
                        before: Utc::now() + chrono::Duration::seconds(1),
                        token: "not a key Amazon knows".into(),
                    }),
                    unreadable: 0,
                },
            )
            .await
            .unwrap();
        // MemoryAmazon takes any token as a key; refuse this one as Amazon would (400).
        *h.amazon.refused_token.lock().unwrap() = Some("not a key Amazon knows".into());
        let report = poller(&h, &cursors).run(&inv()).await.unwrap();
        assert!(report.failed_polls.is_empty(), "{report:?}");
        for i in 0..3 {
            assert_eq!(
                h.store.get(&format!("S{i}")).await.unwrap().unwrap().stage,
                Stage::Cancelled
            );
        }
        let c = cursors
            .read(CursorKind::Shipments, "LOC1", "CANCELLED")
            .await
            .unwrap();
        assert!(c.mark.is_none() && c.at.unwrap() > at, "{c:?}");
    }

    /// A record without an ID cannot be read back or held: it is counted (report, cursor,
    /// metric) and logged, and the cursor moves on.
    #[tokio::test]
    async fn a_record_without_an_id_is_counted_and_never_holds_the_cursor() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        h.amazon.put(fixtures::shipment(
            "S1",
            "ACCEPTED",
            &now_str(),
            &[("A", 1)],
        ));
        h.amazon
            .put(fixtures::shipment("", "ACCEPTED", &now_str(), &[("A", 1)]));
        h.amazon
            .unreadable_in_pages
            .lock()
            .unwrap()
            .insert(String::new());
        let cursors = MemoryCursorStore::new();
        let report = poller(&h, &cursors).run(&inv()).await.unwrap();
        assert_eq!(report.nameless, 1, "{report:?}");
        assert!(report.failed_polls.is_empty(), "{report:?}");
        let c = cursors
            .read(CursorKind::Shipments, "LOC1", "ACCEPTED")
            .await
            .unwrap();
        assert_eq!(c.unreadable, 1);
        assert!(c.mark.is_none() && c.at.unwrap() > Utc::now() - chrono::Duration::seconds(5));
        assert_eq!(
            h.metrics
                .sum(crate::metrics::names::AMAZON_RECORDS_UNREADABLE),
            1.0
        );
        assert_eq!(*h.amazon.confirms.lock().unwrap(), vec!["S1".to_string()]);
        // The next run does not count it again (its window is behind the cursor).
        let again = poller(&h, &cursors).run(&inv()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(again.nameless <= 1, "{again:?}");
    }
}
