//! The main job: flexbridge end to end on this machine.
//!
//! `cargo run -p flexbridge-local` sets up the tooling venv (first run only), starts moto and
//! the SP-API simulator, creates every resource from template.yaml, seeds a seller, runs each
//! capability's scenario with the local runner playing Lambda, prints a summary, and ends with
//! the operator CLI's `status` for the seeded seller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use flexbridge_local::demo::{self, Ctx};
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides};
use flexbridge_local::{paths, Moto, Runner, RunnerOptions};

#[derive(Parser, Debug)]
#[command(
    about = "Runs flexbridge locally: moto + the SP-API simulator + every function, from template.yaml"
)]
struct Args {
    /// Give up waiting for the scenarios after this many seconds.
    #[arg(long, default_value_t = 90)]
    timeout_secs: u64,
    /// How much faster than real time schedules and visibility timeouts run.
    #[arg(long, default_value_t = 60.0)]
    speedup: f64,
    /// Keep everything running after the summary (Ctrl-C to stop), to poke at it by hand.
    #[arg(long)]
    keep_running: bool,
    /// Simulator seed (the same seed gives the same orders).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("\nflexbridge local run failed: {e:#}");
            std::process::exit(2);
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let log_path = init_log()?;
    println!("flexbridge local run (logs: {})", log_path.display());

    step("tooling venv (moto, cfn-lint, aws-sam-translator)", async {
        paths::ensure_venv()
    })
    .await?;
    let moto = step("moto (AWS on localhost)", async { Moto::start() }).await?;
    println!("    moto at {}", moto.endpoint());

    let seller = Seller::default();
    let webhook = Arc::new(demo::foundation::WebhookReceiver::start(&seller.webhook_key).await?);

    // Amazon: our simulator in process, unless SPAPI_ENDPOINT names one to use.
    let (spapi_url, lwa_url, sim_admin_url, _sim) = match std::env::var("SPAPI_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(endpoint) => {
            let admin = std::env::var("SPAPI_SIM_URL").unwrap_or_else(|_| endpoint.clone());
            let lwa = std::env::var("LWA_ENDPOINT")
                .unwrap_or_else(|_| format!("{endpoint}/auth/o2/token"));
            println!("  - Amazon: using SPAPI_ENDPOINT={endpoint} (admin API {admin})");
            (endpoint, lwa, admin, None)
        }
        None => {
            let sim = step(
                "SP-API simulator",
                spapi_sim::Simulator::start(spapi_sim::SimOptions {
                    seed: args.seed,
                    ..Default::default()
                }),
            )
            .await?;
            println!("    simulator at {}", sim.base_url);
            (
                sim.base_url.clone(),
                sim.lwa_url(),
                sim.base_url.clone(),
                Some(sim),
            )
        }
    };

    let stack_name = stack::unique_stack_name("local");
    let stack = step(
        "resources from template.yaml (SAM → CloudFormation → moto)",
        stack::provision(
            moto.endpoint(),
            &stack_name,
            &[
                ("SellerId", seller.seller_id.as_str()),
                ("WebhookUrl", webhook.url.as_str()),
            ],
        ),
    )
    .await?;
    println!(
        "    stack {}: {} tables, {} queues, bucket {}, {} functions",
        stack.name,
        stack.tables.len(),
        stack.queues.len(),
        stack.bucket("UploadsBucket"),
        stack.functions.len()
    );
    step("seller: secrets, locations, settings", async {
        seed::seed_secrets(&stack, &seller).await?;
        seed::seed_seller(&stack, &seller).await
    })
    .await?;

    let ctx = Ctx {
        stack: stack.clone(),
        seller: seller.clone(),
        sdk: flexbridge::aws::load_with_endpoint(moto.endpoint()).await,
        spapi_url: spapi_url.clone(),
        sim: spapi_sim::AdminClient::new(&sim_admin_url),
        webhook: webhook.clone(),
    };
    let scenarios = demo::scenarios();
    for s in &scenarios {
        step(&format!("scenario {}: seed", s.name()), s.seed(&ctx)).await?;
    }

    let overrides = Overrides {
        spapi_endpoint: Some(spapi_url),
        lwa_endpoint: Some(lwa_url),
        extra: BTreeMap::new(),
    };
    // Step 6 of docs/deploy.md: Amazon's notification destination and subscription for this
    // stack's queue, as a seller sets them up (the doctor checks them at the end).
    step(
        "notifications: destination and subscription (notifications-setup)",
        async {
            let env = stack.env_for("OrderPollerFunction", &overrides)?;
            let client = flexbridge::spapi::SpApiClient::from_env(
                &env,
                &flexbridge::secrets::SecretCache::from_sdk_config(&ctx.sdk),
            )
            .await?;
            notifications_setup::setup(
                &client,
                &stack.queue("NotificationsQueue").arn,
                "flexbridge-notifications",
            )
            .await
            .map(|_| ())
        },
    )
    .await?;
    let runner = step(
        &format!(
            "local runner (schedules ×{} speed, queues, function URLs)",
            args.speedup
        ),
        Runner::start(
            &stack,
            &overrides,
            RunnerOptions {
                speedup: args.speedup,
                fire_schedules_at_start: true,
                ..Default::default()
            },
        ),
    )
    .await?;
    for (id, f) in &stack.functions {
        let state = if runner.unregistered().contains(id) {
            "not registered (skipped)".to_string()
        } else if let Some(url) = runner.function_url(id) {
            format!("function URL {url}")
        } else {
            format!("{} event(s)", f.events.len())
        };
        println!("    {id}: {state}");
    }

    println!(
        "\nrunning until every scenario is done (at most {} s):",
        args.timeout_secs
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last_line = String::new();
    let all_done = loop {
        let mut lines = Vec::new();
        let mut done = true;
        for s in &scenarios {
            match s.progress(&ctx, &runner).await {
                Ok(p) => {
                    done &= p.done;
                    lines.push(format!(
                        "{}: {}{}",
                        s.name(),
                        p.line,
                        if p.done { " ✓" } else { "" }
                    ));
                }
                Err(e) => {
                    done = false;
                    lines.push(format!("{}: progress check failed: {e:#}", s.name()));
                }
            }
        }
        let line = lines.join(" | ");
        if line != last_line {
            println!("  [{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last_line = line;
        }
        if done {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    println!("\n==================== summary ====================");
    let mut errors = Vec::new();
    for s in &scenarios {
        match s.summary(&ctx, &runner).await {
            Ok(sum) => {
                for l in sum.lines {
                    println!("  {:<40} {}", l.label, l.value);
                }
                errors.extend(sum.errors.into_iter().map(|e| format!("{}: {e}", s.name())));
            }
            Err(e) => errors.push(format!("{}: summary failed: {e:#}", s.name())),
        }
    }
    for (id, st) in runner.stats() {
        if st.errors > 0 {
            errors.push(format!(
                "{id}: {} of {} invocations failed, last: {}",
                st.errors,
                st.invocations,
                st.last_error.unwrap_or_default()
            ));
        }
    }
    for (dlq, n) in demo::dead_letters(&ctx).await? {
        if n > 0 {
            errors.push(format!(
                "{n} message(s) in {dlq} ({})",
                stack.queue(&dlq).name
            ));
        }
    }
    if !all_done {
        errors.push(format!(
            "not every scenario finished within {} s",
            args.timeout_secs
        ));
    }
    if errors.is_empty() {
        println!("  {:<40} none", "Errors");
    } else {
        println!("  Errors and warnings (details in {}):", log_path.display());
        for e in &errors {
            println!("    - {e}");
        }
    }
    println!(
        "  {:<40} {:.1} s",
        "Wall time",
        started.elapsed().as_secs_f64()
    );

    // What an operator sees (`flexbridge --stack <name> status`), for the seeded seller.
    println!("\n==================== flexbridge status ====================");
    let cli_vars = [("AWS_ENDPOINT_URL".to_string(), moto.endpoint().to_string())];
    match flexbridge_cli::run_with(
        ["flexbridge", "--stack", stack.name.as_str(), "status"],
        cli_vars.into_iter().collect(),
    )
    .await
    {
        Ok(out) => print!("{out}"),
        Err(e) => println!("  flexbridge status failed: {e}"),
    }

    // Whether the stack could go live as it is (`flexbridge --stack <name> doctor`).
    println!("\n==================== flexbridge doctor ====================");
    let doctor_vars = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        (
            "SPAPI_ENDPOINT",
            overrides.spapi_endpoint.as_deref().unwrap_or_default(),
        ),
        (
            "LWA_ENDPOINT",
            overrides.lwa_endpoint.as_deref().unwrap_or_default(),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let doctor_passed = match flexbridge_cli::run_with(
        ["flexbridge", "--stack", stack.name.as_str(), "doctor"],
        doctor_vars.into_iter().collect(),
    )
    .await
    {
        Ok(out) => {
            print!("{out}");
            true
        }
        Err(e) => {
            println!("{e}");
            false
        }
    };

    if args.keep_running {
        println!("\nstill running (moto {}, Ctrl-C to stop)", moto.endpoint());
        tokio::signal::ctrl_c().await.ok();
    }
    runner.stop().await;
    drop(moto);
    Ok(all_done && doctor_passed)
}

async fn step<T>(what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let t = Instant::now();
    let out = f.await.with_context(|| what.to_string())?;
    println!("  - {what}: ok ({:.1} s)", t.elapsed().as_secs_f64());
    Ok(out)
}

/// Function logs go to a file; the terminal gets progress lines only.
fn init_log() -> Result<std::path::PathBuf> {
    let dir = paths::repo_root().join(".local");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("run.log");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(path)
}
