//! The chaos run: the whole system on the local stack (moto, the simulator, every function run
//! by the local runner) under faults at once, driven by a seeded workload, then checked.
//!
//! Faults: the simulator answers 10% 429, 2% 500, 1% dropped connections and 2% apply-then-fail,
//! and duplicates and reorders its notifications; the runner kills invocations at random points
//! and delivers handled SQS messages again; the functions reach moto through a proxy that
//! throttles, answers 500 and applies-then-drops a share of their AWS calls each
//! (`Options::aws_fault_rate`, [`flexbridge_local::aws_faults`]); the warehouse's stock reports
//! arrive out of order.
//! Workload: orders over three locations taken by the simulator only while Amazon shows stock,
//! marketplace cancellations, warehouse cancellations, packing, labels, shipping, returns, and
//! stock changes reported through the signed warehouse API; mid-run, a catalog, a price and a
//! stock-count (inventory) upload.
//!
//! Invariants, each a number (0 = held): `missing_orders` (created at Amazon, not stored),
//! `duplicate_actions` (CONFIRMs, REJECTs, package sets and labels applied beyond the first per
//! shipment), `stock_mismatches` (Amazon's final sellable quantity per (location, SKU) against
//! the warehouse's final on-hand, every order being closed), `oversold_units` (units Amazon sold
//! beyond the warehouse's truth), `unexplained_dlq` (dead letters nobody expected) and
//! `unfinished_shipments` (stored shipments that did not end shipped, cancelled or rejected).
//! A label fetched again with REGENERATE after its GENERATE answer was lost is counted as
//! `labels_recovered`, each listed: the same label (at most one per shipment), not a second.
//! Figures beside them: `aws_faults` (AWS faults injected) and `confirm_p99_s` (Amazon's creation
//! of an order to its first applied CONFIRM, the 99th percentile over the run's confirmed orders,
//! from the simulator's history of each shipment).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::Stage;
use flexbridge::store::locations::Location;
use flexbridge_local::aws_faults::{self, AwsFaultProxy, AwsFaults};
use flexbridge_local::demo::foundation::WebhookReceiver;
use flexbridge_local::seed::Seller;
use flexbridge_local::stack::Stack;
use flexbridge_local::{Chaos, Runner, RunnerOptions};

use crate::world::{list_stage, packing, stage_counts, upload, Warehouse, World, WorldOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use spapi_sim::{FaultConfig, FaultRule};

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub orders: usize,
    pub stock_changes: usize,
    pub skus: usize,
    /// Share of the functions' AWS calls throttled, the same share answered 500 and the same
    /// share applied with the answer lost; 0 = no proxy.
    pub aws_fault_rate: f64,
    /// Give up waiting for the workload to settle after this long.
    pub max_wait: Duration,
    /// Print progress lines.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            orders: 2000,
            stock_changes: 20_000,
            skus: 20,
            aws_fault_rate: 0.01,
            max_wait: Duration::from_secs(1800),
            verbose: true,
        }
    }
}

/// The invariants and what was done.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub orders_created: usize,
    pub orders_refused_nothing_sellable: usize,
    pub orders_stored: usize,
    pub missing_orders: usize,
    pub duplicate_actions: usize,
    pub stock_mismatches: usize,
    pub oversold_units: i64,
    pub dlq: Vec<String>,
    pub unexplained_dlq: usize,
    /// Uploads neither fully applied nor fully reported (no summary in time).
    pub unexplained_uploads: usize,
    /// Stored shipments that did not end shipped, cancelled or rejected: a life cut short.
    pub unfinished_shipments: usize,
    /// Labels fetched again with REGENERATE because GENERATE's answer was lost (not a second
    /// label: the first one's files were never received).
    pub labels_recovered: usize,
    /// Inventory pushes the safety breaker halted and the run's warehouse released, as a person
    /// would after checking the cut was real (every cut in this workload is).
    pub halts_released: usize,
    /// AWS faults injected into the functions' calls (every kind and service).
    pub aws_faults: u64,
    /// Seconds from Amazon's creation of an order to its first applied CONFIRM, 99th percentile
    /// over the confirmed orders (`None`: none confirmed).
    pub confirm_p99_s: Option<f64>,
    pub lines: Vec<String>,
    /// The lines that break an invariant (also in `lines`), for a failure message.
    pub problems: Vec<String>,
}

impl Report {
    pub fn last_line(&self) -> String {
        format!(
            "missing_orders={} duplicate_actions={} stock_mismatches={} oversold_units={} unexplained_dlq={} unexplained_uploads={} unfinished_shipments={} labels_recovered={} halts_released={} aws_faults={} confirm_p99_s={}",
            self.missing_orders,
            self.duplicate_actions,
            self.stock_mismatches,
            self.oversold_units,
            self.unexplained_dlq,
            self.unexplained_uploads,
            self.unfinished_shipments,
            self.labels_recovered,
            self.halts_released,
            self.aws_faults,
            self.confirm_p99_s
                .map_or_else(|| "none".to_string(), |s| format!("{s:.1}"))
        )
    }

    /// Records a line that breaks an invariant.
    fn problem(&mut self, line: String) {
        self.problems.push(line.clone());
        self.lines.push(line);
    }

    pub fn ok(&self) -> bool {
        self.missing_orders == 0
            && self.duplicate_actions == 0
            && self.stock_mismatches == 0
            && self.oversold_units == 0
            && self.unexplained_dlq == 0
            && self.unexplained_uploads == 0
            && self.unfinished_shipments == 0
    }
}

/// Seconds one round spent on each part of its work.
#[derive(Default)]
struct Phases {
    amazon: f64,
    stock: f64,
    pack: f64,
    ship: f64,
    read: f64,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "took amazon {:.1}s stock {:.1}s pack {:.1}s ship {:.1}s read {:.1}s",
            self.amazon, self.stock, self.pack, self.ship, self.read
        )
    }
}

fn say(opts: &Options, started: Instant, line: impl AsRef<str>) {
    if opts.verbose {
        println!(
            "[{:>6.1}s] {}",
            started.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }
}

/// Runs the whole thing; the report says whether every invariant held.
pub async fn run(opts: Options) -> Result<Report> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut seller = Seller::default();
    seller.locations.push(Location {
        location_id: "SIMLOC-CENTRAL-1".into(),
        hub_id: "HUB-TX".into(),
        name: "Texas hub".into(),
        ..seller.locations[0].clone()
    });
    let webhook = WebhookReceiver::start(&seller.webhook_key).await?;
    let world = World::start(
        &WorldOptions {
            name: "chaos",
            seed: opts.seed,
            parameters: vec![("WebhookUrl", webhook.url.clone())],
        },
        seller,
    )
    .await?;
    // The simulator's SQS client (notifications) reaches moto through the standard variable.
    std::env::set_var("AWS_ENDPOINT_URL", world.moto.endpoint());
    let (moto, stack, seller, admin) = (&world.moto, &world.stack, &world.seller, &world.admin);
    let skus: Vec<String> = (0..opts.skus).map(|i| format!("CHAOS-{i:03}")).collect();
    admin
        .add_skus(&skus.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    // Amazon's limits off: the faults below are the test, not the pacing.
    admin.set_rate_limits_enabled(false).await?;
    admin
        .add_notification_destination(json!({"sqsQueueUrl": stack.queue_url("NotificationsQueue")}))
        .await?;
    admin
        .set_notification_options(
            json!({"enabled": true, "duplicateRate": 0.1, "reorder": true, "reorderWindowMs": 500}),
        )
        .await?;

    let overrides = world.overrides.clone();
    // The harness reads and checks through moto directly (the truth); only the functions'
    // calls go through the fault proxy.
    let env = stack.env_for("WarehouseApiFunction", &overrides)?;
    let service = FulfilmentService::from_env(&env).await?;
    let proxy = if opts.aws_fault_rate > 0.0 {
        Some(
            AwsFaultProxy::start(
                moto.endpoint(),
                AwsFaults::each(opts.seed, opts.aws_fault_rate),
            )
            .await?,
        )
    } else {
        None
    };
    let mut function_overrides = overrides.clone();
    if let Some(p) = &proxy {
        function_overrides.extra.insert(
            flexbridge::config::keys::AWS_ENDPOINT_URL.into(),
            p.url().to_string(),
        );
    }
    let runner_options = RunnerOptions {
        speedup: 30.0,
        fire_schedules_at_start: true,
        receive_wait: Duration::from_secs(1),
        // Lambda runs batches of a queue side by side; the template caps some at 2.
        sqs_instances: 3,
        chaos: Some(Chaos {
            seed: opts.seed,
            kill_rate: 0.03,
            max_kill_after: Duration::from_millis(1500),
            redeliver_rate: 0.05,
        }),
        // A killed upload run holds its message for scaled time, not 300 s.
        scale_timeouts: true,
        ..Default::default()
    };
    // A killed run of the upload function keeps its message invisible for the function's
    // timeout (as on Lambda), then the retry needs its own time on a loaded machine.
    let upload_wait = stack
        .function("UploadIngestFunction")
        .map(|f| runner_options.timeout_of(f))
        .ok_or_else(|| anyhow!("template.yaml has no UploadIngestFunction"))?
        + Duration::from_secs(120);
    let runner = Runner::start(stack, &function_overrides, runner_options).await?;
    let mut wh = Warehouse::new(&runner, seller, format!("chaos-{}", stack.name))?;

    // The catalog arrives as an upload (orders for SKUs outside it are held, and only its
    // SKUs are advertised).
    let sdk = flexbridge::aws::load_with_endpoint(moto.endpoint()).await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = stack.bucket("UploadsBucket").to_string();
    let mut uploads = Vec::new();
    let catalog: String = std::iter::once("sku,asin,title,product_type,enabled\n".to_string())
        .chain(
            skus.iter()
                .enumerate()
                .map(|(i, s)| format!("{s},B0CHAOS{i:03},Chaos item {i},HOME,true\n")),
        )
        .collect();
    uploads.push(
        upload(
            &s3,
            &bucket,
            "catalog/delta/chaos-opening.csv",
            catalog,
            upload_wait,
        )
        .await?,
    );
    say(&opts, started, format!("catalog upload: {}", uploads[0]));

    // The warehouse's opening stock, reported before Amazon's faults start.
    let hubs: Vec<(String, String)> = seller
        .locations
        .iter()
        .map(|l| (l.hub_id.clone(), l.location_id.clone()))
        .collect();
    let mut on_hand: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut open_units: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut items = Vec::new();
    for (h, (hub, loc)) in hubs.iter().enumerate() {
        for (s, sku) in skus.iter().enumerate() {
            let n = rng.random_range(20..60);
            on_hand.insert((h, s), n);
            admin.set_truth(loc, sku, n).await?;
            items.push(json!({"hub": hub, "sku": sku, "onHand": n}));
        }
    }
    let as_of0 = Utc::now();
    for (i, chunk) in items.chunks(100).enumerate() {
        wh.post(
            &format!("stock-open-{i}"),
            "/v1/inventory",
            &json!({"items": chunk, "asOf": as_of0.to_rfc3339()}),
        )
        .await?;
    }
    // Wait until Amazon shows the opening stock.
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let inv = sim_inventory(admin).await?;
        let synced = hubs.iter().enumerate().all(|(h, (_, loc))| {
            (0..skus.len()).all(|s| {
                inv.get(&(loc.clone(), skus[s].clone())).copied() == Some(on_hand[&(h, s)])
            })
        });
        if synced || Instant::now() > until {
            say(&opts, started, format!("opening stock synced: {synced}"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    admin
        .set_faults(&FaultConfig {
            global: FaultRule {
                throttle_rate: 0.10,
                error500_rate: 0.02,
                drop_rate: 0.01,
                apply_then_fail_rate: 0.02,
                ..Default::default()
            },
            operations: BTreeMap::new(),
        })
        .await?;

    // The workload, in rounds: new orders, marketplace cancellations, stock changes (sent out
    // of order), and the warehouse's work on what reached it.
    let mut created: BTreeMap<String, (usize, Vec<(usize, u32)>)> = BTreeMap::new();
    let mut refused_orders = 0usize;
    let mut acted: BTreeSet<String> = BTreeSet::new();
    let mut marketplace_cancelled: BTreeSet<String> = BTreeSet::new();
    let mut warehouse_cancelled: BTreeSet<String> = BTreeSet::new();
    let mut shipped: BTreeSet<String> = BTreeSet::new();
    let mut returned = 0usize;
    let mut stock_sent = 0usize;
    let mut pending_stock: Vec<Value> = Vec::new();
    let mut stock_requests = 0usize;
    let mut halts_released: Vec<String> = Vec::new();
    let rounds = 40usize;
    let inv = Invocation::new("chaos", Duration::from_secs(3600));
    let _ = &inv;
    let mut round = 0usize;
    let deadline = Instant::now() + opts.max_wait;
    loop {
        round += 1;
        let workload_left = round <= rounds;
        // Where each round's time goes (seconds): Amazon's side, stock, packing, shipping, reading.
        let mut phase = Phases::default();
        let t = Instant::now();
        if workload_left {
            // Orders for this round.
            let n = opts.orders * round / rounds - opts.orders * (round - 1) / rounds;
            for _ in 0..n {
                let h = rng.random_range(0..hubs.len());
                let lines = rng.random_range(1..=2usize);
                let mut spec_lines = Vec::new();
                let mut taken = Vec::new();
                for _ in 0..lines {
                    let s = rng.random_range(0..skus.len());
                    if taken.iter().any(|(t, _)| *t == s) {
                        continue;
                    }
                    let q = rng.random_range(1..=3u32);
                    spec_lines.push(json!({"sku": skus[s], "quantity": q, "unitPrice": "10.00"}));
                    taken.push((s, q));
                }
                match admin
                    .create_shipment(json!({"locationId": hubs[h].1, "lineItems": spec_lines, "invoiceRequired": false}))
                    .await
                {
                    Ok(doc) => {
                        let id = doc["id"].as_str().unwrap_or_default().to_string();
                        for (s, q) in &taken {
                            *open_units.entry((h, *s)).or_default() += i64::from(*q);
                        }
                        created.insert(id, (h, taken));
                    }
                    Err(e) if e.to_string().contains("NOTHING_SELLABLE") => refused_orders += 1,
                    Err(e) => return Err(e),
                }
            }
            // Marketplace cancellations: 5% of this round's orders, right away.
            let fresh: Vec<String> = created
                .keys()
                .filter(|id| !marketplace_cancelled.contains(*id))
                .rev()
                .take(n)
                .cloned()
                .collect();
            for id in fresh {
                if rng.random_bool(0.05) && admin.cancel_shipment(&id).await.is_ok() {
                    let (h, lines) = &created[&id];
                    for (s, q) in lines {
                        *open_units.entry((*h, *s)).or_default() -= i64::from(*q);
                    }
                    marketplace_cancelled.insert(id);
                }
            }
            // Stock changes: goods received, damaged or counted (the truth at Amazon's side
            // follows). The warehouse reports them as it goes, a request per 50 changes with the
            // time of its last change and the figures at that time, and the requests arrive out
            // of order: for each (hub, sku) the newest request's figure is the one that counts.
            let m = opts.stock_changes * round / rounds - opts.stock_changes * (round - 1) / rounds;
            let mut touched = BTreeSet::new();
            let mut report: BTreeMap<(usize, usize), i64> = BTreeMap::new();
            for i in 0..m {
                let key = (
                    rng.random_range(0..hubs.len()),
                    rng.random_range(0..skus.len()),
                );
                let free = on_hand[&key] - open_units.get(&key).copied().unwrap_or(0);
                let delta = rng.random_range(-(free.clamp(0, 3))..=4);
                *on_hand.get_mut(&key).expect("pair") += delta;
                touched.insert(key);
                report.insert(key, on_hand[&key]);
                stock_sent += 1;
                if report.len() == 50 || i + 1 == m {
                    let items: Vec<Value> = std::mem::take(&mut report)
                        .into_iter()
                        .map(|((h, s), n)| json!({"hub": hubs[h].0, "sku": skus[s], "onHand": n}))
                        .collect();
                    // Distinct, increasing times even within one clock tick.
                    let as_of = Utc::now() + chrono::Duration::microseconds(stock_sent as i64);
                    pending_stock.push(json!({"items": items, "asOf": as_of.to_rfc3339()}));
                }
            }
            for key in touched {
                let truth = on_hand[&key] - open_units.get(&key).copied().unwrap_or(0);
                admin.set_truth(&hubs[key.0].1, &skus[key.1], truth).await?;
            }
            pending_stock.shuffle(&mut rng);
            phase.amazon = t.elapsed().as_secs_f64();
            let t = Instant::now();
            stock_requests += send_stock(&mut wh, &mut pending_stock, round).await?;
            phase.stock = t.elapsed().as_secs_f64();
        }
        for reason in wh.release_halts(&format!("round-{round}")).await? {
            say(
                &opts,
                started,
                format!("round {round}: released a halted push, {reason}"),
            );
            halts_released.push(reason);
        }

        // Mid-run uploads: a price file, a catalog change and a stock count, under faults.
        if round == rounds / 2 {
            let prices: String = std::iter::once("sku,price,currency\n".to_string())
                .chain(
                    skus.iter()
                        .enumerate()
                        .map(|(i, s)| format!("{s},{}.99,USD\n", 10 + i)),
                )
                .collect();
            uploads.push(upload(&s3, &bucket, "prices/chaos-mid.csv", prices, upload_wait).await?);
            let titles: String = std::iter::once("sku,asin,title\n".to_string())
                .chain(
                    skus.iter()
                        .enumerate()
                        .map(|(i, s)| format!("{s},B0CHAOS{i:03},Chaos item {i} (renamed)\n")),
                )
                .collect();
            uploads.push(
                upload(
                    &s3,
                    &bucket,
                    "catalog/delta/chaos-mid.csv",
                    titles,
                    upload_wait,
                )
                .await?,
            );
            // A stock count arrives as a file: a few (hub, sku) pairs are found 5 units higher.
            // The goods are there before the file says so (Amazon's truth first, never oversold).
            let counted_at = Utc::now();
            let mut count = String::from("hub,sku,on_hand,as_of\n");
            for (s, sku) in skus.iter().enumerate().take(5) {
                let key = (s % hubs.len(), s);
                let n = on_hand[&key] + 5;
                on_hand.insert(key, n);
                let truth = n - open_units.get(&key).copied().unwrap_or(0);
                admin.set_truth(&hubs[key.0].1, sku, truth).await?;
                count.push_str(&format!(
                    "{},{sku},{n},{}\n",
                    hubs[key.0].0,
                    counted_at.to_rfc3339()
                ));
            }
            uploads.push(
                upload(
                    &s3,
                    &bucket,
                    "inventory/delta/chaos-count.csv",
                    count,
                    upload_wait,
                )
                .await?,
            );
            say(
                &opts,
                started,
                format!(
                    "mid-run uploads: {}; {}; {}",
                    uploads[1], uploads[2], uploads[3]
                ),
            );
        }

        // The warehouse works on what reached it.
        let t = Instant::now();
        for r in list_stage(&service, Stage::HandedOver).await? {
            if acted.contains(&format!("pack-{}", r.id))
                || acted.contains(&format!("cancel-{}", r.id))
            {
                continue;
            }
            if rng.random_bool(0.05) {
                let status = wh
                    .post(
                        &format!("cancel-{}", r.id),
                        &format!("/v1/shipments/{}/cancel", r.id),
                        &json!({"reason": "OUT_OF_STOCK"}),
                    )
                    .await?;
                // A request that got no final answer is tried again next round, same key.
                if status != 0 {
                    acted.insert(format!("cancel-{}", r.id));
                }
                if status < 300 {
                    warehouse_cancelled.insert(r.id.clone());
                }
            } else {
                let status = wh
                    .post(
                        &format!("pack-{}", r.id),
                        &format!("/v1/shipments/{}/packed", r.id),
                        &packing(&r),
                    )
                    .await?;
                if status != 0 {
                    acted.insert(format!("pack-{}", r.id));
                }
            }
        }
        phase.pack = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for r in list_stage(&service, Stage::Labelled).await? {
            if acted.contains(&format!("ship-{}", r.id)) {
                continue;
            }
            let status = wh
                .post(
                    &format!("ship-{}", r.id),
                    &format!("/v1/shipments/{}/shipped", r.id),
                    &json!({}),
                )
                .await?;
            if status != 0 {
                acted.insert(format!("ship-{}", r.id));
            }
            if status < 300 {
                shipped.insert(r.id.clone());
                if let Some((h, lines)) = created.get(&r.id) {
                    for (s, q) in lines {
                        // The units left the warehouse: on-hand and the open order both drop.
                        *on_hand.get_mut(&(*h, *s)).expect("pair") -= i64::from(*q);
                        *open_units.entry((*h, *s)).or_default() -= i64::from(*q);
                    }
                }
                if rng.random_bool(0.03)
                    && admin
                        .create_return(json!({"shipmentId": r.id}))
                        .await
                        .is_ok()
                {
                    returned += 1;
                }
            }
        }
        phase.ship = t.elapsed().as_secs_f64();
        let t = Instant::now();
        // Warehouse cancellations and marketplace cancellations free their units.
        for id in warehouse_cancelled.clone() {
            if let Some((h, lines)) = created.get(&id) {
                let sim = admin.shipment(&id).await?;
                if sim["shipment"]["status"] == "CANCELLED" {
                    for (s, q) in lines {
                        *open_units.entry((*h, *s)).or_default() -= i64::from(*q);
                    }
                    warehouse_cancelled.remove(&id);
                    acted.insert(format!("cancel-done-{id}"));
                }
            }
        }

        let stored = stage_counts(&service).await?;
        phase.read = t.elapsed().as_secs_f64();
        say(
            &opts,
            started,
            format!(
                "round {round}: {} orders created ({refused_orders} refused, nothing sellable), {} marketplace-cancelled, {} shipped, {} returns; {stock_sent} stock changes in {stock_requests} requests; stored {stored:?}; runner {:?}; {phase}; waits {:?}",
                created.len(),
                marketplace_cancelled.len(),
                shipped.len(),
                returned,
                runner.chaos_stats(),
                wh.waits
            ),
        );
        let open: usize = stored
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "shipped" | "cancelled" | "rejected"))
            .map(|(_, n)| *n)
            .sum();
        let total: usize = stored.values().sum();
        if !workload_left && open == 0 && total >= created.len() {
            break;
        }
        if Instant::now() > deadline {
            say(&opts, started, "gave up waiting for the workload to settle");
            break;
        }
        if !workload_left {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    // Faults off; the warehouse reports its final on-hand (the newest figure), then late
    // copies of older figures arrive, which must not win.
    admin.clear_faults().await?;
    if let Some(p) = &proxy {
        p.set_enabled(false);
    }
    let final_as_of = Utc::now() + chrono::Duration::seconds(1);
    let mut final_items = Vec::new();
    for ((h, s), n) in &on_hand {
        final_items.push(json!({"hub": hubs[*h].0, "sku": skus[*s], "onHand": n}));
    }
    for (i, chunk) in final_items.chunks(100).enumerate() {
        wh.post(
            &format!("stock-final-{i}"),
            "/v1/inventory",
            &json!({"items": chunk, "asOf": final_as_of.to_rfc3339()}),
        )
        .await?;
    }
    let late_items: Vec<Value> = final_items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i["onHand"] = json!(i["onHand"].as_i64().unwrap_or(0) + 7);
            i
        })
        .collect();
    let mut late: Vec<Value> = late_items
        .chunks(100)
        .map(|c| json!({"items": c, "asOf": as_of0.to_rfc3339()}))
        .collect();
    send_stock(&mut wh, &mut late, 9999).await?;

    // Settle: Amazon's stock converges on the warehouse's (every order is closed).
    let mut mismatches = Vec::new();
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        mismatches.clear();
        let inv = sim_inventory(admin).await?;
        for ((h, s), n) in &on_hand {
            let want = n - open_units.get(&(*h, *s)).copied().unwrap_or(0);
            let got = inv.get(&(hubs[*h].1.clone(), skus[*s].clone())).copied();
            if got != Some(want.max(0)) {
                mismatches.push(format!(
                    "{} {}: Amazon {got:?}, warehouse on-hand {n}, open orders {} → want {want}",
                    hubs[*h].1,
                    skus[*s],
                    open_units.get(&(*h, *s)).copied().unwrap_or(0)
                ));
            }
        }
        if mismatches.is_empty() || Instant::now() > until {
            break;
        }
        for reason in wh.release_halts("settle").await? {
            say(
                &opts,
                started,
                format!("settle: released a halted push, {reason}"),
            );
            halts_released.push(reason);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let chaos_stats = runner.chaos_stats();
    let killed = runner.killed();
    let stats = runner.stats();
    runner.stop().await;

    // Invariants.
    let mut report = Report {
        orders_created: created.len(),
        orders_refused_nothing_sellable: refused_orders,
        aws_faults: proxy.as_ref().map_or(0, |p| p.total()),
        halts_released: halts_released.len(),
        ..Default::default()
    };
    for reason in &halts_released {
        report
            .lines
            .push(format!("halt released by the warehouse: {reason}"));
    }
    if let Some(p) = &proxy {
        report.lines.push(format!(
            "AWS faults injected (every {}%): {}",
            opts.aws_fault_rate * 100.0,
            aws_faults::describe(&p.counts())
        ));
    }
    let store = &service.orders.shipments;
    for id in created.keys() {
        match store.get(id).await? {
            Some(record) => {
                report.orders_stored += 1;
                if !matches!(
                    record.stage,
                    Stage::Shipped | Stage::Cancelled | Stage::Rejected
                ) {
                    report.unfinished_shipments += 1;
                    report.problem(format!(
                        "unfinished shipment {id}: {}",
                        record.stage.as_str()
                    ));
                }
            }
            None => {
                report.missing_orders += 1;
                report.problem(format!("missing order {id}"));
            }
        }
    }
    let wanted: BTreeSet<&str> = created.keys().map(String::as_str).collect();
    let mut per_op: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut lost_label_answers: BTreeSet<String> = BTreeSet::new();
    // Each applied REGENERATE per shipment: (when, its answer lost to a 500 after applying).
    let mut regenerates: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for op in ["createPackages", "generateShipLabels"] {
        for c in admin.calls(Some(op)).await? {
            let path = c["path"].as_str().unwrap_or("");
            let Some(id) = path.split('/').find(|p| wanted.contains(p)) else {
                continue;
            };
            let status = c["status"].as_u64().unwrap_or(0);
            let note = c["note"].as_str().unwrap_or("");
            // Applied: answered 2xx, or answered 500 after the handler had applied it.
            let applied = (200..300).contains(&status)
                || (note.contains("fault:ApplyThen") && note.contains("handler answered 2"));
            if !applied {
                continue;
            }
            let regenerate = c["query"].as_str().unwrap_or("").contains("REGENERATE");
            if regenerate {
                regenerates.entry(id.to_string()).or_default().push((
                    c["time"].as_str().unwrap_or_default().to_string(),
                    note.contains("fault:ApplyThen"),
                ));
            }
            let name = if regenerate { "REGENERATE" } else { op };
            *per_op.entry((name, id.to_string())).or_default() += 1;
            if op == "generateShipLabels" && !regenerate && note.contains("fault:ApplyThen") {
                lost_label_answers.insert(id.to_string());
            }
        }
    }
    // The label worker's killed runs, by when and which shipments their messages named.
    let label_kills: Vec<(DateTime<Utc>, String)> = killed
        .iter()
        .filter(|k| k.function == "LabelWorkerFunction")
        .map(|k| (k.at, k.payload.clone()))
        .collect();
    for ((op, id), n) in &per_op {
        // The run asks for no reprint, so a REGENERATE is the label worker getting the files of
        // a label whose GENERATE answer it lost (a 500 after applying, or its handler killed
        // before it saved the answer): the same label, never printed before. Amazon has no
        // other way to read a label's files, so a REGENERATE whose own answer was lost the
        // same way is sent again; any other REGENERATE beyond the first is a duplicate.
        let mut allowed = 1;
        if *op == "REGENERATE" {
            let calls = &regenerates[id];
            for pair in calls.windows(2) {
                let ((before, lost), (after, _)) = (&pair[0], &pair[1]);
                let parse =
                    |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc));
                let killed_between = match (parse(before), parse(after)) {
                    (Ok(b), Ok(a)) => label_kills
                        .iter()
                        .any(|(at, payload)| *at >= b && *at <= a && payload.contains(id.as_str())),
                    _ => false,
                };
                if *lost || killed_between {
                    allowed += 1;
                    report.lines.push(format!(
                        "label of {id} fetched with REGENERATE again: the answer of the one before was lost ({})",
                        if *lost { "500 after applying" } else { "killed handler" }
                    ));
                }
            }
            report.labels_recovered += 1;
            let how = if lost_label_answers.contains(id) {
                "its GENERATE answered 500 after applying"
            } else {
                "its GENERATE's answer was lost with a killed handler"
            };
            report.lines.push(format!(
                "label of {id} fetched again with REGENERATE: {how}"
            ));
        }
        if *n > allowed {
            report.duplicate_actions += n - allowed;
            report.problem(format!("{op} applied {n} times for {id}"));
        }
    }
    for id in created.keys() {
        let s = admin.shipment(id).await?;
        for field in ["confirmApplied", "rejectApplied"] {
            let n = s[field].as_u64().unwrap_or(0) as usize;
            if n > 1 {
                report.duplicate_actions += n - 1;
                report.problem(format!("{field} {n} for {id}"));
            }
        }
    }
    let latencies = confirm_latencies(admin, &created).await?;
    report.confirm_p99_s = percentile(&latencies, 0.99);
    report.lines.push(format!(
        "creation to CONFIRM over {} confirmed orders: median {} s, p99 {} s, max {} s",
        latencies.len(),
        percentile(&latencies, 0.5).map_or("-".into(), |s| format!("{s:.1}")),
        report
            .confirm_p99_s
            .map_or("-".into(), |s| format!("{s:.1}")),
        percentile(&latencies, 1.0).map_or("-".into(), |s| format!("{s:.1}")),
    ));
    report.stock_mismatches = mismatches.len();
    for m in mismatches.into_iter().take(20) {
        report.problem(m);
    }
    let oversold = admin.oversold().await?;
    report.oversold_units = oversold["oversoldUnits"].as_i64().unwrap_or(0);
    if report.oversold_units > 0 {
        report.problem(format!("oversold: {}", oversold["lines"]));
    }
    for (queue, message_id, body, reason) in dead_letters(stack).await? {
        // One dead letter is expected under these faults: a message whose last receive
        // (`MAX_RECEIVES`) ran in an invocation the runner killed. Nothing could attach a reason
        // and SQS moved it, as on Lambda when a run times out or crashes on the last receive.
        // Every other one is a message-specific failure the run did not plan for.
        let last_receive_killed = killed
            .iter()
            .any(|k| killed_on_last_receive(&k.payload, &message_id));
        let letter = if last_receive_killed {
            format!(
                "{queue}: {reason}: its last receive's run was killed (expected) {}",
                body.chars().take(200).collect::<String>()
            )
        } else {
            report.unexplained_dlq += 1;
            let letter = format!(
                "{queue}: {reason} (unexpected) {}",
                body.chars().take(200).collect::<String>()
            );
            report.problems.push(format!("dead letter {letter}"));
            letter
        };
        report.dlq.push(letter);
    }
    for u in &uploads {
        if !u.starts_with("applied") && !u.starts_with("reported") {
            report.unexplained_uploads += 1;
            report.problem(format!("upload {u}"));
        } else {
            report.lines.push(format!("upload {u}"));
        }
    }
    for r in &wh.refused {
        report.lines.push(format!("warehouse request refused: {r}"));
    }
    if !wh.retried_later.is_empty() {
        report.lines.push(format!(
            "warehouse requests unanswered after 30 attempts, sent again in a later round: {}",
            wh.retried_later.join(", ")
        ));
    }
    report.lines.push(format!(
        "{} orders created ({} refused, nothing sellable), {} stored; {} marketplace-cancelled, {} shipped, {} returns; {} stock changes in {} requests; runner: {} kills, {} redeliveries",
        report.orders_created,
        refused_orders,
        report.orders_stored,
        marketplace_cancelled.len(),
        shipped.len(),
        returned,
        stock_sent,
        stock_requests,
        chaos_stats.kills,
        chaos_stats.redeliveries
    ));
    for (id, st) in stats {
        if st.invocations > 0 {
            report.lines.push(format!(
                "{id}: {} invocations, {} failed, messages {} ok / {} retried",
                st.invocations, st.errors, st.messages_ok, st.messages_failed
            ));
        }
    }
    report
        .lines
        .push(format!("total {:.0} s", started.elapsed().as_secs_f64()));
    drop(world);
    Ok(report)
}

/// Seconds from each created order's creation at Amazon to its first applied CONFIRM, by the
/// simulator's history of the shipment (orders never confirmed are left out), sorted.
async fn confirm_latencies<T>(
    admin: &spapi_sim::AdminClient,
    created: &BTreeMap<String, T>,
) -> Result<Vec<f64>> {
    let state = admin.state().await?;
    let mut out = Vec::new();
    for s in state["shipments"].as_array().cloned().unwrap_or_default() {
        let id = s["shipment"]["id"].as_str().unwrap_or_default();
        if !created.contains_key(id) {
            continue;
        }
        let history = s["history"].as_array().cloned().unwrap_or_default();
        let at = |what: &str| {
            history
                .iter()
                .find(|h| h["what"] == what)
                .and_then(|h| h["at"].as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        };
        if let (Some(created), Some(confirmed)) = (at("created"), at("processShipment CONFIRM")) {
            out.push((confirmed - created).num_milliseconds() as f64 / 1000.0);
        }
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// The nearest-rank percentile `p` (0..=1) of sorted `values`.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = (p * values.len() as f64).ceil().max(1.0) as usize;
    Some(values[rank.min(values.len()) - 1])
}

/// Whether a killed invocation's SQS event held this message on its last receive.
fn killed_on_last_receive(payload: &str, message_id: &str) -> bool {
    let Ok(event) = serde_json::from_str::<Value>(payload) else {
        return false;
    };
    event["Records"].as_array().is_some_and(|records| {
        records.iter().any(|r| {
            r["messageId"] == message_id
                && r["attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .and_then(|c| c.parse::<u32>().ok())
                    .is_some_and(|c| c >= flexbridge::runtime::MAX_RECEIVES)
        })
    })
}

/// Sends the pending stock requests, each as it was made (its figures and its `asOf`).
async fn send_stock(wh: &mut Warehouse, pending: &mut Vec<Value>, round: usize) -> Result<usize> {
    for (i, body) in pending.iter().enumerate() {
        wh.post(&format!("stock-{round}-{i}"), "/v1/inventory", body)
            .await?;
    }
    let n = pending.len();
    pending.clear();
    Ok(n)
}

async fn sim_inventory(admin: &spapi_sim::AdminClient) -> Result<BTreeMap<(String, String), i64>> {
    let state = admin.state().await?;
    let mut out = BTreeMap::new();
    for i in state["inventory"].as_array().cloned().unwrap_or_default() {
        let loc = i["locationId"].as_str().unwrap_or_default().to_string();
        let sku = i["skuId"]
            .as_str()
            .or(i["sku"].as_str())
            .unwrap_or_default()
            .to_string();
        out.insert((loc, sku), i["sellableQuantity"].as_i64().unwrap_or(0));
    }
    Ok(out)
}

/// Every message in the stack's DLQs: (queue, message ID, body, reason).
async fn dead_letters(stack: &Stack) -> Result<Vec<(String, String, String, String)>> {
    let sdk = flexbridge::aws::load_with_endpoint(&stack.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut out = Vec::new();
    for (id, q) in &stack.queues {
        if !stack
            .queues
            .values()
            .any(|other| other.dead_letter_queue.as_deref() == Some(id))
        {
            continue;
        }
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let r = sqs
                .receive_message()
                .queue_url(&q.url)
                .max_number_of_messages(10)
                .visibility_timeout(600)
                .message_attribute_names("All")
                .send()
                .await?;
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                if !seen.insert(m.message_id.clone().unwrap_or_default()) {
                    continue;
                }
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(flexbridge::runtime::parked_attributes::REASON))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_else(|| {
                        "redriven after maxReceiveCount (no reason attached)".into()
                    });
                out.push((
                    id.clone(),
                    m.message_id.unwrap_or_default(),
                    m.body.unwrap_or_default(),
                    reason,
                ));
            }
        }
    }
    Ok(out)
}
