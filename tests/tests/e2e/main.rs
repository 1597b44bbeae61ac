//! The suites of the whole system, one test binary: flexbridge against moto and the SP-API
//! simulator, the functions' own checks (router, webhook delivery, notifications setup), the fuzz
//! targets and the chaos runs. One binary links the local stack once (not once per suite, nor
//! each benchmark binary of a crate with tests), and its tests share one moto
//! (`flexbridge_e2e::moto_endpoint`), each with its own stack, many at once (`.cargo/config.toml`).
//! `cargo test -p flexbridge-e2e --test e2e -- orders::` runs one suite; the long runs are
//! `#[ignore]`d and `.ci/run` runs them (`-- --ignored chaos::`, `-- --ignored packaged::`).

mod chaos;
mod cost;
mod doctor;
mod failures;
mod foundation_access;
mod foundation_docs;
mod foundation_runner;
mod foundation_stack;
mod foundation_template;
mod fulfilment;
mod functions;
mod fuzz;
mod health_report;
mod inventory;
mod key_rotation;
mod model_conformance;
mod notifications_setup;
mod operator_cli;
mod orders;
mod orders_unreadable;
mod outage;
mod packaged;
mod spapi_client;
mod uploads;
mod uploads_dynamo;
mod uploads_prices;
mod warehouse_api;
mod warehouse_api_function_url;
mod warehouse_api_router;
mod warehouse_idempotency;
mod webhook_delivery;
