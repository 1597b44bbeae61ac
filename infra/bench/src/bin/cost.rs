//! What a seller's stack costs a month: a simulated day of one seller on the local stack,
//! every billable unit counted, priced from `infra/bench/prices/aws-us-east-1.json`
//! (`flexbridge_bench::cost`). Ends with one line:
//! `cost_per_seller_month_usd=.. fixed_usd=.. per_1000_orders_usd=.. metric_series=.. alarms=..`.
//!
//! `cargo run -p flexbridge-bench --bin cost` (1,000 orders over 24 simulated hours at 100x:
//! about 15 minutes on an idle machine); `-- --orders 84 --hours 2 --speedup 20` is two hours
//! of the same day (1,000 orders a day; the once-a-day work billed once a day), about 6 minutes.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use flexbridge_bench::cost::{self, Options};

#[derive(Parser, Debug)]
#[command(about = "A simulated day of one seller, priced: what the stack costs a month")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// The simulated day's length in hours.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    #[arg(long, default_value_t = 100.0)]
    speedup: f64,
    #[arg(long, default_value_t = 10_000)]
    skus: usize,
    /// Stock changes in the day (default: 20 per order, 20,000 for 1,000 orders).
    #[arg(long)]
    stock_changes: Option<usize>,
    #[arg(long, default_value_t = 23)]
    seed: u64,
    /// Another price table (JSON, the shape of infra/bench/prices/aws-us-east-1.json).
    #[arg(long)]
    prices: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !cost::capture_logs() {
        anyhow::bail!(
            "a log subscriber was already installed: the functions' logs cannot be counted"
        );
    }
    let d = Options::default();
    let report = cost::run(Options {
        orders: args.orders,
        hours: args.hours,
        speedup: args.speedup,
        skus: args.skus,
        stock_changes: args.stock_changes.unwrap_or(20 * args.orders),
        seed: args.seed,
        prices: args.prices.unwrap_or(d.prices.clone()),
        max_settle: Duration::from_secs(300),
        ..d
    })
    .await?;
    println!("{}", report.last_line());
    Ok(())
}
