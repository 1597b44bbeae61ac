//! Every benchmark at a size that fits a few minutes, one after the other (each a child
//! process: its own memory figures, no shared state), then one table of their last lines.
//!
//! `cargo build --release -p flexbridge-bench --bins && cargo run --release -p flexbridge-bench --bin all`
//!
//! The benchmarks are the release binaries (`<target>/release/`, whichever profile this one was
//! built with): their figures are held to goals, and a debug build measures the compiler's
//! unoptimised code, not ours. Build them all first (`--bins`). When the deployed profile's
//! parser is built too (`cargo build --profile lambda -p flexbridge-bench --bin catalog_ingest`),
//! `catalog_ingest` also runs from `<target>/lambda/`, the code `sam build` ships.
//! `--skip name,name` leaves some out; `cold_start` is skipped when there is no `sam build`
//! output. Last line: `benchmarks=N failed=M`.

use std::process::Command;
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Benchmarks to leave out (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

/// Each benchmark with its small-size arguments.
const RUNS: &[(&str, &[&str])] = &[
    ("fuzz", &["--seconds", "10", "--seed", "1"]),
    (
        "inventory_throughput",
        &["--seconds", "10", "--tasks", "20"],
    ),
    ("catalog_ingest", &["--parse-only"]),
    (
        "order_latency",
        &[
            "--poll-secs",
            "40",
            "--notify-secs",
            "20",
            "--drain-secs",
            "40",
        ],
    ),
    (
        "inventory_push",
        &[
            "--skus",
            "5000",
            "--changes-during",
            "100",
            "--latency-samples",
            "50",
        ],
    ),
    ("label_drain", &["--shipments", "30"]),
    ("outage_drain", &["--shipments", "60"]),
    (
        "cost",
        &[
            "--orders",
            "20",
            "--hours",
            "0.5",
            "--speedup",
            "20",
            "--skus",
            "1000",
        ],
    ),
    // Needs the packaged functions (`sam build --parameter-overrides Architecture=x86_64`).
    ("cold_start", &["--runs", "3"]),
    (
        "chaos",
        &["--orders", "60", "--stock-changes", "600", "--seed", "1"],
    ),
];

fn main() {
    let args = Args::parse();
    let target = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(|d| d.parent()).map(|d| d.to_path_buf()))
        .expect("the target directory");
    let release = target.join("release");
    // The deployed profile's parser, when built: (label, binary directory, name, arguments).
    let lambda = target.join("lambda");
    let mut runs: Vec<(String, std::path::PathBuf, &str, &[&str])> = Vec::new();
    for (name, run_args) in RUNS {
        runs.push((name.to_string(), release.clone(), name, run_args));
        if *name == "catalog_ingest" && lambda.join(name).is_file() {
            runs.push((
                format!("{name} (lambda profile)"),
                lambda.clone(),
                name,
                run_args,
            ));
        }
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for (label, dir, name, run_args) in runs {
        if args.skip.iter().any(|s| s == name) {
            continue;
        }
        if name == "cold_start"
            && !flexbridge_local::paths::repo_root()
                .join(".aws-sam/build")
                .is_dir()
        {
            println!("=== {name}: skipped, no .aws-sam/build (run `sam build --parameter-overrides Architecture=x86_64` first)");
            rows.push((label, None, 0.0, "(skipped: not built)".to_string()));
            continue;
        }
        let started = Instant::now();
        println!("=== {label} {}", run_args.join(" "));
        let out = Command::new(dir.join(name)).args(run_args).output();
        let secs = started.elapsed().as_secs_f64();
        let (ok, last) = match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let last = text
                    .lines()
                    .rev()
                    .find(|l| l.contains('='))
                    .unwrap_or("(no figures)")
                    .to_string();
                (o.status.success(), last)
            }
            Err(e) => (
                false,
                format!(
                    "could not start {}: {e} (build with --release --bins)",
                    dir.join(name).display()
                ),
            ),
        };
        if !ok {
            failed += 1;
        }
        println!("{last}");
        rows.push((label, Some(ok), secs, last));
    }
    println!();
    println!("| benchmark | ok | seconds | figures |");
    println!("|---|---|---|---|");
    for (name, ok, secs, last) in &rows {
        println!(
            "| {name} | {} | {secs:.0} | `{last}` |",
            match ok {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "skipped",
            }
        );
    }
    println!("benchmarks={} failed={failed}", rows.len());
    if failed > 0 {
        std::process::exit(1);
    }
}
