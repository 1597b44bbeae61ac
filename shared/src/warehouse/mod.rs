//! The warehouse interface: how the seller's warehouse system (WMS) and flexbridge talk.
//!
//! Inbound, the warehouse calls the signed HTTPS API (`functions/warehouse-api`); outbound, we
//! deliver events to its webhook (`functions/outbound-webhook`). Both directions sign with
//! [`signing`], with the keys of [`keys`] (current and, during a rotation, previous).

pub mod keys;
pub mod signing;
