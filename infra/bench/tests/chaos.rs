//! The chaos run at CI size: a few hundred orders over three locations and a few thousand stock
//! changes through the whole local stack under every fault at once (see
//! `flexbridge_bench::chaos`); every invariant must hold. The full size is
//! `cargo run -p flexbridge-bench --bin chaos` (BENCHMARKS.md).

use std::time::Duration;

use flexbridge_bench::chaos::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_invariant_holds_under_faults() {
    let report = chaos::run(Options {
        seed: 3,
        orders: 200,
        stock_changes: 2_000,
        skus: 10,
        max_wait: Duration::from_secs(900),
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
        report.orders_created >= 150,
        "too few orders to mean anything: {report:?}"
    );
    assert!(report.ok(), "{}", report.last_line());
}
