//! A shipment whose data Amazon sends in a shape we cannot read, through the real SP-API client
//! (a small stand-in for getShipments/getShipment serves it; the simulator only serves valid
//! shipments): read again alone, then quarantined in stage `unreadable` with a `ShipmentHeld`
//! alert and the cursor moved on; when Amazon cannot answer the read-back, the cursor stays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use flexbridge::events::{EventName, MemoryEventSink};
use flexbridge::idempotency::{Idempotency, MemoryIdempotencyStore};
use flexbridge::orders::poller::{OrderPoller, PollSettings};
use flexbridge::orders::ports::{MemoryLocations, OrderLocation, UnmappedSkuAction};
use flexbridge::orders::OrderProcessor;
use flexbridge::ratelimit::Limit;
use flexbridge::retry::RetryPolicy;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::Stage;
use flexbridge::spapi::{LwaCredentials, Operation, Region, SpApiClient, SpApiConfig};
use flexbridge::store::cursors::{CursorKind, CursorStore, MemoryCursorStore};
use flexbridge::store::inventory::MemoryInventoryStore;
use flexbridge::store::shipments::{MemoryShipmentStore, ShipmentStore};
use serde_json::json;

const SHIPMENTS: &str = "/externalFulfillment/2024-09-11/shipments";

#[derive(Clone)]
struct Amazon {
    /// How getShipment answers for the broken shipment: its broken body, or 503.
    read_alone_fails: bool,
    reads_alone: Arc<Mutex<usize>>,
}

/// A shipment with a buyer address and without most required fields.
fn broken() -> serde_json::Value {
    json!({
        "id": "S-BROKEN", "locationId": "LOC1", "status": "ACCEPTED", "lineItems": "not a list",
        "shippingInfo": {"shipToAddress": {"name": "Jane Buyer", "addressLine1": "1 Secret Street"}},
        "lastUpdatedDateTime": chrono::Utc::now().to_rfc3339(),
    })
}

async fn answer(State(a): State<Amazon>, uri: Uri) -> (StatusCode, String) {
    if uri.path() == "/auth/o2/token" {
        return (
            StatusCode::OK,
            json!({"access_token": "Atza|t", "expires_in": 3600}).to_string(),
        );
    }
    if uri.path() == format!("{SHIPMENTS}/S-BROKEN") {
        *a.reads_alone.lock().unwrap() += 1;
        return if a.read_alone_fails {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errors": []}).to_string(),
            )
        } else {
            (StatusCode::OK, broken().to_string())
        };
    }
    if uri.path() == SHIPMENTS {
        let query = uri.query().unwrap_or_default();
        let accepted = query.contains("status=ACCEPTED");
        // Listed in the window that holds now (the poller reads bounded windows).
        let now_in_window = query
            .split('&')
            .find_map(|p| p.strip_prefix("lastUpdatedBefore="))
            .map(|b| b.replace("%3A", ":"))
            .and_then(|b| chrono::DateTime::parse_from_rfc3339(&b).ok())
            .is_none_or(|b| b > chrono::Utc::now());
        let page = if accepted && now_in_window {
            vec![broken()]
        } else {
            vec![]
        };
        return (StatusCode::OK, json!({ "shipments": page }).to_string());
    }
    (StatusCode::NOT_FOUND, json!({"errors": []}).to_string())
}

struct World {
    processor: OrderProcessor,
    store: Arc<MemoryShipmentStore>,
    events: Arc<MemoryEventSink>,
    cursors: MemoryCursorStore,
    reads_alone: Arc<Mutex<usize>>,
}

async fn world(read_alone_fails: bool) -> World {
    let amazon = Amazon {
        read_alone_fails,
        reads_alone: Arc::default(),
    };
    let reads_alone = amazon.reads_alone.clone();
    let app = Router::new().fallback(answer).with_state(amazon);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = SpApiConfig::new(
        Region::Na,
        LwaCredentials {
            client_id: "client".into(),
            client_secret: "secret".into(),
            refresh_token: "Atzr|r".into(),
        },
    );
    cfg.endpoint = Some(base.clone());
    cfg.lwa_endpoint = Some(format!("{base}/auth/o2/token"));
    cfg.retry = RetryPolicy::new(2, Duration::from_millis(10), Duration::from_millis(50));
    cfg.adapt_rate_limits = false;
    for op in Operation::ALL {
        cfg.rate_limits.insert(op, Limit::new(200.0, 200));
    }
    let store = Arc::new(MemoryShipmentStore::new());
    let events = Arc::new(MemoryEventSink::new());
    let processor = OrderProcessor {
        shipments: store.clone(),
        inventory: Arc::new(MemoryInventoryStore::new()),
        amazon: Arc::new(SpApiClient::new(cfg).unwrap()),
        events: events.clone(),
        idempotency: Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new()),
            Duration::from_secs(3600),
        ),
        locations: Arc::new(MemoryLocations::new(vec![OrderLocation {
            location_id: "LOC1".into(),
            hub: "HUB1".into(),
            order_sync: true,
            return_location_id: None,
            unmapped_sku: UnmappedSkuAction::Hold,
            adopt_existing: Default::default(),
        }])),
        rules: vec![],
        crash_points: None,
        metrics: flexbridge::metrics::Metrics::memory("test", "orders").0,
    };
    World {
        processor,
        store,
        events,
        cursors: MemoryCursorStore::new(),
        reads_alone,
    }
}

fn one_pass() -> PollSettings {
    PollSettings {
        pass_interval: Duration::ZERO,
        ..PollSettings::default()
    }
}

fn inv() -> Invocation {
    Invocation::new("unreadable", Duration::from_secs(60))
}

#[tokio::test]
async fn a_shipment_unreadable_alone_too_is_quarantined_and_the_cursor_moves() {
    let w = world(false).await;
    let poller = OrderPoller {
        processor: &w.processor,
        cursors: &w.cursors,
        settings: one_pass(),
    };
    let report = poller.run(&inv()).await.unwrap();
    assert_eq!((report.read_back, report.quarantined), (1, 1), "{report:?}");
    assert!(*w.reads_alone.lock().unwrap() >= 1, "read back alone");

    let r = w.store.get("S-BROKEN").await.unwrap().unwrap();
    assert_eq!(r.stage, Stage::Unreadable);
    assert_eq!(r.location_id, "LOC1");
    let why = r.unreadable.clone().unwrap();
    assert!(
        why.contains("missing field") || why.contains("error"),
        "{why}"
    );
    let listed = w
        .store
        .list(Stage::Unreadable, None, 10, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let held: Vec<_> = w
        .events
        .events()
        .into_iter()
        .filter(|e| e.name == EventName::ShipmentHeld)
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].fields["shipmentId"], "S-BROKEN");
    let everything = format!("{:?} {:?}", held[0].fields, r);
    assert!(
        !everything.contains("Secret Street") && !everything.contains("Jane"),
        "{everything}"
    );
    assert!(w
        .cursors
        .get(CursorKind::Shipments, "LOC1", "ACCEPTED")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn when_the_read_back_cannot_be_answered_the_cursor_stays() {
    let w = world(true).await;
    let poller = OrderPoller {
        processor: &w.processor,
        cursors: &w.cursors,
        settings: one_pass(),
    };
    let t0 = chrono::Utc::now();
    let report = poller.run(&inv()).await.unwrap();
    assert_eq!(report.quarantined, 0, "{report:?}");
    assert!(
        report.errors.iter().any(|e| e.starts_with("LOC1/ACCEPTED")),
        "{report:?}"
    );
    assert!(w.store.get("S-BROKEN").await.unwrap().is_none());
    // The cursor may pass the empty windows before it, never the page that holds it.
    let c = w
        .cursors
        .read(CursorKind::Shipments, "LOC1", "ACCEPTED")
        .await
        .unwrap();
    assert!(c.at.is_none_or(|at| at < t0), "{c:?}");
    assert!(c.mark.is_none(), "{c:?}");
    assert!(w
        .cursors
        .get(CursorKind::Shipments, "LOC1", "CREATED")
        .await
        .unwrap()
        .is_some());
}
