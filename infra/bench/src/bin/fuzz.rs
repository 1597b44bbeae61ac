//! Runs every fuzz target of `flexbridge_bench::fuzz` for a fixed time each, from a seed, and
//! prints cases run and failures per target. A failure prints the minimal input proptest
//! shrank it to; commit it as a regression test in `infra/bench/tests/fuzz.rs`.
//!
//! `cargo run --release -p flexbridge-bench --bin fuzz -- --seconds 60 --seed 1`

use std::time::{Duration, Instant};

use clap::Parser;
use flexbridge_bench::fuzz::TARGETS;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[derive(Parser)]
struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seed of the first round; each round of `--batch` cases uses the next.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cases per round.
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Only the targets whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

fn main() {
    let args = Args::parse();
    let mut figures = Vec::new();
    let mut failed_targets = 0;
    println!("| target | cases | cases/s | failures |");
    println!("|---|---|---|---|");
    for t in TARGETS {
        if args.only.as_deref().is_some_and(|o| !t.name.contains(o)) {
            continue;
        }
        let started = Instant::now();
        let (mut cases, mut failures, mut round) = (0u64, 0u64, 0u64);
        while started.elapsed() < Duration::from_secs(args.seconds) {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&args.seed.to_le_bytes());
            seed[8..16].copy_from_slice(&round.to_le_bytes());
            seed[16..16 + t.name.len().min(16)]
                .copy_from_slice(&t.name.as_bytes()[..t.name.len().min(16)]);
            let config = Config {
                cases: args.batch,
                failure_persistence: None,
                ..Config::default()
            };
            let mut runner =
                TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
            if let Err(e) = (t.run)(&mut runner) {
                failures += 1;
                eprintln!("{} (seed {} round {round}): {e}", t.name, args.seed);
            } else {
                cases += u64::from(args.batch);
            }
            round += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {} | {cases} | {:.0} | {failures} |",
            t.name,
            cases as f64 / secs
        );
        if failures > 0 {
            failed_targets += 1;
        }
        figures.push(format!("{}_cases={cases}", t.name));
    }
    figures.push(format!("failed_targets={failed_targets}"));
    println!("{}", figures.join(" "));
    if failed_targets > 0 {
        std::process::exit(1);
    }
}
