//! The simulator's suites, one test binary (the models are loaded once per process).

mod auth_and_validation;
mod binary_and_sqs;
mod common;
mod faults_and_limits;
mod inventory_returns_listings;
mod model_conformance;
mod model_examples;
mod models_download;
mod notifications;
mod notifications_api;
mod shipments;
