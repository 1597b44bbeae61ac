//! batchInventory throughput of ONE shared SP-API client against the simulator's rate limit
//! (Amazon's 50 requests/s, burst 100), with many concurrent callers.
//!
//! `cargo run --release -p flexbridge-bench --bin inventory_throughput -- --seconds 20 --tasks 20`
//!
//! The ceiling over a run of `T` seconds is `burst + rate * T` calls (the bucket starts full), so
//! `efficiency_pct = calls / (burst + rate * T)`; `steady_calls_per_s = (calls - burst) / T` is
//! the rate sustained after the burst. `throttled_failures` counts calls that FAILED because of
//! 429 (the goal is 0); `throttled_responses` counts 429 answers the client absorbed by retrying.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use flexbridge::spapi::{
    InventoryRequest, LwaCredentials, Operation, Region, SpApiClient, SpApiConfig,
};
use spapi_sim::{
    SimOptions, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN,
};

#[derive(Parser, Debug)]
#[command(
    about = "batchInventory throughput of one shared client against the simulator's 50 rps / burst 100"
)]
struct Args {
    /// How long the callers keep sending.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent tasks sharing the one client.
    #[arg(long, default_value_t = 20)]
    tasks: usize,
    /// Inventory updates per batchInventory call (1..=10).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// SKUs to spread updates over.
    #[arg(long, default_value_t = 500)]
    skus: usize,
}

const LOCATION: &str = "BNCH";
const MARKETPLACE: &str = "A1PA6795UKMFR9";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=10).contains(&args.batch),
        "--batch must be within 1..=10"
    );

    let sim = Simulator::start(SimOptions {
        rate_limits: true,
        ..Default::default()
    })
    .await?;
    let admin = sim.admin();
    admin.create_location(LOCATION, MARKETPLACE, "FBA").await?;
    let skus: Vec<String> = (0..args.skus)
        .map(|i| format!("BENCH-SKU {i:04}"))
        .collect();
    let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    admin.add_skus(&sku_refs).await?;
    // The simulator's own numbers (Amazon's published default).
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
    let client_limit = client.rate_limiter(Operation::BatchInventory).limit();
    println!(
        "simulator batchInventory limit {rate} rps / burst {burst}; client bucket {} rps / burst {}; {} tasks x {} s, {} updates per call",
        client_limit.rate, client_limit.burst, args.tasks, args.seconds, args.batch
    );

    let calls = Arc::new(AtomicU64::new(0));
    let items_ok = Arc::new(AtomicU64::new(0));
    let items_failed = Arc::new(AtomicU64::new(0));
    let throttled_failures = Arc::new(AtomicU64::new(0));
    let other_failures = Arc::new(AtomicU64::new(0));
    let sequence = Arc::new(AtomicI64::new(1));
    let skus = Arc::new(skus);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(args.seconds);

    let progress = {
        let calls = Arc::clone(&calls);
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let n = calls.load(Ordering::Relaxed);
                println!(
                    "t={:>5.1}s calls={n} last_5s_per_s={:.1}",
                    started.elapsed().as_secs_f64(),
                    (n - last) as f64 / 5.0
                );
                last = n;
            }
        })
    };

    let mut workers = Vec::new();
    for t in 0..args.tasks {
        let client = client.clone();
        let (calls, items_ok, items_failed) = (
            Arc::clone(&calls),
            Arc::clone(&items_ok),
            Arc::clone(&items_failed),
        );
        let (throttled_failures, other_failures) =
            (Arc::clone(&throttled_failures), Arc::clone(&other_failures));
        let (sequence, skus) = (Arc::clone(&sequence), Arc::clone(&skus));
        let (batch, tasks) = (args.batch, args.tasks);
        workers.push(tokio::spawn(async move {
            // Each task owns its own SKUs, so sequence numbers per (location, sku) only grow
            // and every item is expected to succeed.
            let mine: Vec<&String> = skus.iter().skip(t).step_by(tasks).collect();
            let mut i = 0;
            while Instant::now() < stop_at {
                let requests: Vec<InventoryRequest> = (0..batch)
                    .map(|k| {
                        let sku = mine[(i + k) % mine.len()];
                        let seq = sequence.fetch_add(1, Ordering::Relaxed);
                        InventoryRequest::update(LOCATION, sku, seq % 97, seq, None)
                    })
                    .collect();
                i += batch;
                match client.batch_inventory(&requests).await {
                    Ok(results) => {
                        calls.fetch_add(1, Ordering::Relaxed);
                        for r in &results {
                            if r.is_success() {
                                items_ok.fetch_add(1, Ordering::Relaxed);
                            } else {
                                items_failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) if e.is_throttled() => {
                        throttled_failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("call failed by throttling: {e}");
                    }
                    Err(e) => {
                        other_failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("call failed: {e}");
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.abort();

    let log = admin.calls(Some("batchInventory")).await?;
    let throttled_responses = log.iter().filter(|c| c["status"] == 429).count();
    let calls = calls.load(Ordering::Relaxed) as f64;
    let ceiling_calls = burst + rate * elapsed;
    println!(
        "calls_per_s={:.1} steady_calls_per_s={:.1} ceiling_per_s={rate} efficiency_pct={:.1} throttled_failures={} throttled_responses={throttled_responses} other_failures={} calls={} items_ok={} items_failed={} seconds={elapsed:.2} tasks={}",
        calls / elapsed,
        (calls - burst).max(0.0) / elapsed,
        100.0 * calls / ceiling_calls,
        throttled_failures.load(Ordering::Relaxed),
        other_failures.load(Ordering::Relaxed),
        calls as u64,
        items_ok.load(Ordering::Relaxed),
        items_failed.load(Ordering::Relaxed),
        args.tasks,
    );
    sim.shutdown().await;
    Ok(())
}
