//! The orders scenario: Amazon (the simulator) routes a handful of orders to the seller's hubs;
//! they arrive by notification and by the poller, are confirmed once and handed to the warehouse
//! (`ShipmentAccepted` at the webhook); one with a SKU missing from the catalog is held for a
//! person; then Amazon cancels one whole shipment and one line of another, and the warehouse
//! hears about both (`ShipmentCancelled`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use flexbridge::shipment::{ShipmentRecord, Stage};
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::inventory::{DynamoInventoryStore, InventoryStore};
use flexbridge::store::shipments::{DynamoShipmentStore, ShipmentStore};
use serde_json::json;

use super::{Ctx, Progress, Scenario, Summary, SummaryLine};
use crate::runner::Runner;

const SKUS: [&str; 3] = ["ORD-MUG-01", "ORD-TEE-02", "ORD-CAP-03"];
const UNMAPPED_SKU: &str = "ORD-NOT-IN-CATALOG";
const ORDERS: usize = 6;

#[derive(Default)]
pub struct Orders {
    /// Mapped orders, then the held one last.
    ids: Mutex<Vec<String>>,
    cancelled: AtomicBool,
}

impl Orders {
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

    fn webhook_count(ctx: &Ctx, event: &str, id: &str) -> usize {
        ctx.webhook
            .deliveries()
            .iter()
            .filter(|d| d.body.contains(&format!("\"{event}\"")) && d.body.contains(id))
            .map(|d| d.body.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }
}

#[async_trait]
impl Scenario for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    async fn seed(&self, ctx: &Ctx) -> Result<()> {
        for l in &ctx.seller.locations {
            ctx.sim
                .create_location(&l.location_id, &l.marketplace_id, &l.channel)
                .await?;
        }
        let catalog = DynamoCatalogStore::new(
            flexbridge::aws::dynamodb_client(&ctx.sdk),
            ctx.stack.table("CatalogTable"),
        );
        let items: Vec<CatalogItem> = SKUS
            .iter()
            .enumerate()
            .map(|(i, sku)| CatalogItem {
                sku: sku.to_string(),
                asin: format!("B0ORDERS{i:02}"),
                title: Some(format!("Demo product {sku}")),
                product_type: Some("HOME".into()),
                enabled: true,
                safety_stock: None,
                max_quantity: None,
                updated_at: chrono::Utc::now().to_rfc3339(),
                source: "demo".into(),
            })
            .collect();
        catalog.put_items(&items).await?;
        // Amazon's notifications go to NotificationsQueue (the simulator's SQS client reaches moto
        // through the standard variable).
        std::env::set_var("AWS_ENDPOINT_URL", &ctx.stack.endpoint);
        ctx.sim
            .add_notification_destination(
                json!({"sqsQueueUrl": ctx.stack.queue_url("NotificationsQueue")}),
            )
            .await?;
        let mut ids = Vec::new();
        for n in 0..ORDERS {
            let loc = &ctx.seller.locations[n % ctx.seller.locations.len()].location_id;
            let lines = if n % 2 == 0 {
                json!([{"sku": SKUS[n % 3], "quantity": 2}, {"sku": SKUS[(n + 1) % 3], "quantity": 1}])
            } else {
                json!([{"sku": SKUS[n % 3], "quantity": 1}])
            };
            let s = ctx
                .sim
                .create_shipment(json!({"locationId": loc, "lineItems": lines, "gift": n == 0}))
                .await?;
            ids.push(
                s["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no shipment id in {s}"))?
                    .to_string(),
            );
        }
        let held = ctx
            .sim
            .create_shipment(json!({"locationId": ctx.seller.locations[0].location_id, "lineItems": [{"sku": UNMAPPED_SKU, "quantity": 1}]}))
            .await?;
        ids.push(
            held["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no shipment id"))?
                .to_string(),
        );
        *self.ids.lock().expect("ids") = ids;
        Ok(())
    }

    async fn progress(&self, ctx: &Ctx, _runner: &Runner) -> Result<Progress> {
        let records = self.records(ctx).await?;
        let count = |s: Stage| records.iter().filter(|r| r.stage == s).count();
        let ids = self.ids();
        let handed = records
            .iter()
            .filter(|r| r.handed_over_at.is_some())
            .count();
        // Once the warehouse has them, Amazon cancels one whole shipment and one line of another.
        if !self.cancelled.load(Ordering::SeqCst)
            && records
                .iter()
                .filter(|r| r.id == ids[0] || r.id == ids[2])
                .all(|r| r.stage == Stage::HandedOver)
            && records.len() >= 3
        {
            ctx.sim.cancel_shipment(&ids[0]).await?;
            ctx.sim.cancel_lines(&ids[2], &[("1", 1)]).await?;
            self.cancelled.store(true, Ordering::SeqCst);
        }
        let cancel_told = Self::webhook_count(ctx, "ShipmentCancelled", &ids[0]) > 0
            && Self::webhook_count(ctx, "ShipmentCancelled", &ids[2]) > 0;
        Ok(Progress {
            line: format!(
                "orders {}/{} stored, {handed} handed over, {} held, {} cancelled by Amazon",
                records.len(),
                ids.len(),
                count(Stage::Held),
                count(Stage::Cancelled)
            ),
            done: self.cancelled.load(Ordering::SeqCst)
                && handed >= ORDERS
                && count(Stage::Held) == 1
                && cancel_told,
        })
    }

    async fn summary(&self, ctx: &Ctx, _runner: &Runner) -> Result<Summary> {
        let mut s = Summary::default();
        let ids = self.ids();
        let records = self.records(ctx).await?;
        let (mut requests, mut applied) = (0, 0);
        for id in &ids {
            let c = ctx.sim.confirm_counts(id).await?;
            requests += c.requests;
            applied += c.applied;
        }
        s.lines.push(SummaryLine::new(
            "Orders from Amazon",
            format!(
                "{} created, {} stored, {applied} confirmed ({requests} CONFIRM calls: {} duplicate)",
                ids.len(),
                records.len(),
                requests.saturating_sub(applied)
            ),
        ));
        let accepted = ids
            .iter()
            .filter(|id| Self::webhook_count(ctx, "ShipmentAccepted", id) > 0)
            .count();
        s.lines.push(SummaryLine::new(
            "Handed to the warehouse",
            format!("{accepted} ShipmentAccepted delivered to the webhook (by notification or the poller)"),
        ));
        let whole = Self::webhook_count(ctx, "ShipmentCancelled", &ids[0]);
        let line = Self::webhook_count(ctx, "ShipmentCancelled", &ids[2]);
        s.lines.push(SummaryLine::new(
            "Cancellations reaching the warehouse",
            format!(
                "whole shipment {}: {}; one line of {}: {}",
                ids[0],
                if whole > 0 {
                    "ShipmentCancelled delivered"
                } else {
                    "NOT delivered"
                },
                ids[2],
                if line > 0 {
                    "ShipmentCancelled delivered"
                } else {
                    "NOT delivered"
                }
            ),
        ));
        for r in records.iter().filter(|r| r.stage == Stage::Held) {
            s.lines.push(SummaryLine::new(
                "Held for you to decide",
                format!(
                    "{}: {} (POST /v1/shipments/{}/release to confirm, /reject to reject)",
                    r.id,
                    r.hold_reasons.join("; "),
                    r.id
                ),
            ));
        }
        let inventory = DynamoInventoryStore::new(
            flexbridge::aws::dynamodb_client(&ctx.sdk),
            ctx.stack.table("InventoryTable"),
        );
        let mut reserved = BTreeMap::new();
        for l in &ctx.seller.locations {
            for sku in SKUS {
                let p = inventory.position(&l.location_id, sku).await?;
                if p.reserved != 0 {
                    reserved.insert(format!("{}/{sku}", l.hub_id), p.reserved);
                }
            }
        }
        s.lines.push(SummaryLine::new(
            "Units reserved by open orders",
            reserved
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
        let unfinished: Vec<&str> = records
            .iter()
            .filter(|r| matches!(r.stage, Stage::Received | Stage::Confirmed))
            .map(|r| r.id.as_str())
            .collect();
        if !unfinished.is_empty() {
            s.errors.push(format!(
                "orders not yet handed over: {} (GET /v1/shipments/<id>; logs of OrderPollerFunction)",
                unfinished.join(", ")
            ));
        }
        if requests > applied {
            s.errors.push(format!(
                "{} CONFIRM calls beyond the first",
                requests - applied
            ));
        }
        if whole == 0 || line == 0 {
            s.errors.push(
                "a cancellation did not reach the webhook (see OutboundDLQ and the run log)".into(),
            );
        }
        Ok(s)
    }
}
