//! The chaos run at CI size: a few hundred orders over three locations and a few thousand stock
//! changes through the whole local stack under every fault at once (see
//! `flexbridge_bench::chaos`); every invariant must hold. The full size is
//! `cargo run -p flexbridge-bench --bin chaos` (BENCHMARKS.md).

use std::time::Duration;

use flexbridge_bench::chaos::{self, Options};

// Returns its failure rather than panicking: CI keeps only the head and tail of a long output,
// and a panic's backtrace would push the broken invariants out of the tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_invariant_holds_under_faults() -> Result<(), String> {
    let report = chaos::run(Options {
        seed: 3,
        orders: 200,
        stock_changes: 2_000,
        skus: 10,
        // About 450 s on an idle machine; a killed upload run alone holds the workload for the
        // upload function's 300 s timeout.
        max_wait: Duration::from_secs(1500),
        verbose: true,
    })
    .await
    .map_err(|e| format!("the chaos run did not run: {e:#}"))?;
    for l in &report.lines {
        println!("{l}");
    }
    for d in &report.dlq {
        println!("dead letter: {d}");
    }
    println!("{}", report.last_line());
    if report.orders_created < 150 {
        return Err(format!(
            "too few orders to mean anything: {} created",
            report.orders_created
        ));
    }
    if !report.ok() {
        return Err(format!(
            "{}\n{}",
            report.problems.join("\n"),
            report.last_line()
        ));
    }
    Ok(())
}
