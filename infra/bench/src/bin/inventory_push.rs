//! Inventory push: 100,000 SKUs at one location all change, pushed by the shared pusher
//! (`flexbridge::inventory::pusher::Pusher`, the code the InventoryPusherFunction runs) against
//! the simulator enforcing batchInventory's 50 requests/s, burst 100.
//!
//! `cargo run --release -p flexbridge-bench --bin inventory_push -- --skus 100000`
//!
//! The pusher runs over the in-memory twins of its stores (ledger, catalog, locations,
//! settings, events) and the in-memory twin of the shared rate-limit bucket (the Lambda uses the
//! DynamoDB one, same code), so the figure is Amazon's limit and the pusher, not moto.
//!
//! 1. bulk: every SKU gets a new on-hand figure and is marked pending; one push sends them all
//!    (`push_efficiency_pct` = calls / (burst + rate × seconds), the share of the ceiling used).
//!    Meanwhile `--changes-during` SKUs change again (a newer figure); the run after the bulk one
//!    (what the nudge of those changes starts) sends them.
//! 2. every SKU is read back from the simulator (admin API): Amazon must hold the newest figure.
//!    `stale_overwrites`: Amazon holds an older figure of the SKU than the newest;
//!    `lost_updates`: it holds neither (or nothing).
//! 3. change latency: `--latency-samples` single warehouse changes, one after another, each timed
//!    from the stored figure to the simulator holding it (the pusher is run directly, as the
//!    nudge would; SQS delivery of the nudge is not included).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use flexbridge::events::MemoryEventSink;
use flexbridge::inventory::pusher::Pusher;
use flexbridge::inventory::settings as names;
use flexbridge::inventory::wiring::{PUSH_CONCURRENCY, SHARED_BUCKET_CHUNK};
use flexbridge::ratelimit::MemoryBucketStore;
use flexbridge::spapi::{LwaCredentials, Operation, Region, SpApiClient, SpApiConfig};
use flexbridge::store::catalog::{CatalogItem, CatalogStore, MemoryCatalogStore};
use flexbridge::store::inventory::{MemoryInventoryStore, PushLedger};
use flexbridge::store::locations::{Location, MemoryLocationStore};
use flexbridge::store::settings::{MemorySettingsStore, SettingsStore};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use spapi_sim::{
    SimOptions, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN,
};

#[derive(Parser, Debug)]
#[command(about = "100,000 SKUs at one location all change: push time against 50 rps / burst 100")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    skus: usize,
    /// SKUs that change again while the bulk push runs.
    #[arg(long, default_value_t = 1_000)]
    changes_during: usize,
    /// Single warehouse changes timed after the bulk push.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
}

const LOCATION: &str = "BNCH";
const HUB: &str = "HUB-B";
const MARKETPLACE: &str = "A1PA6795UKMFR9";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = Simulator::start(SimOptions {
        rate_limits: true,
        ..Default::default()
    })
    .await?;
    let admin = sim.admin();
    admin.create_location(LOCATION, MARKETPLACE, "FBA").await?;
    let skus: Vec<String> = (0..args.skus).map(|i| format!("PUSH-{i:06}")).collect();
    for chunk in skus.chunks(10_000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        admin.add_skus(&refs).await?;
    }
    let spapi_sim::RateLimit { rate, burst } =
        spapi_sim::ratelimit::default_limit("batchInventory");

    let mut cfg = SpApiConfig::new(
        Region::Eu,
        LwaCredentials {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            refresh_token: DEFAULT_REFRESH_TOKEN.into(),
        },
    );
    cfg.endpoint = Some(sim.base_url.clone());
    cfg.lwa_endpoint = Some(sim.lwa_url());
    let client = SpApiClient::new(cfg)?;
    client.share_rate_limit(
        Operation::BatchInventory,
        Arc::new(MemoryBucketStore::default()),
        None,
        SHARED_BUCKET_CHUNK,
    );

    let inv = Arc::new(MemoryInventoryStore::new());
    let catalog = Arc::new(MemoryCatalogStore::new());
    let items: Vec<CatalogItem> = skus
        .iter()
        .map(|s| CatalogItem {
            sku: s.clone(),
            asin: "B000000000".into(),
            title: None,
            product_type: None,
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: "bench".into(),
            source: "bench".into(),
        })
        .collect();
    for chunk in items.chunks(1000) {
        catalog.put_items(chunk).await?;
    }
    let settings = Arc::new(MemorySettingsStore::new());
    settings
        .put(names::PUSH_ENABLED, serde_json::json!(true), None, "bench")
        .await?;
    let locations = Arc::new(MemoryLocationStore::with(vec![Location {
        location_id: LOCATION.into(),
        hub_id: HUB.into(),
        name: "bench".into(),
        marketplace_id: MARKETPLACE.into(),
        channel: "FBA".into(),
        orders_enabled: true,
        inventory_enabled: true,
        returns_enabled: true,
    }]));
    let pusher = Arc::new(Pusher {
        ledger: inv.clone(),
        locations,
        catalog,
        settings,
        amazon: Arc::new(client),
        events: Arc::new(MemoryEventSink::new()),
        concurrency: PUSH_CONCURRENCY,
        crash_after_send: None,
        metrics: flexbridge::metrics::Metrics::memory("bench", "inventory_push").0,
    });
    let only = vec![LOCATION.to_string()];

    // What the warehouse said for each SKU, in order (the last is the newest).
    let mut history: HashMap<String, Vec<i64>> = HashMap::new();
    for (i, sku) in skus.iter().enumerate() {
        let q = 1000 + (i % 500) as i64;
        inv.set_on_hand(HUB, sku, q);
        history.insert(sku.clone(), vec![q]);
    }
    for chunk in skus.chunks(1000) {
        inv.mark_pending(LOCATION, chunk).await?;
    }
    println!(
        "simulator batchInventory limit {rate} rps / burst {burst}; {} SKUs pending at {LOCATION}; {} pusher calls in flight",
        args.skus, PUSH_CONCURRENCY
    );

    // 1. The bulk push, with newer figures arriving meanwhile.
    let started = Instant::now();
    let bulk = {
        let pusher = pusher.clone();
        let only = only.clone();
        tokio::spawn(async move { pusher.push(Some(&only), None).await })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut changed_during = 0usize;
    let spread = Duration::from_secs_f64(args.skus as f64 / 10.0 / rate * 0.8);
    let pause = spread / (args.changes_during.max(1) as u32);
    for _ in 0..args.changes_during {
        tokio::time::sleep(pause).await;
        let sku = &skus[rng.random_range(0..skus.len())];
        let h = history.get_mut(sku).expect("known");
        let q = h.last().copied().unwrap_or(0) + 7;
        h.push(q);
        inv.set_on_hand(HUB, sku, q);
        inv.mark_pending(LOCATION, std::slice::from_ref(sku))
            .await?;
        changed_during += 1;
    }
    let report = bulk.await??;
    let bulk_secs = started.elapsed().as_secs_f64();
    let loc = &report.locations[0];
    let calls = loc.calls as f64;
    let ceiling = burst + rate * bulk_secs;
    println!(
        "bulk: status={} sent={} accepted={} calls={} failed_calls={} deferred={} stale_resent={} retried={} in {bulk_secs:.1} s",
        loc.status, loc.sent, loc.accepted, loc.calls, loc.failed_calls, loc.deferred, loc.stale_resent, loc.retried
    );
    // What the nudges of the changes made meanwhile start (and the sweep, if anything is left).
    let mut after_runs = 0;
    while !inv.pending(LOCATION).await?.is_empty() && after_runs < 5 {
        let r = pusher.push(Some(&only), None).await?;
        after_runs += 1;
        let l = &r.locations[0];
        println!(
            "follow-up run {after_runs}: sent={} accepted={} calls={} failed_calls={}",
            l.sent, l.accepted, l.calls, l.failed_calls
        );
    }

    // 2. Read every SKU back from the simulator.
    let (mut lost, mut stale) = (0u64, 0u64);
    let reads: Vec<_> = skus
        .iter()
        .map(|sku| {
            let admin = admin.clone();
            let sku = sku.clone();
            async move {
                let v = admin.inventory(LOCATION, &sku).await;
                (sku, v)
            }
        })
        .collect();
    let mut answers = futures::stream::iter(reads).buffer_unordered(32);
    while let Some((sku, v)) = answers.next().await {
        let held = v?["sellableQuantity"].as_i64();
        let h = &history[&sku];
        match held {
            Some(q) if Some(&q) == h.last() => {}
            Some(q) if h.contains(&q) => stale += 1,
            _ => lost += 1,
        }
    }

    // 3. Single changes, one at a time.
    let mut latencies = Vec::with_capacity(args.latency_samples);
    for i in 0..args.latency_samples {
        let sku = &skus[rng.random_range(0..skus.len())];
        let q = 5 + (i % 50) as i64;
        let t0 = Instant::now();
        inv.set_on_hand(HUB, sku, q);
        inv.mark_pending(LOCATION, std::slice::from_ref(sku))
            .await?;
        let r = pusher.push(Some(&only), None).await?;
        anyhow::ensure!(r.failed_calls() == 0, "a single change failed: {r:?}");
        let held = admin.inventory(LOCATION, sku).await?["sellableQuantity"].as_i64();
        anyhow::ensure!(held == Some(q), "{sku}: Amazon holds {held:?}, pushed {q}");
        latencies.push(t0.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);

    let log = admin.calls(Some("batchInventory")).await?;
    let throttled = log.iter().filter(|c| c["status"] == 429).count();
    println!(
        "skus={} calls={} ceiling_calls={ceiling:.0} seconds={bulk_secs:.1} throttled_responses={throttled} changed_during={changed_during} follow_up_runs={after_runs}",
        args.skus, calls as u64
    );
    println!(
        "push_efficiency_pct={:.1} lost_updates={lost} stale_overwrites={stale} change_p50_s={:.3} change_p99_s={:.3}",
        100.0 * calls / ceiling,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
    sim.shutdown().await;
    Ok(())
}
