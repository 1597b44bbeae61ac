//! The fulfilment scenario: three orders reach the warehouse; it reports two packed (signed
//! warehouse API calls), flexbridge gets their labels into the bucket (`LabelReady` at the
//! webhook), the warehouse reports them shipped (Amazon: SHIPPED); it cancels the third, and the
//! cancellation reaches Amazon (REJECT) and comes back as `ShipmentCancelled` (seller).

use std::sync::Mutex;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use flexbridge::shipment::{ShipmentRecord, Stage};
use flexbridge::store::shipments::{DynamoShipmentStore, ShipmentStore};
use flexbridge::warehouse::signing;
use serde_json::{json, Value};

use super::{Ctx, Progress, Scenario, Summary, SummaryLine};
use crate::runner::Runner;

const SKU: &str = "ORD-MUG-01";

#[derive(Default)]
pub struct Fulfilment {
    /// Two to ship, then one to cancel.
    ids: Mutex<Vec<String>>,
    /// Requests already sent, by `<route>#<shipment>`.
    sent: Mutex<Vec<String>>,
    /// Requests that did not get a 2xx: (what, status, body).
    refused: Mutex<Vec<String>>,
}

impl Fulfilment {
    fn ids(&self) -> Vec<String> {
        self.ids.lock().expect("ids").clone()
    }

    async fn records(&self, ctx: &Ctx) -> Result<Vec<ShipmentRecord>> {
        let store = DynamoShipmentStore::new(
            flexbridge::aws::dynamodb_client(&ctx.sdk),
            ctx.stack.table("ShipmentsTable"),
        );
        let mut out = Vec::new();
        for id in self.ids() {
            if let Some(r) = store.get(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Sends one signed warehouse request once (per `what`).
    async fn once(
        &self,
        ctx: &Ctx,
        runner: &Runner,
        what: &str,
        path: &str,
        body: Value,
    ) -> Result<()> {
        if self.sent.lock().expect("sent").iter().any(|s| s == what) {
            return Ok(());
        }
        let url = runner
            .function_url("WarehouseApiFunction")
            .ok_or_else(|| anyhow!("the warehouse API is not served"))?
            .trim_end_matches('/')
            .to_string();
        let body = body.to_string();
        let idempotency_key = format!("local-run-{}-{what}", ctx.stack.name);
        let mut req = reqwest::Client::new()
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .header("idempotency-key", &idempotency_key)
            .body(body.clone());
        let key = ctx.seller.warehouse_key.as_bytes();
        let signed = signing::Signed::new("POST", path, body.as_bytes())
            .content_type("application/json")
            .idempotency_key(&idempotency_key);
        for (h, v) in signing::signed_headers(key, signing::now_unix(), &signed) {
            req = req.header(h, v);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            self.refused
                .lock()
                .expect("refused")
                .push(format!("{what}: HTTP {} {text}", status.as_u16()));
        }
        self.sent.lock().expect("sent").push(what.to_string());
        Ok(())
    }

    fn delivered(ctx: &Ctx, event: &str, id: &str) -> usize {
        ctx.webhook
            .deliveries()
            .iter()
            .filter(|d| d.body.contains(&format!("\"{event}\"")) && d.body.contains(id))
            .count()
    }
}

fn packing(units: u32) -> Value {
    json!({"packages": [{"id": "BOX-1",
        "dimensions": {"length": {"value": "25", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "12", "dimensionUnit": "CM"}},
        "weight": {"value": "0.6", "weightUnit": "KG"},
        "packageLineItems": [{"packageLineItemId": "1", "quantity": units}]}]})
}

#[async_trait]
impl Scenario for Fulfilment {
    fn name(&self) -> &'static str {
        "fulfilment"
    }

    async fn seed(&self, ctx: &Ctx) -> Result<()> {
        // Locations and the catalog come from the orders scenario (it runs first).
        let loc = &ctx.seller.locations[0].location_id;
        let mut ids = Vec::new();
        for units in [1, 2, 1] {
            let s = ctx
                .sim
                .create_shipment(
                    json!({"locationId": loc, "lineItems": [{"sku": SKU, "quantity": units}]}),
                )
                .await?;
            ids.push(
                s["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no shipment id in {s}"))?
                    .to_string(),
            );
        }
        *self.ids.lock().expect("ids") = ids;
        Ok(())
    }

    async fn progress(&self, ctx: &Ctx, runner: &Runner) -> Result<Progress> {
        let ids = self.ids();
        let records = self.records(ctx).await?;
        for r in &records {
            let units = r.line_items.first().map(|l| l.units).unwrap_or(1);
            match (ids.iter().position(|i| *i == r.id), r.stage) {
                (Some(0 | 1), Stage::HandedOver) => {
                    let path = format!("/v1/shipments/{}/packed", r.id);
                    self.once(
                        ctx,
                        runner,
                        &format!("packed-{}", r.id),
                        &path,
                        packing(units),
                    )
                    .await?
                }
                (Some(0 | 1), Stage::Labelled) => {
                    let path = format!("/v1/shipments/{}/shipped", r.id);
                    self.once(ctx, runner, &format!("shipped-{}", r.id), &path, json!({}))
                        .await?
                }
                (Some(2), Stage::HandedOver) => {
                    let path = format!("/v1/shipments/{}/cancel", r.id);
                    self.once(
                        ctx,
                        runner,
                        &format!("cancel-{}", r.id),
                        &path,
                        json!({"reason": "OUT_OF_STOCK"}),
                    )
                    .await?
                }
                _ => {}
            }
        }
        let count = |s: Stage| records.iter().filter(|r| r.stage == s).count();
        let refused = !self.refused.lock().expect("refused").is_empty();
        let shipped = count(Stage::Shipped);
        let rejected = count(Stage::Rejected);
        Ok(Progress {
            line: format!(
                "fulfilment {} packed, {} labelled, {shipped} shipped, {rejected} cancelled by the warehouse",
                count(Stage::Packed),
                count(Stage::Labelled)
            ),
            done: refused
                || (shipped == 2
                    && rejected == 1
                    && ids.iter().take(2).all(|id| Self::delivered(ctx, "ShipmentShipped", id) > 0)
                    && Self::delivered(ctx, "ShipmentCancelled", &ids[2]) > 0),
        })
    }

    async fn summary(&self, ctx: &Ctx, _runner: &Runner) -> Result<Summary> {
        let mut s = Summary::default();
        let ids = self.ids();
        let records = self.records(ctx).await?;
        for r in records.iter().take(2) {
            let f = r.fulfilment();
            let files: Vec<String> = f
                .labels
                .values()
                .map(|l| {
                    format!(
                        "s3://{}/{} ({} {})",
                        ctx.stack.bucket("UploadsBucket"),
                        l.key.clone().unwrap_or_else(|| "not downloaded".into()),
                        l.carrier,
                        l.tracking_id
                    )
                })
                .collect();
            let amazon = ctx.sim.shipment(&r.id).await?;
            s.lines.push(SummaryLine::new(
                format!("Shipment {}", r.id),
                format!(
                    "stage {}, Amazon {}; label {}; steps {}",
                    r.stage.as_str(),
                    amazon["shipment"]["status"].as_str().unwrap_or("?"),
                    if files.is_empty() {
                        "none".to_string()
                    } else {
                        files.join(", ")
                    },
                    f.steps
                        .iter()
                        .map(|s| s.step.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            ));
            if r.stage != Stage::Shipped {
                s.errors.push(format!(
                    "shipment {} did not reach shipped (GET /v1/shipments/{}; logs of LabelWorkerFunction)",
                    r.id, r.id
                ));
            }
        }
        if let Some(c) = ids.get(2) {
            let amazon = ctx.sim.shipment(c).await?;
            let told = Self::delivered(ctx, "ShipmentCancelled", c) > 0;
            s.lines.push(SummaryLine::new(
                "Warehouse cancellation",
                format!(
                    "{c}: Amazon {} (REJECTs applied: {}); ShipmentCancelled (seller) {}",
                    amazon["shipment"]["status"].as_str().unwrap_or("?"),
                    amazon["rejectApplied"],
                    if told { "delivered" } else { "NOT delivered" }
                ),
            ));
            if amazon["shipment"]["status"] != "CANCELLED" || !told {
                s.errors.push(format!(
                    "the cancellation of {c} did not reach Amazon and back (CancellationsDLQ, logs of CancellationWorkerFunction)"
                ));
            }
        }
        for r in self.refused.lock().expect("refused").iter() {
            s.errors.push(format!("warehouse request refused: {r}"));
        }
        Ok(s)
    }
}
