//! The chaos run at CI size: a few dozen orders over three locations and a few hundred stock
//! changes through the whole local stack under every fault at once (see
//! `flexbridge_bench::chaos`); every invariant must hold. The full size is
//! `cargo run --release -p flexbridge-bench --bin chaos` (BENCHMARKS.md).

use std::time::Duration;

use flexbridge_bench::chaos::{self, Options};

// Not in the default test run yet: one mid-size run ended with a label job dead-lettered
// without a reason (`unexplained_dlq=1`, not explained), and this size has not been timed on an
// idle machine. Run it with `cargo test -p flexbridge-bench --test chaos -- --ignored`.
#[ignore = "chaos run: one unexplained dead letter open; run with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_invariant_holds_under_faults() {
    let report = chaos::run(Options {
        seed: 3,
        orders: 60,
        stock_changes: 600,
        skus: 10,
        max_wait: Duration::from_secs(480),
        verbose: true,
    })
    .await
    .expect("the chaos run ran");
    for l in &report.lines {
        println!("{l}");
    }
    for d in &report.dlq {
        println!("dead letter: {d}");
    }
    println!("{}", report.last_line());
    assert!(
        report.orders_created >= 20,
        "too few orders to mean anything: {report:?}"
    );
    assert!(report.ok(), "{}", report.last_line());
}
