//! flexbridge on one machine: moto (AWS) from a project-local venv, the resources of
//! `template.yaml` created in it, and the local runner that plays Lambda's event plumbing
//! (schedules, SQS event sources, function URLs) for the function crates, in process.
//!
//! The main job (`cargo run -p flexbridge-local`) and the end-to-end tests both use it.

pub mod aws_faults;
pub mod aws_usage;
pub mod demo;
pub mod lambda_api;
pub mod moto;
pub mod paths;
pub mod registry;
pub mod runner;
pub mod schedule;
pub mod seed;
pub mod stack;

pub use aws_faults::{AwsFaultProxy, AwsFaults};
pub use moto::Moto;
pub use registry::Handler;
pub use runner::{Chaos, ChaosStats, Killed, Runner, RunnerOptions};
pub use stack::{FunctionEvent, FunctionSpec, Overrides, Stack};
