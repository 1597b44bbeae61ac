//! Unit tests of the processor over in-memory twins (the e2e suites repeat the important ones
//! against moto and the simulator).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::events::{EventName, MemoryEventSink};
use crate::idempotency::{Idempotency, MemoryIdempotencyStore};
use crate::orders::ports::{
    MemoryAmazon, MemoryCatalog, MemoryLocations, OrderLocation, RejectReason, UnmappedSkuAction,
};
use crate::orders::processor::{CrashPoints, OrderProcessor, Step};
use crate::orders::rules::UnmappedSkuRule;
use crate::runtime::Invocation;
use crate::shipment::{fixtures, AmazonShipment, Stage};
use crate::store::inventory::{InventoryStore, MemoryInventoryStore};
use crate::store::shipments::{MemoryShipmentStore, ShipmentStore};

pub(crate) struct CrashAt {
    pub step: Step,
    pub fired: AtomicBool,
}

#[async_trait]
impl CrashPoints for CrashAt {
    async fn reached(&self, step: Step, _id: &str) {
        if step == self.step && !self.fired.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

pub(crate) struct Harness {
    pub p: OrderProcessor,
    pub amazon: Arc<MemoryAmazon>,
    pub events: Arc<MemoryEventSink>,
    pub inventory: Arc<MemoryInventoryStore>,
    pub store: Arc<MemoryShipmentStore>,
    pub metrics: crate::metrics::RecordedMetrics,
}

pub(crate) fn harness(mapped: &[&str], action: UnmappedSkuAction) -> Harness {
    let amazon = Arc::new(MemoryAmazon::new());
    let events = Arc::new(MemoryEventSink::new());
    let inventory = Arc::new(MemoryInventoryStore::new());
    let store = Arc::new(MemoryShipmentStore::new());
    let (metrics, recorded) = crate::metrics::Metrics::memory("test", "orders");
    let p = OrderProcessor {
        shipments: store.clone(),
        inventory: inventory.clone(),
        amazon: amazon.clone(),
        events: events.clone(),
        idempotency: Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new()),
            Duration::from_secs(3600),
        ),
        locations: Arc::new(MemoryLocations::new(vec![OrderLocation {
            location_id: "LOC1".into(),
            hub: "HUB1".into(),
            order_sync: true,
            return_location_id: Some("RLOC1".into()),
            unmapped_sku: action,
            adopt_existing: Default::default(),
        }])),
        rules: vec![Arc::new(UnmappedSkuRule {
            catalog: Arc::new(MemoryCatalog::with(mapped)),
        })],
        crash_points: None,
        metrics,
    };
    Harness {
        p,
        amazon,
        events,
        inventory,
        store,
        metrics: recorded,
    }
}

pub(crate) fn inv() -> Invocation {
    Invocation::new("test", Duration::from_secs(60))
}

fn names(events: &MemoryEventSink) -> Vec<(EventName, String)> {
    events
        .events()
        .into_iter()
        .map(|e| (e.name, e.event_id))
        .collect()
}

fn unique_count(events: &MemoryEventSink, name: EventName) -> usize {
    let mut ids: Vec<String> = names(events)
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, id)| id)
        .collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

async fn seed(h: &Harness, v: Value) -> AmazonShipment {
    h.amazon.put(v.clone());
    AmazonShipment::from_json(&v).unwrap()
}

fn new_shipment(id: &str) -> Value {
    fixtures::shipment(
        id,
        "ACCEPTED",
        "2026-11-21T08:00:00.000Z",
        &[("A", 2), ("B", 1)],
    )
}

#[tokio::test]
async fn new_shipment_is_confirmed_once_reserved_and_handed_over() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    let r = h.p.ingest(&s, &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::HandedOver);
    assert_eq!(*h.amazon.confirms.lock().unwrap(), vec!["S1".to_string()]);
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 2);
    let evs = h.events.events();
    assert_eq!(evs.len(), 1);
    let detail = evs[0].detail();
    assert_eq!(detail["shipmentId"], "S1");
    assert_eq!(detail["hub"], "HUB1");
    assert_eq!(detail["lines"][0]["sku"], "A");
    assert_eq!(detail["lines"][0]["quantity"], 2);
    assert_eq!(detail["lines"][0]["giftWrap"], true);
    assert_eq!(detail["priority"], "HIGH");
    assert_eq!(detail["prime"], true);
    assert!(!detail.to_string().contains("Secret Street"));

    // The same page again (overlap window) and a notification: nothing new happens.
    h.p.ingest(&s, &inv()).await.unwrap();
    h.p.refresh("S1", &inv()).await.unwrap();
    // Metrics: seen and confirmed once, with the latency since Amazon created it.
    use crate::metrics::names as m;
    assert_eq!(h.metrics.sum(m::ORDERS_SEEN), 1.0);
    assert_eq!(h.metrics.sum(m::ORDERS_CONFIRMED), 1.0);
    let latency = h
        .metrics
        .documents()
        .into_iter()
        .find(|d| d.get(m::CONFIRM_LATENCY).is_some());
    let latency = latency.expect("a ConfirmLatency document");
    assert_eq!(latency["Location"], "LOC1");
    assert!(latency[m::CONFIRM_LATENCY].as_f64().unwrap() >= 0.0);
    // Read by no alarm: a log line, not a metric, unless the dashboard is on.
    assert!(latency.get("_aws").is_none(), "{latency}");
    assert_eq!(h.amazon.confirms.lock().unwrap().len(), 1);
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 2);
    assert_eq!(unique_count(&h.events, EventName::ShipmentAccepted), 1);
}

#[tokio::test]
async fn unmapped_sku_is_held_then_released_by_a_person() {
    let h = harness(&["A"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    let r = h.p.ingest(&s, &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Held);
    assert!(r.hold_reasons[0].contains('B'));
    assert!(h.amazon.confirms.lock().unwrap().is_empty());
    assert_eq!(names(&h.events)[0].0, EventName::ShipmentHeld);
    // Held shipments are listed for the warehouse.
    let held = h.store.list(Stage::Held, None, 10, None).await.unwrap();
    assert_eq!(held.items.len(), 1);

    let r = h.p.release_hold("S1", &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::HandedOver);
    assert_eq!(h.amazon.confirms.lock().unwrap().len(), 1);
    use crate::metrics::names as m;
    assert_eq!(h.metrics.sum(m::ORDERS_HELD), 1.0);
    assert_eq!(h.metrics.sum(m::ORDERS_CONFIRMED), 1.0);
}

#[tokio::test]
async fn unmapped_sku_rejects_when_the_location_says_so() {
    let h = harness(&["A"], UnmappedSkuAction::Reject);
    let s = seed(&h, new_shipment("S1")).await;
    let r = h.p.ingest(&s, &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Rejected);
    assert_eq!(*h.amazon.rejects.lock().unwrap(), vec!["S1".to_string()]);
    assert!(h.amazon.confirms.lock().unwrap().is_empty());
    assert_eq!(h.metrics.sum(crate::metrics::names::ORDERS_REJECTED), 1.0);
    // Amazon's CANCELLED view of our own rejection is not an Amazon-side cancellation.
    h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(unique_count(&h.events, EventName::ShipmentCancelled), 0);
}

#[tokio::test]
async fn a_location_without_order_sync_is_never_confirmed() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let mut v = new_shipment("S1");
    v["locationId"] = "ELSEWHERE".into();
    let s = seed(&h, v).await;
    let r = h.p.ingest(&s, &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Held);
    assert!(
        r.hold_reasons[0].contains("ELSEWHERE"),
        "{:?}",
        r.hold_reasons
    );
    assert!(h.amazon.confirms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_held_shipment_can_be_rejected_by_a_person() {
    let h = harness(&[], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap();
    let r =
        h.p.reject_held("S1", RejectReason::OutOfStock, &inv())
            .await
            .unwrap();
    assert_eq!(r.stage, Stage::Rejected);
    h.p.reject_held("S1", RejectReason::OutOfStock, &inv())
        .await
        .unwrap();
    assert_eq!(h.amazon.rejects.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn older_and_duplicate_views_change_nothing() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap();
    let v1 = h.store.get("S1").await.unwrap().unwrap().version;
    // An older view (from before CONFIRM) arriving late.
    let (_, outcome) = h.p.store(&s).await.unwrap();
    assert_eq!(outcome, crate::orders::processor::Stored::Unchanged);
    assert_eq!(h.store.get("S1").await.unwrap().unwrap().version, v1);
}

#[tokio::test]
async fn marketplace_cancels_one_line_then_the_whole_shipment() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap();

    let mut v = h.amazon.shipment_json("S1").unwrap();
    fixtures::cancel_line(&mut v, 0, 1);
    v["lastUpdatedDateTime"] = "2026-11-21T09:00:00.000Z".into();
    h.amazon.put(v.clone());
    h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 1);
    let cancelled: Vec<_> = h
        .events
        .events()
        .into_iter()
        .filter(|e| e.name == EventName::ShipmentCancelled)
        .collect();
    assert_eq!(cancelled.len(), 1);
    let d = cancelled[0].detail();
    assert_eq!(d["wholeShipment"], false);
    assert_eq!(d["lines"][0]["sku"], "A");
    assert_eq!(d["lines"][0]["cancelledQuantity"], 1);
    assert_eq!(d["lines"][0]["remainingQuantity"], 1);

    v["status"] = "CANCELLED".into();
    v["lastUpdatedDateTime"] = "2026-11-21T09:05:00.000Z".into();
    h.amazon.put(v);
    let r = h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Cancelled);
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 0);
    assert_eq!(h.inventory.position("LOC1", "B").await.unwrap().reserved, 0);
    assert_eq!(unique_count(&h.events, EventName::ShipmentCancelled), 2);
    // Replays change nothing.
    h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(unique_count(&h.events, EventName::ShipmentCancelled), 2);
}

#[tokio::test]
async fn cancelled_before_confirm_stops_the_confirm() {
    let h = harness(&[], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap(); // held
    let mut v = h.amazon.shipment_json("S1").unwrap();
    v["status"] = "CANCELLED".into();
    v["lastUpdatedDateTime"] = "2026-11-21T09:05:00.000Z".into();
    h.amazon.put(v);
    let r = h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Cancelled);
    assert!(h.p.release_hold("S1", &inv()).await.is_err());
    assert!(h.amazon.confirms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn applied_then_failed_confirm_is_reconciled_not_repeated() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    *h.amazon.apply_then_fail.lock().unwrap() = true;
    let s = seed(&h, new_shipment("S1")).await;
    let r = h.p.ingest(&s, &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::HandedOver);
    assert_eq!(h.amazon.confirms.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn shipped_releases_the_reservation() {
    let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap();
    let mut v = h.amazon.shipment_json("S1").unwrap();
    v["status"] = "SHIPPED".into();
    v["lastUpdatedDateTime"] = "2026-11-21T10:00:00.000Z".into();
    h.amazon.put(v);
    let r = h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(r.stage, Stage::Shipped);
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 0);
}

/// A crash between each pair of steps: the invocation is dropped at its deadline, the claim it
/// held expires, and the next run finishes the job with one CONFIRM and one hand-over.
#[tokio::test]
async fn a_crash_between_any_two_steps_loses_and_duplicates_nothing() {
    for step in [
        Step::Stored,
        Step::ConfirmCalled,
        Step::Confirmed,
        Step::Reserved,
        Step::Published,
    ] {
        let mut h = harness(&["A", "B"], UnmappedSkuAction::Hold);
        h.p.crash_points = Some(Arc::new(CrashAt {
            step,
            fired: AtomicBool::new(false),
        }));
        let s = seed(&h, new_shipment("S1")).await;
        let short = Invocation::new("crashing", Duration::from_millis(200));
        let crashed =
            tokio::time::timeout(Duration::from_millis(200), h.p.ingest(&s, &short)).await;
        assert!(
            crashed.is_err(),
            "{step:?}: the crash hook must stop the run"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;

        // The next poll sees the same page (overlap) and the sweep drives what is left.
        h.p.ingest(&s, &inv()).await.unwrap();
        h.p.sweep(&inv()).await.unwrap();
        let r = h.store.get("S1").await.unwrap().unwrap();
        assert_eq!(r.stage, Stage::HandedOver, "{step:?}");
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 1, "{step:?}");
        assert_eq!(
            unique_count(&h.events, EventName::ShipmentAccepted),
            1,
            "{step:?}"
        );
        assert_eq!(
            h.inventory.position("LOC1", "A").await.unwrap().reserved,
            2,
            "{step:?}"
        );
    }
}

#[tokio::test]
async fn a_crash_while_applying_a_cancellation_is_finished_later() {
    let mut h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let s = seed(&h, new_shipment("S1")).await;
    h.p.ingest(&s, &inv()).await.unwrap();
    h.p.crash_points = Some(Arc::new(CrashAt {
        step: Step::CancelReleased,
        fired: AtomicBool::new(false),
    }));
    let mut v = h.amazon.shipment_json("S1").unwrap();
    v["status"] = "CANCELLED".into();
    v["lastUpdatedDateTime"] = "2026-11-21T09:05:00.000Z".into();
    h.amazon.put(v);
    let crashed = tokio::time::timeout(Duration::from_millis(200), h.p.refresh("S1", &inv())).await;
    assert!(crashed.is_err());
    // Stored as CANCELLED but the warehouse not yet told: the duplicate notification finishes it.
    h.p.refresh("S1", &inv()).await.unwrap();
    assert_eq!(
        h.store.get("S1").await.unwrap().unwrap().stage,
        Stage::Cancelled
    );
    assert_eq!(unique_count(&h.events, EventName::ShipmentCancelled), 1);
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 0);
}

#[tokio::test]
async fn a_poll_where_one_location_fails_processes_the_others_then_fails() {
    use crate::metrics::Metrics;
    use crate::orders::poller::{OrderPoller, PollSettings};
    use crate::store::cursors::{CursorKind, CursorStore, MemoryCursorStore};

    let mut h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    let location = |id: &str, hub: &str| OrderLocation {
        location_id: id.into(),
        hub: hub.into(),
        order_sync: true,
        return_location_id: None,
        unmapped_sku: UnmappedSkuAction::Hold,
        adopt_existing: Default::default(),
    };
    // The failing location comes first: the one after it must still be polled.
    h.p.locations = Arc::new(MemoryLocations::new(vec![
        location("LOC0", "HUB0"),
        location("LOC1", "HUB1"),
    ]));
    h.amazon
        .failing_locations
        .lock()
        .unwrap()
        .insert("LOC0".into());
    let mut fresh = new_shipment("S1");
    fresh["lastUpdatedDateTime"] = crate::shipment::sort_time(chrono::Utc::now()).into();
    h.amazon.put(fresh);
    let cursors = MemoryCursorStore::new();
    let poller = OrderPoller {
        processor: &h.p,
        cursors: &cursors,
        settings: PollSettings {
            pass_interval: Duration::ZERO,
            ..PollSettings::default()
        },
    };
    let result = poller.run(&inv()).await;
    let report = result.as_ref().unwrap();
    // LOC1 was processed in full ...
    assert_eq!(report.stored_new, 1, "{report:?}");
    assert_eq!(*h.amazon.confirms.lock().unwrap(), vec!["S1".to_string()]);
    assert!(cursors
        .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
        .await
        .unwrap()
        .is_some());
    // ... LOC0 failed on every status and its cursors did not move ...
    assert_eq!(report.failed_polls.len(), 5, "{report:?}");
    assert!(report.failed_polls.iter().all(|f| f.starts_with("LOC0/")));
    assert!(cursors
        .get(CursorKind::Shipments, "LOC0", "ACCEPTED")
        .await
        .unwrap()
        .is_none());
    // ... and the run ends as a failure, counted for the alarm.
    let (metrics, recorded) = Metrics::memory("s", "OrderPoller");
    let e = crate::runtime::finish_run(&metrics, "order poll", result, |r| r.failed_polls.clone())
        .unwrap_err();
    assert!(e.to_string().contains("5 failed: LOC0/ACCEPTED"), "{e}");
    assert_eq!(recorded.alerts(crate::metrics::Alert::RunFailed), 1.0);
}

/// A seller moving from another connector: what that connector confirmed (or packed) before
/// flexbridge's first poll is handed over, never confirmed again, and not packable when packed
/// there; with `ignore`, it is stored and left alone.
#[tokio::test]
async fn shipments_another_connector_confirmed_are_never_confirmed_or_packed_again() {
    use crate::orders::ports::AdoptExisting;
    let mut h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    h.p.locations = location_adopting(AdoptExisting::Hand);
    let confirmed = seed(
        &h,
        fixtures::shipment("OLD1", "CONFIRMED", "2026-11-21T08:00:00.000Z", &[("A", 1)]),
    )
    .await;
    let packed = seed(
        &h,
        fixtures::shipment(
            "OLD2",
            "PACKAGE_CREATED",
            "2026-11-21T08:00:00.000Z",
            &[("B", 1)],
        ),
    )
    .await;
    for s in [&confirmed, &packed] {
        let r = h.p.ingest(s, &inv()).await.unwrap();
        assert_eq!(r.stage, Stage::HandedOver, "{}", r.id);
        assert_eq!(r.handled_elsewhere.as_ref(), Some(&s.record.status));
        // Again (the next poll's overlap): nothing new.
        h.p.ingest(s, &inv()).await.unwrap();
    }
    assert!(
        h.amazon.confirms.lock().unwrap().is_empty(),
        "no CONFIRM sent"
    );
    assert_eq!(unique_count(&h.events, EventName::ShipmentAccepted), 2);
    let handed: Vec<Value> = h.events.events().iter().map(|e| e.detail()).collect();
    assert!(handed
        .iter()
        .any(|d| d["shipmentId"] == "OLD2" && d["handledElsewhere"] == "PACKAGE_CREATED"));
    let old1 = h.store.get("OLD1").await.unwrap().unwrap();
    let old2 = h.store.get("OLD2").await.unwrap().unwrap();
    assert_eq!(
        crate::fulfilment::packing::not_packable(&old1),
        None,
        "confirmed only: ours to pack"
    );
    let why = crate::fulfilment::packing::not_packable(&old2).expect("packed elsewhere");
    assert!(why.contains("another connector"), "{why}");
    // Our own shipments are untouched by this: seen new, confirmed by us.
    let ours = seed(&h, new_shipment("NEW1")).await;
    let r = h.p.ingest(&ours, &inv()).await.unwrap();
    assert_eq!((r.stage, r.handled_elsewhere), (Stage::HandedOver, None));

    // `ignore` (the default): stored, kept current, never acted on.
    let mut h = harness(&["A", "B"], UnmappedSkuAction::Hold);
    h.p.locations = location_adopting(AdoptExisting::Ignore);
    let s = seed(
        &h,
        fixtures::shipment("OLD3", "CONFIRMED", "2026-11-21T08:00:00.000Z", &[("A", 1)]),
    )
    .await;
    assert_eq!(
        h.p.ingest(&s, &inv()).await.unwrap().stage,
        Stage::LeftAlone
    );
    let later = seed(
        &h,
        fixtures::shipment("OLD3", "SHIPPED", "2026-11-21T09:00:00.000Z", &[("A", 1)]),
    )
    .await;
    let r = h.p.ingest(&later, &inv()).await.unwrap();
    assert_eq!(
        (r.stage, r.status),
        (Stage::LeftAlone, crate::spapi::ShipmentStatus::Shipped)
    );
    assert!(h.events.events().is_empty() && h.amazon.confirms.lock().unwrap().is_empty());
    assert_eq!(h.inventory.position("LOC1", "A").await.unwrap().reserved, 0);
}

fn location_adopting(
    adopt_existing: crate::orders::ports::AdoptExisting,
) -> Arc<dyn crate::orders::ports::LocationDirectory> {
    Arc::new(MemoryLocations::new(vec![OrderLocation {
        location_id: "LOC1".into(),
        hub: "HUB1".into(),
        order_sync: true,
        return_location_id: None,
        unmapped_sku: UnmappedSkuAction::Hold,
        adopt_existing,
    }]))
}
