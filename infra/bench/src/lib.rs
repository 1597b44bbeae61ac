//! Shared code of the benchmarks: the fuzz targets (run for a fixed time by `bin/fuzz.rs`, for a
//! fixed number of cases by `tests/fuzz.rs` in CI).

pub mod chaos;
pub mod cost;
pub mod fuzz;
pub mod outage;
pub mod pricing;
pub mod world;
