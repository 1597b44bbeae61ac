//! The chaos run through the whole local stack under every fault at once (see
//! `flexbridge_bench::chaos`); every invariant must hold.
//!
//! - `a_smoke_run_holds_every_invariant`: a few dozen orders, part of the default test command,
//!   so that a change that breaks an invariant fails within minutes.
//! - `every_invariant_holds_under_faults`: the CI size (a few hundred orders over three
//!   locations, a few thousand stock changes), ignored by default; `.ci/run` runs it:
//!   `cargo test -p flexbridge-bench --test bench -- --ignored --nocapture chaos::`.
//!
//! The full size is `cargo run -p flexbridge-bench --bin chaos` (BENCHMARKS.md).

use std::time::Duration;

use flexbridge_bench::chaos::{self, Options};

/// Runs the chaos run and returns its failure rather than panicking: CI keeps only the head and
/// tail of a long output, and a panic's backtrace would push the broken invariants out of the
/// tail.
async fn run(options: Options, min_orders: usize) -> Result<(), String> {
    let report = chaos::run(options)
        .await
        .map_err(|e| format!("the chaos run did not run: {e:#}"))?;
    for l in &report.lines {
        println!("{l}");
    }
    for d in &report.dlq {
        println!("dead letter: {d}");
    }
    println!("{}", report.last_line());
    if report.orders_created < min_orders {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_smoke_run_holds_every_invariant() -> Result<(), String> {
    run(
        Options {
            seed: 5,
            orders: 40,
            stock_changes: 400,
            skus: 6,
            // 1% of the functions' AWS calls throttled, 1% answered 500, 1% answers lost.
            aws_fault_rate: 0.01,
            max_wait: Duration::from_secs(600),
            verbose: true,
        },
        30,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the CI size, minutes long: .ci/run runs it (--ignored chaos::)"]
async fn every_invariant_holds_under_faults() -> Result<(), String> {
    run(
        Options {
            seed: 3,
            orders: 200,
            stock_changes: 2_000,
            skus: 10,
            aws_fault_rate: 0.01,
            // About 450 s on an idle machine.
            max_wait: Duration::from_secs(1500),
            verbose: true,
        },
        150,
    )
    .await
}
