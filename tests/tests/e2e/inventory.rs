//! Inventory sync end to end, on a stack provisioned from template.yaml in moto and the SP-API
//! simulator: warehouse stock reaches Amazon within seconds through the fast path (warehouse
//! API → pending marks → InventoryPushQueue → pusher, run by the local runner); unmapped hubs,
//! older figures, skipped, disabled and refused SKUs; reservations and cancellations; the
//! safety breaker released and discarded; the kill switch and dry run; reconciliation of drift
//! made through the simulator's admin API; two pushers at once within Amazon's limit; a crash
//! between pushing and recording the ledger; stock from an `inventory/` CSV snapshot (delta
//! and a hub's full file), a returned unit added back once, a catalog change reaching Amazon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use flexbridge::inventory::pusher::Pusher;
use flexbridge::inventory::{reconcile, settings as names, QuantityReading};
use flexbridge::ratelimit::Limit;
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::SpApiClient;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::inventory::{DynamoInventoryStore, InventoryStore, PushLedger};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge_e2e::flexbridge_local::{Runner, RunnerOptions};
use flexbridge_e2e::spapi_sim::AdminClient;
use flexbridge_e2e::{eventually, TestStack};
use serde_json::{json, Value};

const EAST: &str = "SIMLOC-EAST-1";
const WEST: &str = "SIMLOC-WEST-1";
const NJ: &str = "HUB-NJ";
const CA: &str = "HUB-CA";
const MARKETPLACE: &str = "ATVPDKIKX0DER";

struct World {
    t: TestStack,
    admin: AdminClient,
    runner: Option<Runner>,
    api: String,
    inventory: DynamoInventoryStore,
    settings: DynamoSettingsStore,
    catalog: DynamoCatalogStore,
}

fn item(sku: &str, enabled: bool) -> CatalogItem {
    CatalogItem {
        sku: sku.into(),
        asin: "B000000001".into(),
        title: None,
        product_type: Some("HOME".into()),
        enabled,
        safety_stock: None,
        max_quantity: None,
        updated_at: "2026-12-01T08:00:00.000Z".into(),
        source: "test".into(),
    }
}

/// A stack whose warehouse API and inventory pusher run in the local runner (queues polled,
/// schedules fired by hand); `skus` are in the catalog and known to Amazon.
async fn world(name: &str, skus: &[String]) -> Result<World> {
    flexbridge_e2e::init_logging();
    let t = TestStack::start(name).await?;
    let admin = AdminClient::new(&t.sim().base_url);
    admin.create_location(EAST, MARKETPLACE, "FBA").await?;
    admin.create_location(WEST, MARKETPLACE, "FBA").await?;
    admin
        .add_skus(&skus.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    let catalog = DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"));
    let items: Vec<CatalogItem> = skus.iter().map(|s| item(s, true)).collect();
    catalog.put_items(&items).await?;
    let runner = t
        .runner(RunnerOptions {
            run_schedules: false,
            receive_wait: Duration::from_secs(1),
            only: Some(
                [
                    "WarehouseApiFunction",
                    "InventoryPusherFunction",
                    "UploadIngestFunction",
                    "ReturnsPollerFunction",
                ]
                .map(String::from)
                .into(),
            ),
            ..Default::default()
        })
        .await?;
    let api = runner
        .function_url("WarehouseApiFunction")
        .ok_or_else(|| anyhow!("warehouse API not served"))?
        .trim_end_matches('/')
        .to_string();
    Ok(World {
        inventory: DynamoInventoryStore::new(t.dynamodb.clone(), t.stack.table("InventoryTable")),
        settings: DynamoSettingsStore::new(t.dynamodb.clone(), t.stack.table("SettingsTable")),
        catalog,
        t,
        admin,
        runner: Some(runner),
        api,
    })
}

impl World {
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<(u16, Value)> {
        flexbridge_e2e::warehouse_call(
            &self.api,
            self.t.seller.warehouse_key.as_bytes(),
            method,
            path,
            body,
        )
        .await
    }

    async fn on_hand(&self, items: &[(&str, &str, u32)]) -> Result<Value> {
        let items: Vec<Value> = items
            .iter()
            .map(|(hub, sku, n)| json!({"hub": hub, "sku": sku, "onHand": n}))
            .collect();
        let (status, body) = self
            .call("POST", "/v1/inventory", json!({ "items": items }))
            .await?;
        anyhow::ensure!(status == 200, "POST /v1/inventory: {status} {body}");
        Ok(body)
    }

    async fn amazon(&self, loc: &str, sku: &str) -> Result<(i64, i64)> {
        let v = self.admin.inventory(loc, sku).await?;
        Ok((
            v["sellableQuantity"].as_i64().unwrap_or(-1),
            v["reservedQuantity"].as_i64().unwrap_or(0),
        ))
    }

    /// Waits until Amazon holds `qty` sellable for (loc, sku).
    async fn amazon_gets(&self, loc: &str, sku: &str, qty: i64) -> Result<()> {
        eventually(
            Duration::from_secs(20),
            &format!("{sku} = {qty}"),
            || async { Ok((self.amazon(loc, sku).await?.0 == qty).then_some(())) },
        )
        .await
    }

    async fn stop(&mut self) {
        if let Some(r) = self.runner.take() {
            r.stop().await;
        }
    }

    async fn sweep(&self) -> Result<Value> {
        self.runner
            .as_ref()
            .expect("runner")
            .fire_schedule("InventoryPusherFunction")
            .await
    }

    async fn set(&self, name: &str, value: Value) -> Result<()> {
        self.settings.put(name, value, None, "test").await?;
        Ok(())
    }

    async fn pusher(&self) -> Result<Pusher> {
        Ok(Pusher::from_env(&self.t.env_for("InventoryPusherFunction")?).await?)
    }

    async fn event_names(&self) -> Result<Vec<(String, Value)>> {
        let url = self.t.stack.queue_url("OutboundQueue");
        let mut out = Vec::new();
        loop {
            let r = self
                .t
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(out);
            }
            for m in msgs {
                let v: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
                out.push((
                    v["detail-type"].as_str().unwrap_or("").to_string(),
                    v["detail"].clone(),
                ));
            }
        }
    }
}

fn skus(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

#[tokio::test]
async fn warehouse_stock_reaches_amazon_within_seconds_and_orders_reserve() -> Result<()> {
    let mut all = skus("MUG", 2);
    all.push("OFF-1".into());
    let mut w = world("inv_fast_path", &all).await?;
    // In the catalog but unknown to Amazon; and known to Amazon, absent from the catalog.
    w.catalog.put_items(&[item("GHOST-1", true)]).await?;
    w.catalog.put_items(&[item("OFF-1", false)]).await?;
    w.admin.add_skus(&["STRAY-1"]).await?;

    let body = w
        .on_hand(&[
            (NJ, "MUG-000", 10),
            (NJ, "MUG-001", 4),
            ("NOWHERE", "MUG-000", 3),
            (NJ, "OFF-1", 9),
            (NJ, "GHOST-1", 2),
            (NJ, "STRAY-1", 2),
        ])
        .await?;
    assert_eq!(body["accepted"], 5, "{body}");
    assert_eq!(body["refused"][0]["index"], 2);
    assert!(body["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("NOWHERE"));
    let started = std::time::Instant::now();
    w.amazon_gets(EAST, "MUG-000", 10).await?;
    assert!(started.elapsed() < Duration::from_secs(15));
    w.amazon_gets(EAST, "MUG-001", 4).await?;
    w.amazon_gets(EAST, "OFF-1", 0).await?; // disabled: pushed as 0
    let ghost = w.inventory.positions(EAST, &["GHOST-1".into()]).await?;
    assert!(
        ghost[0]
            .push_error
            .as_deref()
            .is_some_and(|e| e.contains("INVALID_SKU")),
        "{ghost:?}"
    );
    assert_eq!(
        w.admin.inventory(EAST, "STRAY-1").await?["updatesApplied"],
        0,
        "never pushed"
    );
    // Nothing is left pending, nothing is retried blindly.
    eventually(Duration::from_secs(10), "nothing pending", || async {
        Ok(w.inventory.pending(EAST).await?.is_empty().then_some(()))
    })
    .await?;

    // An older figure never rolls stock back.
    let (status, body) = w
        .call(
            "POST",
            "/v1/inventory",
            json!({"items": [{"hub": NJ, "sku": "MUG-000", "onHand": 1}], "asOf": "2020-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!((status, body["skippedAsOlder"].as_u64()), (200, Some(1)));

    // An order: Amazon lowers sellable and reserves; we reserve (the orders capability) and the
    // push that follows says the same. Cancelled: both give the units back.
    let ship = w
        .admin
        .create_shipment(json!({"locationId": EAST, "lineItems": [{"sku": "MUG-000", "quantity": 3, "unitPrice": "5.00"}]}))
        .await?;
    let id = ship["id"].as_str().unwrap().to_string();
    assert_eq!(w.amazon(EAST, "MUG-000").await?, (7, 3));
    w.inventory
        .set_reservation(EAST, "MUG-000", &id, "1", 3)
        .await?;
    w.sweep().await?;
    assert_eq!(w.amazon(EAST, "MUG-000").await?, (7, 3));
    let ledger = w.inventory.positions(EAST, &["MUG-000".into()]).await?;
    assert_eq!(ledger[0].pushed_qty, Some(7));
    // Amazon refuses what is not offered: more than sellable.
    let refused = w
        .admin
        .create_shipment(json!({"locationId": EAST, "lineItems": [{"sku": "MUG-001", "quantity": 5, "unitPrice": "5.00"}]}))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    w.admin.cancel_shipment(&id).await?;
    w.inventory
        .set_reservation(EAST, "MUG-000", &id, "1", 0)
        .await?;
    w.sweep().await?;
    assert_eq!(w.amazon(EAST, "MUG-000").await?, (10, 0));
    let seq = w.admin.inventory(EAST, "MUG-000").await?["clientSequenceNumber"]
        .as_i64()
        .unwrap();
    assert!(seq > 1_000_000_000_000_000, "microseconds: {seq}");

    // Newer always wins at Amazon: a delayed older request is refused for that item.
    let client = SpApiClient::from_env(
        &w.t.env_for("InventoryPusherFunction")?,
        &SecretCache::from_sdk_config(&w.t.sdk),
    )
    .await?;
    let old = flexbridge::spapi::models::inventory::InventoryRequest::update(
        EAST,
        "MUG-000",
        99,
        seq - 1,
        None,
    );
    let r = client.batch_inventory(&[old]).await?;
    assert_eq!(r[0].status.status_code, Some(409));
    assert_eq!(w.amazon(EAST, "MUG-000").await?.0, 10);
    w.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_breaker_halts_a_wipe_until_a_person_discards_or_releases_it() -> Result<()> {
    let all = skus("SKU", 10);
    let mut w = world("inv_breaker", &all).await?;
    let full: Vec<(&str, &str, u32)> = all.iter().map(|s| (NJ, s.as_str(), 10)).collect();
    w.on_hand(&full).await?;
    w.amazon_gets(EAST, "SKU-009", 10).await?;
    eventually(Duration::from_secs(10), "pushed", || async {
        Ok(w.inventory.pending(EAST).await?.is_empty().then_some(()))
    })
    .await?;

    let zero: Vec<(&str, &str, u32)> = all.iter().map(|s| (NJ, s.as_str(), 0)).collect();
    w.on_hand(&zero).await?;
    let halt = eventually(Duration::from_secs(20), "halted", || async {
        let (_, body) = w.call("GET", "/v1/inventory/halts", json!({})).await?;
        Ok(body["halts"].as_array().and_then(|h| h.first().cloned()))
    })
    .await?;
    assert_eq!(halt["skusZeroed"], 10, "{halt}");
    assert_eq!(halt["unitsBefore"], 100);
    assert_eq!(w.amazon(EAST, "SKU-000").await?.0, 10, "nothing was sent");
    let events = w.event_names().await?;
    let halted = events
        .iter()
        .find(|(n, _)| n == "InventoryPushHalted")
        .ok_or_else(|| anyhow!("no InventoryPushHalted in {events:?}"))?;
    assert_eq!(halted.1["locationId"], EAST);
    assert_eq!(halted.1["hub"], NJ);

    // Discard: Amazon keeps what it has.
    let (status, body) = w
        .call(
            "POST",
            &format!("/v1/inventory/halts/{EAST}/discard"),
            json!({}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(20), "discarded", || async {
        Ok(w.inventory.halt(EAST).await?.is_none().then_some(()))
    })
    .await?;
    assert_eq!(w.amazon(EAST, "SKU-000").await?.0, 10);
    assert!(w.inventory.pending(EAST).await?.is_empty());
    let (status, _) = w
        .call(
            "POST",
            &format!("/v1/inventory/halts/{EAST}/release"),
            json!({}),
        )
        .await?;
    assert_eq!(status, 404, "nothing halted any more");

    // The same wipe again, released this time: it goes out.
    let zero_later: Vec<(&str, &str, u32)> = all.iter().map(|s| (NJ, s.as_str(), 0)).collect();
    w.on_hand(&zero_later).await?;
    eventually(Duration::from_secs(20), "halted again", || async {
        Ok(w.inventory.halt(EAST).await?.map(|_| ()))
    })
    .await?;
    let (status, body) = w
        .call(
            "POST",
            &format!("/v1/inventory/halts/{EAST}/release"),
            json!({}),
        )
        .await?;
    assert_eq!(
        (status, body["halt"]["status"].as_str()),
        (200, Some("released"))
    );
    w.amazon_gets(EAST, "SKU-009", 0).await?;

    // Kill switch: nothing goes out, the change waits. Dry run: recorded, not sent.
    w.set(names::PUSH_ENABLED, json!(false)).await?;
    w.on_hand(&[(NJ, "SKU-000", 5)]).await?;
    let report = w.sweep().await?;
    assert_eq!(report["push"]["enabled"], false, "{report}");
    w.set(names::PUSH_ENABLED, json!(true)).await?;
    w.set(names::DRY_RUN, json!(true)).await?;
    let report = w.sweep().await?;
    let east = &report["push"]["locations"][0];
    assert_eq!(east["status"], "dry_run", "{report}");
    assert_eq!(east["wouldPush"][0]["quantity"], 5);
    assert_eq!(w.amazon(EAST, "SKU-000").await?.0, 0);
    w.set(names::DRY_RUN, json!(false)).await?;
    w.sweep().await?;
    assert_eq!(w.amazon(EAST, "SKU-000").await?.0, 5);
    w.stop().await;
    Ok(())
}

#[tokio::test]
async fn reconciliation_corrects_drift_and_tells_the_reading() -> Result<()> {
    let all = skus("REC", 3);
    let mut w = world("inv_reconcile", &all).await?;
    w.on_hand(&[(NJ, "REC-000", 8), (NJ, "REC-001", 6), (NJ, "REC-002", 4)])
        .await?;
    w.amazon_gets(EAST, "REC-002", 4).await?;
    // An order is open on one SKU.
    let ship = w
        .admin
        .create_shipment(json!({"locationId": EAST, "lineItems": [{"sku": "REC-001", "quantity": 2, "unitPrice": "5.00"}]}))
        .await?;
    w.inventory
        .set_reservation(EAST, "REC-001", ship["id"].as_str().unwrap(), "1", 2)
        .await?;
    // Pushes REC-001 = 4; reconciliation runs too (never ran): nothing drifted yet.
    let report = w.sweep().await?;
    assert_eq!(
        report["reconcile"]["locations"][0]["driftCount"], 0,
        "{report}"
    );
    // The fast path (the runner consumes InventoryPushQueue) may still be pushing what the
    // sweep pushed: reconciliation votes only on settled positions, so wait for them (a loaded
    // machine showed the race: no vote, no reading).
    w.amazon_gets(EAST, "REC-001", 4).await?;
    eventually(
        Duration::from_secs(20),
        "every position settled",
        || async {
            let ledger = w.inventory.ledger(EAST).await?;
            Ok(ledger
                .iter()
                .all(|p| p.pending_gen <= p.done_gen)
                .then_some(()))
        },
    )
    .await?;
    // Someone changes Amazon's number behind our back.
    w.admin.set_inventory(EAST, "REC-000", 50).await?;
    let pusher = w.pusher().await?;
    let report = reconcile::reconcile(&pusher, None).await?;
    assert_eq!(report.detected_reading, Some(QuantityReading::Sellable));
    assert!(report.votes_sellable >= 1, "{report:?}");
    let east = report
        .locations
        .iter()
        .find(|l| l.location_id == EAST)
        .unwrap();
    assert_eq!(east.drift_count, 1, "{report:?}");
    assert_eq!(east.drift[0].sku, "REC-000");
    assert_eq!(w.amazon(EAST, "REC-000").await?.0, 8, "corrected");
    w.stop().await;
    Ok(())
}

#[tokio::test]
async fn two_pushers_stay_within_amazons_limit_and_a_crash_loses_nothing() -> Result<()> {
    let all = skus("PAR", 150);
    let w = world("inv_two_pushers", &all).await?;
    // Amazon's limit made small so the test is short: 10 rps, burst 20.
    w.admin
        .set_rate_limit(
            "batchInventory",
            flexbridge_e2e::spapi_sim::RateLimit {
                rate: 10.0,
                burst: 20.0,
            },
        )
        .await?;
    let mut w = w;
    w.stop().await;
    let env = w.t.env_for("InventoryPusherFunction")?;
    let on_hand_east: Vec<(&str, &str, u32)> = all.iter().map(|s| (NJ, s.as_str(), 7)).collect();
    let on_hand_west: Vec<(&str, &str, u32)> = all.iter().map(|s| (CA, s.as_str(), 9)).collect();
    // Marks only (the queue is not polled now): store through the same code as the API.
    let stock = flexbridge::inventory::changes::StockChanges::from_env(
        &w.t.env_for("WarehouseApiFunction")?,
    )
    .await?;
    let figures = |items: &[(&str, &str, u32)]| {
        items
            .iter()
            .map(|(hub, sku, n)| flexbridge::store::inventory::OnHand {
                hub: hub.to_string(),
                sku: sku.to_string(),
                on_hand: *n,
                reported_at: chrono::Utc::now(),
            })
            .collect::<Vec<_>>()
    };
    stock.report_on_hand(figures(&on_hand_east)).await?;
    stock.report_on_hand(figures(&on_hand_west)).await?;
    let limit = Some(Limit::new(10.0, 20));
    let client =
        || async { SpApiClient::from_env(&env, &SecretCache::from_sdk_config(&w.t.sdk)).await };
    let a = Pusher::with_client(&env, client().await?, limit).await?;
    let b = Pusher::with_client(&env, client().await?, limit).await?;
    let started = std::time::Instant::now();
    let (east, west) = ([EAST.to_string()], [WEST.to_string()]);
    let (ra, rb) = tokio::join!(a.push(Some(&east), None), b.push(Some(&west), None));
    let (ra, rb) = (ra?, rb?);
    let took = started.elapsed().as_secs_f64();
    assert_eq!(ra.failed_calls() + rb.failed_calls(), 0, "{ra:?} {rb:?}");
    assert_eq!(ra.locations[0].accepted + rb.locations[0].accepted, 300);
    let calls = w.admin.calls(Some("batchInventory")).await?;
    let throttled = calls.iter().filter(|c| c["status"] == 429).count();
    let ok = calls.iter().filter(|c| c["status"] == 207).count();
    assert_eq!(ok, 30);
    assert!(throttled <= 5, "{throttled} 429s");
    // 30 calls: 20 at once, 10 more at 10/s.
    assert!(took >= 0.9, "took {took:.2} s: the limit was not shared");
    assert_eq!(w.amazon(WEST, "PAR-149").await?.0, 9);

    // A crash after Amazon answered, before the ledger: the next run sends the newest value
    // (never a stale one), and nothing stays behind.
    let mut crashing = Pusher::from_env(&env).await?;
    let crash = Arc::new(AtomicBool::new(true));
    let c = crash.clone();
    crashing.crash_after_send = Some(Arc::new(move |_| c.swap(false, Ordering::SeqCst)));
    stock.report_on_hand(figures(&[(NJ, "PAR-000", 3)])).await?;
    assert!(crashing
        .push(Some(&[EAST.to_string()]), None)
        .await
        .is_err());
    assert_eq!(w.amazon(EAST, "PAR-000").await?.0, 3, "Amazon has it");
    assert_eq!(w.inventory.pending(EAST).await?, ["PAR-000"]);
    stock.report_on_hand(figures(&[(NJ, "PAR-000", 2)])).await?;
    let r = crashing.push(Some(&[EAST.to_string()]), None).await?;
    assert_eq!(r.locations[0].accepted, 1);
    assert_eq!(w.amazon(EAST, "PAR-000").await?.0, 2);
    assert!(w.inventory.pending(EAST).await?.is_empty());
    assert_eq!(
        w.inventory.positions(EAST, &["PAR-000".into()]).await?[0].pushed_qty,
        Some(2)
    );
    assert_eq!(w.admin.oversold().await?["oversoldUnits"], 0);
    Ok(())
}

#[tokio::test]
async fn csv_snapshots_returns_and_catalog_changes_reach_amazon() -> Result<()> {
    let all = skus("CSV", 6);
    let mut w = world("inv_csv_returns", &all).await?;
    let bucket = w.t.stack.bucket("UploadsBucket").to_string();
    let put = async |key: &str, body: &str| -> Result<()> {
        w.t.s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await?;
        Ok(())
    };
    // A delta: only its rows; a bad row is reported, the rest applied.
    put(
        "inventory/delta/morning.csv",
        &format!(
            "hub,sku,on_hand\n{NJ},CSV-000,8\n{NJ},CSV-001,6\n{NJ},CSV-002,5\n{NJ},CSV-003,5\n{NJ},CSV-004,5\n{NJ},CSV-005,5\nNOWHERE,CSV-000,1\n"
        ),
    )
    .await?;
    w.amazon_gets(EAST, "CSV-000", 8).await?;
    w.amazon_gets(EAST, "CSV-005", 5).await?;
    let errors = eventually(Duration::from_secs(20), "errors report", || async {
        Ok(w.t
            .s3
            .get_object()
            .bucket(&bucket)
            .key("reports/inventory/delta/morning.csv.errors.csv")
            .send()
            .await
            .ok())
    })
    .await?;
    let errors = String::from_utf8(errors.body.collect().await?.to_vec())?;
    assert!(errors.contains("8,hub,NOWHERE"), "{errors}");
    // The hub's full file without CSV-005: it becomes zero, the others as stated.
    put(
        &format!("inventory/full/{NJ}/evening.csv"),
        &format!(
            "hub,sku,on_hand\n{NJ},CSV-000,7\n{NJ},CSV-001,6\n{NJ},CSV-002,5\n{NJ},CSV-003,5\n{NJ},CSV-004,5\n"
        ),
    )
    .await?;
    w.amazon_gets(EAST, "CSV-005", 0).await?;
    w.amazon_gets(EAST, "CSV-000", 7).await?;
    assert_eq!(w.amazon(EAST, "CSV-001").await?.0, 6);
    let events = w.event_names().await?;
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "UploadProcessed" && d["kind"] == "inventory"),
        "{events:?}"
    );

    // A return received as sellable: on hand grows once, and Amazon gets it.
    let ret = w
        .admin
        .create_return(json!({"locationId": EAST, "sku": "CSV-001", "numberOfUnits": 2}))
        .await?;
    let return_id = ret["id"].as_str().unwrap().to_string();
    let runner = w.runner.as_ref().expect("runner");
    runner.fire_schedule("ReturnsPollerFunction").await?;
    let path = format!("/v1/returns/{return_id}/received");
    for _ in 0..2 {
        let (status, body) = w
            .call("POST", &path, json!({"sellable": 2, "unsellable": 0}))
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    w.amazon_gets(EAST, "CSV-001", 8).await?;
    w.sweep().await?;
    assert_eq!(w.amazon(EAST, "CSV-001").await?.0, 8, "added back once");

    // A catalog change: safety stock 3 on CSV-002 (5 on hand) advertises 2.
    put(
        "catalog/delta/safety.csv",
        "sku,asin,safety_stock\nCSV-002,B000000001,3\n",
    )
    .await?;
    w.amazon_gets(EAST, "CSV-002", 2).await?;
    w.stop().await;
    Ok(())
}

/// A transaction moto refuses (here a return credited again; in the chaos run, the SDK's resend
/// of a reservation whose answer was lost: its marker exists) must not put an older copy of
/// the items it names back over writes that landed meanwhile. Every line's reservation stays
/// in the position's `reserved` (the chaos run with AWS's faults sold units the warehouse did
/// not have when one was lost).
#[tokio::test]
async fn a_refused_transaction_loses_no_concurrent_reservation() -> Result<()> {
    use futures::StreamExt;
    let t = TestStack::start_with(
        "inv_refused_tx",
        flexbridge_e2e::TestOptions {
            simulator: false,
            ..Default::default()
        },
    )
    .await?;
    let inv = Arc::new(DynamoInventoryStore::new(
        t.dynamodb.clone(),
        t.stack.table("InventoryTable"),
    ));
    inv.credit_return(EAST, Some(NJ), "A", "R1", 1).await?;
    const LINES: usize = 300;
    let done = Arc::new(AtomicBool::new(false));
    let refused = {
        let (inv, done) = (Arc::clone(&inv), Arc::clone(&done));
        tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                // Refused by moto: the credit marker exists.
                inv.credit_return(EAST, Some(NJ), "A", "R1", 1).await?;
                n += 1;
            }
            anyhow::Ok(n)
        })
    };
    // Nor may a read see what a refused transaction applied before moto put it back.
    let reader = {
        let (inv, done) = (Arc::clone(&inv), Arc::clone(&done));
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                seen.insert(inv.position(EAST, "A").await?.returned_sellable);
            }
            anyhow::Ok(seen)
        })
    };
    let reserved: Vec<flexbridge::Result<()>> = futures::stream::iter(0..LINES)
        .map(|i| {
            let inv = Arc::clone(&inv);
            async move {
                inv.set_reservation(EAST, "A", &format!("S{i}"), "1", 1)
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    done.store(true, Ordering::Relaxed);
    let refusals = refused.await??;
    let returned_seen = reader.await??;
    assert!(
        refusals > 10,
        "only {refusals} refused transactions ran alongside"
    );
    for r in reserved {
        r?;
    }
    assert_eq!(
        returned_seen.into_iter().collect::<Vec<_>>(),
        [1],
        "returned units as read while refused credits ran"
    );
    let p = inv.position(EAST, "A").await?;
    assert_eq!(p.reserved, LINES as i64, "every reservation counted once");
    assert_eq!(p.returned_sellable, 1, "the return credited once");
    Ok(())
}
