//! Label drain: N packed Seller Flex shipments on LabelsQueue, drained by the label worker against
//! the simulator with Amazon's default Shipments limits (1 request/s, burst 2, per operation).
//! As many instances as the template's `MaximumConcurrency` (`label_worker::MAX_INSTANCES`) each
//! poll the queue (one local runner each, so each has its own client: only the buckets shared in
//! CursorsTable keep them within Amazon's limits together). Reports shipments per minute, which
//! operation's limit binds and the share of that limit used, and duplicate package sets or
//! labels (an operation applied more than once for one shipment).
//!
//! `cargo run --release -p flexbridge-bench --bin label_drain` (1,000 shipments: about 17 min,
//! the limit being 1 createPackages and 1 generateShipLabels per second). Ends with one line:
//! `shipments_per_min=.. binding_op=.. binding_efficiency_pct=.. duplicate_labels=..`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Parser;
use flexbridge::fulfilment::api::PackedRequest;
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::runtime::Invocation;
use flexbridge::shipment::{AmazonShipment, Stage};
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides};
use flexbridge_local::{Moto, Runner, RunnerOptions};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Drain N packed shipments through the label worker at Amazon's default limits")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    shipments: usize,
    #[arg(long, default_value_t = 5)]
    seed: u64,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    max_secs: u64,
}

const OPS: [&str; 2] = ["createPackages", "generateShipLabels"];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let moto = tokio::task::spawn_blocking(Moto::start).await??;
    let sim = spapi_sim::Simulator::start(spapi_sim::SimOptions {
        seed: args.seed,
        empty_page_rate: 0.0,
        ..Default::default()
    })
    .await?;
    let seller = Seller::default();
    let stack = stack::provision(
        moto.endpoint(),
        &stack::unique_stack_name("bench-labels"),
        &[("SellerId", seller.seller_id.as_str())],
    )
    .await?;
    seed::seed_secrets(&stack, &seller).await?;
    seed::seed_seller(&stack, &seller).await?;
    let location = seller.locations[0].location_id.clone();
    let admin = spapi_sim::AdminClient::new(&sim.base_url);
    admin
        .create_location(&location, &seller.locations[0].marketplace_id, "FBA")
        .await?;
    let overrides = Overrides {
        spapi_endpoint: Some(sim.base_url.clone()),
        lwa_endpoint: Some(sim.lwa_url()),
        extra: BTreeMap::new(),
    };
    let env = stack.env_for("WarehouseApiFunction", &overrides)?;
    let service = FulfilmentService::from_env(&env).await?;
    let inv = Invocation::new("bench", Duration::from_secs(3600));

    // N confirmed shipments, stored and handed over (no Amazon call: the view comes from the
    // simulator's answer), then packed: N label jobs on LabelsQueue.
    let processor = service.orders.processor(&inv);
    let fulfiller = service.fulfiller(&inv);
    let mut ids = Vec::with_capacity(args.shipments);
    for i in 0..args.shipments {
        let doc = admin
            .create_shipment(json!({"locationId": location, "status": "CONFIRMED", "invoiceRequired": false,
                "lineItems": [{"sku": format!("BENCH-{}", i % 20), "quantity": 1 + (i % 3) as u32, "unitPrice": "10.00"}]}))
            .await?;
        let shipment = AmazonShipment::from_json(&doc)?;
        let id = shipment.record.id.clone();
        processor.ingest(&shipment, &inv).await?;
        let units = shipment.record.line_items[0].units;
        let req: PackedRequest = serde_json::from_value(json!({"packages": [{"id": "BOX-1",
            "dimensions": {"length": {"value": "30", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "10", "dimensionUnit": "CM"}},
            "weight": {"value": "0.5", "weightUnit": "KG"},
            "packageLineItems": [{"packageLineItemId": shipment.record.line_items[0].id, "quantity": units}]}]}))?;
        fulfiller.packed(&id, req).await?;
        ids.push(id);
    }
    let setup = started.elapsed().as_secs_f64();
    println!(
        "setup {setup:.1} s: {} shipments packed and queued",
        ids.len()
    );

    // Drain: the label worker alone, as Lambda's SQS event source would run it: as many
    // batches at once as the event source allows (the runner caps at its MaximumConcurrency).
    let t0 = Instant::now();
    let runners = vec![
        Runner::start(
            &stack,
            &overrides,
            RunnerOptions {
                run_schedules: false,
                serve_urls: false,
                receive_wait: Duration::from_secs(1),
                sqs_instances: label_worker::MAX_INSTANCES as usize,
                only: Some(["LabelWorkerFunction".to_string()].into()),
                ..Default::default()
            },
        )
        .await?,
    ];
    let mut last_print = Instant::now();
    let labelled = loop {
        let n = count_stage(&service, Stage::Labelled).await?;
        if n >= ids.len() || t0.elapsed() > Duration::from_secs(args.max_secs) {
            break n;
        }
        if last_print.elapsed() > Duration::from_secs(30) {
            println!(
                "  {n} of {} labelled after {:.0} s",
                ids.len(),
                t0.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    let (mut invocations, mut messages_ok, mut messages_failed) = (0, 0, 0);
    for runner in runners {
        let stats = runner.function_stats("LabelWorkerFunction");
        invocations += stats.invocations;
        messages_ok += stats.messages_ok;
        messages_failed += stats.messages_failed;
        runner.stop().await;
    }

    // Amazon's view: every call per operation and shipment (applied = answered 2xx, or applied
    // then failed), and the calls' time span for each operation's limit.
    let mut duplicates = 0usize;
    let mut binding: Option<(String, f64, usize)> = None;
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    for op in OPS {
        let calls = admin.calls(Some(op)).await?;
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        let mut throttled = 0usize;
        for c in &calls {
            let path = c["path"].as_str().unwrap_or("");
            let Some(id) = path.split('/').find(|p| wanted.contains(p)) else {
                continue;
            };
            let status = c["status"].as_u64().unwrap_or(0);
            if status == 429 {
                throttled += 1;
            }
            if (200..300).contains(&status) || note(c).contains("ApplyThenFail") {
                *per.entry(id.to_string()).or_default() += 1;
            }
        }
        let applied: usize = per.values().sum();
        duplicates += per.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        // Over T seconds from a full bucket Amazon allows at most burst + rate * T calls.
        let ceiling = 2.0 + 1.0 * secs;
        let share = 100.0 * applied as f64 / ceiling;
        println!(
            "{op}: {applied} applied for {} shipments, {throttled} throttled (429) answers; {share:.1}% of the {ceiling:.0} calls Amazon allows in {secs:.0} s",
            per.len()
        );
        if binding.as_ref().is_none_or(|(_, s, _)| share > *s) {
            binding = Some((op.to_string(), share, applied));
        }
    }
    let (binding_op, efficiency, _) = binding.ok_or_else(|| anyhow!("no operations"))?;
    let per_min = labelled as f64 * 60.0 / secs;
    println!(
        "{labelled} of {} shipments labelled in {secs:.1} s by {} instances; worker invocations {invocations}, messages ok {messages_ok}, failed {messages_failed}",
        ids.len(),
        label_worker::MAX_INSTANCES,
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "shipments_per_min={per_min:.1} binding_op={binding_op} binding_efficiency_pct={efficiency:.1} duplicate_labels={duplicates}"
    );
    Ok(())
}

fn note(c: &Value) -> &str {
    c["note"].as_str().unwrap_or("")
}

async fn count_stage(service: &FulfilmentService, stage: Stage) -> Result<usize> {
    let mut n = 0;
    let mut token: Option<String> = None;
    loop {
        let page = service
            .orders
            .shipments
            .list(stage, None, 100, token.as_deref())
            .await?;
        n += page.items.len();
        token = page.next_token;
        if token.is_none() {
            return Ok(n);
        }
    }
}
