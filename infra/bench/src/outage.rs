//! Amazon down for hours while orders keep coming, then back at its real rate limits: does the
//! order poller catch up, and how long does it take?
//!
//! The stack in moto, the simulator, and the order poller run back to back as its one-minute
//! schedule would run it (each run has the template's 60 s; a run that has nothing left to do
//! ends early, and the next starts at once, as the schedule's next firing would when a run takes
//! the whole minute). The outage: every SP-API call answered 503 while `shipments` shipments
//! are created over `outage` (each with its creation time in those hours) and the poller's
//! cursors stand where its last good run left them, `outage` ago. Then the faults go, and the
//! runs go on until every shipment is stored, handed over and confirmed.
//!
//! Used by `outage::` (a small backlog, in the default test command) and `bin/outage_drain.rs`
//! (3,000 shipments over 6 hours: BENCHMARKS.md "Outage drain").

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use flexbridge::orders::poller::{OrderPoller, POLLED_STATUSES};
use flexbridge::orders::Orders;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::Stage;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::cursors::{Cursor, CursorKind};
use flexbridge_local::seed::Seller;
use serde_json::json;
use spapi_sim::{FaultConfig, FaultRule};

use crate::world::{World, WorldOptions};

#[derive(Debug, Clone)]
pub struct Options {
    pub shipments: usize,
    pub outage: Duration,
    /// Overrides of the poller's defaults (`PollSettings`): the small test uses small values so
    /// that a small backlog still takes several runs.
    pub max_window: Option<Duration>,
    pub max_pages: Option<usize>,
    /// Each run's budget (the template's Timeout).
    pub run_budget: Duration,
    /// Give up after this many runs once Amazon is back.
    pub max_runs: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shipments: 3000,
            outage: Duration::from_secs(6 * 3600),
            max_window: None,
            max_pages: None,
            run_budget: Duration::from_secs(60),
            max_runs: 500,
            seed: 20,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub shipments: usize,
    /// Runs after Amazon came back, until the last shipment was confirmed and handed over.
    pub runs: usize,
    /// Runs (Amazon back, the backlog not yet listed) after which no ACCEPTED cursor had moved.
    pub runs_without_progress: usize,
    /// Runs during the outage whose polls failed (and whose cursors stayed).
    pub failed_runs_in_outage: usize,
    /// From Amazon back to every shipment confirmed and handed over.
    pub drain: Duration,
    /// From Amazon back to the ACCEPTED listing caught up (every page stored).
    pub listed: Duration,
    /// Shipments not stored, or not confirmed, at the end.
    pub missed: usize,
    /// CONFIRMs Amazon applied more than once, summed (must be 0).
    pub duplicate_confirms: u32,
    /// CONFIRM requests beyond one per shipment (409s and throttled retries included).
    pub extra_confirm_requests: u32,
    pub lines: Vec<String>,
}

impl Report {
    pub fn last_line(&self) -> String {
        format!(
            "shipments={} runs={} runs_without_progress={} outage_listed_minutes={:.1} outage_drain_minutes={:.1} missed_orders={} duplicate_confirms={}",
            self.shipments,
            self.runs,
            self.runs_without_progress,
            self.listed.as_secs_f64() / 60.0,
            self.drain.as_secs_f64() / 60.0,
            self.missed,
            self.duplicate_confirms
        )
    }
}

const SKUS: [&str; 3] = ["OUTAGE-MUG", "OUTAGE-TEE", "OUTAGE-CAP"];

pub async fn run(opts: Options) -> Result<Report> {
    let setup = Instant::now();
    let world = World::start(
        &WorldOptions {
            name: "outage",
            seed: opts.seed,
            parameters: Vec::new(),
        },
        Seller::default(),
    )
    .await?;
    let (stack, seller, admin, overrides) =
        (&world.stack, &world.seller, &world.admin, &world.overrides);
    let sdk = world.sdk().await;
    let catalog = DynamoCatalogStore::new(
        flexbridge::aws::dynamodb_client(&sdk),
        stack.table("CatalogTable"),
    );
    let items: Vec<CatalogItem> = SKUS
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: sku.to_string(),
            asin: format!("B0OUTAGE{i:02}"),
            title: None,
            product_type: Some("HOME".into()),
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: Utc::now().to_rfc3339(),
            source: "outage".into(),
        })
        .collect();
    catalog.put_items(&items).await?;
    let orders = Orders::from_env(&stack.env_for("OrderPollerFunction", overrides)?).await?;
    let location = seller.locations[0].location_id.clone();
    let mut report = Report {
        shipments: opts.shipments,
        ..Default::default()
    };

    // The last good run was `outage` ago: every cursor stands there.
    let outage_start = Utc::now() - chrono::Duration::from_std(opts.outage)?;
    for l in &seller.locations {
        for status in POLLED_STATUSES {
            orders
                .cursors
                .advance(
                    CursorKind::Shipments,
                    &l.location_id,
                    status.as_str(),
                    outage_start,
                )
                .await?;
        }
    }
    // Amazon down: every call 503.
    admin
        .set_faults(&FaultConfig {
            global: FaultRule {
                error503_rate: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
    // Orders kept coming: spread evenly over the outage.
    let mut ids = Vec::with_capacity(opts.shipments);
    let step = opts.outage.as_secs_f64() / opts.shipments.max(1) as f64;
    for i in 0..opts.shipments {
        let at = outage_start
            + chrono::Duration::milliseconds(((i as f64 + 0.5) * step * 1000.0) as i64);
        let s = admin
            .create_shipment(json!({
                "locationId": location,
                "lineItems": [{"sku": SKUS[i % SKUS.len()], "quantity": 1}],
                "createdAt": at.to_rfc3339(),
            }))
            .await?;
        ids.push(
            s["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no id in {s}"))?
                .to_string(),
        );
    }
    // A run during the outage: it fails, and its cursors stay.
    let poll = |budget: Duration| {
        let orders = &orders;
        let opts = &opts;
        async move {
            let inv = Invocation::new("outage", budget);
            let processor = orders.processor(&inv);
            let mut settings = orders.poll_settings().await?;
            settings.pass_interval = Duration::ZERO;
            if let Some(w) = opts.max_window {
                settings.max_window = w;
            }
            if let Some(p) = opts.max_pages {
                settings.max_pages = p;
            }
            let poller = OrderPoller {
                processor: &processor,
                cursors: orders.cursors.as_ref(),
                settings,
            };
            anyhow::Ok(poller.run(&inv).await?)
        }
    };
    let accepted = |orders: &Orders| {
        let c = orders.cursors.clone();
        let l = location.clone();
        async move { anyhow::Ok(c.read(CursorKind::Shipments, &l, "ACCEPTED").await?) }
    };
    let before = accepted(&orders).await?;
    let r = poll(Duration::from_secs(15)).await?;
    if r.failed_polls.is_empty() {
        bail!("a run during the outage did not fail: {r:?}");
    }
    report.failed_runs_in_outage += 1;
    if accepted(&orders).await? != before {
        bail!("a failed run moved the cursor");
    }
    say(
        &mut report.lines,
        format!(
            "setup {:.0} s; {} shipments created over {:.1} h of outage; a run during it: {} failed polls, cursor kept",
            setup.elapsed().as_secs_f64(),
            opts.shipments,
            opts.outage.as_secs_f64() / 3600.0,
            r.failed_polls.len()
        ),
    );

    // Amazon back, at its real rate limits.
    admin.clear_faults().await?;
    let back = Instant::now();
    let mut last: Cursor = accepted(&orders).await?;
    let mut listed: Option<Duration> = None;
    loop {
        if report.runs >= opts.max_runs {
            bail!(
                "{} runs after Amazon came back and the backlog is not drained",
                report.runs
            );
        }
        report.runs += 1;
        let r = poll(opts.run_budget).await?;
        let now: Cursor = accepted(&orders).await?;
        let behind = r
            .behind
            .iter()
            .any(|b| b == &format!("{location}/ACCEPTED"));
        if listed.is_none() {
            if now == last {
                report.runs_without_progress += 1;
            }
            if !behind {
                listed = Some(back.elapsed());
            }
        }
        last = now;
        let handed_over = count(&orders, Stage::HandedOver, &location).await?;
        say(
            &mut report.lines,
            format!(
                "run {:>3} at {:>6.1} min: pages {:>3}, stored {:>4}, driven {:>3}, swept {:>3}, cursor saves {:>3}, ACCEPTED {}, handed over {handed_over}/{}",
                report.runs,
                back.elapsed().as_secs_f64() / 60.0,
                r.pages,
                r.stored_new,
                r.driven,
                r.swept,
                r.cursor_saves,
                if behind { "behind" } else { "caught up" },
                opts.shipments
            ),
        );
        if handed_over >= opts.shipments && listed.is_some() {
            break;
        }
    }
    report.drain = back.elapsed();
    report.listed = listed.unwrap_or(report.drain);

    for id in &ids {
        let stored = orders.shipments.get(id).await?;
        let c = admin.confirm_counts(id).await?;
        report.duplicate_confirms += c.applied.saturating_sub(1);
        report.extra_confirm_requests += c.requests.saturating_sub(1);
        if !stored.is_some_and(|r| r.stage == Stage::HandedOver) || c.applied != 1 {
            report.missed += 1;
        }
    }
    say(
        &mut report.lines,
        format!(
            "drained in {:.1} min over {} runs (listing caught up after {:.1} min); CONFIRM requests beyond one per shipment: {}",
            report.drain.as_secs_f64() / 60.0,
            report.runs,
            report.listed.as_secs_f64() / 60.0,
            report.extra_confirm_requests
        ),
    );
    drop(world);
    Ok(report)
}

fn say(lines: &mut Vec<String>, l: String) {
    println!("{l}");
    lines.push(l);
}

async fn count(orders: &Orders, stage: Stage, location: &str) -> Result<usize> {
    let mut n = 0;
    let mut token: Option<String> = None;
    loop {
        let page = orders
            .shipments
            .list(stage, None, 100, token.as_deref())
            .await?;
        n += page
            .items
            .iter()
            .filter(|r| r.location_id == location)
            .count();
        token = page.next_token;
        if token.is_none() {
            return Ok(n);
        }
    }
}
