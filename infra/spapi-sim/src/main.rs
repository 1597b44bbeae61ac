//! `spapi-sim --listen 127.0.0.1:PORT [--seed N] [--models-dir DIR] [--no-rate-limits] [fault flags]`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use spapi_sim::{FaultConfig, FaultRule, SimOptions, Simulator};

#[derive(Parser, Debug)]
#[command(
    name = "spapi-sim",
    about = "A stateful simulator of Amazon's SP-API (External Fulfillment, Listings, LWA)"
)]
struct Args {
    /// Address to listen on (port 0 = any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8610")]
    listen: SocketAddr,
    /// Seed for every random choice (generated data, fault draws, tracking IDs).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder of Amazon's models (default: $SPAPI_MODELS_DIR, else ../shared/spapi-models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Never answer 429 because of rate.
    #[arg(long)]
    no_rate_limits: bool,
    /// Lifetime of access tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Share of getShipments/listReturns pages answered empty while more remain.
    #[arg(long, default_value_t = 0.1)]
    empty_page_rate: f64,
    /// Share of requests (all operations) answered 429.
    #[arg(long, default_value_t = 0.0)]
    fault_429_rate: f64,
    /// Share answered 500 (nothing applied).
    #[arg(long, default_value_t = 0.0)]
    fault_500_rate: f64,
    /// Share answered 503 (nothing applied).
    #[arg(long, default_value_t = 0.0)]
    fault_503_rate: f64,
    /// Share whose connection is closed without a response (nothing applied).
    #[arg(long, default_value_t = 0.0)]
    fault_drop_rate: f64,
    /// Share applied, then answered 500.
    #[arg(long, default_value_t = 0.0)]
    fault_apply_then_fail_rate: f64,
    /// Share applied, then held for --fault-hang-ms and closed without a response.
    #[arg(long, default_value_t = 0.0)]
    fault_apply_then_hang_rate: f64,
    /// Latency added to every request, in ms.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Up to this much more latency, drawn per request.
    #[arg(long, default_value_t = 0)]
    fault_latency_jitter_ms: u64,
    /// How long apply-then-hang holds a connection, in ms.
    #[arg(long, default_value_t = 30_000)]
    fault_hang_ms: u64,
    /// A full fault configuration (JSON, the admin API's PUT /_sim/faults body), replacing the flags above.
    #[arg(long)]
    faults_json: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let faults = match &a.faults_json {
        Some(j) => serde_json::from_str::<FaultConfig>(j)
            .context("--faults-json is not a fault configuration")?,
        None => FaultConfig {
            global: FaultRule {
                throttle_rate: a.fault_429_rate,
                error500_rate: a.fault_500_rate,
                error503_rate: a.fault_503_rate,
                drop_rate: a.fault_drop_rate,
                apply_then_fail_rate: a.fault_apply_then_fail_rate,
                apply_then_hang_rate: a.fault_apply_then_hang_rate,
                latency_ms: a.fault_latency_ms,
                latency_jitter_ms: a.fault_latency_jitter_ms,
                hang_ms: a.fault_hang_ms,
                script: vec![],
            },
            operations: Default::default(),
        },
    };
    let opts = SimOptions {
        seed: a.seed,
        models_dir: a.models_dir,
        rate_limits: !a.no_rate_limits,
        token_ttl_secs: a.token_ttl_secs,
        empty_page_rate: a.empty_page_rate,
        faults,
        ..SimOptions::default()
    };
    let handle = Simulator::start_on(a.listen, opts).await?;
    println!("spapi-sim listening on {}", handle.base_url);
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
