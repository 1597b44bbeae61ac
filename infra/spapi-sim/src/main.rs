//! `spapi-sim --listen 127.0.0.1:PORT [--seed N] [--models-dir DIR] [--no-rate-limits]`

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use spapi_sim::{SimOptions, Simulator};

#[derive(Parser, Debug)]
#[command(name = "spapi-sim", about = "A stateful simulator of Amazon's SP-API (External Fulfillment, Listings, LWA)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8610")]
    listen: SocketAddr,
    /// Seed for every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder of Amazon's models (default: $SPAPI_MODELS_DIR, else ../shared/spapi-models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Never answer 429 because of rate.
    #[arg(long)]
    no_rate_limits: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let opts = SimOptions {
        seed: args.seed,
        models_dir: args.models_dir,
        rate_limits: !args.no_rate_limits,
        ..SimOptions::default()
    };
    let handle = Simulator::start_on(args.listen, opts).await?;
    println!("spapi-sim listening on {}", handle.base_url);
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
