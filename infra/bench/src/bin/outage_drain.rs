//! Outage drain: Amazon down for 6 hours while 3,000 shipments are created, then back at its
//! real rate limits (1 request/s for each Shipments operation); the order poller runs back to
//! back as its one-minute schedule would (`flexbridge_bench::outage`). Ends with one line:
//! `... outage_drain_minutes=.. missed_orders=0 duplicate_confirms=0`.
//!
//! `cargo run -p flexbridge-bench --bin outage_drain` (about an hour: CONFIRM at
//! 1 request/s is the floor, 3,000 s for 3,000 shipments); `-- --shipments 300` for a shorter run.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use flexbridge_bench::outage::{self, Options};

#[derive(Parser, Debug)]
#[command(about = "Amazon down for hours, then back: time to drain the backlog")]
struct Args {
    #[arg(long, default_value_t = 3000)]
    shipments: usize,
    #[arg(long, default_value_t = 6.0)]
    outage_hours: f64,
    #[arg(long, default_value_t = 20)]
    seed: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let report = outage::run(Options {
        shipments: args.shipments,
        outage: Duration::from_secs_f64(args.outage_hours * 3600.0),
        seed: args.seed,
        ..Default::default()
    })
    .await?;
    println!("{}", report.last_line());
    if report.missed > 0 || report.duplicate_confirms > 0 || report.runs_without_progress > 0 {
        bail!(
            "the backlog was not drained cleanly: {}",
            report.last_line()
        );
    }
    Ok(())
}
