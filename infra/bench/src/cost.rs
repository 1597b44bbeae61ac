//! What a seller's stack costs a month, measured: a simulated day of one seller on the local
//! stack (the runner's clock `speedup` times faster), every billable unit counted as the
//! functions really incur it, priced from `prices/aws-us-east-1.json` (`crate::pricing`).
//!
//! The day: `orders` orders over the seller's two locations, each through its whole life
//! (stored and confirmed by the order poller or the notification consumer, packed by the
//! warehouse, labelled, shipped; 5% cancelled by the marketplace, 3% of the shipped returned),
//! `skus` SKUs in the catalog, `stock_changes` stock changes reported by the warehouse (50 per
//! request), one price file for the whole catalog and one catalog delta at mid-day, the
//! template's schedules, Amazon's notifications on. The workload takes the first 85% of the
//! day; the runner stops at its end (later if orders are still open, up to `max_settle`).
//!
//! How each unit is measured (also printed with the result):
//! - Lambda: invocations and handler time per function, timed by the local runner around each
//!   invocation (Function URL requests included); billed duration = handler time rounded up to
//!   1 ms per invocation; memory from template.yaml. The timing is of this build (the bench's
//!   profile, `dev` unless `--release`), in process on a shared machine; the deployed build is
//!   the `lambda` profile. Schedule firings the runner skipped (a run outlasting a sped-up
//!   period) are billed at the function's mean. The order poller runs one pass per firing here
//!   (`orders_poll_pass_seconds` = 0, since its 15 s waits are real seconds that the sped-up
//!   clock cannot hold); its AWS runs are billed as they would run: a run that AWS would start
//!   with a notification handled within the quiet window (`orders_notifications_quiet_minutes`,
//!   in simulated time: the window divided by `speedup`, from the times the consumer logged
//!   `notification handled` and the poller `order poll finished`) makes one pass; any other
//!   makes the passes `pricing::poller_hold` gives for the template's timeout, each as long as
//!   the measured one, the waits between them held, and their AWS calls as the measured ones
//!   times `1 + extra passes × 2/5` (a new-work pass reads 2 of the 5 statuses): an upper bound.
//! - AWS calls: each function reaches moto through its own counting proxy
//!   (`flexbridge_local::aws_usage`), so every call is tallied by function, service, operation
//!   and resource; DynamoDB units from item sizes (moto's ConsumedCapacity is a constant).
//! - SQS event source polling, which the runner does itself, is modelled: 5 long polls of 20 s
//!   per event source mapping when idle, and a DeleteMessageBatch per delivered batch.
//!   Amazon's notifications (SendMessage to the seller's queue) are counted as received.
//! - CloudWatch: every unique metric name + dimension set in the EMF documents the functions
//!   wrote (captured from their log lines); alarms and dashboards from the template; log
//!   ingestion = the bytes of the functions' JSON log lines (EMF documents as Lambda prints
//!   them) + 290 bytes of START/END/REPORT lines per invocation; storage = a month of that.
//! - Secrets and KMS keys from the template; Secrets Manager calls counted; KMS requests: none
//!   (the stack has no key of its own; a seller's own alarm-topic key would be used by alarm
//!   notifications only, none in a quiet month, and billed to that key).
//!
//! Fixed versus per order: the template's resources, the functions on a schedule (which run
//! whether orders come or not, calls included) and those that handle the day's uploads are
//! fixed; the other event-driven functions and their calls grow with orders. A month is 30
//! days: the measured quantities times 30 × 24 / the simulated hours, except the once-a-day
//! work (health report, the day's price file and catalog delta), times 30, so a shorter
//! simulated day (`--hours`) at the same order rate gives the same month.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::orders::poller::PollSettings;
use flexbridge::shipment::Stage;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge_local::aws_faults::{AwsFaultProxy, AwsFaults, Service};
use flexbridge_local::aws_usage::{Index, Indexes, Projection, TableIndexes, Usage};
use flexbridge_local::demo::foundation::WebhookReceiver;
use flexbridge_local::runner::FunctionStats;
use flexbridge_local::seed::Seller;
use flexbridge_local::{FunctionEvent, Runner, RunnerOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::pricing::{gb_seconds, poller_hold, Bill, PriceTable};
use crate::world::{list_stage, packing, stage_counts, Warehouse, World, WorldOptions};

#[derive(Debug, Clone)]
pub struct Options {
    pub orders: usize,
    /// The simulated day's length.
    pub hours: f64,
    /// How much faster than real time the runner's clock runs.
    pub speedup: f64,
    pub skus: usize,
    /// SKUs that get orders (each has stock at both locations from the start).
    pub popular: usize,
    pub stock_changes: usize,
    /// Waiting for the last orders to finish after the day, at most (real time).
    pub max_settle: Duration,
    pub seed: u64,
    pub prices: std::path::PathBuf,
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            orders: 1000,
            hours: 24.0,
            speedup: 100.0,
            skus: 10_000,
            popular: 200,
            stock_changes: 20_000,
            max_settle: Duration::from_secs(300),
            seed: 23,
            prices: PriceTable::default_path(),
            verbose: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub bill: Bill,
    pub orders_created: usize,
    pub orders_shipped: usize,
    pub orders_cancelled: usize,
    pub returns: usize,
    pub unfinished: usize,
    /// The simulated day as it ran (hours).
    pub simulated_hours: f64,
    pub orders_per_day: f64,
    pub metric_series: usize,
    pub alarms: usize,
    pub functions: BTreeMap<String, FunctionStats>,
    pub usage: BTreeMap<String, Usage>,
    pub log_bytes: BTreeMap<String, u64>,
    /// Share of the order poller's runs that had a notification handled within the quiet
    /// window before them (simulated time): those make one pass in AWS.
    pub poller_runs_notified: f64,
    pub spapi_calls: BTreeMap<String, u64>,
    pub lines: Vec<String>,
}

impl Report {
    pub fn cost_per_seller_month_usd(&self) -> f64 {
        self.bill.month_at(self.orders_per_day, 1000.0)
    }

    pub fn last_line(&self) -> String {
        format!(
            "cost_per_seller_month_usd={:.2} fixed_usd={:.2} per_1000_orders_usd={:.2} metric_series={} alarms={}",
            self.cost_per_seller_month_usd(),
            self.bill.fixed_usd(),
            self.bill.per_1000_orders_usd(self.orders_per_day),
            self.metric_series,
            self.alarms
        )
    }
}

/// What the functions wrote to their logs, by function (logical ID), and the metric series
/// in their EMF documents.
#[derive(Default)]
struct Logs {
    bytes: BTreeMap<String, u64>,
    series: BTreeSet<String>,
    /// When the notification consumer handled a notification and the order poller finished a
    /// run: the bill tells from them which runs AWS would make with notifications flowing.
    notified: Vec<Instant>,
    polled: Vec<Instant>,
}

fn logs() -> &'static Arc<Mutex<Logs>> {
    static LOGS: OnceLock<Arc<Mutex<Logs>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// One log line as the function writes it in Lambda (`telemetry::json_subscriber`), counted
/// for the function whose invocation wrote it (`runner::current_function`) when dropped.
struct Line(Vec<u8>);

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let Some(function) = flexbridge_local::runner::current_function() else {
            return;
        };
        let mut bytes = self.0.len() as u64;
        let mut logs = logs().lock().expect("logs");
        if let Ok(v) = serde_json::from_slice::<Value>(&self.0) {
            match (function.as_str(), v["fields"]["message"].as_str()) {
                ("NotificationConsumerFunction", Some("notification handled")) => {
                    logs.notified.push(Instant::now())
                }
                ("OrderPollerFunction", Some("order poll finished")) => {
                    logs.polled.push(Instant::now())
                }
                _ => {}
            }
            if v["target"] == "flexbridge::metrics" {
                if let Some(doc) = v["fields"]["message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<Value>(m).ok())
                {
                    // In Lambda the document itself is the line (`println!`).
                    bytes = doc.to_string().len() as u64 + 1;
                    for s in emf_series(&doc) {
                        logs.series.insert(s);
                    }
                }
            }
        }
        *logs.bytes.entry(function).or_default() += bytes;
    }
}

/// Every metric (name + dimension names and values) one EMF document publishes.
pub fn emf_series(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for d in doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for set in d["Dimensions"].as_array().into_iter().flatten() {
            let dims: Vec<String> = set
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|k| format!("{k}={}", doc[k].as_str().unwrap_or("")))
                .collect();
            for m in d["Metrics"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{} {}",
                    m["Name"].as_str().unwrap_or(""),
                    dims.join(",")
                ));
            }
        }
    }
    out
}

/// Installs the process's log subscriber: the functions' JSON lines at the template's level
/// (`LogLevel` info), counted, not printed. Returns false when another subscriber was there.
pub fn capture_logs() -> bool {
    tracing::subscriber::set_global_default(log_subscriber()).is_ok()
}

/// The subscriber that counts the functions' log lines: global in the `cost` binary; a test
/// sharing its process with others (whose harness installs the global one first) sets it as
/// the thread's default on a current-thread runtime, where every function's task runs.
pub fn log_subscriber() -> impl tracing::Subscriber + Send + Sync {
    let filter = flexbridge::telemetry::filter_for(Some("info"));
    flexbridge::telemetry::json_subscriber(|| Line(Vec::with_capacity(256)), filter)
}

fn say(opts: &Options, report: &mut Report, started: Instant, line: String) {
    if opts.verbose {
        println!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
    }
    report.lines.push(line);
}

/// Platform lines (START, END, REPORT) Lambda writes per invocation, in text format.
const PLATFORM_LOG_BYTES: u64 = 290;
/// Long polls an idle SQS event source mapping holds at once, and their wait.
const ESM_POLLERS: f64 = 5.0;
const ESM_WAIT_S: f64 = 20.0;

pub async fn run(opts: Options) -> Result<Report> {
    let started = Instant::now();
    let prices = PriceTable::load(&opts.prices)?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut report = Report::default();
    // One run at a time counts (a process runs one benchmark).
    *logs().lock().expect("logs") = Logs::default();

    let mut seller = Seller::default();
    // One pass per scheduled run: see the module's notes on the order poller.
    seller.settings.push((
        flexbridge::orders::wiring::settings::POLL_PASS_SECONDS.into(),
        json!(0),
    ));
    let webhook = WebhookReceiver::start(&seller.webhook_key).await?;
    let moto_env = std::env::var("AWS_ENDPOINT_URL").ok();
    let world = World::start(
        &WorldOptions {
            name: "cost",
            seed: opts.seed,
            parameters: vec![("WebhookUrl", webhook.url.clone())],
        },
        seller,
    )
    .await?;
    // The simulator's notifications reach moto through the standard variable (Amazon's
    // SendMessage calls are counted from what the consumer received).
    std::env::set_var("AWS_ENDPOINT_URL", world.moto.endpoint());
    let (stack, seller, admin) = (&world.stack, &world.seller, &world.admin);
    let sdk = world.sdk().await;

    let skus: Vec<String> = (0..opts.skus).map(|i| format!("COST-{i:05}")).collect();
    for chunk in skus.chunks(2000) {
        admin
            .add_skus(&chunk.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
    }
    admin.set_rate_limits_enabled(false).await?;
    admin
        .add_notification_destination(json!({"sqsQueueUrl": stack.queue_url("NotificationsQueue")}))
        .await?;
    admin
        .set_notification_options(json!({"enabled": true, "duplicateRate": 0.0, "reorder": false}))
        .await?;
    let catalog = DynamoCatalogStore::new(
        flexbridge::aws::dynamodb_client(&sdk),
        stack.table("CatalogTable"),
    );
    let items: Vec<CatalogItem> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: sku.clone(),
            asin: format!("B0C{i:07}"),
            title: Some(format!("Cost item {i}")),
            product_type: Some("HOME".into()),
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: Utc::now().to_rfc3339(),
            source: "cost-opening".into(),
        })
        .collect();
    catalog.put_items(&items).await?;
    let popular = opts.popular.min(opts.skus).max(1);
    for l in &seller.locations {
        for sku in &skus[..popular] {
            admin.set_truth(&l.location_id, sku, 100_000).await?;
        }
    }

    // Each function reaches moto through its own counting proxy (no faults).
    let ddb = flexbridge::aws::dynamodb_client(&sdk);
    // The tables' keys and indexes as moto made them from template.yaml (projections included),
    // so that each write is also counted on the indexes it changes.
    let mut indexes = Indexes::new();
    for table in stack.tables.values() {
        let d = ddb.describe_table().table_name(table).send().await?;
        let Some(t) = d.table else { continue };
        let names = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            let mut ks = ks.to_vec();
            // HASH before RANGE.
            ks.sort_by_key(|k| k.key_type() != &aws_sdk_dynamodb::types::KeyType::Hash);
            ks.iter()
                .map(|k| k.attribute_name().to_string())
                .collect::<Vec<_>>()
        };
        let gsis = t
            .global_secondary_indexes()
            .iter()
            .filter_map(|g| {
                use aws_sdk_dynamodb::types::ProjectionType;
                let p = g.projection()?;
                let projection = match p.projection_type()? {
                    ProjectionType::All => Projection::All,
                    ProjectionType::KeysOnly => Projection::KeysOnly,
                    _ => Projection::Include(p.non_key_attributes().to_vec()),
                };
                Some(Index {
                    name: g.index_name()?.to_string(),
                    keys: names(g.key_schema()),
                    projection,
                })
            })
            .collect();
        indexes.insert(
            table.clone(),
            TableIndexes {
                table_keys: names(t.key_schema()),
                indexes: gsis,
            },
        );
    }
    let mut proxies: BTreeMap<String, AwsFaultProxy> = BTreeMap::new();
    let mut function_env = BTreeMap::new();
    for id in stack.functions.keys() {
        let p =
            AwsFaultProxy::start(world.moto.endpoint(), AwsFaults::each(opts.seed, 0.0)).await?;
        p.set_indexes(indexes.clone());
        function_env.insert(
            id.clone(),
            BTreeMap::from([(
                flexbridge::config::keys::AWS_ENDPOINT_URL.to_string(),
                p.url().to_string(),
            )]),
        );
        proxies.insert(id.clone(), p);
    }
    let runner_options = RunnerOptions {
        speedup: opts.speedup,
        fire_schedules_at_start: true,
        receive_wait: Duration::from_secs(1),
        sqs_instances: 2,
        function_env,
        ..Default::default()
    };
    let runner = Runner::start(stack, &world.overrides, runner_options).await?;
    let day_started = Instant::now();
    let day = Duration::from_secs_f64(opts.hours * 3600.0 / opts.speedup);
    let mut wh = Warehouse::new(&runner, seller, format!("cost-{}", stack.name))?;
    let service =
        FulfilmentService::from_env(&stack.env_for("WarehouseApiFunction", &world.overrides)?)
            .await?;
    say(
        &opts,
        &mut report,
        started,
        format!(
            "setup done: {} SKUs, 2 locations; the day: {:.1} h at {}x ({:.0} s real)",
            opts.skus,
            opts.hours,
            opts.speedup,
            day.as_secs_f64()
        ),
    );

    // The warehouse's opening stock of the SKUs that sell.
    let hubs: Vec<(String, String)> = seller
        .locations
        .iter()
        .map(|l| (l.hub_id.clone(), l.location_id.clone()))
        .collect();
    let mut on_hand: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut opening = Vec::new();
    for (h, (hub, _)) in hubs.iter().enumerate() {
        for (s, sku) in skus.iter().enumerate().take(popular) {
            on_hand.insert((h, s), 500);
            opening.push(json!({"hub": hub, "sku": sku, "onHand": 500}));
        }
    }
    let mut stock_sent = 0usize;
    let mut stock_requests = 0usize;
    for (i, chunk) in opening.chunks(50).enumerate() {
        wh.post(
            &format!("stock-open-{i}"),
            "/v1/inventory",
            &json!({"items": chunk, "asOf": Utc::now().to_rfc3339()}),
        )
        .await?;
        stock_sent += chunk.len();
        stock_requests += 1;
    }

    let rounds = ((opts.hours * 4.0).ceil() as usize).max(4);
    let round_every = day.mul_f64(0.85 / rounds as f64);
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_round: Vec<String> = Vec::new();
    let mut cancelled: BTreeSet<String> = BTreeSet::new();
    let mut acted: BTreeSet<String> = BTreeSet::new();
    let mut refused = 0usize;
    let mut shipped = 0usize;
    let mut round = 0usize;
    let bucket = stack.bucket("UploadsBucket").to_string();
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let mut uploads = Vec::new();
    loop {
        round += 1;
        let workload = round <= rounds;
        let round_started = Instant::now();
        if workload {
            // The marketplace cancels 5% of the last round's orders.
            for id in std::mem::take(&mut last_round) {
                if rng.random_bool(0.05) && admin.cancel_shipment(&id).await.is_ok() {
                    cancelled.insert(id);
                }
            }
            let n = opts.orders * round / rounds - opts.orders * (round - 1) / rounds;
            for _ in 0..n {
                let h = rng.random_range(0..hubs.len());
                let mut lines = Vec::new();
                let mut taken = BTreeSet::new();
                for _ in 0..rng.random_range(1..=2usize) {
                    let s = rng.random_range(0..popular);
                    if taken.insert(s) {
                        lines.push(json!({"sku": skus[s], "quantity": rng.random_range(1..=3u32), "unitPrice": "10.00"}));
                    }
                }
                match admin
                    .create_shipment(json!({"locationId": hubs[h].1, "lineItems": lines, "invoiceRequired": false}))
                    .await
                {
                    Ok(doc) => {
                        let id = doc["id"].as_str().unwrap_or_default().to_string();
                        created.insert(id.clone(), h);
                        last_round.push(id);
                    }
                    Err(e) if e.to_string().contains("NOTHING_SELLABLE") => refused += 1,
                    Err(e) => return Err(e),
                }
            }
            // Stock changes over the whole catalog, reported 50 to a request.
            let m = opts.stock_changes.saturating_sub(opening.len()) * round / rounds
                - opts.stock_changes.saturating_sub(opening.len()) * (round - 1) / rounds;
            let mut batch: BTreeMap<(usize, usize), i64> = BTreeMap::new();
            for i in 0..m {
                let key = (
                    rng.random_range(0..hubs.len()),
                    rng.random_range(0..opts.skus),
                );
                let n = on_hand
                    .entry(key)
                    .or_insert_with(|| rng.random_range(0..50));
                let floor = if key.1 < popular { 100 } else { 0 };
                *n = (*n + rng.random_range(-3..=4)).max(floor);
                batch.insert(key, *n);
                stock_sent += 1;
                if batch.len() == 50 || i + 1 == m {
                    let items: Vec<Value> = std::mem::take(&mut batch)
                        .into_iter()
                        .map(|((h, s), n)| json!({"hub": hubs[h].0, "sku": skus[s], "onHand": n}))
                        .collect();
                    let as_of = Utc::now() + chrono::Duration::microseconds(stock_sent as i64);
                    wh.post(
                        &format!("stock-{round}-{i}"),
                        "/v1/inventory",
                        &json!({"items": items, "asOf": as_of.to_rfc3339()}),
                    )
                    .await?;
                    stock_requests += 1;
                }
            }
            // Mid-day: a price file for the whole catalog and a catalog delta.
            if round == rounds / 2 {
                let price_file: String = std::iter::once("sku,price,currency\n".to_string())
                    .chain(
                        skus.iter()
                            .enumerate()
                            .map(|(i, s)| format!("{s},{}.99,USD\n", 10 + i % 50)),
                    )
                    .collect();
                let delta: String = std::iter::once("sku,asin,title\n".to_string())
                    .chain(
                        skus.iter()
                            .enumerate()
                            .take(100)
                            .map(|(i, s)| format!("{s},B0C{i:07},Cost item {i} (renamed)\n")),
                    )
                    .collect();
                for (key, body) in [
                    ("prices/cost-day.csv", price_file),
                    ("catalog/delta/cost-day.csv", delta),
                ] {
                    s3.put_object()
                        .bucket(&bucket)
                        .key(key)
                        .body(body.into_bytes().into())
                        .send()
                        .await?;
                    uploads.push(key);
                }
            }
        }
        // The warehouse packs what was handed over and ships what is labelled.
        for r in list_stage(&service, Stage::HandedOver).await? {
            if acted.insert(format!("pack-{}", r.id)) {
                wh.post(
                    &format!("pack-{}", r.id),
                    &format!("/v1/shipments/{}/packed", r.id),
                    &packing(&r),
                )
                .await?;
            }
        }
        for r in list_stage(&service, Stage::Labelled).await? {
            if acted.insert(format!("ship-{}", r.id)) {
                let status = wh
                    .post(
                        &format!("ship-{}", r.id),
                        &format!("/v1/shipments/{}/shipped", r.id),
                        &json!({}),
                    )
                    .await?;
                if status < 300 {
                    shipped += 1;
                    if rng.random_bool(0.03)
                        && admin
                            .create_return(json!({"shipmentId": r.id}))
                            .await
                            .is_ok()
                    {
                        report.returns += 1;
                    }
                }
            }
        }
        let stored = stage_counts(&service).await?;
        let open: usize = stored
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "shipped" | "cancelled" | "rejected"))
            .map(|(_, n)| *n)
            .sum();
        if opts.verbose {
            let returns = report.returns;
            say(
                &opts,
                &mut report,
                started,
                format!(
                    "round {round}/{rounds} at {:.1} simulated h: {} orders ({refused} refused), {} cancelled, {shipped} shipped, {} returns; {stock_sent} stock changes in {stock_requests} requests; stored {stored:?}",
                    day_started.elapsed().as_secs_f64() * opts.speedup / 3600.0,
                    created.len(),
                    cancelled.len(),
                    returns
                ),
            );
        }
        let past_day = day_started.elapsed() >= day;
        if !workload && past_day && (open == 0 || day_started.elapsed() > day + opts.max_settle) {
            report.unfinished = open;
            break;
        }
        let next = if workload {
            round_every
        } else {
            Duration::from_secs(2)
        };
        tokio::time::sleep(next.saturating_sub(round_started.elapsed())).await;
    }
    let stats = runner.stats();
    let simulated_hours = day_started.elapsed().as_secs_f64() * opts.speedup / 3600.0;
    runner.stop().await;
    for key in &uploads {
        let summary = flexbridge::upload::UploadKey::classify(key)
            .ok_or_else(|| anyhow!("{key} is not an upload key"))?
            .summary_report_key();
        let found = s3
            .head_object()
            .bucket(&bucket)
            .key(&summary)
            .send()
            .await
            .is_ok();
        say(
            &opts,
            &mut report,
            started,
            format!(
                "upload {key}: summary {}",
                if found { "written" } else { "MISSING" }
            ),
        );
    }

    report.orders_created = created.len();
    report.orders_shipped = shipped;
    report.orders_cancelled = cancelled.len();
    report.simulated_hours = simulated_hours;
    report.orders_per_day = created.len() as f64 * 24.0 / simulated_hours;
    report.functions = stats;
    report.usage = proxies
        .iter()
        .map(|(id, p)| (id.clone(), p.usage()))
        .collect();
    {
        let l = logs().lock().expect("logs");
        report.log_bytes = l.bytes.clone();
        // The quiet window in the runner's time (its clock runs `speedup` times faster).
        let quiet = PollSettings::default()
            .notifications_quiet
            .div_f64(opts.speedup);
        let notified = l
            .polled
            .iter()
            .filter(|p| {
                l.notified
                    .iter()
                    .any(|n| n <= *p && p.duration_since(*n) < quiet)
            })
            .count();
        report.poller_runs_notified = if l.polled.is_empty() {
            0.0
        } else {
            notified as f64 / l.polled.len() as f64
        };
        report.metric_series = l.series.len();
    }
    for c in admin.calls(None).await? {
        *report
            .spapi_calls
            .entry(c["operation"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let storage = Storage::measure(&world, &sdk).await?;
    bill(&prices, &world, &storage, &mut report)?;
    print(&opts, &prices, &world, &mut report);
    drop(proxies);
    if let Some(v) = moto_env {
        std::env::set_var("AWS_ENDPOINT_URL", v);
    }
    Ok(report)
}

/// Bytes stored at the end of the day.
struct Storage {
    tables: BTreeMap<String, u64>,
    buckets: BTreeMap<String, u64>,
}

impl Storage {
    async fn measure(world: &World, sdk: &aws_config::SdkConfig) -> Result<Self> {
        let ddb = flexbridge::aws::dynamodb_client(sdk);
        let mut tables = BTreeMap::new();
        for (logical, table) in &world.stack.tables {
            let mut bytes = 0u64;
            let mut start = None;
            loop {
                let page = ddb
                    .scan()
                    .table_name(table)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .with_context(|| format!("scanning {table}"))?;
                for item in page.items() {
                    // 100 bytes of overhead per item, as DynamoDB bills storage.
                    bytes += 100
                        + item
                            .iter()
                            .map(|(k, v)| k.len() as u64 + attr_size(v))
                            .sum::<u64>();
                }
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
            tables.insert(logical.clone(), bytes);
        }
        let s3 = flexbridge::aws::s3_client(sdk);
        let mut buckets = BTreeMap::new();
        for (logical, bucket) in &world.stack.buckets {
            let mut bytes = 0u64;
            let mut token = None;
            loop {
                let page = s3
                    .list_objects_v2()
                    .bucket(bucket)
                    .set_continuation_token(token)
                    .send()
                    .await?;
                bytes += page
                    .contents()
                    .iter()
                    .map(|o| o.size().unwrap_or(0) as u64)
                    .sum::<u64>();
                token = page.next_continuation_token;
                if token.is_none() {
                    break;
                }
            }
            buckets.insert(logical.clone(), bytes);
        }
        Ok(Self { tables, buckets })
    }
}

fn attr_size(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => (n.len() as u64).div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(xs) => 3 + xs.iter().map(|x| 1 + attr_size(x)).sum::<u64>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() as u64 + attr_size(x))
                .sum::<u64>()
        }
        AttributeValue::Ss(xs) | AttributeValue::Ns(xs) => xs.iter().map(|x| x.len() as u64).sum(),
        _ => 0,
    }
}

/// The template's logical ID of a table (`table/index`), queue, bucket, bus or secret.
fn logical(world: &World, physical: &str) -> String {
    let (name, index) = match physical.split_once('/') {
        Some((n, i)) => (n, Some(i)),
        None => (physical, None),
    };
    let s = &world.stack;
    let found = s
        .tables
        .iter()
        .chain(s.buckets.iter())
        .chain(s.event_buses.iter())
        .find(|(_, p)| p.as_str() == name)
        .map(|(l, _)| l.clone())
        .or_else(|| {
            s.queues
                .iter()
                .find(|(_, q)| q.name == name)
                .map(|(l, _)| l.clone())
        })
        .or_else(|| {
            s.secrets
                .iter()
                .find(|(_, p)| {
                    p.rsplit(':').next().is_some_and(|n| n.starts_with(name)) || p.as_str() == name
                })
                .map(|(l, _)| l.clone())
        })
        .unwrap_or_else(|| name.to_string());
    match index {
        Some(i) => format!("{found}/{i}"),
        None => found,
    }
}

/// Functions that run whether orders come or not: on a schedule, or on the day's uploads.
fn fixed(world: &World, id: &str) -> bool {
    DAILY.contains(&id)
        || world.stack.functions[id]
            .events
            .iter()
            .all(|e| matches!(e, FunctionEvent::Schedule { .. }))
}

/// Functions that work once a day whatever the day's length here: the daily health report, and
/// the ingestion and pushing of the day's one price file and one catalog delta.
const DAILY: [&str; 3] = [
    "HealthReportFunction",
    "UploadIngestFunction",
    "PricePusherFunction",
];

/// What one function's measured quantities are multiplied by for a month: 30 days of the
/// day's once-a-day work, or the simulated hours' worth scaled to 30 days.
fn month_factor(report: &Report, id: &str) -> f64 {
    if DAILY.contains(&id) {
        30.0
    } else {
        30.0 * 24.0 / report.simulated_hours
    }
}

const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The month's bill from what was measured.
fn bill(prices: &PriceTable, world: &World, storage: &Storage, report: &mut Report) -> Result<()> {
    let month = 30.0 * 24.0 / report.simulated_hours;
    let stack = &world.stack;
    let mut b = Bill::default();
    let mut lambda: BTreeMap<bool, (f64, f64)> = BTreeMap::new();
    let settings = PollSettings::default();
    // Scale of the order poller's calls for the passes its AWS runs make beyond the measured one.
    let mut poller_calls = 1.0;
    for (id, s) in &report.functions {
        let spec = &stack.functions[id];
        let fixed = fixed(world, id);
        let runs = (s.invocations + s.missed_firings) as f64;
        let mean_ms = if s.invocations > 0 {
            s.billed_ms as f64 / s.invocations as f64
        } else {
            0.0
        };
        let mut billed = mean_ms * runs;
        if id == "OrderPollerFunction" {
            let hold = |flowing| {
                poller_hold(
                    spec.timeout(),
                    settings.pass_interval,
                    settings.reserve,
                    Duration::from_secs_f64(mean_ms / 1000.0),
                    flowing,
                )
            };
            let ((_, one), (passes, held)) = (hold(true), hold(false));
            // The runs with notifications flowing make one pass; the others all of theirs.
            let f = report.poller_runs_notified;
            billed = (f * one.as_secs_f64() + (1.0 - f) * held.as_secs_f64()) * 1000.0 * runs;
            poller_calls = 1.0 + (1.0 - f) * f64::from(passes - 1) * 2.0 / 5.0;
        }
        let e = lambda.entry(fixed).or_default();
        e.0 += runs * month_factor(report, id);
        e.1 += gb_seconds(spec.memory_mb, billed) * month_factor(report, id);
    }
    for (fixed, (requests, gbs)) in &lambda {
        let what = if *fixed {
            "scheduled functions"
        } else {
            "event-driven functions (queues, Function URL)"
        };
        b.add(
            prices,
            "Lambda",
            &format!("requests, {what}"),
            *requests,
            "lambda_requests",
            *fixed,
        )?;
        b.add(
            prices,
            "Lambda",
            &format!("GB-seconds, {what}"),
            *gbs,
            "lambda_gb_seconds_arm",
            *fixed,
        )?;
    }
    // AWS calls, by the function that made them.
    let mut sums: BTreeMap<(bool, &'static str, String, &'static str), f64> = BTreeMap::new();
    for (id, usage) in &report.usage {
        let fixed = fixed(world, id);
        let scale = month_factor(report, id)
            * if id == "OrderPollerFunction" {
                poller_calls
            } else {
                1.0
            };
        for (k, t) in usage {
            let mut add = |service: &'static str, item: String, price: &'static str, q: f64| {
                *sums.entry((fixed, service, item, price)).or_default() += q * scale;
            };
            match k.service {
                Service::DynamoDb => {
                    add(
                        "DynamoDB",
                        format!("read units {}", logical(world, &k.resource)),
                        "dynamodb_rru",
                        t.read_units,
                    );
                    add(
                        "DynamoDB",
                        format!("write units {}", logical(world, &k.resource)),
                        "dynamodb_wru",
                        t.write_units,
                    );
                }
                Service::Sqs => add(
                    "SQS",
                    "requests by the functions".into(),
                    "sqs_requests",
                    t.billed_requests as f64,
                ),
                Service::S3 => match k.operation.as_str() {
                    "PUT" | "POST" | "LIST" => add(
                        "S3",
                        "PUT/POST/LIST requests".into(),
                        "s3_put",
                        t.requests as f64,
                    ),
                    "GET" | "HEAD" => add(
                        "S3",
                        "GET/HEAD requests".into(),
                        "s3_get",
                        t.requests as f64,
                    ),
                    _ => {}
                },
                Service::EventBridge => {
                    add(
                        "EventBridge",
                        "events put (64 KB chunks)".into(),
                        "eventbridge_events",
                        t.billed_requests as f64,
                    );
                    add(
                        "EventBridge",
                        "archive, GB archived".into(),
                        "eventbridge_archive",
                        t.request_bytes as f64 / GB,
                    );
                    add(
                        "EventBridge",
                        "archive storage, GB-month".into(),
                        "eventbridge_archive_storage",
                        t.request_bytes as f64 / GB,
                    );
                }
                Service::SecretsManager => add(
                    "Secrets Manager",
                    "API calls".into(),
                    "secrets_api",
                    t.requests as f64,
                ),
            }
        }
    }
    for ((fixed, service, item, price), q) in sums {
        if q > 0.0 || price == "sqs_requests" {
            b.add(prices, service, &item, q, price, fixed)?;
        }
    }
    // SQS calls the runner makes in Lambda's place, and Amazon's notifications.
    let mut mappings = 0.0;
    let mut batches = 0.0;
    let mut notifications = 0.0;
    for (id, spec) in &stack.functions {
        for e in &spec.events {
            if let FunctionEvent::Sqs { enabled: true, .. } = e {
                mappings += 1.0;
                let s = report.functions.get(id).cloned().unwrap_or_default();
                batches += s.invocations as f64;
                if id == "NotificationConsumerFunction" {
                    notifications += (s.messages_ok + s.messages_failed) as f64;
                }
            }
        }
    }
    b.add(prices, "SQS", &format!("idle polling of {mappings} event source mappings (model: {ESM_POLLERS} long polls of {ESM_WAIT_S} s each)"),
        mappings * ESM_POLLERS * 30.0 * 86400.0 / ESM_WAIT_S, "sqs_requests", true)?;
    b.add(
        prices,
        "SQS",
        "DeleteMessageBatch per delivered batch (event source mapping)",
        batches * month,
        "sqs_requests",
        false,
    )?;
    b.add(
        prices,
        "SQS",
        "notifications sent by Amazon (SendMessage)",
        notifications * month,
        "sqs_requests",
        false,
    )?;
    // S3: the warehouse's two uploads, and what the buckets hold (a month of such days).
    b.add(
        prices,
        "S3",
        "PUT of the day's two uploads by the warehouse",
        2.0 * 30.0,
        "s3_put",
        false,
    )?;
    let s3_bytes: u64 = storage.buckets.values().sum();
    b.add(
        prices,
        "S3",
        "storage, a month of the day's objects",
        s3_bytes as f64 * month / GB,
        "s3_storage",
        false,
    )?;
    let table_bytes: u64 = storage.tables.values().sum();
    b.add(
        prices,
        "DynamoDB",
        "storage (end of the day)",
        table_bytes as f64 / GB,
        "dynamodb_storage",
        false,
    )?;
    b.add(
        prices,
        "DynamoDB",
        "point-in-time recovery (end of the day)",
        table_bytes as f64 / GB,
        "dynamodb_pitr",
        false,
    )?;
    // CloudWatch.
    // Counted in the template (what is deployed; moto does not create every kind).
    let template = std::fs::read_to_string(flexbridge_local::paths::template())?;
    // The dashboard exists only with CloudWatchDashboard=on (condition WithDashboard).
    let dashboard_on = stack
        .parameters
        .get("CloudWatchDashboard")
        .is_some_and(|v| v == "on");
    let lines: Vec<&str> = template.lines().collect();
    let kinds = |kind: &str| {
        lines
            .windows(2)
            .filter(|w| w[0].trim() == format!("Type: {kind}"))
            .filter(|w| dashboard_on || w[1].trim() != "Condition: WithDashboard")
            .count()
    };
    let high_res = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Period: "))
        .filter(|p| p.trim().parse::<u32>().is_ok_and(|p| p < 60))
        .count();
    let alarms = kinds("AWS::CloudWatch::Alarm");
    let composite = kinds("AWS::CloudWatch::CompositeAlarm");
    report.alarms = alarms + composite;
    b.add(
        prices,
        "CloudWatch",
        &format!("custom metrics ({} series)", report.metric_series),
        report.metric_series as f64,
        "cloudwatch_metric",
        true,
    )?;
    b.add(
        prices,
        "CloudWatch",
        "standard-resolution alarms",
        (alarms - high_res.min(alarms)) as f64,
        "cloudwatch_alarm_standard",
        true,
    )?;
    if high_res > 0 {
        b.add(
            prices,
            "CloudWatch",
            "high-resolution alarms",
            high_res as f64,
            "cloudwatch_alarm_high_resolution",
            true,
        )?;
    }
    if composite > 0 {
        b.add(
            prices,
            "CloudWatch",
            "composite alarms",
            composite as f64,
            "cloudwatch_alarm_composite",
            true,
        )?;
    }
    b.add(
        prices,
        "CloudWatch",
        "dashboards",
        kinds("AWS::CloudWatch::Dashboard") as f64,
        "cloudwatch_dashboard",
        true,
    )?;
    let mut log_bytes: BTreeMap<bool, f64> = BTreeMap::new();
    for (id, s) in &report.functions {
        let written = report.log_bytes.get(id).copied().unwrap_or(0);
        *log_bytes.entry(fixed(world, id)).or_default() +=
            (written + PLATFORM_LOG_BYTES * (s.invocations + s.missed_firings)) as f64
                * month_factor(report, id)
                / GB;
    }
    let retention: f64 = stack
        .parameters
        .get("LogRetentionDays")
        .and_then(|d| d.parse().ok())
        .unwrap_or(30.0);
    for (fixed, gb) in log_bytes {
        let whose = if fixed {
            "scheduled functions"
        } else {
            "event-driven functions"
        };
        b.add(
            prices,
            "CloudWatch Logs",
            &format!("ingestion, {whose}"),
            gb,
            "logs_ingestion",
            fixed,
        )?;
        b.add(
            prices,
            "CloudWatch Logs",
            &format!("storage ({retention} days kept), {whose}"),
            gb * retention.min(30.0) / 30.0,
            "logs_storage",
            fixed,
        )?;
    }
    b.add(
        prices,
        "Secrets Manager",
        "secrets",
        kinds("AWS::SecretsManager::Secret") as f64,
        "secrets_secret",
        true,
    )?;
    b.add(
        prices,
        "KMS",
        "customer managed keys",
        kinds("AWS::KMS::Key") as f64,
        "kms_key",
        true,
    )?;
    b.add(
        prices,
        "KMS",
        "requests (alarm notifications only: none in a quiet month)",
        0.0,
        "kms_requests",
        true,
    )?;
    b.add(
        prices,
        "SNS",
        "alarm notifications (none in a quiet month)",
        0.0,
        "sns_publish",
        true,
    )?;
    report.bill = b;
    Ok(())
}

fn print(opts: &Options, prices: &PriceTable, world: &World, report: &mut Report) {
    let mut out = Vec::new();
    out.push(format!(
        "the day: {:.1} simulated hours at {}x; {} orders created ({:.0} a day), {} shipped, {} cancelled by the marketplace, {} returned, {} unfinished",
        report.simulated_hours, opts.speedup, report.orders_created, report.orders_per_day,
        report.orders_shipped, report.orders_cancelled, report.returns, report.unfinished
    ));
    out.push(format!(
        "timing: build profile `{}` of this bench, in process on a shared machine (deployed: the `lambda` profile)",
        if cfg!(debug_assertions) { "dev" } else { "release" }
    ));
    out.push(format!(
        "order poller: {:.0}% of its runs had a notification handled within the quiet window before them (one pass in AWS; the rest make their 15 s passes)",
        report.poller_runs_notified * 100.0
    ));
    out.push("per function (the day; month = 30 such days):".into());
    out.push(format!(
        "  {:<32} {:>6} {:>8} {:>7} {:>9} {:>12} {:>9} {:>10}",
        "function", "MB", "invokes", "missed", "mean ms", "GB-s/month", "AWS calls", "log KB"
    ));
    for (id, s) in &report.functions {
        let spec = &world.stack.functions[id];
        let calls: u64 = report
            .usage
            .get(id)
            .map_or(0, |u| u.values().map(|t| t.requests).sum());
        let mean = if s.invocations > 0 {
            s.billed_ms as f64 / s.invocations as f64
        } else {
            0.0
        };
        out.push(format!(
            "  {:<32} {:>6} {:>8} {:>7} {:>9.1} {:>12.0} {:>9} {:>10.1}",
            id,
            spec.memory_mb,
            s.invocations,
            s.missed_firings,
            mean,
            gb_seconds(spec.memory_mb, s.billed_ms as f64) * month_factor(report, id),
            calls,
            report.log_bytes.get(id).copied().unwrap_or(0) as f64 / 1024.0
        ));
    }
    out.push("AWS calls per service, operation and resource (the day, all functions):".into());
    // (service, operation, resource) → (requests, RRU, WRU, bytes)
    type Row = (u64, f64, f64, u64);
    let mut ops: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    for usage in report.usage.values() {
        for (k, t) in usage {
            let e = ops
                .entry((
                    k.service.as_str().to_string(),
                    k.operation.clone(),
                    logical(world, &k.resource),
                ))
                .or_default();
            e.0 += t.requests;
            e.1 += t.read_units;
            e.2 += t.write_units;
            e.3 += t.request_bytes + t.response_bytes;
        }
    }
    for ((s, o, r), (n, ru, wu, bytes)) in ops {
        out.push(format!(
            "  {s:<15} {o:<22} {r:<48} {n:>8} RRU {ru:>9.1} WRU {wu:>9.1} bytes {bytes:>10}"
        ));
    }
    out.push(
        "SP-API calls per operation (the day; not billed by AWS, they spend Amazon's rate limits):"
            .into(),
    );
    for (op, n) in &report.spapi_calls {
        out.push(format!("  {op:<40} {n:>8}"));
    }
    out.push(format!(
        "the bill: a month of such days, prices of {} as of {} ({})",
        prices.region, prices.as_of, prices.terms
    ));
    for l in &report.bill.lines {
        out.push(format!(
            "  {:<16} {:<84} {:>14.1} {:<14} {:>9.4} {}",
            l.service,
            l.item,
            l.quantity,
            l.price,
            l.usd,
            if l.fixed { "fixed" } else { "per order" }
        ));
    }
    out.push("by service (fixed + per order, USD a month):".into());
    for (s, (f, v)) in report.bill.by_service() {
        out.push(format!("  {s:<16} {f:>9.4} + {v:>9.4} = {:>9.4}", f + v));
    }
    out.push(format!(
        "month at the measured {:.0} orders a day: {:.2} USD (fixed {:.2}, per order {:.2}); at 1,000 a day: {:.2}; at 10,000 a day: {:.2}",
        report.orders_per_day,
        report.bill.total_usd(),
        report.bill.fixed_usd(),
        report.bill.variable_usd(),
        report.bill.month_at(report.orders_per_day, 1000.0),
        report.bill.month_at(report.orders_per_day, 10_000.0)
    ));
    for l in out {
        if opts.verbose {
            println!("{l}");
        }
        report.lines.push(l);
    }
}
