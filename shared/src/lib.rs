//! flexbridge: the domain, the SP-API client and the AWS stores shared by every Lambda.
//!
//! Functions under `functions/` are thin handlers over this crate; nothing here
//! knows which Lambda it runs in.

pub mod aws;
pub mod config;
pub mod error;
pub mod events;
pub mod fulfilment;
pub mod health;
pub mod idempotency;
pub mod inventory;
pub mod metrics;
pub mod operate;
pub mod orders;
pub mod prices;
pub mod ratelimit;
pub mod retry;
pub mod runtime;
pub mod secrets;
pub mod shipment;
pub mod spapi;
pub mod store;
pub mod telemetry;
pub mod upload;
pub mod warehouse;

pub use config::Env;
pub use error::{Error, Result};
