//! The catalog parse stage of `catalog_ingest --parse-only` without the AWS stack around it, so
//! the reader's speed in any profile takes seconds to build:
//!
//! `cargo build --release -p flexbridge-upload-reader --example parse && target/release/examples/parse`
//! `cargo build --profile lambda -p flexbridge-upload-reader --example parse && target/lambda/examples/parse`
//!
//! Writes the same 1,000,000-row catalog as `catalog_ingest` (all seven columns, 63 MB) to the
//! temp directory unless `--file PATH` names one, streams it through `UploadReader` with every
//! rule, one core. Last line: `parse_rows_per_s=... parse_rows_per_cpu_s=...` (the second divides
//! by the thread's CPU time: on a shared machine wall time also counts waiting for a core).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use flexbridge_upload_reader::reader::{Outcome, UploadReader};
use flexbridge_upload_reader::Kind;

fn generate(path: &PathBuf, rows: u64) -> std::io::Result<()> {
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
    f.flush()
}

/// CPU time this thread has run (ns, from the scheduler): unlike wall time, it leaves out the
/// time spent waiting for a core that other processes hold.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = match args.iter().position(|a| a == "--file") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--file needs a path")?),
        None => {
            let path = std::env::temp_dir().join("flexbridge-parse-bench-1000000.csv");
            if !path.is_file() {
                generate(&path, 1_000_000)?;
            }
            path
        }
    };
    let started = Instant::now();
    let cpu_started = thread_cpu_ns();
    let mut reader = UploadReader::open(Kind::Catalog, std::fs::File::open(&path)?)?;
    let (mut ok, mut bad) = (0u64, 0u64);
    while let Some(row) = reader.next_row()? {
        match row.outcome {
            Outcome::Rejected(_) => bad += 1,
            _ => ok += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = thread_cpu_ns().saturating_sub(cpu_started) as f64 / 1e9;
    if bad > 0 {
        return Err(format!("{bad} rows rejected; the generated file should be valid").into());
    }
    eprintln!("parse: {ok} rows in {secs:.3} s ({cpu_secs:.3} s on the CPU)");
    println!(
        "parse_rows_per_s={:.0} parse_rows_per_cpu_s={:.0}",
        ok as f64 / secs,
        ok as f64 / cpu_secs.max(1e-9)
    );
    Ok(())
}
