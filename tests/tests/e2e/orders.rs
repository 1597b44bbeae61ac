//! Orders end to end, on a stack provisioned from template.yaml in moto and the SP-API simulator:
//! new shipments stored, confirmed exactly once (the simulator's CONFIRM count) and handed over
//! (`ShipmentAccepted` on the bus → OutboundQueue); marketplace cancellations of a whole shipment
//! and of one line; duplicate and out-of-order notifications through the real queue; a crash
//! injected between each pair of steps; hold and reject rules through the warehouse API; returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use flexbridge::orders::adapters::{ADOPT_EXISTING_SETTING, UNMAPPED_SKU_SETTING};
use flexbridge::orders::notifications::NotificationClock;
use flexbridge::orders::poller::OrderPoller;
use flexbridge::orders::processor::{CrashPoints, Step};
use flexbridge::orders::Orders;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::Stage;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::inventory::{DynamoInventoryStore, InventoryStore};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::warehouse::signing;
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::spapi_sim::{AdminClient, FaultKind, DEFAULT_APPLICATION_ID as APP};
use flexbridge_e2e::{eventually, TestStack};
use serde_json::{json, Value};

const LOC: &str = "SIMLOC-EAST-1";
const OTHER_LOC: &str = "SIMLOC-WEST-1";
const MARKETPLACE: &str = "ATVPDKIKX0DER";
const MAPPED: [&str; 3] = ["MUG-01", "TEE-02", "CAP-03"];

struct World {
    t: TestStack,
    admin: AdminClient,
    orders: Orders,
}

async fn world(name: &str) -> Result<World> {
    flexbridge_e2e::init_logging();
    let t = TestStack::start(name).await?;
    let admin = AdminClient::new(&t.sim().base_url);
    admin.create_location(LOC, MARKETPLACE, "FBA").await?;
    admin.create_location(OTHER_LOC, MARKETPLACE, "FBA").await?;
    let catalog = DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"));
    let items: Vec<CatalogItem> = MAPPED
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: sku.to_string(),
            asin: format!("B0000000{i:02}"),
            title: Some(format!("{sku} title")),
            product_type: Some("HOME".into()),
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: "2026-11-21T08:00:00.000Z".into(),
            source: "test".into(),
        })
        .collect();
    catalog.put_items(&items).await?;
    let orders = Orders::from_env(&t.env_for("OrderPollerFunction")?).await?;
    Ok(World { t, admin, orders })
}

fn inv() -> Invocation {
    Invocation::new("test", Duration::from_secs(60))
}

impl World {
    async fn shipment(&self, lines: &[(&str, u32)]) -> Result<String> {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(s, q)| json!({"sku": s, "quantity": q}))
            .collect();
        let s = self
            .admin
            .create_shipment(
                json!({"locationId": LOC, "lineItems": lines, "gift": true, "prime": true}),
            )
            .await?;
        Ok(s["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id in {s}"))?
            .to_string())
    }

    async fn poll_with(&self, orders: &Orders, inv: &Invocation) -> Result<Value> {
        let processor = orders.processor(inv);
        let mut settings = orders.poll_settings().await?;
        settings.reserve = Duration::from_millis(200); // the crash runs have a 15 s budget
        settings.pass_interval = Duration::ZERO; // one pass per call: the tests decide when to poll
        let poller = OrderPoller {
            processor: &processor,
            cursors: orders.cursors.as_ref(),
            settings,
        };
        Ok(serde_json::to_value(poller.run(inv).await?)?)
    }

    async fn poll(&self) -> Result<Value> {
        self.poll_with(&self.orders, &inv()).await
    }

    async fn stage(&self, id: &str) -> Result<Stage> {
        Ok(self
            .orders
            .shipments
            .get(id)
            .await?
            .ok_or_else(|| anyhow!("{id} not stored"))?
            .stage)
    }

    async fn confirms(&self, id: &str) -> Result<(u32, u32)> {
        let c = self.admin.confirm_counts(id).await?;
        Ok((c.requests, c.applied))
    }

    fn inventory(&self) -> DynamoInventoryStore {
        DynamoInventoryStore::new(
            self.t.dynamodb.clone(),
            self.t.stack.table("InventoryTable"),
        )
    }

    /// Every event published so far (read off OutboundQueue, where the bus rule puts them).
    async fn events(&self, seen: &mut Vec<(String, Value)>) -> Result<()> {
        loop {
            let out = self
                .t
                .sqs
                .receive_message()
                .queue_url(self.t.stack.queue_url("OutboundQueue"))
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            let msgs = out.messages();
            if msgs.is_empty() {
                return Ok(());
            }
            for m in msgs {
                let v: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
                seen.push((
                    v["detail-type"].as_str().unwrap_or("").to_string(),
                    v["detail"].clone(),
                ));
                self.t
                    .sqs
                    .delete_message()
                    .queue_url(self.t.stack.queue_url("OutboundQueue"))
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await?;
            }
        }
    }
}

/// Distinct event IDs of one kind for one shipment (duplicates by ID are one fact).
fn facts(events: &[(String, Value)], kind: &str, shipment_id: &str) -> Vec<Value> {
    let mut ids = BTreeSet::new();
    events
        .iter()
        .filter(|(k, d)| k == kind && d["shipmentId"] == shipment_id)
        .filter(|(_, d)| ids.insert(d["eventId"].as_str().unwrap_or("").to_string()))
        .map(|(_, d)| d.clone())
        .collect()
}

#[tokio::test]
async fn new_orders_are_stored_confirmed_once_and_handed_over() -> Result<()> {
    let w = world("orders_new").await?;
    let a = w.shipment(&[("MUG-01", 2), ("TEE-02", 1)]).await?;
    let b = w.shipment(&[("MUG-01", 1)]).await?;
    let report = w.poll().await?;
    assert_eq!(report["storedNew"], 2, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    w.poll().await?; // the overlap window re-reads them: nothing may happen twice

    let mut events = Vec::new();
    w.events(&mut events).await?;
    for id in [&a, &b] {
        assert_eq!(w.stage(id).await?, Stage::HandedOver);
        assert_eq!(
            w.confirms(id).await?,
            (1, 1),
            "exactly one CONFIRM for {id}"
        );
        assert_eq!(
            facts(&events, "ShipmentAccepted", id).len(),
            1,
            "{events:?}"
        );
    }
    let accepted = &facts(&events, "ShipmentAccepted", &a)[0];
    assert_eq!(accepted["hub"], "HUB-NJ");
    assert_eq!(accepted["locationId"], LOC);
    assert_eq!(accepted["prime"], true);
    assert_eq!(accepted["lines"][0]["sku"], "MUG-01");
    assert_eq!(accepted["lines"][0]["quantity"], 2);
    assert_eq!(accepted["lines"][0]["giftWrap"], true);
    assert!(accepted["shipBy"].is_string());

    // Full detail stored, and never the buyer's address (anywhere we write).
    let stored = w.orders.shipments.get(&a).await?.unwrap();
    assert_eq!(stored.line_items.len(), 2);
    assert!(!stored.charges.is_empty() && !stored.line_items[0].charges.is_empty());
    let sim_doc = w.admin.shipment(&a).await?;
    let address = &sim_doc["shipment"]["shippingInfo"]["shipToAddress"];
    let street = address["addressLine1"].as_str().unwrap_or("?").to_string();
    let name = address["name"].as_str().unwrap_or("?").to_string();
    for text in [
        serde_json::to_string(&stored)?,
        serde_json::to_string(&events)?,
    ] {
        assert!(
            !text.contains(&street) && !text.contains(&name),
            "address leaked: {text}"
        );
    }
    assert_eq!(w.inventory().position(LOC, "MUG-01").await?.reserved, 3);
    assert_eq!(w.inventory().position(LOC, "TEE-02").await?.reserved, 1);
    Ok(())
}

#[tokio::test]
async fn marketplace_cancels_a_whole_shipment_and_one_line() -> Result<()> {
    let w = world("orders_cancel").await?;
    let whole = w.shipment(&[("MUG-01", 2)]).await?;
    let partly = w.shipment(&[("MUG-01", 3), ("TEE-02", 1)]).await?;
    w.poll().await?;
    assert_eq!(w.inventory().position(LOC, "MUG-01").await?.reserved, 5);

    w.admin.cancel_shipment(&whole).await?;
    w.admin.cancel_lines(&partly, &[("1", 2)]).await?;
    w.poll().await?;
    w.poll().await?;

    let mut events = Vec::new();
    w.events(&mut events).await?;
    assert_eq!(w.stage(&whole).await?, Stage::Cancelled);
    let c = facts(&events, "ShipmentCancelled", &whole);
    assert_eq!(c.len(), 1, "{events:?}");
    assert_eq!(c[0]["wholeShipment"], true);
    assert_eq!(c[0]["cancelledBy"], "amazon");

    assert_eq!(w.stage(&partly).await?, Stage::HandedOver);
    let c = facts(&events, "ShipmentCancelled", &partly);
    assert_eq!(c.len(), 1, "{events:?}");
    assert_eq!(c[0]["wholeShipment"], false);
    assert_eq!(
        c[0]["lines"],
        json!([{"lineId": "1", "sku": "MUG-01", "cancelledQuantity": 2, "remainingQuantity": 1}])
    );
    // 2 (whole) released entirely, 3 → 1 on the partly cancelled line.
    assert_eq!(w.inventory().position(LOC, "MUG-01").await?.reserved, 1);
    assert_eq!(w.inventory().position(LOC, "TEE-02").await?.reserved, 1);

    // Shipped: the reservation goes.
    w.admin.advance_shipment(&partly, "SHIPPED").await?;
    w.poll().await?;
    assert_eq!(w.stage(&partly).await?, Stage::Shipped);
    assert_eq!(w.inventory().position(LOC, "MUG-01").await?.reserved, 0);
    assert_eq!(w.inventory().position(LOC, "TEE-02").await?.reserved, 0);
    Ok(())
}

/// The simulator delivers status-change notifications to NotificationsQueue, duplicated and out of
/// order; the consumer, run by the local runner as Lambda's SQS event source, handles each once,
/// and the poller then makes one pass a run (notifications flow).
#[tokio::test]
async fn duplicate_and_out_of_order_notifications_change_nothing() -> Result<()> {
    let w = world("orders_notify").await?;
    // The simulator's SQS client reads the standard variable to reach moto.
    std::env::set_var("AWS_ENDPOINT_URL", w.t.endpoint());
    let queue = w.t.stack.queue_url("NotificationsQueue").to_string();
    w.admin
        .add_notification_destination(json!({"sqsQueueUrl": queue}))
        .await?;
    w.admin
        .set_notification_options(
            json!({"enabled": true, "duplicateRate": 1.0, "reorder": true, "reorderWindowMs": 300}),
        )
        .await?;
    let runner =
        w.t.runner(RunnerOptions {
            run_schedules: false,
            only: Some(["NotificationConsumerFunction".to_string()].into()),
            ..Default::default()
        })
        .await?;
    let id = w.shipment(&[("MUG-01", 2), ("TEE-02", 1)]).await?;
    eventually(Duration::from_secs(30), "the shipment handed over by notification", || async {
        Ok(matches!(w.orders.shipments.get(&id).await?, Some(r) if r.stage == Stage::HandedOver).then_some(()))
    })
    .await?;
    w.admin.cancel_lines(&id, &[("2", 1)]).await?;
    eventually(
        Duration::from_secs(30),
        "the line cancellation stored",
        || async {
            let r = w.orders.shipments.get(&id).await?.unwrap();
            Ok((r.line_items[1].announced_cancelled_units == 1).then_some(()))
        },
    )
    .await?;

    // A stale notification, sent by hand in the other casing, for the state before the cancel.
    w.t.sqs
        .send_message()
        .queue_url(&queue)
        .message_body(
            json!({"NotificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE", "EventTime": "2020-01-01T00:00:00Z",
                "Payload": {"ExternalFulfillmentShipmentNotification": {"ShipmentId": id, "ShipmentStatus": "ACCEPTED"}},
                "NotificationMetadata": {"NotificationId": "stale-by-hand", "ApplicationId": APP}})
            .to_string(),
        )
        .send()
        .await?;
    // Not ours: another app's notification (its destination is our queue), and one of our
    // app's for another merchant, each for a shipment Amazon does not have for us. Dropped
    // and acknowledged: nothing stored, nothing read, nothing parked.
    for (n, app, merchant) in [
        (
            "foreign-app",
            "amzn1.sp.solution.someone-else",
            "A1SIMMERCHANT01",
        ),
        ("foreign-merchant", APP, "A2OTHERMERCHANT"),
    ] {
        w.t.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(
                json!({"notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
                    "payload": {"externalFulfillmentShipmentNotification": {"merchantId": merchant,
                        "shipmentId": format!("NOT-OURS-{n}"), "shipmentStatus": "ACCEPTED"}},
                    "notificationMetadata": {"notificationId": n, "applicationId": app}})
                .to_string(),
            )
            .send()
            .await?;
    }
    eventually(
        Duration::from_secs(20),
        "every notification consumed",
        || async {
            let depth = w.t.queue_depth("NotificationsQueue").await?;
            Ok((depth == 0
                && runner
                    .function_stats("NotificationConsumerFunction")
                    .messages_ok
                    >= 7)
                .then_some(()))
        },
    )
    .await?;
    for n in ["foreign-app", "foreign-merchant"] {
        let id = format!("NOT-OURS-{n}");
        assert!(w.orders.shipments.get(&id).await?.is_none(), "{id} stored");
    }
    assert_eq!(w.t.queue_depth("NotificationsDLQ").await?, 0);
    let reads = w.admin.calls(Some("getShipment")).await?;
    assert!(
        !reads
            .iter()
            .any(|c| c["path"].as_str().is_some_and(|p| p.contains("NOT-OURS"))),
        "a foreign notification was read back: {reads:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    runner.stop().await;

    let delivered = w.admin.notifications().await?;
    assert!(
        delivered.len() >= 4,
        "duplicates were delivered: {delivered:?}"
    );
    assert_eq!(w.confirms(&id).await?, (1, 1));
    let mut events = Vec::new();
    w.events(&mut events).await?;
    assert_eq!(facts(&events, "ShipmentAccepted", &id).len(), 1);
    assert_eq!(
        facts(&events, "ShipmentCancelled", &id).len(),
        1,
        "{events:?}"
    );
    assert_eq!(w.inventory().position(LOC, "TEE-02").await?.reserved, 0);
    assert_eq!(w.inventory().position(LOC, "MUG-01").await?.reserved, 2);

    // The consumer noted when Amazon published the newest one (CursorsTable): a poll run with
    // the stack's settings (passes every 15 s) makes its one pass and ends.
    let heard = NotificationClock::last(w.orders.cursors.as_ref())
        .await?
        .ok_or_else(|| anyhow!("no notification noted"))?;
    assert!(
        chrono::Utc::now() - heard < chrono::Duration::minutes(2),
        "{heard}"
    );
    let processor = w.orders.processor(&inv());
    let poller = OrderPoller {
        processor: &processor,
        cursors: w.orders.cursors.as_ref(),
        settings: w.orders.poll_settings().await?,
    };
    assert!(!poller.settings.pass_interval.is_zero());
    let report = poller.run(&inv()).await?;
    assert!(
        report.notifications_flowing && report.passes == 1,
        "{report:?}"
    );
    Ok(())
}

struct CrashAt {
    step: Step,
    fired: AtomicBool,
}

#[async_trait]
impl CrashPoints for CrashAt {
    async fn reached(&self, step: Step, _id: &str) {
        if step == self.step && !self.fired.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

/// The invocation is cut off (as Lambda does at its deadline) between each pair of steps; the
/// next scheduled run finishes the job: one CONFIRM at Amazon, one hand-over, nothing lost.
#[tokio::test]
async fn a_crash_between_any_two_steps_loses_and_duplicates_nothing() -> Result<()> {
    let w = world("orders_crash").await?;
    let steps = [
        Step::PagesStored,
        Step::ConfirmCalled,
        Step::Confirmed,
        Step::Reserved,
        Step::Published,
    ];
    let mut ids = BTreeMap::new();
    for step in steps {
        let id = w.shipment(&[("CAP-03", 1)]).await?;
        let mut crashing = w.orders.clone();
        crashing.crash_points = Some(Arc::new(CrashAt {
            step,
            fired: AtomicBool::new(false),
        }));
        // Every location and status is listed (1 request/s) before anything is driven.
        let budget = Duration::from_secs(15);
        let short = Invocation::new("crashing", budget);
        let cut = tokio::time::timeout(budget, w.poll_with(&crashing, &short)).await;
        assert!(cut.is_err(), "{step:?}: the run must have been cut off");
        tokio::time::sleep(Duration::from_millis(300)).await; // its claims have expired by now
        w.poll().await?;
        ids.insert(format!("{step:?}"), id);
    }
    // Amazon applied a CONFIRM and answered 500: read back, not repeated.
    w.admin
        .script_faults("processShipment", &[FaultKind::ApplyThenFail])
        .await?;
    let id = w.shipment(&[("CAP-03", 1)]).await?;
    w.poll().await?;
    ids.insert("ApplyThenFail".into(), id);

    let mut events = Vec::new();
    w.events(&mut events).await?;
    for (step, id) in &ids {
        assert_eq!(w.stage(id).await?, Stage::HandedOver, "{step}");
        assert_eq!(w.confirms(id).await?, (1, 1), "{step}: exactly one CONFIRM");
        assert_eq!(facts(&events, "ShipmentAccepted", id).len(), 1, "{step}");
    }
    assert_eq!(
        w.inventory().position(LOC, "CAP-03").await?.reserved,
        ids.len() as i64
    );
    Ok(())
}

/// A signed warehouse request.
async fn warehouse(
    w: &World,
    base: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value)> {
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let now = chrono::Utc::now().timestamp();
    let mut req = reqwest::Client::new()
        .request(method.parse()?, format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.clone());
    let key = uuid::Uuid::new_v4().to_string();
    let mut signed =
        signing::Signed::new(method, path, body.as_bytes()).content_type("application/json");
    if method == "POST" {
        signed = signed.idempotency_key(&key);
        req = req.header("Idempotency-Key", &key);
    }
    for (k, v) in signing::signed_headers(w.t.seller.warehouse_key.as_bytes(), now, &signed) {
        req = req.header(k, v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[tokio::test]
async fn unmapped_skus_are_held_or_rejected_and_a_person_decides() -> Result<()> {
    let w = world("orders_rules").await?;
    let runner =
        w.t.runner(RunnerOptions {
            run_schedules: false,
            poll_queues: false,
            only: Some(["WarehouseApiFunction".to_string()].into()),
            ..Default::default()
        })
        .await?;
    let api = runner
        .function_url("WarehouseApiFunction")
        .ok_or_else(|| anyhow!("warehouse API not served"))?
        .trim_end_matches('/')
        .to_string();

    // A notification relayed over HTTPS (signed like any warehouse request) is handled like
    // one from the queue: the shipment is read back, confirmed once and handed over.
    let relayed = w.shipment(&[("MUG-01", 1)]).await?;
    let envelope = json!({"notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
        "payload": {"externalFulfillmentShipmentNotification": {"shipmentId": relayed, "shipmentStatus": "ACCEPTED"}},
        "notificationMetadata": {"notificationId": format!("relay-{relayed}"), "applicationId": APP}});
    let (status, out) = warehouse(&w, &api, "POST", "/v1/notifications", envelope.clone()).await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outcome"], "processed", "{out}");
    assert_eq!(out["stage"], "handed_over", "{out}");
    // Again: the shipment is past ACCEPTED already, so nothing is read or done.
    let (_, again) = warehouse(&w, &api, "POST", "/v1/notifications", envelope).await?;
    assert_eq!(again["outcome"], "known", "{again}");
    assert_eq!(w.confirms(&relayed).await?, (1, 1));
    let (status, bad) = warehouse(
        &w,
        &api,
        "POST",
        "/v1/notifications",
        json!({"notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE", "payload": {},
            "notificationMetadata": {"applicationId": APP}}),
    )
    .await?;
    assert_eq!(status, 422, "no shipment in the payload: {bad}");

    // Default: hold.
    let held = w.shipment(&[("MUG-01", 1), ("NOT-IN-CATALOG", 1)]).await?;
    let to_reject = w.shipment(&[("NOT-IN-CATALOG", 2)]).await?;
    w.poll().await?;
    assert_eq!(w.stage(&held).await?, Stage::Held);
    assert_eq!(w.confirms(&held).await?, (0, 0));
    let (status, list) =
        warehouse(&w, &api, "GET", "/v1/shipments?stage=held", json!(null)).await?;
    assert_eq!(status, 200, "{list}");
    let listed: BTreeSet<&str> = list["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        listed.contains(held.as_str()) && listed.contains(to_reject.as_str()),
        "{list}"
    );
    let (status, one) = warehouse(
        &w,
        &api,
        "GET",
        &format!("/v1/shipments/{held}"),
        json!(null),
    )
    .await?;
    assert_eq!(status, 200);
    assert!(
        one["holdReasons"][0]
            .as_str()
            .unwrap()
            .contains("NOT-IN-CATALOG"),
        "{one}"
    );

    // A person releases one and rejects the other.
    let (status, released) = warehouse(
        &w,
        &api,
        "POST",
        &format!("/v1/shipments/{held}/release"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["stage"], "handed_over");
    assert_eq!(w.confirms(&held).await?, (1, 1));
    let (status, rejected) = warehouse(
        &w,
        &api,
        "POST",
        &format!("/v1/shipments/{to_reject}/reject"),
        json!({"reason": "OUT_OF_STOCK"}),
    )
    .await?;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["stage"], "rejected");
    let sim = w.admin.shipment(&to_reject).await?;
    assert_eq!(sim["shipment"]["status"], "CANCELLED", "{sim}");
    let (status, again) = warehouse(
        &w,
        &api,
        "POST",
        &format!("/v1/shipments/{held}/release"),
        json!({}),
    )
    .await?;
    assert_eq!(
        (status, &again["stage"]),
        (200, &json!("handed_over")),
        "released twice: {again}"
    );
    assert_eq!(w.confirms(&held).await?, (1, 1));
    let (status, err) = warehouse(
        &w,
        &api,
        "POST",
        &format!("/v1/shipments/{held}/reject"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 409, "a confirmed shipment is not held: {err}");

    // The location is set to reject: REJECT OUT_OF_STOCK at Amazon, never CONFIRM.
    let settings = DynamoSettingsStore::new(w.t.dynamodb.clone(), w.t.stack.table("SettingsTable"));
    settings
        .put(
            UNMAPPED_SKU_SETTING,
            json!({"default": "hold", "locations": {LOC: "reject"}}),
            None,
            "test",
        )
        .await?;
    let auto_rejected = w.shipment(&[("NOT-IN-CATALOG", 1)]).await?;
    // A fresh function instance (a warm one sees setting changes within 10 s).
    let fresh = Orders::from_env(&w.t.env_for("OrderPollerFunction")?).await?;
    w.poll_with(&fresh, &inv()).await?;
    assert_eq!(w.stage(&auto_rejected).await?, Stage::Rejected);
    assert_eq!(w.confirms(&auto_rejected).await?, (0, 0));
    let calls = w.admin.calls(Some("processShipment")).await?;
    assert!(
        calls.iter().any(
            |c| c["path"].as_str().unwrap_or("").contains(&auto_rejected)
                && c["query"].to_string().contains("REJECT")
        ),
        "{calls:?}"
    );
    runner.stop().await;
    Ok(())
}

/// Moving from another connector: the first poll finds shipments the old connector confirmed
/// and packed. They are stored and handed to the warehouse, never confirmed again, and the
/// packed one is refused by the warehouse API's packing (409), when `orders_adopt_existing` is
/// `hand`; with `ignore` (the default), such a shipment is left alone.
#[tokio::test]
async fn the_first_poll_after_another_connector_confirms_and_packs_nothing_again() -> Result<()> {
    let w = world("orders_adopt").await?;
    let settings = DynamoSettingsStore::new(w.t.dynamodb.clone(), w.t.stack.table("SettingsTable"));
    settings
        .put(ADOPT_EXISTING_SETTING, json!("hand"), None, "test")
        .await?;
    let confirmed = w.shipment(&[("MUG-01", 1)]).await?;
    let packed = w.shipment(&[("TEE-02", 1)]).await?;
    w.admin.advance_shipment(&confirmed, "CONFIRMED").await?;
    w.admin.advance_shipment(&packed, "PACKAGE_CREATED").await?;
    // The poll reads CONFIRMED (for line cancellations): the confirmed one arrives that way;
    // the packed one arrives with Amazon's status notification (relayed, as a WMS may).
    let report = w.poll().await?;
    assert_eq!(report["storedNew"], 1, "{report}");
    w.poll().await?;
    let runner =
        w.t.runner(RunnerOptions {
            run_schedules: false,
            poll_queues: false,
            only: Some(["WarehouseApiFunction".to_string()].into()),
            ..Default::default()
        })
        .await?;
    let api = runner
        .function_url("WarehouseApiFunction")
        .ok_or_else(|| anyhow!("warehouse API not served"))?
        .trim_end_matches('/')
        .to_string();
    let envelope = json!({"notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
        "payload": {"externalFulfillmentShipmentNotification": {"shipmentId": packed, "shipmentStatus": "PACKAGE_CREATED"}},
        "notificationMetadata": {"notificationId": format!("relay-{packed}"), "applicationId": APP}});
    let (status, out) = warehouse(&w, &api, "POST", "/v1/notifications", envelope).await?;
    assert_eq!(
        (status, &out["stage"]),
        (200, &json!("handed_over")),
        "{out}"
    );
    let mut events = Vec::new();
    w.events(&mut events).await?;
    for (id, status) in [(&confirmed, "CONFIRMED"), (&packed, "PACKAGE_CREATED")] {
        assert_eq!(w.stage(id).await?, Stage::HandedOver);
        assert_eq!(w.confirms(id).await?, (0, 0), "no CONFIRM for {id}");
        let accepted = facts(&events, "ShipmentAccepted", id);
        assert_eq!(accepted.len(), 1, "{events:?}");
        assert_eq!(accepted[0]["handledElsewhere"], status);
    }

    let pack = json!({"packages": [{"id": "P1",
        "dimensions": {"length": {"value": "30", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "10", "dimensionUnit": "CM"}},
        "weight": {"value": "500", "weightUnit": "G"},
        "packageLineItems": [{"packageLineItemId": "1", "quantity": 1}]}]});
    let (status, refused) = warehouse(
        &w,
        &api,
        "POST",
        &format!("/v1/shipments/{packed}/packed"),
        pack,
    )
    .await?;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("another connector"),
        "{refused}"
    );
    let creates = w.admin.calls(Some("createPackages")).await?;
    assert!(creates.is_empty(), "{creates:?}");
    runner.stop().await;

    // `ignore` (the default): stored and kept current, no event, no call.
    settings
        .put(ADOPT_EXISTING_SETTING, json!("ignore"), None, "test")
        .await?;
    let left = w.shipment(&[("CAP-03", 1)]).await?;
    w.admin.advance_shipment(&left, "CONFIRMED").await?;
    let fresh = Orders::from_env(&w.t.env_for("OrderPollerFunction")?).await?;
    let report = w.poll_with(&fresh, &inv()).await?;
    assert_eq!(report["storedNew"], 1, "{report}");
    assert_eq!(w.stage(&left).await?, Stage::LeftAlone);
    let mut later = Vec::new();
    w.events(&mut later).await?;
    assert!(
        facts(&later, "ShipmentAccepted", &left).is_empty(),
        "{later:?}"
    );
    assert_eq!(w.confirms(&left).await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn returns_reach_the_warehouse_and_sellable_units_come_back() -> Result<()> {
    let w = world("orders_returns").await?;
    let runner =
        w.t.runner(RunnerOptions {
            run_schedules: false,
            poll_queues: false,
            only: Some(
                [
                    "WarehouseApiFunction".to_string(),
                    "ReturnsPollerFunction".to_string(),
                ]
                .into(),
            ),
            ..Default::default()
        })
        .await?;
    let api = runner
        .function_url("WarehouseApiFunction")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let shipment = w.shipment(&[("TEE-02", 2)]).await?;
    w.poll().await?;
    let ret = w
        .admin
        .create_return(json!({"shipmentId": shipment, "sku": "TEE-02", "numberOfUnits": 2}))
        .await?;
    let return_id = ret["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no return id: {ret}"))?
        .to_string();

    let report = runner.fire_schedule("ReturnsPollerFunction").await?;
    assert_eq!(report["errors"], json!([]), "{report}");
    w.admin.set_return_status(&return_id, "DELIVERED").await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    runner.fire_schedule("ReturnsPollerFunction").await?;
    runner.fire_schedule("ReturnsPollerFunction").await?;

    let mut events = Vec::new();
    w.events(&mut events).await?;
    let created: Vec<_> = events
        .iter()
        .filter(|(k, d)| k == "ReturnCreated" && d["returnId"] == return_id.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0].1["sku"], "TEE-02");
    assert_eq!(created[0].1["hub"], "HUB-NJ");
    let changed: Vec<_> = events
        .iter()
        .filter(|(k, d)| k == "ReturnStatusChanged" && d["returnId"] == return_id.as_str())
        .collect();
    assert_eq!(changed.len(), 1, "{events:?}");
    assert_eq!(changed[0].1["status"], "DELIVERED");

    let path = format!("/v1/returns/{return_id}/received");
    let (status, bad) = warehouse(
        &w,
        &api,
        "POST",
        &path,
        json!({"sellable": 3, "unsellable": 0}),
    )
    .await?;
    assert_eq!(status, 422, "{bad}");
    let (status, closed) = warehouse(
        &w,
        &api,
        "POST",
        &path,
        json!({"sellable": 1, "unsellable": 1}),
    )
    .await?;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["stage"], "closed");
    let (status, _) = warehouse(
        &w,
        &api,
        "POST",
        &path,
        json!({"sellable": 1, "unsellable": 1}),
    )
    .await?;
    assert_eq!(status, 200, "the same report again is a no-op");
    assert_eq!(
        w.inventory()
            .position(LOC, "TEE-02")
            .await?
            .returned_sellable,
        1
    );
    let (status, listed) =
        warehouse(&w, &api, "GET", "/v1/returns?stage=closed", json!(null)).await?;
    assert_eq!(status, 200);
    assert_eq!(listed["returns"][0]["id"], return_id.as_str());
    runner.stop().await;
    Ok(())
}
