//! Inventory sync: the warehouse reports stock for twelve SKUs at the California hub; it goes out
//! to Amazon within seconds; Amazon takes orders against it; then a broken export reports
//! everything as zero and the safety breaker stops it (discarded, as a person would), and the
//! warehouse sends the corrected export. The summary explains the units Amazon offers
//! (on hand − reserved by the orders) and prints the simulator's oversold count (0: no order
//! beyond the warehouse's stock).

use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Result;
use async_trait::async_trait;
use flexbridge::config::keys;
use flexbridge::inventory::changes::StockChanges;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::inventory::OnHand;
use serde_json::json;

use super::{Ctx, Progress, Scenario, Summary, SummaryLine};
use crate::runner::Runner;

const LOCATION: &str = "SIMLOC-WEST-1";
const HUB: &str = "HUB-CA";
const SKUS: usize = 12;
const STOCK: u32 = 20;

fn sku(i: usize) -> String {
    format!("DEMO-STOCK-{i:02}")
}

#[derive(Default)]
pub struct Inventory {
    /// 0 seeded, 1 stock at Amazon and orders placed, 2 wipe reported, 3 halt discarded,
    /// 4 corrected export reported.
    step: AtomicU8,
    halt_reason: std::sync::Mutex<String>,
}

async fn changes(ctx: &Ctx) -> Result<StockChanges> {
    let env = flexbridge::Env::default()
        .with(keys::AWS_ENDPOINT_URL, ctx.stack.endpoint.clone())
        .with(keys::INVENTORY_TABLE, ctx.stack.table("InventoryTable"))
        .with(keys::LOCATIONS_TABLE, ctx.stack.table("LocationsTable"))
        .with(
            keys::INVENTORY_PUSH_QUEUE_URL,
            ctx.stack.queue_url("InventoryPushQueue"),
        );
    Ok(StockChanges::from_env(&env).await?)
}

async fn report(ctx: &Ctx, units: u32) -> Result<()> {
    let figures = (0..SKUS)
        .map(|i| OnHand {
            hub: HUB.into(),
            sku: sku(i),
            on_hand: units,
            reported_at: chrono::Utc::now(),
        })
        .collect();
    changes(ctx).await?.report_on_hand(figures).await?;
    Ok(())
}

#[async_trait]
impl Scenario for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn seed(&self, ctx: &Ctx) -> Result<()> {
        let skus: Vec<String> = (0..SKUS).map(sku).collect();
        ctx.sim
            .add_skus(&skus.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
        let catalog = DynamoCatalogStore::new(
            flexbridge::aws::dynamodb_client(&ctx.sdk),
            ctx.stack.table("CatalogTable"),
        );
        let items: Vec<CatalogItem> = skus
            .iter()
            .map(|s| CatalogItem {
                sku: s.clone(),
                asin: "B0DEMOSTCK".into(),
                title: Some(format!("{s} (stock demo)")),
                product_type: Some("HOME".into()),
                enabled: true,
                safety_stock: None,
                max_quantity: None,
                updated_at: "2026-12-01T00:00:00.000Z".into(),
                source: "demo".into(),
            })
            .collect();
        catalog.put_items(&items).await?;
        for s in &skus {
            ctx.sim.set_truth(LOCATION, s, i64::from(STOCK)).await?;
        }
        report(ctx, STOCK).await
    }

    async fn progress(&self, ctx: &Ctx, _runner: &Runner) -> Result<Progress> {
        let at_amazon = async |i: usize| -> Result<i64> {
            Ok(
                ctx.sim.inventory(LOCATION, &sku(i)).await?["sellableQuantity"]
                    .as_i64()
                    .unwrap_or(-1),
            )
        };
        let line = match self.step.load(Ordering::SeqCst) {
            0 => {
                let mut there = 0;
                for i in 0..SKUS {
                    there += usize::from(at_amazon(i).await? == i64::from(STOCK));
                }
                if there == SKUS {
                    // Buyers order against the stock Amazon now offers.
                    for i in 0..3 {
                        ctx.sim
                            .create_shipment(json!({"locationId": LOCATION, "lineItems": [{"sku": sku(i), "quantity": 2, "unitPrice": "9.00"}]}))
                            .await?;
                    }
                    self.step.store(1, Ordering::SeqCst);
                }
                format!("inventory {there}/{SKUS} SKUs at Amazon")
            }
            1 => {
                // Once the orders are reserved on our side (the order poller stored them) and
                // that went out, a broken export reports every SKU as zero.
                let stock = changes(ctx).await?;
                let ordered: Vec<String> = (0..3).map(sku).collect();
                let reserved = stock
                    .ledger
                    .positions(LOCATION, &ordered)
                    .await?
                    .iter()
                    .filter(|p| p.reserved == 2)
                    .count();
                if reserved == ordered.len() && stock.ledger.pending(LOCATION).await?.is_empty() {
                    report(ctx, 0).await?;
                    self.step.store(2, Ordering::SeqCst);
                }
                "inventory: orders placed, waiting for their push".into()
            }
            _ => {
                let stock = changes(ctx).await?;
                match stock.ledger.halt(LOCATION).await? {
                    Some(h) if h.status == "halted" => {
                        *self.halt_reason.lock().expect("lock") = h.reason.clone();
                        stock.decide_halt(LOCATION, false, "demo").await?;
                        self.step.store(3, Ordering::SeqCst);
                        "inventory push halted by the breaker; discarding".into()
                    }
                    None if self.step.load(Ordering::SeqCst) == 3 => {
                        // The export is fixed: the real figures again (Amazon already has them).
                        report(ctx, STOCK).await?;
                        self.step.store(4, Ordering::SeqCst);
                        "inventory: corrected export reported".into()
                    }
                    None if self.step.load(Ordering::SeqCst) == 4
                        && stock.ledger.pending(LOCATION).await?.is_empty() =>
                    {
                        return Ok(Progress {
                            line: "inventory done".into(),
                            done: true,
                        })
                    }
                    _ => "inventory waiting for the breaker".into(),
                }
            }
        };
        Ok(Progress { line, done: false })
    }

    async fn summary(&self, ctx: &Ctx, _runner: &Runner) -> Result<Summary> {
        let mut s = Summary::default();
        let (mut held, mut reserved) = (0, 0);
        for i in 0..SKUS {
            let at = ctx.sim.inventory(LOCATION, &sku(i)).await?;
            held += at["sellableQuantity"].as_i64().unwrap_or(0);
            reserved += at["reservedQuantity"].as_i64().unwrap_or(0);
        }
        let on_hand = SKUS as i64 * i64::from(STOCK);
        s.lines.push(SummaryLine::new(
            "inventory: stock going out",
            format!(
                "the warehouse reported {SKUS} SKUs x {STOCK} = {on_hand} units at {HUB}; Amazon offers {held} \
                 = {on_hand} on hand - {reserved} reserved by the demo's 3 orders (expected {})",
                on_hand - reserved
            ),
        ));
        let reason = self.halt_reason.lock().expect("lock").clone();
        s.lines.push(SummaryLine::new(
            "inventory: safety breaker",
            if reason.is_empty() {
                "did NOT trip on the broken export (all SKUs reported as 0)".to_string()
            } else {
                format!(
                    "tripped on a broken export reporting all {SKUS} SKUs as 0 ({reason}); discarded, Amazon kept its stock, then the corrected export came"
                )
            },
        ));
        let oversold = ctx.sim.oversold().await?;
        s.lines.push(SummaryLine::new(
            "inventory: oversold (simulator)",
            format!(
                "{} orders, {} units (orders Amazon took beyond the warehouse's stock; must be 0)",
                oversold["oversoldOrders"], oversold["oversoldUnits"]
            ),
        ));
        if oversold["oversoldUnits"].as_i64().unwrap_or(0) > 0
            || reason.is_empty()
            || held != on_hand - reserved
        {
            s.errors
                .push("inventory: see .local/run.log (InventoryPusherFunction)".into());
        }
        Ok(s)
    }
}
