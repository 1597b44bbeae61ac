//! Fulfilment end to end, on a stack from template.yaml in moto and the SP-API simulator: packed
//! (invalid packings refused, nothing written) → LabelsQueue → label worker (through the local
//! runner) → labels in S3 and `LabelReady` → shipped at Amazon, reservation released,
//! `ShipmentShipped`; a redelivered job; apply-then-fail at each step with an effect; a reprint; a
//! re-pack; a seller-uploaded invoice; cancellations (REJECT allowed and refused, auto-cancel
//! off, Amazon cancelling mid-job).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use flexbridge::fulfilment::ports::{FulfilmentApi, JobQueue};
use flexbridge::fulfilment::worker::JobOutcome;
use flexbridge::fulfilment::{FulfilmentService, LabelJob};
use flexbridge::orders::poller::OrderPoller;
use flexbridge::orders::Orders;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::Stage;
use flexbridge::spapi::{
    InvoiceResponse, LabelOperation, Package, ShipLabelsResponse, Shipment, ShippingOptionsResponse,
};
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::inventory::{DynamoInventoryStore, InventoryStore, OnHandStore};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge_e2e::flexbridge_local::{Runner, RunnerOptions};
use flexbridge_e2e::spapi_sim::{AdminClient, FaultKind};
use flexbridge_e2e::{eventually, TestStack};
use serde_json::{json, Value};

const FLEX: &str = "SIMLOC-EAST-1";
const MFN: &str = "SIMLOC-WEST-1";
const MARKETPLACE: &str = "ATVPDKIKX0DER";
const SKUS: [&str; 3] = ["MUG-01", "TEE-02", "CAP-03"];

struct World {
    t: TestStack,
    admin: AdminClient,
    orders: Orders,
    runner: Runner,
    api: String,
}

fn inv() -> Invocation {
    Invocation::new("test", Duration::from_secs(60))
}

/// `consume`: whether the runner delivers LabelsQueue/CancellationsQueue to the workers (else
/// the test runs the jobs itself, deterministically).
async fn world(name: &str, consume: bool) -> Result<World> {
    flexbridge_e2e::init_logging();
    let t = TestStack::start(name).await?;
    let admin = AdminClient::new(&t.sim().base_url);
    admin.create_location(FLEX, MARKETPLACE, "FBA").await?;
    admin.create_location(MFN, MARKETPLACE, "MFN").await?;
    for sku in SKUS {
        admin.set_inventory(MFN, sku, 100).await?;
    }
    let catalog = DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"));
    let items: Vec<CatalogItem> = SKUS
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: sku.to_string(),
            asin: format!("B0000000{i:02}"),
            title: None,
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
    let mut only: BTreeSet<String> = ["WarehouseApiFunction".to_string()].into();
    if consume {
        only.insert("LabelWorkerFunction".into());
        only.insert("CancellationWorkerFunction".into());
    }
    let runner = t
        .runner(RunnerOptions {
            run_schedules: false,
            poll_queues: consume,
            only: Some(only),
            receive_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await?;
    let api = runner
        .function_url("WarehouseApiFunction")
        .ok_or_else(|| anyhow!("warehouse API not served"))?
        .trim_end_matches('/')
        .to_string();
    Ok(World {
        t,
        admin,
        orders,
        runner,
        api,
    })
}

impl World {
    /// A shipment at Amazon, polled, confirmed and handed over to the warehouse.
    async fn handed_over(&self, location: &str, spec: Value) -> Result<String> {
        let mut spec = spec;
        spec["locationId"] = location.into();
        let s = self.admin.create_shipment(spec).await?;
        let id = s["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id"))?
            .to_string();
        self.poll().await?;
        assert_eq!(self.stage(&id).await?, Stage::HandedOver, "{id}");
        Ok(id)
    }

    /// One order poll: new shipments are stored, confirmed and handed over.
    async fn poll(&self) -> Result<()> {
        let processor = self.orders.processor(&inv());
        let mut settings = self.orders.poll_settings().await?;
        settings.pass_interval = Duration::ZERO;
        OrderPoller {
            processor: &processor,
            cursors: self.orders.cursors.as_ref(),
            settings,
        }
        .run(&inv())
        .await?;
        Ok(())
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

    async fn wait_stage(&self, id: &str, stage: Stage) -> Result<()> {
        eventually(
            Duration::from_secs(60),
            &format!("{id} {stage:?}"),
            || async { Ok((self.stage(id).await? == stage).then_some(())) },
        )
        .await
    }

    /// A signed warehouse request.
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

    /// Calls of one operation on one shipment at the simulator: (status, query, note).
    async fn calls(&self, op: &str, id: &str) -> Result<Vec<(u64, String, String)>> {
        Ok(self
            .admin
            .calls(Some(op))
            .await?
            .into_iter()
            .filter(|c| c["path"].as_str().unwrap_or("").contains(id))
            .map(|c| {
                (
                    c["status"].as_u64().unwrap_or(0),
                    c["query"].to_string(),
                    c["note"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// Calls that reached Amazon's state machine (answered, or applied then failed).
    async fn applied(&self, op: &str, id: &str) -> Result<usize> {
        Ok(self
            .calls(op, id)
            .await?
            .iter()
            .filter(|(s, _, note)| (200..300).contains(s) || note.contains("ApplyThenFail"))
            .count())
    }

    /// Every event published so far (read off OutboundQueue, where the bus rule puts them).
    async fn events(&self, seen: &mut Vec<(String, Value)>) -> Result<()> {
        let url = self.t.stack.queue_url("OutboundQueue");
        loop {
            let out = self
                .t
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            if out.messages().is_empty() {
                return Ok(());
            }
            for m in out.messages() {
                let v: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
                seen.push((
                    v["detail-type"].as_str().unwrap_or("").to_string(),
                    v["detail"].clone(),
                ));
                self.t
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await?;
            }
        }
    }

    fn inventory(&self) -> DynamoInventoryStore {
        DynamoInventoryStore::new(
            self.t.dynamodb.clone(),
            self.t.stack.table("InventoryTable"),
        )
    }

    async fn service(&self) -> Result<FulfilmentService> {
        self.service_of("LabelWorkerFunction").await
    }

    /// The fulfilment service as `function` builds it (its environment, so its queues).
    async fn service_of(&self, function: &str) -> Result<FulfilmentService> {
        Ok(FulfilmentService::from_env(&self.t.env_for(function)?).await?)
    }

    /// Runs every label job on LabelsQueue (as the worker would), deleting each handled one.
    async fn drain_labels(&self) -> Result<Vec<Value>> {
        let url = self.t.stack.queue_url("LabelsQueue");
        let service = self.service().await?;
        let mut outcomes = Vec::new();
        loop {
            let out = self
                .t
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            if out.messages().is_empty() {
                return Ok(outcomes);
            }
            for m in out.messages() {
                let job: LabelJob = serde_json::from_str(m.body().unwrap_or(""))?;
                let i = inv();
                let o = service.fulfiller(&i).run_label_job(&job, &i).await?;
                outcomes.push(serde_json::to_value(o)?);
                self.t
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await?;
            }
        }
    }
}

/// A labels queue that keeps the jobs (the test runs them itself).
#[derive(Default)]
struct Parked(Mutex<Vec<Value>>);

#[async_trait::async_trait]
impl JobQueue for Parked {
    async fn send(&self, body: &Value) -> flexbridge::Result<()> {
        self.0.lock().unwrap().push(body.clone());
        Ok(())
    }
}

/// Amazon as the label job sees it, except that Amazon cancels the shipment right after its
/// packages are created (a marketplace cancellation while the job runs).
struct CancelledAfterPackages {
    inner: Arc<dyn FulfilmentApi>,
    admin: AdminClient,
}

#[async_trait::async_trait]
impl FulfilmentApi for CancelledAfterPackages {
    async fn shipment(&self, id: &str) -> flexbridge::Result<Shipment> {
        self.inner.shipment(id).await
    }
    async fn create_packages(&self, id: &str, packages: &[Package]) -> flexbridge::Result<()> {
        self.inner.create_packages(id, packages).await?;
        self.admin
            .cancel_shipment(id)
            .await
            .map_err(|e| flexbridge::Error::Internal(format!("{e:#}")))?;
        Ok(())
    }
    async fn update_package(&self, id: &str, package: &Package) -> flexbridge::Result<()> {
        self.inner.update_package(id, package).await
    }
    async fn shipping_options(
        &self,
        id: &str,
        package_id: &str,
    ) -> flexbridge::Result<ShippingOptionsResponse> {
        self.inner.shipping_options(id, package_id).await
    }
    async fn generate_invoice(&self, id: &str) -> flexbridge::Result<InvoiceResponse> {
        self.inner.generate_invoice(id).await
    }
    async fn retrieve_invoice(&self, id: &str) -> flexbridge::Result<InvoiceResponse> {
        self.inner.retrieve_invoice(id).await
    }
    async fn ship_labels(
        &self,
        id: &str,
        operation: LabelOperation,
        shipping_option_id: Option<&str>,
        package_ids: &[String],
    ) -> flexbridge::Result<ShipLabelsResponse> {
        self.inner
            .ship_labels(id, operation, shipping_option_id, package_ids)
            .await
    }
    async fn mark_shipped(&self, id: &str, package_id: &str) -> flexbridge::Result<()> {
        self.inner.mark_shipped(id, package_id).await
    }
}

fn package(id: &str, grams: &str, lines: Value) -> Value {
    json!({"id": id,
        "dimensions": {"length": {"value": "30", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "10", "dimensionUnit": "CM"}},
        "weight": {"value": grams, "weightUnit": "G"},
        "packageLineItems": lines})
}

fn facts(events: &[(String, Value)], kind: &str, id: &str) -> Vec<Value> {
    let mut ids = BTreeSet::new();
    events
        .iter()
        .filter(|(k, d)| k == kind && d["shipmentId"] == id)
        .filter(|(_, d)| ids.insert(d["eventId"].as_str().unwrap_or("").to_string()))
        .map(|(_, d)| d.clone())
        .collect()
}

#[tokio::test]
async fn packed_to_shipped_through_the_queue() -> Result<()> {
    let w = world("fulfil_path", true).await?;
    let id = w
        .handed_over(
            FLEX,
            json!({"lineItems": [{"sku": "MUG-01", "quantity": 2, "unitPrice": "9.50"},
                {"sku": "TEE-02", "quantity": 1, "unitPrice": "15.00", "serialNumbersRequired": true},
                {"sku": "CAP-03", "quantity": 1, "unitPrice": "3.00", "countryOfOriginRequired": true, "hazmatLabelsRequired": true}]}),
        )
        .await?;
    let path = format!("/v1/shipments/{id}/packed");

    // Each invalid packing: 422 naming the problem, nothing written, nothing queued.
    let mut good = json!({"packages": [
        package("BOX-1", "450", json!([{"packageLineItemId": "1", "quantity": 2}])),
        package("BOX-2", "300", json!([{"packageLineItemId": "2", "quantity": 1, "serialNumbers": ["SN-1"]},
            {"packageLineItemId": "3", "quantity": 1, "countryOfOrigin": "DE"}]))]});
    good["packages"][1]["hazmatLabels"] = json!(["UN3481"]);
    let mut light = good.clone();
    light["packages"][0]["weight"]["value"] = "4".into();
    let mut short = good.clone();
    short["packages"][0]["packageLineItems"][0]["quantity"] = 1.into();
    let mut twice = good.clone();
    twice["packages"][1]["packageLineItems"][1] = json!({"packageLineItemId": "1", "quantity": 1});
    let mut no_country = good.clone();
    no_country["packages"][1]["packageLineItems"][1]
        .as_object_mut()
        .unwrap()
        .remove("countryOfOrigin");
    let mut no_hazmat = good.clone();
    no_hazmat["packages"][1]
        .as_object_mut()
        .unwrap()
        .remove("hazmatLabels");
    let mut bad_weight_unit = good.clone();
    bad_weight_unit["packages"][0]["weight"] = json!({"value": "1", "weightUnit": "TON"});
    let mut zero = good.clone();
    zero["packages"][0]["packageLineItems"][0]["quantity"] = 0.into();
    let mut no_serial = good.clone();
    no_serial["packages"][1]["packageLineItems"][0]["serialNumbers"] = json!([]);
    let mut stranger = good.clone();
    stranger["packages"][0]["packageLineItems"][0]["packageLineItemId"] = "7".into();
    let mut unit = good.clone();
    unit["packages"][0]["dimensions"]["height"]["dimensionUnit"] = "FT".into();
    for (body, expect) in [
        (&light, "below Amazon's minimum of 5 g"),
        (&short, "line 1 (MUG-01): 1 units packed, 2 open units"),
        (&twice, "line 1 (MUG-01): 3 units packed"),
        (&no_serial, "0 serial numbers for 1 units"),
        (&stranger, "line 7 is not a line of shipment"),
        (&unit, "height must be a positive value in CM, M or IN"),
        (&bad_weight_unit, "weight unit must be G, KG, LB or OZ"),
        (&zero, "package BOX-1, line 1: quantity must be at least 1"),
        (&no_country, "line 3 (CAP-03): countryOfOrigin is required"),
        (
            &no_hazmat,
            "package BOX-2: holds a line that requires hazmat labels",
        ),
    ] {
        let (status, out) = w.call("POST", &path, body.clone()).await?;
        assert_eq!(status, 422, "{out}");
        assert!(
            out["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(expect),
            "{expect}: {out}"
        );
    }
    let stored = w.orders.shipments.get(&id).await?.unwrap();
    assert!(stored.fulfilment.is_none() && stored.stage == Stage::HandedOver);
    assert_eq!(w.t.queue_depth("LabelsQueue").await?, 0);

    // Valid: 202 at once, then the worker takes it to labelled.
    let (status, out) = w.call("POST", &path, good.clone()).await?;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["stage"], "packed");
    w.wait_stage(&id, Stage::Labelled).await?;
    let r = w.orders.shipments.get(&id).await?.unwrap();
    let f = r.fulfilment.clone().unwrap();
    assert_eq!(f.labels.len(), 2);
    for (pid, l) in &f.labels {
        let key = l.key.clone().unwrap();
        assert!(
            key.starts_with(&format!("labels/{FLEX}/{id}/{pid}-label-1.")),
            "{key}"
        );
        assert!(key.ends_with(".zpl"), "Seller Flex labels are ZPL: {key}");
        assert!(l.tracking_id.starts_with("SIM"), "{l:?}");
    }
    let steps: Vec<&str> = f.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        steps,
        [
            "packed",
            "packages",
            "labels",
            "download",
            "download",
            "label_ready"
        ]
    );

    // LabelReady per package, with a link that serves the stored file.
    let mut events = Vec::new();
    w.events(&mut events).await?;
    let ready = facts(&events, "LabelReady", &id);
    assert_eq!(ready.len(), 2, "{events:?}");
    let link = ready[0]["labelUrl"].as_str().unwrap();
    let bytes = reqwest::get(link)
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    assert!(
        bytes.starts_with(b"^XA"),
        "a ZPL label: {:?}",
        &bytes[..8.min(bytes.len())]
    );
    assert_eq!(ready[0]["hub"], "HUB-NJ");
    // The event says when its links stop working: within the hour they were wanted for.
    let expires = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let announced = expires(&ready[0]["linksExpireAt"])?;
    assert!(announced <= in_an_hour && announced > in_an_hour - chrono::Duration::minutes(5));

    // Fresh links, when those have expired: from the API, and from the operator CLI.
    let (status, fresh) = w
        .call("GET", &format!("/v1/shipments/{id}/labels"), Value::Null)
        .await?;
    assert_eq!(status, 200, "{fresh}");
    let cli = flexbridge_cli::run_with(
        [
            "flexbridge",
            "--stack",
            w.t.stack.name.as_str(),
            "--json",
            "link",
            "labels",
            id.as_str(),
        ],
        std::collections::HashMap::from([(
            "AWS_ENDPOINT_URL".to_string(),
            w.t.endpoint().to_string(),
        )]),
    )
    .await
    .map_err(|e| anyhow!("flexbridge link labels: {e}"))?;
    let cli: Value = serde_json::from_str(&cli)?;
    for links in [&fresh, &cli] {
        let labels = links["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 2, "{links}");
        for l in labels {
            let got = reqwest::get(l["url"].as_str().unwrap())
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            assert!(got.starts_with(b"^XA"), "{l}");
            assert!(expires(&l["expiresAt"])? > announced - chrono::Duration::minutes(5));
        }
        assert_eq!(
            expires(&links["linksExpireAt"])?,
            labels
                .iter()
                .map(|l| expires(&l["expiresAt"]).unwrap())
                .min()
                .unwrap()
        );
    }

    // The same packing again and a redelivered job: nothing happens twice at Amazon.
    let (status, _) = w.call("POST", &path, good.clone()).await?;
    assert_eq!(status, 202);
    w.t.sqs
        .send_message()
        .queue_url(w.t.stack.queue_url("LabelsQueue"))
        .message_body(json!({"shipmentId": id, "packVersion": 1}).to_string())
        .send()
        .await?;
    eventually(
        Duration::from_secs(30),
        "redelivered jobs handled",
        || async {
            Ok((w.runner.function_stats("LabelWorkerFunction").messages_ok >= 2).then_some(()))
        },
    )
    .await?;
    assert_eq!(w.applied("createPackages", &id).await?, 1);
    assert_eq!(w.applied("generateShipLabels", &id).await?, 1);

    // Shipped: Amazon told per package, reservation released and the units off the hub's
    // on-hand figure in the same write (a count from before the shipment left holds them),
    // ShipmentShipped.
    assert_eq!(w.inventory().position(FLEX, "MUG-01").await?.reserved, 2);
    let (status, out) = w
        .call(
            "POST",
            "/v1/inventory",
            json!({"items": [{"hub": "HUB-NJ", "sku": "MUG-01", "onHand": 10}], "asOf": "2026-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{id}/shipped"), json!({}))
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stage"], "shipped");
    assert_eq!(
        w.admin.shipment(&id).await?["shipment"]["status"],
        "SHIPPED"
    );
    assert_eq!(w.applied("updatePackageStatus", &id).await?, 2);
    assert_eq!(w.inventory().position(FLEX, "MUG-01").await?.reserved, 0);
    assert_eq!(w.inventory().position(FLEX, "TEE-02").await?.reserved, 0);
    let mugs = w.inventory();
    let on_hand = || async {
        Ok::<_, anyhow::Error>(mugs.on_hand("HUB-NJ", "MUG-01").await?.map(|f| f.on_hand))
    };
    assert_eq!(on_hand().await?, Some(8), "10 on hand, 2 shipped");
    assert_eq!(
        w.inventory().on_hand("HUB-NJ", "TEE-02").await?,
        None,
        "no figure to lower: none is made up"
    );
    let (status, _) = w
        .call("POST", &format!("/v1/shipments/{id}/shipped"), json!({}))
        .await?;
    assert_eq!(status, 200, "reporting it twice is fine");
    assert_eq!(w.applied("updatePackageStatus", &id).await?, 2);
    assert_eq!(on_hand().await?, Some(8), "taken off once");
    w.events(&mut events).await?;
    let shipped = facts(&events, "ShipmentShipped", &id);
    assert_eq!(shipped.len(), 1, "{events:?}");
    assert_eq!(shipped[0]["packages"].as_array().unwrap().len(), 2);

    // A packed shipment can no longer be packed once shipped.
    let (status, _) = w.call("POST", &path, good).await?;
    assert_eq!(status, 409);

    // A job for a shipment flexbridge does not have: parked in LabelsDLQ with the reason;
    // redriven once the shipment is there, it is handled (and nothing is done twice).
    let s = w
        .admin
        .create_shipment(json!({"locationId": FLEX, "lineItems": [{"sku": "CAP-03", "quantity": 1, "unitPrice": "3.00"}]}))
        .await?;
    let late = s["id"].as_str().unwrap().to_string();
    let body = json!({"shipmentId": late, "packVersion": 1}).to_string();
    w.t.sqs
        .send_message()
        .queue_url(w.t.stack.queue_url("LabelsQueue"))
        .message_body(&body)
        .send()
        .await?;
    let dlq = w.t.stack.queue_url("LabelsDLQ");
    let parked = eventually(Duration::from_secs(30), "the job in LabelsDLQ", || async {
        let out =
            w.t.sqs
                .receive_message()
                .queue_url(dlq)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await?;
        Ok(out.messages.unwrap_or_default().pop())
    })
    .await?;
    let reason = parked
        .message_attributes()
        .and_then(|a| a.get(flexbridge::runtime::parked_attributes::REASON))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains(&format!("shipment {late} is not stored")),
        "{reason}"
    );
    w.poll().await?;
    assert_eq!(w.stage(&late).await?, Stage::HandedOver);
    let packed = json!({"packages": [package("L1", "200", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    let (status, _) = w
        .call("POST", &format!("/v1/shipments/{late}/packed"), packed)
        .await?;
    assert_eq!(status, 202);
    w.wait_stage(&late, Stage::Labelled).await?;
    let before = w.runner.function_stats("LabelWorkerFunction").messages_ok;
    w.t.sqs
        .send_message()
        .queue_url(w.t.stack.queue_url("LabelsQueue"))
        .message_body(parked.body().unwrap_or_default())
        .send()
        .await?;
    w.t.sqs
        .delete_message()
        .queue_url(dlq)
        .receipt_handle(parked.receipt_handle().unwrap_or_default())
        .send()
        .await?;
    eventually(
        Duration::from_secs(30),
        "the redriven job handled",
        || async {
            Ok((w.runner.function_stats("LabelWorkerFunction").messages_ok > before).then_some(()))
        },
    )
    .await?;
    assert_eq!(w.t.queue_depth("LabelsDLQ").await?, 0);
    assert_eq!(w.applied("createPackages", &late).await?, 1);
    w.runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn faults_reprint_repack_and_seller_invoice() -> Result<()> {
    let w = world("fulfil_faults", false).await?;

    // Two label worker instances (each its own client, as two Lambda instances) share each
    // Shipments operation's bucket in CursorsTable: 8 getShipment calls split between them
    // reach Amazon no faster than its limit for the seller (burst 2, then 1/s). Each alone
    // would allow 2 at once, then 1/s: 4 at once together.
    let s = w
        .admin
        .create_shipment(json!({"locationId": FLEX, "lineItems": [{"sku": "MUG-01", "quantity": 1, "unitPrice": "5.00"}]}))
        .await?;
    let probe = s["id"].as_str().unwrap().to_string();
    let i = inv();
    let instances = [
        w.service().await?.fulfiller(&i),
        w.service().await?.fulfiller(&i),
    ];
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (f, id) = (instances[n % 2].clone(), probe.clone());
        calls.spawn(async move { f.amazon.shipment(&id).await.map(|_| ()) });
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    let log: Vec<Value> = w
        .admin
        .calls(Some("getShipment"))
        .await?
        .into_iter()
        .filter(|c| c["path"].as_str().unwrap_or("").ends_with(&probe))
        .collect();
    assert_eq!(
        log.iter().filter(|c| c["status"] == 200).count(),
        8,
        "{log:?}"
    );
    let mut at: Vec<i64> = log
        .iter()
        .map(|c| {
            chrono::DateTime::parse_from_rfc3339(c["time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    at.sort();
    // The times are when the simulator saw each call, and the first call of each instance
    // waits for its Login with Amazon token after its slot was booked: so the pace is measured
    // from the third call on (burst 2 spent), with 500 ms of slack for the trip on a busy
    // machine. Unshared buckets (2 at once each, then 1/s each) would land the 8th call about
    // 2 s after the third, not 5.
    for (k, t) in at.iter().enumerate().skip(3) {
        assert!(
            t - at[2] >= (k as i64 - 2) * 1000 - 500,
            "call {k} reached Amazon {} ms after the third: {at:?}",
            t - at[2]
        );
    }
    let bucket =
        w.t.dynamodb
            .get_item()
            .table_name(w.t.stack.table("CursorsTable"))
            .key("pk", AttributeValue::S("RATELIMIT#getShipment".into()))
            .key("sk", AttributeValue::S("BUCKET".into()))
            .send()
            .await?;
    assert!(
        bucket.item.is_some(),
        "the shared bucket lives in CursorsTable"
    );
    // MFN with an invoice Amazon requires: packages, options, invoice, labels (PDF).
    let id = w
        .handed_over(
            MFN,
            json!({"invoiceRequired": true, "lineItems": [{"sku": "CAP-03", "quantity": 1, "unitPrice": "20.00"}]}),
        )
        .await?;
    let packed = json!({"packages": [package("P1", "250", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{id}/packed"), packed)
        .await?;
    assert_eq!(status, 202, "{out}");
    // Every step with an effect is applied at Amazon and then answered with a 500.
    for op in [
        "createPackages",
        "retrieveShippingOptions",
        "generateInvoice",
        "generateShipLabels",
    ] {
        w.admin
            .script_faults(op, &[FaultKind::ApplyThenFail])
            .await?;
    }
    let outcomes = w.drain_labels().await?;
    assert_eq!(
        outcomes,
        [json!({"outcome": "labelled", "steps": 6})],
        "{outcomes:?}"
    );
    assert_eq!(w.stage(&id).await?, Stage::Labelled);
    assert_eq!(
        w.applied("createPackages", &id).await?,
        1,
        "read back, never sent again"
    );
    assert_eq!(w.applied("generateInvoice", &id).await?, 1);
    assert_eq!(w.applied("retrieveInvoice", &id).await?, 1);
    // retrieveShippingOptions only reads: its lost answer is simply asked for again.
    let options = w.calls("retrieveShippingOptions", &id).await?;
    assert_eq!(options.len(), 2, "{options:?}");
    assert!(
        options[0].2.contains("ApplyThenFail") && options[1].0 == 200,
        "{options:?}"
    );
    let labels = w.calls("generateShipLabels", &id).await?;
    // GENERATE applied but its answer lost: the files come from one REGENERATE.
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels[1].1.contains("REGENERATE"), "{labels:?}");
    let f = w
        .orders
        .shipments
        .get(&id)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    assert_eq!(f.shipping_options["P1"].policy, "recommended");
    let invoice = f.invoice.clone().unwrap();
    assert_eq!(invoice.source, "amazon");
    let bytes =
        w.t.s3
            .get_object()
            .bucket(w.t.stack.bucket("UploadsBucket"))
            .key(&invoice.key)
            .send()
            .await?
            .body
            .collect()
            .await?
            .into_bytes();
    assert!(bytes.starts_with(b"%PDF"), "{}", invoice.key);
    assert!(f.labels["P1"].key.as_ref().unwrap().ends_with(".pdf"));

    // A reprint: REGENERATE with the reason recorded, a second label file.
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{id}/reprint"),
            json!({"reason": "printer jam"}),
        )
        .await?;
    assert_eq!(status, 202, "{out}");
    w.drain_labels().await?;
    let f = w
        .orders
        .shipments
        .get(&id)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    assert_eq!(f.labels["P1"].generation, 2);
    assert!(f.reprints.iter().any(|r| r.reason == "printer jam"));
    assert_eq!(w.stage(&id).await?, Stage::Labelled);

    // A re-pack: updatePackage, then options, invoice and labels again.
    let repacked = json!({"packages": [package("P1", "900", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{id}/packed"), repacked)
        .await?;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["packVersion"], 2);
    let (status, _) = w
        .call("POST", &format!("/v1/shipments/{id}/packed"),
            json!({"packages": [package("P9", "900", json!([{"packageLineItemId": "1", "quantity": 1}]))]}))
        .await?;
    assert_eq!(status, 422, "a re-pack keeps the package IDs");
    w.admin
        .script_faults("updatePackage", &[FaultKind::ApplyThenFail])
        .await?;
    w.drain_labels().await?;
    assert_eq!(w.stage(&id).await?, Stage::Labelled);
    assert_eq!(w.applied("updatePackage", &id).await?, 1);
    assert_eq!(w.applied("createPackages", &id).await?, 1);
    assert_eq!(w.applied("generateInvoice", &id).await?, 2);
    let f = w
        .orders
        .shipments
        .get(&id)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    assert_eq!(f.packages_at_amazon, Some(2));
    let sim = w.admin.shipment(&id).await?;
    assert_eq!(sim["shipment"]["packages"][0]["weight"]["value"], "900");
    assert_eq!(
        f.labels["P1"].generation, 1,
        "the re-pack's own first label"
    );
    assert!(
        f.invoice.as_ref().unwrap().key.contains("invoice-v2"),
        "{f:?}"
    );

    // Shipped, the SHIPPED applied at Amazon and answered 500: read back, not sent again.
    w.admin
        .script_faults("updatePackageStatus", &[FaultKind::ApplyThenFail])
        .await?;
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{id}/shipped"), json!({}))
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stage"], "shipped");
    assert_eq!(w.applied("updatePackageStatus", &id).await?, 1);
    assert_eq!(
        w.admin.shipment(&id).await?["shipment"]["status"],
        "SHIPPED"
    );

    // A seller-uploaded invoice (Amazon does not require one here): stored, used, not generated.
    let own = w
        .handed_over(MFN, json!({"invoiceRequired": false, "lineItems": [{"sku": "MUG-01", "quantity": 1, "unitPrice": "5.00"}]}))
        .await?;
    let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 seller invoice");
    let (status, out) = w
        .call(
            "PUT",
            &format!("/v1/shipments/{own}/invoice"),
            json!({"format": "PDF", "content": pdf}),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    let (status, _) = w
        .call(
            "PUT",
            &format!("/v1/shipments/{id}/invoice"),
            json!({"content": pdf}),
        )
        .await?;
    assert_eq!(status, 409, "Amazon's own invoice is required there");
    let packed = json!({"packages": [package("Q1", "100", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    w.call("POST", &format!("/v1/shipments/{own}/packed"), packed)
        .await?;
    w.drain_labels().await?;
    assert_eq!(w.stage(&own).await?, Stage::Labelled);
    assert_eq!(w.applied("generateInvoice", &own).await?, 0);
    let mut events = Vec::new();
    w.events(&mut events).await?;
    let ready = facts(&events, "LabelReady", &own);
    assert_eq!(
        ready[0]["invoiceKey"],
        format!("labels/{MFN}/{own}/invoice-seller.pdf")
    );
    let served = reqwest::get(ready[0]["invoiceUrl"].as_str().unwrap())
        .await?
        .bytes()
        .await?;
    assert_eq!(&served[..], b"%PDF-1.4 seller invoice");
    w.runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn cancellations_both_ways() -> Result<()> {
    let w = world("fulfil_cancel", true).await?;
    let one = json!({"lineItems": [{"sku": "MUG-01", "quantity": 2, "unitPrice": "9.50"}]});

    // Allowed: REJECT with a unique referenceId, reservation released, ShipmentCancelled (seller).
    let a = w.handed_over(FLEX, one.clone()).await?;
    assert_eq!(w.inventory().position(FLEX, "MUG-01").await?.reserved, 2);
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{a}/cancel"),
            json!({"reason": "CUSTOMER_REQUESTED"}),
        )
        .await?;
    assert_eq!(status, 202, "{out}");
    w.wait_stage(&a, Stage::Rejected).await?;
    let sim = w.admin.shipment(&a).await?;
    assert_eq!(sim["shipment"]["status"], "CANCELLED");
    assert_eq!(sim["rejectApplied"], 1);
    assert_eq!(w.inventory().position(FLEX, "MUG-01").await?.reserved, 0);
    let mut events = Vec::new();
    w.events(&mut events).await?;
    let c = facts(&events, "ShipmentCancelled", &a);
    assert_eq!(c.len(), 1, "{events:?}");
    assert_eq!(c[0]["cancelledBy"], "seller");
    assert_eq!(c[0]["reason"], "CUSTOMER_REQUESTED");

    // A cancelled shipment cannot be packed (409, nothing written).
    let packed_a = json!({"packages": [package("A1", "500", json!([{"packageLineItemId": "1", "quantity": 2}]))]});
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{a}/packed"), packed_a)
        .await?;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cancel"),
        "{out}"
    );
    let stored = w.orders.shipments.get(&a).await?.unwrap();
    assert!(stored.fulfilment.unwrap().packages.is_empty());

    // Partial cancellation is not something Amazon supports (the model: "does not support
    // partial cancellation of a shipment or its line items"): refused, naming the line and
    // why, nothing written or sent. Naming every open unit is the whole shipment.
    let b = w.handed_over(FLEX, one.clone()).await?;
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{b}/cancel"),
            json!({"reason": "OUT_OF_STOCK", "lines": [{"lineId": "1", "quantity": 1}]}),
        )
        .await?;
    assert_eq!(status, 422, "{out}");
    let message = out["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("line 1 (MUG-01): 1 of 2 open units")
            && message.contains("does not support partial cancellation"),
        "{out}"
    );
    let stored = w.orders.shipments.get(&b).await?.unwrap();
    assert!(stored.fulfilment.is_none() && stored.stage == Stage::HandedOver);
    assert_eq!(
        w.applied("processShipment", &b).await?,
        1,
        "only the CONFIRM"
    );
    // Refused: Amazon's status no longer allows rejection once labels exist.
    w.admin.advance_shipment(&b, "SHIPLABEL_GENERATED").await?;
    let processor = w.orders.processor(&inv());
    processor.refresh(&b, &inv()).await?;
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{b}/cancel"),
            json!({"reason": "OUT_OF_STOCK"}),
        )
        .await?;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not allow rejection"),
        "{out}"
    );

    // Auto-cancel off for the location: kept local, held for a person, nothing sent.
    let settings = DynamoSettingsStore::new(w.t.dynamodb.clone(), w.t.stack.table("SettingsTable"));
    settings
        .put(
            flexbridge::fulfilment::policy::AUTO_CANCEL,
            json!({"default": true, "locations": {MFN: false}}),
            None,
            "test",
        )
        .await?;
    let local = w.handed_over(MFN, one.clone()).await?;
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{local}/cancel"),
            json!({"reason": "OUT_OF_STOCK"}),
        )
        .await?;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["stage"], "held");
    let packed_local = json!({"packages": [package("L1", "500", json!([{"packageLineItemId": "1", "quantity": 2}]))]});
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{local}/packed"),
            packed_local,
        )
        .await?;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("has a seller cancellation"),
        "{out}"
    );
    assert_eq!(
        w.applied("processShipment", &local).await?,
        1,
        "only the CONFIRM"
    );
    // A person then rejects it: the units come back.
    let (status, out) = w
        .call(
            "POST",
            &format!("/v1/shipments/{local}/reject"),
            json!({"reason": "OUT_OF_STOCK"}),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        w.admin.shipment(&local).await?["shipment"]["status"],
        "CANCELLED"
    );
    assert_eq!(w.inventory().position(MFN, "MUG-01").await?.reserved, 0);

    // Amazon cancels while the label job is queued: it stops at its first step boundary and
    // the warehouse is told. (The job is run here, so the cancellation surely comes first.)
    let mid = w.handed_over(FLEX, one.clone()).await?;
    let mut service = w.service().await?;
    service.labels_queue = Arc::new(Parked::default());
    let i = inv();
    let packed = json!({"packages": [package("M1", "500", json!([{"packageLineItemId": "1", "quantity": 2}]))]});
    service
        .fulfiller(&i)
        .packed(&mid, serde_json::from_value(packed)?)
        .await?;
    w.admin.cancel_shipment(&mid).await?;
    let job = LabelJob {
        shipment_id: mid.clone(),
        pack_version: 1,
        correlation_id: None,
    };
    let outcome = service.fulfiller(&i).run_label_job(&job, &i).await?;
    assert!(matches!(outcome, JobOutcome::Stopped { .. }), "{outcome:?}");
    assert_eq!(w.stage(&mid).await?, Stage::Cancelled);
    assert_eq!(w.applied("createPackages", &mid).await?, 0);
    w.events(&mut events).await?;
    let c = facts(&events, "ShipmentCancelled", &mid);
    assert_eq!(c.len(), 1, "{events:?}");
    assert_eq!(c[0]["cancelledBy"], "amazon");

    // Amazon cancels while the job runs (right after createPackages): the next step is refused
    // by Amazon, the job reads the shipment back, tells the warehouse and stops there.
    let running = w.handed_over(FLEX, one.clone()).await?;
    let packed = json!({"packages": [package("R1", "500", json!([{"packageLineItemId": "1", "quantity": 2}]))]});
    service
        .fulfiller(&i)
        .packed(&running, serde_json::from_value(packed)?)
        .await?;
    let mut fulfiller = service.fulfiller(&i);
    fulfiller.amazon = Arc::new(CancelledAfterPackages {
        inner: fulfiller.amazon.clone(),
        admin: AdminClient::new(&w.t.sim().base_url),
    });
    let job = LabelJob {
        shipment_id: running.clone(),
        pack_version: 1,
        correlation_id: None,
    };
    let outcome = fulfiller.run_label_job(&job, &i).await?;
    assert!(
        matches!(&outcome, JobOutcome::Stopped { reason } if reason.contains("cancelled")),
        "{outcome:?}"
    );
    assert_eq!(w.stage(&running).await?, Stage::Cancelled);
    assert_eq!(w.applied("createPackages", &running).await?, 1);
    assert_eq!(w.applied("generateShipLabels", &running).await?, 0);
    let f = w
        .orders
        .shipments
        .get(&running)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    let steps: Vec<&str> = f.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["packed", "packages", "stopped"]);
    w.events(&mut events).await?;
    let c = facts(&events, "ShipmentCancelled", &running);
    assert_eq!(c.len(), 1, "{events:?}");
    assert_eq!(c[0]["cancelledBy"], "amazon");
    // Delivered again, the job stops at once.
    let again = service.fulfiller(&i).run_label_job(&job, &i).await?;
    assert!(matches!(again, JobOutcome::Stopped { .. }), "{again:?}");
    assert_eq!(w.applied("generateShipLabels", &running).await?, 0);

    // Ship-by awareness: an unlabelled shipment inside the alert window raises it once.
    settings
        .put(
            flexbridge::fulfilment::policy::SHIP_BY_ALERT_MINUTES,
            json!(100_000),
            None,
            "test",
        )
        .await?;
    let raised = service
        .fulfiller(&i)
        .ship_by_sweep(chrono::Utc::now(), &i)
        .await?;
    assert_eq!(raised, 1, "only {b} is unlabelled and open");
    let again = service
        .fulfiller(&i)
        .ship_by_sweep(chrono::Utc::now(), &i)
        .await?;
    assert_eq!(again, 0, "raised once");
    w.events(&mut events).await?;
    let alert = facts(&events, "ShipByAtRisk", &b);
    assert_eq!(alert.len(), 1, "{events:?}");
    assert_eq!(alert[0]["hub"], "HUB-NJ");
    Ok(())
}

/// Log lines captured from this thread (the test, the runner's warehouse API and the workers all
/// run on the test's current-thread runtime) in the JSON format functions write in Lambda.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_correlation_id_follows_a_shipment_from_poll_to_label_and_logs_hold_no_secrets(
) -> Result<()> {
    let w = world("fulfil_logs", false).await?;
    let captured = Captured::default();
    let writer = captured.clone();
    let _logs = tracing::subscriber::set_default(flexbridge::telemetry::json_subscriber(
        move || writer.clone(),
        tracing_subscriber::EnvFilter::new(
            "debug,aws=warn,hyper=warn,h2=warn,rustls=warn,reqwest=warn,tower=warn",
        ),
    ));

    let s = w
        .admin
        .create_shipment(
            json!({"locationId": FLEX, "lineItems": [{"sku": "MUG-01", "quantity": 1}]}),
        )
        .await?;
    let id = s["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id"))?
        .to_string();
    let address = s["shippingInfo"]["shipToAddress"].clone();
    w.poll().await?;
    assert_eq!(w.stage(&id).await?, Stage::HandedOver);
    let stored = w.orders.shipments.get(&id).await?.unwrap();
    let cid = stored
        .correlation_id
        .clone()
        .ok_or_else(|| anyhow!("no correlation ID stored"))?;

    let packing = json!({"packages": [package("BOX-1", "450", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    let (status, body) = w
        .call("POST", &format!("/v1/shipments/{id}/packed"), packing)
        .await?;
    assert_eq!(status, 202, "{body}");
    // The label job on the queue carries the shipment's correlation ID.
    let queued =
        w.t.sqs
            .receive_message()
            .queue_url(w.t.stack.queue_url("LabelsQueue"))
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await?;
    let job: Value = serde_json::from_str(queued.messages()[0].body().unwrap_or("{}"))?;
    assert_eq!(job["correlationId"], cid.as_str(), "{job}");
    w.drain_labels().await?;
    assert_eq!(w.stage(&id).await?, Stage::Labelled);

    let text = String::from_utf8(captured.0.lock().unwrap().clone())?;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let with_id = |message: &str| {
        lines.iter().any(|l| {
            l["span"]["correlation_id"] == cid.as_str()
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message))
        })
    };
    // The poll (confirm, hand-over) and the label job log under the same ID.
    assert!(with_id("shipment confirmed"), "no confirm line with {cid}");
    assert!(
        with_id("shipment handed over"),
        "no hand-over line with {cid}"
    );
    assert!(with_id("label step done"), "no label line with {cid}");

    // Nothing secret and nothing of the buyer's address in any line.
    let mut forbidden: Vec<String> = vec![
        w.t.seller.client_secret.clone(),
        w.t.seller.refresh_token.clone(),
        w.t.seller.warehouse_key.clone(),
        w.t.seller.webhook_key.clone(),
        w.t.seller.signing_key.clone(),
    ];
    for field in ["name", "addressLine1", "postalCode", "phoneNumber", "email"] {
        let v = address[field]
            .as_str()
            .ok_or_else(|| anyhow!("the simulator gave no {field}: {address}"))?;
        forbidden.push(v.to_string());
    }
    for f in &forbidden {
        assert!(!f.is_empty());
        assert!(!text.contains(f.as_str()), "the logs contain {f:?}");
    }
    assert!(lines.len() > 20, "too few lines captured: {}", lines.len());

    // The values of this run, as JSON lines (outside Lambda they are log lines of target
    // flexbridge::metrics; in Lambda the same document goes to stdout). None of these is read
    // by an alarm, so none is a CloudWatch metric (no `_aws` directive): Logs Insights reads
    // them for free (docs/metrics.md).
    let metrics: Vec<Value> = lines
        .iter()
        .filter(|l| l["target"] == "flexbridge::metrics")
        .filter_map(|l| serde_json::from_str(l["fields"]["message"].as_str()?).ok())
        .collect();
    use flexbridge::metrics::names;
    for name in [
        names::ORDERS_SEEN,
        names::ORDERS_CONFIRMED,
        names::CONFIRM_LATENCY,
        names::LABELS_MADE,
        names::SHIP_BY_TIME_LEFT,
        names::SPAPI_CALLS,
    ] {
        let doc = metrics
            .iter()
            .find(|d| d.get(name).is_some())
            .unwrap_or_else(|| panic!("no {name} value in this run"));
        assert!(doc.get("_aws").is_none(), "{name} is not alarmed: {doc}");
        assert!(doc["Function"].as_str().is_some_and(|f| !f.is_empty()));
    }
    // The one order poll metric an alarm reads is published, on [Stack] only.
    for d in metrics.iter().filter(|d| d.get("_aws").is_some()) {
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "flexbridge");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Stack"]]));
        let name = directive["Metrics"][0]["Name"].as_str().unwrap();
        assert!(names::ALARMED.contains(&name), "{name} published: {d}");
    }
    let label_ops: BTreeSet<&str> = metrics
        .iter()
        .filter(|d| d.get(names::SPAPI_CALLS).is_some())
        .filter_map(|d| d["Operation"].as_str())
        .collect();
    assert!(label_ops.contains("createPackages"), "{label_ops:?}");
    Ok(())
}

/// A labels or cancellations queue whose first send fails, as a run that dies between saving
/// its promise (`queued`) and sending the message; later sends go to the real queue.
struct DiesBeforeFirstSend {
    inner: Arc<dyn JobQueue>,
    died: std::sync::atomic::AtomicBool,
    sent: Mutex<Vec<Value>>,
}

impl DiesBeforeFirstSend {
    fn new(inner: Arc<dyn JobQueue>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            died: Default::default(),
            sent: Default::default(),
        })
    }

    fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl JobQueue for DiesBeforeFirstSend {
    async fn send(&self, body: &Value) -> flexbridge::Result<()> {
        if !self.died.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(flexbridge::Error::Transient {
                message: "the run died between its save and its send".into(),
                after: None,
            });
        }
        self.sent.lock().unwrap().push(body.clone());
        self.inner.send(body).await
    }
}

/// A stored promise is kept: a cancellation or a reprint saved as queued whose message was
/// never sent goes out when the warehouse retries the same request (its earlier try got a
/// 5xx), and the work then happens exactly once at Amazon.
#[tokio::test]
async fn a_retry_sends_what_a_run_that_died_had_promised() -> Result<()> {
    use flexbridge::fulfilment::api::{CancelRequest, ReprintRequest};
    use flexbridge::shipment::CancellationState;

    let w = world("fulfil_promise", true).await?;
    let one = json!({"lineItems": [{"sku": "MUG-01", "quantity": 1, "unitPrice": "9.50"}]});
    let i = inv();
    // The warehouse API queues both kinds of job.
    let mut service = w.service_of("WarehouseApiFunction").await?;

    // The cancellation: saved as queued, its send lost; the retry sends it, same reference.
    let a = w.handed_over(FLEX, one.clone()).await?;
    let queue = DiesBeforeFirstSend::new(service.cancellations_queue.clone());
    service.cancellations_queue = queue.clone();
    let cancel =
        || serde_json::from_value::<CancelRequest>(json!({"reason": "CUSTOMER_REQUESTED"}));
    assert!(service.fulfiller(&i).cancel(&a, cancel()?).await.is_err());
    let c = w
        .orders
        .shipments
        .get(&a)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    let c = c.cancellation.unwrap();
    assert_eq!(c.state, CancellationState::Queued);
    assert!(queue.sent().is_empty());
    service.fulfiller(&i).cancel(&a, cancel()?).await?;
    let sent = queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["referenceId"], c.reference_id.as_str());
    w.wait_stage(&a, Stage::Rejected).await?;
    assert_eq!(w.admin.shipment(&a).await?["rejectApplied"], 1);

    // The reprint: saved (the shipment is back to packed), its send lost; the same reprint
    // again sends the label job, and one REGENERATE makes the second label.
    let b = w.handed_over(FLEX, one).await?;
    let packed = json!({"packages": [package("P1", "500", json!([{"packageLineItemId": "1", "quantity": 1}]))]});
    let (status, out) = w
        .call("POST", &format!("/v1/shipments/{b}/packed"), packed)
        .await?;
    assert_eq!(status, 202, "{out}");
    w.wait_stage(&b, Stage::Labelled).await?;
    let queue = DiesBeforeFirstSend::new(service.labels_queue.clone());
    service.labels_queue = queue.clone();
    let reprint = || serde_json::from_value::<ReprintRequest>(json!({"reason": "printer jam"}));
    assert!(service.fulfiller(&i).reprint(&b, reprint()?).await.is_err());
    assert_eq!(w.stage(&b).await?, Stage::Packed);
    let again = service.fulfiller(&i).reprint(&b, reprint()?).await?;
    assert_eq!(again.message.as_deref(), Some("reprint 1 already queued"));
    assert_eq!(queue.sent().len(), 1);
    w.wait_stage(&b, Stage::Labelled).await?;
    let f = w
        .orders
        .shipments
        .get(&b)
        .await?
        .unwrap()
        .fulfilment
        .unwrap();
    assert_eq!(f.labels["P1"].generation, 2);
    assert_eq!(f.reprints.len(), 1);
    Ok(())
}

/// The promise sweep (run by the order poller): a label job and a cancellation saved as queued
/// but never sent, with no retry from the warehouse, are sent again once older than
/// `RESEND_AFTER`, and each happens once at Amazon.
#[tokio::test]
async fn the_sweep_sends_what_no_queue_holds() -> Result<()> {
    use flexbridge::fulfilment::api::{CancelRequest, PackedRequest};
    use flexbridge::fulfilment::promises::RESEND_AFTER;

    let w = world("fulfil_sweep", true).await?;
    let one = json!({"lineItems": [{"sku": "MUG-01", "quantity": 1, "unitPrice": "9.50"}]});
    let i = inv();
    // The order poller runs the sweep.
    let real = w.service_of("OrderPollerFunction").await?;
    let mut dying = w.service_of("OrderPollerFunction").await?;
    dying.labels_queue = DiesBeforeFirstSend::new(real.labels_queue.clone());
    dying.cancellations_queue = DiesBeforeFirstSend::new(real.cancellations_queue.clone());

    let packed_id = w.handed_over(FLEX, one.clone()).await?;
    let packed: PackedRequest = serde_json::from_value(
        json!({"packages": [package("P1", "500", json!([{"packageLineItemId": "1", "quantity": 1}]))]}),
    )?;
    assert!(dying
        .fulfiller(&i)
        .packed(&packed_id, packed)
        .await
        .is_err());
    let cancelled_id = w.handed_over(FLEX, one).await?;
    let cancel: CancelRequest = serde_json::from_value(json!({"reason": "OUT_OF_STOCK"}))?;
    assert!(dying
        .fulfiller(&i)
        .cancel(&cancelled_id, cancel)
        .await
        .is_err());
    assert_eq!(w.stage(&packed_id).await?, Stage::Packed);

    // Too young: a send may still be on its way.
    let sweeper = real.fulfiller(&i);
    assert_eq!(sweeper.promise_sweep(chrono::Utc::now(), &i).await?, 0);
    // Older than RESEND_AFTER: both go out, and both happen.
    let later = chrono::Utc::now() + RESEND_AFTER + chrono::Duration::seconds(1);
    assert_eq!(sweeper.promise_sweep(later, &i).await?, 2);
    w.wait_stage(&packed_id, Stage::Labelled).await?;
    w.wait_stage(&cancelled_id, Stage::Rejected).await?;
    assert_eq!(w.admin.shipment(&cancelled_id).await?["rejectApplied"], 1);
    assert_eq!(w.applied("createPackages", &packed_id).await?, 1);
    // Done: a later sweep finds nothing promised.
    let much_later = later + RESEND_AFTER + chrono::Duration::seconds(1);
    assert_eq!(sweeper.promise_sweep(much_later, &i).await?, 0);
    Ok(())
}
