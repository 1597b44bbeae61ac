//! Catalog upload: parse-and-validate speed and memory, and the whole ingest into moto.
//!
//! `cargo run --release -p flexbridge-bench --bin catalog_ingest` (defaults: 1,000,000 rows)
//!
//! 1. Generates a catalog CSV (all seven columns, ~60 bytes a row) in the temp directory.
//! 2. `parse` stage, in a child process of its own (so its peak RSS is its own): streams the
//!    file through `flexbridge::upload::UploadReader` (every rule, duplicate detection
//!    included) and prints rows/s and VmHWM.
//! 3. `ingest` stage, in another child process: starts moto, provisions the stack from
//!    template.yaml, puts the file into the uploads bucket, and feeds UploadsQueue's messages
//!    (S3's notification, then the handler's own resume messages) to the UploadIngestFunction
//!    handler built by the local registry, each invocation with the template's 300 s deadline,
//!    until the summary report exists. Rows/s is rows over the handlers' wall time; the peak
//!    RSS is the handler process's (moto is a separate process).
//!
//! `parse_rows_per_cpu_s` divides by the parser thread's CPU time instead of wall time: on a
//! machine shared with other work, wall time also counts waiting for a core.
//!
//! Ends with one line: `parse_rows_per_s=... parse_rows_per_cpu_s=... parse_peak_rss_mb=... ingest_rows_per_s=... ingest_peak_rss_mb=...`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use clap::Parser;
use flexbridge::runtime::Invocation;
use flexbridge::upload::{Kind, Outcome, UploadReader};
use flexbridge_local::registry::Handler;
use flexbridge_local::stack::{self, Overrides};

#[derive(Parser, Debug)]
#[command(
    about = "catalog upload: parse-and-validate rows/s and peak RSS, and the whole ingest into moto"
)]
struct Args {
    /// Rows in the generated catalog.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// `all` (generate, then both stages in child processes), `parse` or `ingest` (one stage on `--file`).
    #[arg(long, default_value = "all")]
    stage: String,
    #[arg(long)]
    file: Option<PathBuf>,
    /// Rows for the ingest stage (a prefix of the file); default: all of them.
    #[arg(long)]
    ingest_rows: Option<u64>,
    /// Skip the ingest stage (parse only).
    #[arg(long)]
    parse_only: bool,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this thread has run, from the scheduler (ns): unlike wall time, it does not count
/// time spent waiting for a core that other processes hold.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn generate(path: &Path, rows: u64) -> Result<u64> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        f,
        "sku,asin,title,product_type,enabled,safety_stock,max_quantity"
    )?;
    for i in 0..rows {
        writeln!(
            f,
            "SKU-{i:08},B0{:08},Mug {} ceramic red,KITCHEN,{},{},{}",
            i.wrapping_mul(7919) % 100_000_000,
            i % 1000,
            if i % 10 == 0 { "false" } else { "true" },
            i % 5,
            100 + i % 50
        )?;
    }
    f.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn parse_stage(file: &Path) -> Result<()> {
    let started = Instant::now();
    let cpu_started = thread_cpu_ns();
    let mut reader = UploadReader::open(Kind::Catalog, std::fs::File::open(file)?)
        .map_err(|e| anyhow!("file rejected: {e}"))?;
    let (mut ok, mut bad) = (0u64, 0u64);
    while let Some(row) = reader
        .next_row()
        .map_err(|e| anyhow!("file rejected: {e}"))?
    {
        match row.outcome {
            Outcome::Rejected(errors) => {
                if bad == 0 {
                    eprintln!("parse: first rejected row: {errors:?}");
                }
                bad += 1
            }
            _ => ok += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = thread_cpu_ns().saturating_sub(cpu_started) as f64 / 1e9;
    eprintln!(
        "parse: {ok} rows accepted, {bad} rejected in {secs:.3} s ({cpu_secs:.3} s on the CPU)"
    );
    if bad > 0 {
        bail!("the generated file should be valid");
    }
    println!(
        "parse_rows_per_s={:.0} parse_rows_per_cpu_s={:.0} parse_peak_rss_mb={:.1}",
        (ok + bad) as f64 / secs,
        (ok + bad) as f64 / cpu_secs.max(1e-9),
        peak_rss_mb()
    );
    Ok(())
}

async fn ingest_stage(file: &Path, rows: u64) -> Result<()> {
    let moto = tokio::task::spawn_blocking(flexbridge_local::Moto::start).await??;
    let stack = stack::provision(
        moto.endpoint(),
        &stack::unique_stack_name("bench_catalog"),
        &[],
    )
    .await?;
    let sdk = flexbridge::aws::load_with_endpoint(moto.endpoint()).await;
    let s3 = flexbridge::aws::s3_client(&sdk);
    let sqs = flexbridge::aws::sqs_client(&sdk);
    let bucket = stack.bucket("UploadsBucket").to_string();
    let queue = stack.queues["UploadsQueue"].clone();
    let key = "catalog/delta/bench.csv";

    // The ingest stage may use a prefix of the file.
    let body = std::fs::read(file)?;
    let cut = body
        .split_inclusive(|b| *b == b'\n')
        .take(rows as usize + 1)
        .map(<[u8]>::len)
        .sum::<usize>();
    let body = body[..cut].to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .context("put the catalog")?;

    let make = flexbridge_local::registry::constructors()["UploadIngestFunction"];
    let spec = stack
        .function("UploadIngestFunction")
        .ok_or_else(|| anyhow!("template has no UploadIngestFunction"))?
        .clone();
    let Handler::Function(handler) =
        make(stack.env_for("UploadIngestFunction", &Overrides::default())?).await?
    else {
        bail!("UploadIngestFunction is not an SQS consumer");
    };

    let mut busy = Duration::ZERO;
    let mut invocations = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(1)
            .wait_time_seconds(2)
            .send()
            .await?;
        for m in out.messages.unwrap_or_default() {
            sqs.delete_message()
                .queue_url(&queue.url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            if m.body().unwrap_or_default().contains("s3:TestEvent") {
                continue;
            }
            let event = flexbridge_local::runner::sqs_event(
                std::slice::from_ref(&m),
                &queue.arn,
                &stack.region,
            );
            let started = Instant::now();
            handler
                .invoke(
                    event,
                    Invocation::new(format!("bench-{invocations}"), spec.timeout()),
                )
                .await?;
            busy += started.elapsed();
            invocations += 1;
            eprintln!(
                "ingest: invocation {invocations} took {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        let report = s3
            .get_object()
            .bucket(&bucket)
            .key(format!("reports/{key}.summary.json"))
            .send()
            .await;
        if let Ok(r) = report {
            let text = r.body.collect().await?.to_vec();
            let summary: flexbridge::upload::UploadSummary = serde_json::from_slice(&text)?;
            eprintln!(
                "ingest: {} rows read, {} accepted, {} rejected, {} runs",
                summary.rows_read, summary.accepted, summary.rejected, summary.runs
            );
            if summary.accepted != rows {
                bail!("expected {rows} rows accepted: {summary:?}");
            }
            break;
        }
    }
    println!(
        "ingest_rows_per_s={:.0} ingest_peak_rss_mb={:.1}",
        rows as f64 / busy.as_secs_f64(),
        peak_rss_mb()
    );
    drop(moto);
    Ok(())
}

/// Runs this binary again for one stage and returns its last stdout line.
fn child(stage: &str, file: &Path, extra: &[String]) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--stage", stage, "--file"])
        .arg(file)
        .args(extra)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("{stage} stage failed ({})", out.status);
    }
    String::from_utf8(out.stdout)?
        .lines()
        .last()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{stage} stage printed nothing"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.stage.as_str() {
        "parse" => parse_stage(args.file.as_deref().ok_or_else(|| anyhow!("--file"))?),
        "ingest" => {
            flexbridge::telemetry::init();
            let rows = args.ingest_rows.unwrap_or(args.rows);
            let file = args.file.clone().ok_or_else(|| anyhow!("--file"))?;
            tokio::runtime::Runtime::new()?.block_on(ingest_stage(&file, rows))
        }
        "all" => {
            let file =
                std::env::temp_dir().join(format!("flexbridge-bench-catalog-{}.csv", args.rows));
            let bytes = generate(&file, args.rows)?;
            eprintln!(
                "generated {} rows, {:.1} MB: {}",
                args.rows,
                bytes as f64 / 1e6,
                file.display()
            );
            let parse = child("parse", &file, &[])?;
            let ingest = if args.parse_only {
                "ingest_rows_per_s=skipped ingest_peak_rss_mb=skipped".to_string()
            } else {
                let rows = args.ingest_rows.unwrap_or(args.rows);
                child("ingest", &file, &["--ingest-rows".into(), rows.to_string()])?
            };
            let _ = std::fs::remove_file(&file);
            println!("{parse} {ingest}");
            Ok(())
        }
        other => Err(anyhow!("unknown --stage {other}")),
    }
}
