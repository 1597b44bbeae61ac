use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::events::MemoryEventSink;
use crate::spapi::models::inventory::{
    ActionableError, HttpStatusLine, InventoryItemResult, InventoryResponseBody,
};
use crate::spapi::SpApiError;
use crate::store::catalog::{CatalogItem, MemoryCatalogStore};
use crate::store::inventory::{InventoryStore, MemoryInventoryStore};
use crate::store::locations::MemoryLocationStore;
use crate::store::settings::MemorySettingsStore;

/// Amazon's side: absolute quantities with the sequence-number rule of the simulator.
#[derive(Default)]
struct FakeAmazon {
    held: Mutex<HashMap<String, (i64, i64)>>,
    /// Units Amazon holds reserved for its own open orders, per SKU (fetch answers them).
    reserved: Mutex<HashMap<String, i64>>,
    /// How this account reads the pushed quantity: `true` = on hand (Amazon subtracts its
    /// reservations from what we push), `false` = sellable.
    reads_on_hand: AtomicBool,
    invalid: Mutex<HashSet<String>>,
    calls: Mutex<Vec<Vec<(String, i64, i64)>>>,
    /// Right after the next accepted update of this SKU (its answer already written), the
    /// buyer cancels an order of these units: Amazon gives them back to sellable.
    cancel_after_update: Mutex<Option<(String, i64)>>,
}

#[async_trait]
impl InventoryApi for FakeAmazon {
    async fn batch_inventory(
        &self,
        requests: &[InventoryRequest],
    ) -> Result<Vec<InventoryItemResult>, SpApiError> {
        let mut held = self.held.lock().unwrap();
        let mut call = Vec::new();
        let out = requests
            .iter()
            .map(|r| {
                let sku = r.uri.split("skuId=").nth(1).unwrap().to_string();
                if r.uri.contains("fetch") {
                    let held = held.get(&sku).copied().unwrap_or_default();
                    let reserved = self
                        .reserved
                        .lock()
                        .unwrap()
                        .get(&sku)
                        .copied()
                        .unwrap_or(0);
                    let sellable = if self.reads_on_hand.load(Ordering::SeqCst) {
                        held.0 - reserved
                    } else {
                        held.0
                    };
                    return InventoryItemResult {
                        status: HttpStatusLine {
                            status_code: Some(200),
                            reason_phrase: None,
                        },
                        body: InventoryResponseBody {
                            sellable_quantity: Some(sellable.max(0)),
                            reserved_quantity: Some(reserved),
                            client_sequence_number: Some(held.1),
                            ..Default::default()
                        },
                    };
                }
                let body = r.body.clone().unwrap();
                let (q, s) = (body.quantity.unwrap(), body.client_sequence_number.unwrap());
                call.push((sku.clone(), q, s));
                let status = |code| HttpStatusLine {
                    status_code: Some(code),
                    reason_phrase: None,
                };
                if self.invalid.lock().unwrap().contains(&sku) {
                    return InventoryItemResult {
                        status: status(400),
                        body: InventoryResponseBody {
                            actionable_errors: vec![ActionableError {
                                error_type: Some("INVALID_SKU".into()),
                                error_sub_type: Some("unknown".into()),
                            }],
                            ..Default::default()
                        },
                    };
                }
                let cur = held.get(&sku).copied();
                if let Some((cq, cs)) = cur {
                    if s <= cs {
                        return InventoryItemResult {
                            status: status(409),
                            body: InventoryResponseBody {
                                sellable_quantity: Some(cq),
                                client_sequence_number: Some(cs),
                                actionable_errors: vec![ActionableError {
                                    error_type: Some("STALE_CLIENT_SEQUENCE_NUMBER".into()),
                                    error_sub_type: None,
                                }],
                                ..Default::default()
                            },
                        };
                    }
                }
                held.insert(sku.clone(), (q, s));
                let reserved = self.reserved.lock().unwrap().get(&sku).copied();
                let answer = InventoryItemResult {
                    status: status(200),
                    body: InventoryResponseBody {
                        sellable_quantity: Some(q),
                        reserved_quantity: reserved,
                        client_sequence_number: Some(s),
                        ..Default::default()
                    },
                };
                let mut cancel = self.cancel_after_update.lock().unwrap();
                if let Some((_, units)) = cancel.take_if(|(c, _)| *c == sku) {
                    held.get_mut(&sku).unwrap().0 += units;
                    *self.reserved.lock().unwrap().get_mut(&sku).unwrap() -= units;
                }
                answer
            })
            .collect();
        self.calls.lock().unwrap().push(call);
        Ok(out)
    }
}

struct World {
    pusher: Pusher,
    inv: Arc<MemoryInventoryStore>,
    amazon: Arc<FakeAmazon>,
    settings: Arc<MemorySettingsStore>,
    events: Arc<MemoryEventSink>,
    catalog: Arc<MemoryCatalogStore>,
    metrics: crate::metrics::RecordedMetrics,
}

const L: &str = "L1";
const HUB: &str = "H1";

async fn world(skus: &[&str]) -> World {
    let metrics = crate::metrics::Metrics::memory("test", "pusher");
    let inv = Arc::new(MemoryInventoryStore::new());
    let amazon = Arc::new(FakeAmazon::default());
    let settings = Arc::new(MemorySettingsStore::new());
    settings
        .put(names::PUSH_ENABLED, json!(true), None, "t")
        .await
        .unwrap();
    let events = Arc::new(MemoryEventSink::new());
    let catalog = Arc::new(MemoryCatalogStore::new());
    catalog
        .put_items(
            &skus
                .iter()
                .map(|s| CatalogItem {
                    sku: s.to_string(),
                    asin: "B000000000".into(),
                    title: None,
                    product_type: None,
                    enabled: true,
                    safety_stock: None,
                    max_quantity: None,
                    updated_at: "t".into(),
                    source: "t".into(),
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let locations = Arc::new(MemoryLocationStore::new());
    locations
        .put(&Location {
            location_id: L.into(),
            hub_id: HUB.into(),
            name: "l".into(),
            marketplace_id: "M".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        })
        .await
        .unwrap();
    World {
        pusher: Pusher {
            ledger: inv.clone(),
            locations,
            catalog: catalog.clone(),
            settings: settings.clone(),
            amazon: amazon.clone(),
            events: events.clone(),
            concurrency: 2,
            crash_after_send: None,
            metrics: metrics.0,
        },
        metrics: metrics.1,
        inv,
        amazon,
        settings,
        events,
        catalog,
    }
}

impl World {
    async fn stock(&self, sku: &str, n: i64) {
        self.inv.set_on_hand(HUB, sku, n);
        self.inv.mark_pending(L, &[sku.to_string()]).await.unwrap();
    }
    async fn push(&self) -> LocationReport {
        let mut r = self.pusher.push(None, None).await.unwrap();
        r.locations.remove(0)
    }
    fn amazon_has(&self, sku: &str) -> Option<i64> {
        self.amazon.held.lock().unwrap().get(sku).map(|h| h.0)
    }
}

#[tokio::test]
async fn only_differences_go_out_with_growing_sequence_numbers() {
    let w = world(&["A", "B"]).await;
    w.stock("A", 5).await;
    w.stock("B", 3).await;
    let r = w.push().await;
    assert_eq!((r.sent, r.accepted), (2, 2), "{r:?}");
    assert_eq!(w.amazon_has("A"), Some(5));
    assert!(w.inv.pending(L).await.unwrap().is_empty());
    // The same figure again: nothing is sent.
    w.stock("A", 5).await;
    let r = w.push().await;
    assert_eq!((r.sent, r.unchanged), (0, 1));
    // A reservation lowers what is advertised; its sequence number is higher.
    let seq1 = w.amazon.held.lock().unwrap()["A"].1;
    w.inv.set_reservation(L, "A", "S1", "1", 2).await.unwrap();
    let r = w.push().await;
    assert_eq!(r.accepted, 1);
    assert_eq!(w.amazon_has("A"), Some(3));
    assert!(w.amazon.held.lock().unwrap()["A"].1 > seq1);
}

#[tokio::test]
async fn a_stale_sequence_number_is_read_again_and_resent_above_amazons() {
    let w = world(&["A"]).await;
    let future = Utc::now().timestamp_micros() + 60_000_000;
    w.amazon
        .held
        .lock()
        .unwrap()
        .insert("A".into(), (1, future));
    w.stock("A", 9).await;
    let r = w.push().await;
    assert_eq!((r.accepted, r.stale_resent), (1, 1), "{r:?}");
    assert_eq!(
        w.amazon.held.lock().unwrap()["A"],
        (9, future + 1),
        "resent just above Amazon's number"
    );
}

#[tokio::test]
async fn skipped_disabled_and_refused_skus_are_reported() {
    let w = world(&["A", "B"]).await;
    w.amazon.invalid.lock().unwrap().insert("B".into());
    w.stock("A", 4).await;
    w.stock("B", 4).await;
    w.stock("NOPE", 4).await;
    let r = w.push().await;
    assert_eq!(r.accepted, 1);
    assert_eq!(r.errors_count, 1);
    assert!(r.errors[0].note.contains("INVALID_SKU"));
    assert_eq!(r.skipped[0].sku, "NOPE");
    use crate::metrics::names as m;
    assert_eq!(w.metrics.sum(m::INVENTORY_SKUS_PUSHED), 1.0);
    assert_eq!(w.metrics.sum(m::INVENTORY_SKUS_SKIPPED), 1.0);
    assert_eq!(
        w.metrics.alerts(crate::metrics::Alert::InventoryItemError),
        1.0
    );
    assert!(
        w.inv.pending(L).await.unwrap().is_empty(),
        "not retried blindly"
    );
    let stored = w.inv.positions(L, &["B".into()]).await.unwrap();
    assert!(stored[0]
        .push_error
        .as_deref()
        .unwrap()
        .contains("INVALID_SKU"));
    // Disabled: pushed as 0.
    let mut a = w.catalog.get_items(&["A".into()]).await.unwrap();
    a[0].enabled = false;
    w.catalog.put_items(&a).await.unwrap();
    w.inv.mark_pending(L, &["A".into()]).await.unwrap();
    w.push().await;
    assert_eq!(w.amazon_has("A"), Some(0));
}

#[tokio::test]
async fn the_breaker_halts_and_a_person_releases_or_discards() {
    let skus: Vec<String> = (0..10).map(|i| format!("S{i}")).collect();
    let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let w = world(&refs).await;
    for s in &skus {
        w.stock(s, 10).await;
    }
    assert_eq!(w.push().await.accepted, 10);
    // A broken export: everything zero.
    for s in &skus {
        w.stock(s, 0).await;
    }
    let r = w.push().await;
    assert_eq!(r.status, "halted");
    assert_eq!(r.sent, 0);
    assert_eq!(w.amazon_has("S0"), Some(10));
    let halted = w
        .events
        .events()
        .into_iter()
        .find(|e| e.name == EventName::InventoryPushHalted)
        .unwrap();
    assert_eq!(halted.fields["skusZeroed"], 10);
    assert_eq!(w.push().await.status, "halted", "waits for a person");
    // Discard: Amazon keeps its quantities, the marks are gone.
    w.inv.decide_halt(L, "discarded", "ops").await.unwrap();
    assert_eq!(w.push().await.status, "discarded");
    assert_eq!(w.amazon_has("S0"), Some(10));
    assert!(w.inv.pending(L).await.unwrap().is_empty());
    // The same again, released this time: pushed once, the breaker is armed again after.
    for s in &skus {
        w.stock(s, 0).await;
    }
    assert_eq!(w.push().await.status, "halted");
    w.inv.decide_halt(L, "released", "ops").await.unwrap();
    let r = w.push().await;
    assert_eq!((r.status.as_str(), r.accepted), ("released", 10));
    assert_eq!(w.amazon_has("S0"), Some(0));
    assert!(w.inv.halt(L).await.unwrap().is_none());
}

#[tokio::test]
async fn kill_switch_and_dry_run_send_nothing_and_keep_the_marks() {
    let w = world(&["A"]).await;
    w.stock("A", 5).await;
    w.settings
        .put(names::DRY_RUN, json!(true), None, "t")
        .await
        .unwrap();
    let r = w.push().await;
    assert_eq!(r.status, "dry_run");
    assert_eq!(r.would_push[0].quantity, 5);
    assert!(w.amazon.calls.lock().unwrap().is_empty());
    w.settings
        .put(names::PUSH_ENABLED, json!(false), None, "t")
        .await
        .unwrap();
    let report = w.pusher.push(None, None).await.unwrap();
    assert!(!report.enabled && report.locations.is_empty());
    assert_eq!(w.inv.pending(L).await.unwrap(), ["A"]);
    w.settings
        .put(names::PUSH_ENABLED, json!(true), None, "t")
        .await
        .unwrap();
    w.settings
        .put(names::DRY_RUN, json!(false), None, "t")
        .await
        .unwrap();
    assert_eq!(w.push().await.accepted, 1);
    assert_eq!(w.amazon_has("A"), Some(5));
}

#[tokio::test]
async fn a_crash_between_push_and_ledger_loses_nothing() {
    let mut w = world(&["A"]).await;
    let crash = Arc::new(AtomicBool::new(true));
    let c = crash.clone();
    w.pusher.crash_after_send = Some(Arc::new(move |_| c.swap(false, Ordering::SeqCst)));
    w.stock("A", 5).await;
    assert!(w.pusher.push(None, None).await.is_err());
    assert_eq!(w.amazon_has("A"), Some(5), "Amazon got it");
    assert_eq!(w.inv.pending(L).await.unwrap(), ["A"], "still pending");
    // A newer change arrives before the next run: the next run sends it, newer number.
    w.stock("A", 7).await;
    let r = w.push().await;
    assert_eq!(r.accepted, 1);
    assert_eq!(w.amazon_has("A"), Some(7));
    assert!(w.inv.pending(L).await.unwrap().is_empty());
}

#[tokio::test]
async fn low_stock_emits_an_event_once_when_crossing() {
    let w = world(&["A"]).await;
    w.settings
        .put(names::LOW_STOCK_THRESHOLD, json!(2), None, "t")
        .await
        .unwrap();
    w.stock("A", 10).await;
    w.push().await;
    w.stock("A", 2).await;
    assert_eq!(w.push().await.low_stock, 1);
    w.stock("A", 1).await;
    assert_eq!(w.push().await.low_stock, 0, "already low");
    let low: Vec<_> = w
        .events
        .events()
        .into_iter()
        .filter(|e| e.name == EventName::InventoryLowStock)
        .collect();
    assert_eq!(low.len(), 1);
    assert_eq!(low[0].fields["advertised"], 2);
}

#[test]
fn classify_reads_each_item_on_its_own() {
    let item = |code, et: Option<&str>, held: Option<i64>| InventoryItemResult {
        status: HttpStatusLine {
            status_code: Some(code),
            reason_phrase: None,
        },
        body: InventoryResponseBody {
            client_sequence_number: held,
            actionable_errors: et
                .map(|t| ActionableError {
                    error_type: Some(t.into()),
                    error_sub_type: None,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        },
    };
    assert_eq!(classify(&item(200, None, Some(5)), 5), Outcome::Accepted);
    assert_eq!(
        classify(&item(409, Some("STALE_CLIENT_SEQUENCE_NUMBER"), Some(5)), 5),
        Outcome::Accepted,
        "our own update, applied before a retry"
    );
    assert_eq!(
        classify(&item(409, Some("STALE_CLIENT_SEQUENCE_NUMBER"), Some(9)), 5),
        Outcome::Stale(9)
    );
    assert_eq!(classify(&item(429, None, None), 5), Outcome::Retry);
    assert_eq!(classify(&item(503, None, None), 5), Outcome::Retry);
    assert!(matches!(
        classify(&item(400, Some("INVALID_SKU"), None), 5),
        Outcome::Actionable(e) if e.contains("INVALID_SKU")
    ));
}

/// A SKU with 10 on hand and 3 reserved by an order we have polled, as Amazon also holds it.
async fn with_an_open_order(reads_on_hand: bool) -> World {
    let w = world(&["A", "B"]).await;
    w.amazon
        .reads_on_hand
        .store(reads_on_hand, Ordering::SeqCst);
    w.stock("A", 10).await;
    w.stock("B", 4).await;
    w.inv.set_reservation(L, "A", "S1", "1", 3).await.unwrap();
    w.amazon.reserved.lock().unwrap().insert("A".into(), 3);
    assert_eq!(w.push().await.accepted, 2);
    assert_eq!(
        w.amazon_has("A"),
        Some(7),
        "sellable reading: on hand minus reserved"
    );
    w
}

#[tokio::test]
async fn reconciliation_detects_an_account_that_reads_the_quantity_as_sellable() {
    let w = with_an_open_order(false).await;
    let r = super::super::reconcile::reconcile(&w.pusher, None)
        .await
        .unwrap();
    assert_eq!((r.votes_sellable, r.votes_on_hand), (1, 0), "{r:?}");
    assert_eq!(r.detected_reading, Some(QuantityReading::Sellable));
    assert_eq!(r.locations[0].checked, 2);
    assert_eq!(r.locations[0].drift_count, 0, "{r:?}");
    assert!(r.push.is_none());
}

#[tokio::test]
async fn reconciliation_detects_an_account_that_reads_the_quantity_as_on_hand() {
    // Amazon subtracts its 3 reserved units from our 7: it shows 4 sellable.
    let w = with_an_open_order(true).await;
    let r = super::super::reconcile::reconcile(&w.pusher, None)
        .await
        .unwrap();
    assert_eq!((r.votes_sellable, r.votes_on_hand), (0, 1), "{r:?}");
    assert_eq!(r.detected_reading, Some(QuantityReading::OnHand));
    assert_eq!(r.configured_reading, Some(QuantityReading::Sellable));
    // Switched as the alert says, the numbers agree: on-hand pushes add the reservations back.
    w.settings
        .put(names::QUANTITY_READING, json!("on_hand"), None, "t")
        .await
        .unwrap();
    w.inv.mark_pending(L, &["A".into()]).await.unwrap();
    w.push().await;
    assert_eq!(w.amazon_has("A"), Some(10));
    let r = super::super::reconcile::reconcile(&w.pusher, None)
        .await
        .unwrap();
    assert_eq!(r.detected_reading, Some(QuantityReading::OnHand));
    assert_eq!(r.locations[0].drift_count, 0, "{r:?}");
}

#[tokio::test]
async fn reconciliation_corrects_drift() {
    let w = with_an_open_order(false).await;
    // Someone changed B on Amazon's side (Seller Central, another tool).
    w.amazon.held.lock().unwrap().get_mut("B").unwrap().0 = 1;
    let r = super::super::reconcile::reconcile(&w.pusher, None)
        .await
        .unwrap();
    assert_eq!(r.locations[0].drift_count, 1);
    assert_eq!(r.locations[0].drift[0].sku, "B");
    assert_eq!(r.push.unwrap().locations[0].accepted, 1);
    assert_eq!(w.amazon_has("B"), Some(4), "the warehouse's figure again");
}

/// Amazon takes an order (lowering its sellable figure and reserving 3) before we store it; a
/// stock change pushed in between would offer those 3 units again. Amazon's answer names its
/// reservation, so the pusher sends the figure again without them at once.
async fn an_order_amazon_took_before_we_stored_it(reads_on_hand: bool) -> (World, LocationReport) {
    let w = world(&["A"]).await;
    w.amazon
        .reads_on_hand
        .store(reads_on_hand, Ordering::SeqCst);
    if reads_on_hand {
        w.settings
            .put(names::QUANTITY_READING, json!("on_hand"), None, "t")
            .await
            .unwrap();
    }
    w.stock("A", 10).await;
    assert_eq!(w.push().await.accepted, 1);
    w.amazon.reserved.lock().unwrap().insert("A".into(), 3);
    if !reads_on_hand {
        w.amazon.held.lock().unwrap().get_mut("A").unwrap().0 = 7;
    }
    w.stock("A", 9).await;
    let r = w.push().await;
    (w, r)
}

#[tokio::test]
async fn a_push_after_an_order_we_have_not_stored_leaves_its_units_out_at_once() {
    let (w, r) = an_order_amazon_took_before_we_stored_it(false).await;
    assert_eq!(r.unseen_resent, 1, "{r:?}");
    assert_eq!(
        w.amazon_has("A"),
        Some(6),
        "9 on hand, 3 reserved by Amazon"
    );
    let calls = w.amazon.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().flatten().map(|c| c.1).collect::<Vec<_>>(),
        vec![10, 9, 6]
    );
    // The order is stored: our own count now says the same, nothing to send.
    w.inv.set_reservation(L, "A", "S1", "1", 3).await.unwrap();
    w.inv.mark_pending(L, &["A".into()]).await.unwrap();
    let r = w.push().await;
    assert_eq!((r.sent, r.unchanged), (0, 1), "{r:?}");
    // Nor does reconciliation take the lower figure for drift, before or after.
    let r = super::super::reconcile::reconcile(&w.pusher, None)
        .await
        .unwrap();
    assert_eq!(r.locations[0].drift_count, 0, "{r:?}");
}

#[tokio::test]
async fn an_account_reading_on_hand_subtracts_unseen_orders_itself() {
    let (w, r) = an_order_amazon_took_before_we_stored_it(true).await;
    assert_eq!(r.unseen_resent, 0, "{r:?}");
    assert_eq!(w.amazon_has("A"), Some(9));
}

#[tokio::test]
async fn an_unseen_order_cancelled_between_two_sends_gets_its_units_back() {
    let w = world(&["A"]).await;
    w.stock("A", 10).await;
    w.push().await;
    // Amazon takes an order of 3 we have not stored; the buyer cancels it right after our
    // next send was answered (Amazon gives the 3 back), before the correction goes out.
    w.amazon.reserved.lock().unwrap().insert("A".into(), 3);
    w.amazon.held.lock().unwrap().get_mut("A").unwrap().0 = 7;
    *w.amazon.cancel_after_update.lock().unwrap() = Some(("A".into(), 3));
    w.stock("A", 9).await;
    let r = w.push().await;
    assert_eq!(r.unseen_resent, 2, "{r:?}");
    assert_eq!(w.amazon_has("A"), Some(9), "nothing reserved any more");
    let calls = w.amazon.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().flatten().map(|c| c.1).collect::<Vec<_>>(),
        vec![10, 9, 6, 9]
    );
}
