//! Operating flexbridge: the domain behind the operator CLI (`infra/cli`).
//!
//! - [`settings`]: every setting flexbridge reads, and the one validation every change passes
//!   before it is stored and logged;
//! - [`hubs`]: hub → Amazon location mappings, checked with Amazon before they are enabled
//!   and logged like settings;
//! - [`status`]: per-location health from the stores, and a shipment's history;
//! - [`doctor`]: what each of the doctor's facts means (ok, or what is wrong and the fix);
//! - [`secret`]: filling the stack secret's credentials and rotating one key, keeping the rest.

pub mod doctor;
pub mod hubs;
pub mod secret;
pub mod settings;
pub mod status;
