//! Cold start of each packaged function: the `bootstrap` that `sam build` produced
//! (`.aws-sam/build/<LogicalId>/bootstrap`) is started the way Lambda starts it, against a local
//! Lambda Runtime API (`flexbridge_local::lambda_api`), with its template environment (moto and
//! the simulator behind counting proxies). Init = process start → its first
//! `GET /runtime/invocation/next`. Also counts connections to AWS (moto) and Amazon (the
//! simulator) made during init: there must be none (secrets and settings load lazily).
//!
//! ```bash
//! sam build --parameter-overrides Architecture=x86_64
//! cargo run -p flexbridge-bench --bin cold_start -- --runs 10
//! ```
//!
//! Last line: `max_init_ms=… max_binary_mb=…` (the slowest function's median init, the biggest
//! bootstrap in MB of 10^6 bytes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use flexbridge_local::lambda_api::{Bootstrap, CountingProxy, RuntimeApi};
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides};
use flexbridge_local::{paths, Moto};

#[derive(Parser, Debug)]
#[command(about = "Cold start (init time) and size of each packaged function")]
struct Args {
    /// `sam build`'s output directory.
    #[arg(long)]
    build_dir: Option<PathBuf>,
    /// Cold starts per function (a fresh process each time).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let build_dir = args
        .build_dir
        .unwrap_or_else(|| paths::repo_root().join(".aws-sam/build"));
    let moto = tokio::task::spawn_blocking(Moto::start).await??;
    let sim = spapi_sim::Simulator::start(Default::default()).await?;
    let seller = Seller::default();
    let stack = stack::provision(
        moto.endpoint(),
        &stack::unique_stack_name("bench-cold"),
        &[("SellerId", seller.seller_id.as_str())],
    )
    .await?;
    seed::seed_secrets(&stack, &seller).await?;
    seed::seed_seller(&stack, &seller).await?;
    let aws = CountingProxy::start(moto.endpoint()).await?;
    let amazon = CountingProxy::start(&sim.base_url).await?;
    let overrides = Overrides {
        spapi_endpoint: Some(amazon.url()),
        lwa_endpoint: Some(sim.lwa_url().replacen(&sim.base_url, &amazon.url(), 1)),
        extra: BTreeMap::new(),
    };

    println!(
        "{:<30} {:>9} {:>8} {:>8} {:>8} {:>14}",
        "function", "size_mb", "min_ms", "p50_ms", "max_ms", "init_conns"
    );
    let (mut max_init, mut max_mb, mut calls_in_init) = (0.0f64, 0.0f64, 0usize);
    for (logical_id, spec) in &stack.functions {
        let bootstrap = build_dir.join(logical_id).join("bootstrap");
        if !bootstrap.is_file() {
            bail!(
                "{} is missing: run `sam build --parameter-overrides Architecture=x86_64` first",
                bootstrap.display()
            );
        }
        let mb = std::fs::metadata(&bootstrap)?.len() as f64 / 1e6;
        let mut env = stack.env_for(logical_id, &overrides)?.vars().clone();
        env.insert("AWS_ENDPOINT_URL".into(), aws.url());
        let mut inits = Vec::with_capacity(args.runs);
        let mut conns = 0;
        for _ in 0..args.runs {
            // A Runtime API per process: nothing of the previous one is left waiting.
            let api = RuntimeApi::start().await?;
            let (aws_before, amazon_before) = (aws.connections(), amazon.connections());
            let process = Bootstrap::spawn(&bootstrap, logical_id, &env, spec.memory_mb, &api)?;
            let init = api.wait_for_init(Duration::from_secs(20)).await;
            let first = api.first_next_at();
            let output = process.output();
            process.stop().await;
            let init = match init {
                Ok(d) => d,
                Err(e) => bail!("{logical_id}: {e:#}\n{output}"),
            };
            let first = first.expect("init seen");
            conns += aws.connections_before(first) - aws_before + amazon.connections_before(first)
                - amazon_before;
            inits.push(init.as_secs_f64() * 1000.0);
        }
        inits.sort_by(f64::total_cmp);
        let p50 = inits[inits.len() / 2];
        println!(
            "{:<30} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>14}",
            logical_id,
            mb,
            inits[0],
            p50,
            inits[inits.len() - 1],
            conns
        );
        max_init = max_init.max(p50);
        max_mb = max_mb.max(mb);
        calls_in_init += conns;
    }
    println!(
        "{} functions, {} cold starts each; connections to AWS or Amazon during init: {}",
        stack.functions.len(),
        args.runs,
        calls_in_init
    );
    drop(moto);
    if calls_in_init > 0 {
        bail!("a function connected to AWS or Amazon during init");
    }
    println!("max_init_ms={max_init:.1} max_binary_mb={max_mb:.1}");
    Ok(())
}
