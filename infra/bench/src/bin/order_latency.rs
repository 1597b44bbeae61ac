//! Order latency: how long from a shipment's creation at Amazon (the simulator) to
//! `ShipmentAccepted` on the bus, with polling alone (the order poller on its one-minute
//! schedule, real time) and with notifications (simulator → NotificationsQueue → consumer),
//! and how many CONFIRMs Amazon got more than once.
//!
//! `cargo run --release -p flexbridge-bench --bin order_latency` (about 3 minutes; no time
//! scaling: schedules run at real speed). Ends with one line:
//! `poll_p50_s=.. poll_p99_s=.. notify_p50_s=.. notify_p99_s=.. duplicate_confirms=..`.
//! A burst (50 orders at one instant, as a full-size chaos round makes them):
//! `--poll-secs 2 --every-secs 0.04 --notify-secs 0 --drain-secs 200`; `RUST_LOG=flexbridge=info`
//! prints the functions' logs (each CONFIRM with its latency).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use clap::Parser;
use flexbridge::orders::wiring::settings::POLL_PASS_SECONDS;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides, Stack};
use flexbridge_local::{Moto, Runner, RunnerOptions};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(
    about = "Creation at Amazon → ShipmentAccepted latency, polling alone vs with notifications"
)]
struct Args {
    /// Seconds of steady order creation with polling alone.
    #[arg(long, default_value_t = 100)]
    poll_secs: u64,
    /// Seconds of steady order creation with notifications (and polling) on.
    #[arg(long, default_value_t = 45)]
    notify_secs: u64,
    /// Seconds between two orders.
    #[arg(long, default_value_t = 3.0)]
    every_secs: f64,
    /// How long to wait for the last orders of a phase to be handed over.
    #[arg(long, default_value_t = 75)]
    drain_secs: u64,
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Seconds between the poller's passes over new work within one run (the setting
    /// `orders_poll_pass_seconds`; 0 = one pass per scheduled run).
    #[arg(long, default_value_t = 15)]
    poll_pass_secs: u64,
}

const SKUS: [&str; 4] = ["BENCH-MUG", "BENCH-TEE", "BENCH-CAP", "BENCH-SOCK"];
const POLLER: &str = "OrderPollerFunction";
const CONSUMER: &str = "NotificationConsumerFunction";

struct World {
    stack: Stack,
    overrides: Overrides,
    admin: spapi_sim::AdminClient,
    sqs: aws_sdk_sqs::Client,
    location: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The functions' logs, when asked for (`RUST_LOG=flexbridge=warn`): where a slow order waited.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let started = Instant::now();
    let moto = tokio::task::spawn_blocking(Moto::start).await??;
    let sim = spapi_sim::Simulator::start(spapi_sim::SimOptions {
        seed: args.seed,
        ..Default::default()
    })
    .await?;
    let seller = Seller::default();
    let stack = stack::provision(
        moto.endpoint(),
        &stack::unique_stack_name("bench-orders"),
        &[("SellerId", seller.seller_id.as_str())],
    )
    .await?;
    seed::seed_secrets(&stack, &seller).await?;
    seed::seed_seller(&stack, &seller).await?;
    let admin = spapi_sim::AdminClient::new(&sim.base_url);
    for l in &seller.locations {
        admin
            .create_location(&l.location_id, &l.marketplace_id, &l.channel)
            .await?;
    }
    let sdk = flexbridge::aws::load_with_endpoint(moto.endpoint()).await;
    let catalog = DynamoCatalogStore::new(
        flexbridge::aws::dynamodb_client(&sdk),
        stack.table("CatalogTable"),
    );
    let items: Vec<CatalogItem> = SKUS
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: sku.to_string(),
            asin: format!("B0BENCH{i:03}"),
            title: None,
            product_type: Some("HOME".into()),
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: Utc::now().to_rfc3339(),
            source: "bench".into(),
        })
        .collect();
    catalog.put_items(&items).await?;
    let settings = DynamoSettingsStore::new(
        flexbridge::aws::dynamodb_client(&sdk),
        stack.table("SettingsTable"),
    );
    settings
        .put(
            POLL_PASS_SECONDS,
            json!(args.poll_pass_secs),
            None,
            "order_latency",
        )
        .await?;
    let world = World {
        overrides: Overrides {
            spapi_endpoint: Some(sim.base_url.clone()),
            lwa_endpoint: Some(sim.lwa_url()),
            extra: BTreeMap::new(),
        },
        location: seller.locations[0].location_id.clone(),
        sqs: flexbridge::aws::sqs_client(&sdk),
        admin,
        stack,
    };
    println!(
        "setup {:.1} s; orders every {} s; poller passes every {} s (0 = one per run); polling alone {} s, then notifications {} s",
        started.elapsed().as_secs_f64(),
        args.every_secs,
        args.poll_pass_secs,
        args.poll_secs,
        args.notify_secs
    );

    // Phase 1: the poller alone, on the template's schedule (rate(1 minute)), at real speed.
    let mut accepted: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let runner = world.runner(&[POLLER]).await?;
    let poll_orders = world.create_orders(&args, args.poll_secs).await?;
    world
        .wait_accepted(&poll_orders, &mut accepted, args.drain_secs)
        .await?;
    runner.stop().await;
    let poll = latencies(&poll_orders, &accepted);

    // Phase 2: notifications. The simulator's SQS client reaches moto through the standard variable.
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    world
        .admin
        .add_notification_destination(
            json!({"sqsQueueUrl": world.stack.queue_url("NotificationsQueue")}),
        )
        .await?;
    let runner = world.runner(&[POLLER, CONSUMER]).await?;
    let notify_orders = world.create_orders(&args, args.notify_secs).await?;
    world
        .wait_accepted(&notify_orders, &mut accepted, args.drain_secs)
        .await?;
    runner.stop().await;
    let notify = latencies(&notify_orders, &accepted);

    let mut duplicates = 0u32;
    let mut unconfirmed = 0usize;
    for id in poll_orders.keys().chain(notify_orders.keys()) {
        let c = world.admin.confirm_counts(id).await?;
        duplicates += c.requests.saturating_sub(1);
        if c.applied == 0 {
            unconfirmed += 1;
        }
    }
    report(
        "polling alone (1-minute schedule)",
        &poll,
        poll_orders.len(),
    );
    report("with notifications", &notify, notify_orders.len());
    println!(
        "CONFIRM requests beyond the first per shipment: {duplicates}; shipments never confirmed: {unconfirmed}"
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "poll_p50_s={:.1} poll_p99_s={:.1} notify_p50_s={:.1} notify_p99_s={:.1} duplicate_confirms={duplicates}",
        pct(&poll, 0.50),
        pct(&poll, 0.99),
        pct(&notify, 0.50),
        pct(&notify, 0.99)
    );
    Ok(())
}

impl World {
    async fn runner(&self, only: &[&str]) -> Result<Runner> {
        Runner::start(
            &self.stack,
            &self.overrides,
            RunnerOptions {
                speedup: 1.0,
                fire_schedules_at_start: true,
                receive_wait: Duration::from_secs(1),
                only: Some(only.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        )
        .await
    }

    /// Creates orders at a steady rate for `secs`; returns ID → when the create call started.
    async fn create_orders(
        &self,
        args: &Args,
        secs: u64,
    ) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let mut out = BTreeMap::new();
        let start = tokio::time::Instant::now();
        let every = Duration::from_secs_f64(args.every_secs);
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(secs) {
            let at = Utc::now();
            let sku = SKUS[n as usize % SKUS.len()];
            let s = self
                .admin
                .create_shipment(json!({"locationId": self.location, "lineItems": [{"sku": sku, "quantity": 1 + n % 3}]}))
                .await?;
            let id = s["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no id in {s}"))?
                .to_string();
            out.insert(id, at);
            n += 1;
            tokio::time::sleep_until(start + every * n).await;
        }
        Ok(out)
    }

    /// Reads `ShipmentAccepted` off OutboundQueue (the bus rule's target) until every order has one.
    async fn wait_accepted(
        &self,
        orders: &BTreeMap<String, DateTime<Utc>>,
        accepted: &mut BTreeMap<String, DateTime<Utc>>,
        drain_secs: u64,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(drain_secs);
        let queue = self.stack.queue_url("OutboundQueue");
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            for m in out.messages() {
                let v: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
                if v["detail-type"] == "ShipmentAccepted" {
                    let id = v["detail"]["shipmentId"].as_str().unwrap_or("").to_string();
                    let at = v["detail"]["occurredAt"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    if let Some(at) = at {
                        // The first publication counts; a repeat (same event ID) changes nothing.
                        accepted.entry(id).or_insert(at);
                    }
                }
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await?;
            }
            let missing: BTreeSet<&String> = orders
                .keys()
                .filter(|id| !accepted.contains_key(*id))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!(
                    "{} order(s) not handed over within {drain_secs} s: {missing:?}",
                    missing.len()
                );
                return Ok(());
            }
        }
    }
}

fn latencies(
    orders: &BTreeMap<String, DateTime<Utc>>,
    accepted: &BTreeMap<String, DateTime<Utc>>,
) -> Vec<f64> {
    let mut v: Vec<f64> = orders
        .iter()
        .map(|(id, created)| {
            accepted.get(id).map_or(f64::INFINITY, |a| {
                (*a - *created).num_milliseconds() as f64 / 1000.0
            })
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile; a missing sample counts as infinitely late.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::INFINITY;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn report(label: &str, sorted: &[f64], created: usize) {
    println!(
        "{label}: {} of {created} orders handed over; creation → ShipmentAccepted p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s",
        sorted.iter().filter(|x| x.is_finite()).count(),
        pct(sorted, 0.50),
        pct(sorted, 0.90),
        pct(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
    let mut buckets = [0usize; 7];
    let edges = [1.0, 2.0, 5.0, 10.0, 20.0, 40.0];
    for x in sorted {
        let i = edges.iter().position(|e| x < e).unwrap_or(edges.len());
        buckets[i] += 1;
    }
    println!(
        "  <1s {} | 1-2s {} | 2-5s {} | 5-10s {} | 10-20s {} | 20-40s {} | >=40s {}",
        buckets[0], buckets[1], buckets[2], buckets[3], buckets[4], buckets[5], buckets[6]
    );
}
