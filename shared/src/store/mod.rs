//! DynamoDB-backed stores, each behind a narrow trait with an in-memory twin for unit tests.
//! Key schemas and access patterns: docs/design.md and each module's header.

pub mod catalog;
pub mod cursors;
pub mod dynamo;
pub mod inventory;
pub mod locations;
pub mod ratelimit;
pub mod settings;
pub mod shipments;
