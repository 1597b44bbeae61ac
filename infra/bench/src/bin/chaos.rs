//! The chaos run (see `flexbridge_bench::chaos`): the whole system on the local stack under
//! Amazon's faults, Lambda's kills and redeliveries, AWS's faults (throttles, 500s and lost answers
//! on the functions' calls) and out-of-order stock, then the invariants.
//!
//! `cargo run --release -p flexbridge-bench --bin chaos -- --seed 1 --orders 2000 --stock-changes 20000`
//!
//! Last line: `missing_orders=… duplicate_actions=… stock_mismatches=… oversold_units=… unexplained_dlq=… unexplained_uploads=… unfinished_shipments=… labels_recovered=… aws_faults=… confirm_p99_s=…`;
//! the exit status is 1 when any of them is not 0.

use std::time::Duration;

use clap::Parser;
use flexbridge_bench::chaos::{self, Options};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    #[arg(long, default_value_t = 20_000)]
    stock_changes: usize,
    #[arg(long, default_value_t = 20)]
    skus: usize,
    /// Share of the functions' AWS calls throttled, the same share answered 500 and the same
    /// share applied with the answer lost (0 = no AWS faults).
    #[arg(long, default_value_t = 0.01)]
    aws_fault_rate: f64,
    /// Give up waiting for the workload to settle after this many seconds.
    #[arg(long, default_value_t = 3600)]
    max_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = chaos::run(Options {
        seed: args.seed,
        orders: args.orders,
        stock_changes: args.stock_changes,
        skus: args.skus,
        aws_fault_rate: args.aws_fault_rate,
        max_wait: Duration::from_secs(args.max_secs),
        verbose: true,
    })
    .await?;
    for l in &report.lines {
        println!("{l}");
    }
    println!("dead letters: {}", report.dlq.len());
    for d in &report.dlq {
        println!("  {d}");
    }
    println!("{}", report.last_line());
    if !report.ok() {
        std::process::exit(1);
    }
    Ok(())
}
