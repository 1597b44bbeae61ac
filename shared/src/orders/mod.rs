//! Orders: Amazon's shipments and returns for the seller's own warehouse.
//!
//! Poll and listen (the order poller and the notification consumer), store the full detail,
//! decide by rules, CONFIRM exactly once, reserve the units and hand the shipment to the
//! warehouse; follow cancellations and returns the same way. See `processor` for how every
//! step converges after a crash.

pub mod adapters;
pub mod notifications;
pub mod poller;
pub mod ports;
pub mod processor;
pub mod returns;
pub mod rules;
pub mod wiring;

pub use processor::{OrderProcessor, Step};
pub use wiring::Orders;

#[cfg(test)]
mod tests;
